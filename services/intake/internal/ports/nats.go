package ports

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/encoding/protojson"
)

// SubmitSubject is the NATS request subject for submissions: a protojson
// SubmitComplaintRequest with header "Authorization: Bearer <token>"; the
// reply is a protojson SubmitComplaintResponse, or an ErrorBody with header
// "Closeloop-Error: <CODE>".
const SubmitSubject = "closeloop.intake.submit"

// ErrorHeader marks an error reply on the NATS subject.
const ErrorHeader = "Closeloop-Error"

// NATSResponder answers the submit subject in queue group "intake", at most
// concurrency requests at once.
type NATSResponder struct {
	sub *nats.Subscription
	wg  sync.WaitGroup
}

// ServeNATS subscribes; Stop drains.
func ServeNATS(ctx context.Context, nc *nats.Conn, d *Dispatcher, concurrency int) (*NATSResponder, error) {
	if concurrency <= 0 {
		concurrency = 64
	}
	r := &NATSResponder{}
	sem := make(chan struct{}, concurrency)
	sub, err := nc.QueueSubscribe(SubmitSubject, "intake", func(m *nats.Msg) {
		sem <- struct{}{}
		r.wg.Add(1)
		go func() {
			defer func() { <-sem; r.wg.Done() }()
			// Requests in flight finish even when shutdown begins.
			r.handle(context.WithoutCancel(ctx), d, m)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", SubmitSubject, err)
	}
	r.sub = sub
	return r, nil
}

func (r *NATSResponder) handle(ctx context.Context, d *Dispatcher, m *nats.Msg) {
	reply := nats.NewMsg(m.Reply)
	var body []byte
	out, err := d.Call(ctx, "SubmitComplaint", m.Header.Get("Authorization"), m.Data)
	if err == nil {
		body, err = protojson.Marshal(out)
	}
	if err != nil {
		eb, _, _ := ErrorJSON(err)
		reply.Header.Set(ErrorHeader, eb.Code)
		body, _ = json.Marshal(eb)
	}
	reply.Data = body
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
