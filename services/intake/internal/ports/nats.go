package ports

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/nats-io/nats.go"

	"github.com/closeloop/closeloop/libs/api"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// SubmitSubject is the NATS request subject for submissions: a protojson
// SubmitComplaintRequest with header "Authorization: Bearer <token>" (and
// optionally W3C "traceparent"); the reply is a protojson
// SubmitComplaintResponse, or libs/api's JSON error body with header
// "Closeloop-Error: <code>" (and "Retry-After" when the caller should wait).
const SubmitSubject = "closeloop.intake.submit"

// ErrorHeader marks an error reply on the NATS subject; its value is the
// error body's code (a gRPC code name such as "PermissionDenied").
const ErrorHeader = "Closeloop-Error"

// submitPath is SubmitComplaint on libs/api's HTTP/JSON face.
const submitPath = "/v1" + intakev1.IntakeService_SubmitComplaint_FullMethodName

// NATSResponder answers the submit subject in queue group "intake", at most
// concurrency requests at once. Each request is handed to the HTTP/JSON face
// of the service's libs/api server (in process, no socket), so it passes
// through the same gRPC interceptors — tracing, logging, authentication,
// rate limit — and error mapping as a gRPC or HTTP call.
type NATSResponder struct {
	face http.Handler
	sub  *nats.Subscription
	wg   sync.WaitGroup
}

// ServeNATS subscribes; Stop drains. face is api.Server.HTTPHandler().
func ServeNATS(ctx context.Context, nc *nats.Conn, face http.Handler, concurrency int) (*NATSResponder, error) {
	if concurrency <= 0 {
		concurrency = 64
	}
	r := &NATSResponder{face: face}
	sem := make(chan struct{}, concurrency)
	sub, err := nc.QueueSubscribe(SubmitSubject, "intake", func(m *nats.Msg) {
		sem <- struct{}{}
		r.wg.Add(1)
		go func() {
			defer func() { <-sem; r.wg.Done() }()
			// Requests in flight finish even when shutdown begins.
			r.handle(context.WithoutCancel(ctx), m)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", SubmitSubject, err)
	}
	r.sub = sub
	return r, nil
}

func (r *NATSResponder) handle(ctx context.Context, m *nats.Msg) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, submitPath, bytes.NewReader(m.Data))
	if err != nil {
		return // a constant path and method: cannot happen
	}
	// Authorization and the trace context (traceparent, tracestate,
	// baggage) are read by the face from the headers.
	for k, vs := range m.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	w := &replyWriter{header: http.Header{}, status: http.StatusOK}
	r.face.ServeHTTP(w, req)

	reply := nats.NewMsg(m.Reply)
	reply.Data = w.body.Bytes()
	if w.status != http.StatusOK {
		var eb api.ErrorBody
		if json.Unmarshal(reply.Data, &eb) != nil || eb.Code == "" {
			eb.Code = http.StatusText(w.status)
		}
		reply.Header.Set(ErrorHeader, eb.Code)
		if ra := w.header.Get("Retry-After"); ra != "" {
			reply.Header.Set("Retry-After", ra)
		}
	}
	if m.Reply != "" {
		_ = m.RespondMsg(reply)
	}
}

// Stop stops taking requests and waits for those in flight. Requests still
// queued in the client are dropped: their senders time out and retry, which
// is safe (submissions are idempotent).
func (r *NATSResponder) Stop() {
	_ = r.sub.Unsubscribe()
	r.wg.Wait()
}

// replyWriter collects the face's answer for the NATS reply.
type replyWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *replyWriter) Header() http.Header         { return w.header }
func (w *replyWriter) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *replyWriter) WriteHeader(status int)      { w.status = status }
