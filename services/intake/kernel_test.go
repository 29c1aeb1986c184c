package intake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake"
)

// call posts body to method on the HTTP/JSON face as token's holder and
// returns the status, libs/api's error body (when not 200) and headers.
func call(t *testing.T, r *running, method, token, body string) (int, api.ErrorBody, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+"/v1/closeloop.intake.v1.IntakeService/"+method, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb api.ErrorBody
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(b, &eb); err != nil {
			t.Fatalf("%s: HTTP %d body %s is not libs/api's error body", method, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, eb, resp.Header
}

// TestErrorKindsReachTheHTTPFace: every kind of refusal the use cases
// return (libs/kernel's) is answered with its status by libs/api's
// mapping, intake having none of its own.
func TestErrorKindsReachTheHTTPFace(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	sub, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-KINDS"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.WithdrawComplaint(as(tokAgent), &intakev1.WithdrawComplaintRequest{ComplaintId: sub.GetComplaintId(), Reason: "solved"}); err != nil {
		t.Fatal(err)
	}
	id := `"` + sub.GetComplaintId() + `"`
	const unknown = "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name, method, token, body string
		status                    int
		code                      codes.Code
		message                   string // exact, when set
	}{
		{"invalid", "GetComplaint", tokAgent, `{"complaintId":"not an id"}`, http.StatusBadRequest, codes.InvalidArgument, ""},
		{"permission", "AcceptComplaint", tokPhone, `{"complaintId":` + id + `}`, http.StatusForbidden, codes.PermissionDenied, ""},
		{"not found", "GetComplaint", tokAgent, `{"complaintId":"` + unknown + `"}`, http.StatusNotFound, codes.NotFound, "complaint not found"},
		{"not found, command", "WithdrawComplaint", tokAgent, `{"complaintId":"` + unknown + `","reason":"x"}`, http.StatusNotFound, codes.NotFound, "complaint not found"},
		{"precondition", "AmendCustomerDetails", tokAgent, `{"complaintId":` + id + `,"customer":{"name":"Li","phone":"13900001111"}}`, http.StatusConflict, codes.FailedPrecondition, "complaint is withdrawn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, eb, _ := call(t, r, tc.method, tc.token, tc.body)
			if got != tc.status || eb.Code != tc.code.String() || eb.Message == "" {
				t.Fatalf("HTTP %d %+v, want %d %s", got, eb, tc.status, tc.code)
			}
			if tc.message != "" && eb.Message != tc.message {
				t.Errorf("message %q, want %q", eb.Message, tc.message)
			}
			if strings.Contains(eb.Message, unknown) || strings.Contains(eb.Message, sub.GetComplaintId()) {
				t.Errorf("message %q names the complaint", eb.Message)
			}
		})
	}
	if code := status.Code(func() error {
		_, err := r.client.AcceptComplaint(as(tokAgent), &intakev1.AcceptComplaintRequest{ComplaintId: sub.GetComplaintId()})
		return err
	}()); code != codes.FailedPrecondition {
		t.Errorf("gRPC accept of a withdrawn complaint: %v, want FailedPrecondition", code)
	}
	if evs := e.events(t, sub.GetComplaintId()); len(evs) != 3 {
		t.Errorf("refused calls stored events: %v", evs)
	}
}

// TestAnotherChannelsComplaintIsNotFound: to an adapter, another channel's
// complaint answers exactly what an unknown id answers (ids derive from
// channel and reference, so a refusal would confirm the complaint exists),
// on both faces, for reads and for attachments, and stores nothing.
func TestAnotherChannelsComplaintIsNotFound(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	phone, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-FOREIGN"))
	if err != nil {
		t.Fatal(err)
	}
	const unknown = "00000000-0000-4000-8000-000000000000"
	bodies := map[string]func(id string) string{
		"GetComplaint": func(id string) string { return `{"complaintId":"` + id + `"}` },
		"AttachEvidence": func(id string) string {
			return `{"complaintId":"` + id + `","attachments":[{"ref":"s3://x/1.jpg","kind":"photo"}]}`
		},
	}
	for method, body := range bodies {
		t.Run(method, func(t *testing.T) {
			fStatus, fBody, _ := call(t, r, method, tokEmail, body(phone.GetComplaintId()))
			uStatus, uBody, _ := call(t, r, method, tokEmail, body(unknown))
			if fStatus != http.StatusNotFound || fBody.Code != codes.NotFound.String() || fBody.Message != "complaint not found" {
				t.Fatalf("another channel's complaint: HTTP %d %+v, want 404 NotFound \"complaint not found\"", fStatus, fBody)
			}
			if fStatus != uStatus || fBody.Code != uBody.Code || fBody.Message != uBody.Message || len(fBody.Violations) != len(uBody.Violations) {
				t.Fatalf("another channel's complaint answers HTTP %d %+v, an unknown one HTTP %d %+v", fStatus, fBody, uStatus, uBody)
			}
		})
	}
	var foreign, missing error
	_, foreign = r.client.GetComplaint(as(tokEmail), &intakev1.GetComplaintRequest{ComplaintId: phone.GetComplaintId()})
	_, missing = r.client.GetComplaint(as(tokEmail), &intakev1.GetComplaintRequest{ComplaintId: unknown})
	if status.Code(foreign) != codes.NotFound || status.Convert(foreign).Message() != status.Convert(missing).Message() || status.Code(missing) != codes.NotFound {
		t.Fatalf("gRPC: another channel's %v, unknown %v, want the same NotFound", foreign, missing)
	}
	if all := e.allEvents(t); all["EvidenceAttached"] != 0 {
		t.Fatalf("a refused attachment was stored: %v", all)
	}
	// The complaint's own adapter still reads and attaches.
	if code, eb, _ := call(t, r, "AttachEvidence", tokPhone, bodies["AttachEvidence"](phone.GetComplaintId())); code != http.StatusOK {
		t.Fatalf("own adapter attaches: HTTP %d %+v", code, eb)
	}
}

// TestRetryLaterAndInternalReachEveryFace: a problem claimed moments ago
// by a submission that died is 503 with Retry-After on HTTP and NATS; the
// dying instance's own failure is 500 without its cause.
func TestRetryLaterAndInternalReachEveryFace(t *testing.T) {
	e := newEnv(t, false)
	dying := e.start(t, testConfig(t), &lossyStore{Store: e.store, failBefore: true})
	body := string(mustJSON(t, e.phoneSubmission("HOT-PENDING")))
	got, eb, _ := call(t, dying, "SubmitComplaint", tokPhone, body)
	if got != http.StatusInternalServerError || eb.Code != "Internal" || eb.Message != "internal error" {
		t.Fatalf("dying instance: HTTP %d %+v, want 500 internal error", got, eb)
	}
	dying.stop()

	r := e.start(t, testConfig(t), nil)
	mail := e.phoneSubmission("MAIL-PENDING")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	got, eb, h := call(t, r, "SubmitComplaint", tokEmail, string(mustJSON(t, mail)))
	if got != http.StatusServiceUnavailable || eb.Code != "Unavailable" || h.Get("Retry-After") == "" {
		t.Fatalf("claim pending: HTTP %d %+v Retry-After %q, want 503 with a hint", got, eb, h.Get("Retry-After"))
	}
	msg := nats.NewMsg(intake.SubmitSubject)
	msg.Header.Set("Authorization", "Bearer "+tokEmail)
	msg.Data = mustJSON(t, mail)
	rep, err := e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil || rep.Header.Get(intakeErrorHeader) != "Unavailable" || rep.Header.Get("Retry-After") == "" {
		t.Fatalf("NATS, claim pending: %v %v %s", err, rep.Header, rep.Data)
	}
}

// TestStreamNeverReceivedIsNotFound: events on a complaint stream that does
// not start with ComplaintReceived are no complaint intake knows; reads
// and commands are refused and nothing is appended.
func TestStreamNeverReceivedIsNotFound(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	const id = "11111111-1111-4111-8111-111111111111"
	stray, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: e.now}, &eventsv1.ComplaintAccepted{AcceptedBy: "someone"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Append(context.Background(), eventlog.ComplaintStream(id), 0, stray); err != nil {
		t.Fatal(err)
	}
	_, err = r.client.GetComplaint(as(tokAgent), &intakev1.GetComplaintRequest{ComplaintId: id})
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), "never received") {
		t.Errorf("get: %v, want NotFound: never received", err)
	}
	_, err = r.client.WithdrawComplaint(as(tokAgent), &intakev1.WithdrawComplaintRequest{ComplaintId: id, Reason: "x"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("withdraw: %v, want NotFound", err)
	}
	if evs := e.events(t, id); len(evs) != 1 {
		t.Errorf("stream = %v, want the stray event only", evs)
	}
}

// spanID is the span id of a W3C traceparent.
func spanID(traceparent string) string {
	if len(traceparent) < 52 {
		return ""
	}
	return traceparent[36:52]
}

// TestEventsCarryCorrelationAndTheirDecisionsSpan: a submission starts a
// correlation its events share, the acceptance is caused by the receipt,
// even when a retry settles it after a crash, and every event carries the
// trace context of the decision that made it, a span of the service's own
// tracer provider. The API server records its metrics with the service's
// meter provider.
func TestEventsCarryCorrelationAndTheirDecisionsSpan(t *testing.T) {
	e := newEnv(t, false)
	spans := tracetest.NewSpanRecorder()
	e.tracer = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	metrics := sdkmetric.NewManualReader()
	e.meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(metrics))

	// One instance dies between ComplaintReceived and ComplaintAccepted;
	// the adapter's retry reaches another.
	req := e.phoneSubmission("HOT-CORR")
	dying := e.start(t, testConfig(t), &lossyStore{Store: e.store, firstOnly: true})
	if _, err := dying.client.SubmitComplaint(as(tokPhone), req); status.Code(err) != codes.Internal {
		t.Fatalf("dying instance: %v", err)
	}
	dying.stop()
	r := e.start(t, testConfig(t), nil)
	retried, err := r.client.SubmitComplaint(as(tokPhone), req)
	if err != nil || retried.GetCreated() || !retried.GetAccepted() {
		t.Fatalf("retry: %v %v, want accepted, not created", retried, err)
	}
	if _, err := r.client.WithdrawComplaint(as(tokAgent), &intakev1.WithdrawComplaintRequest{ComplaintId: retried.GetComplaintId(), Reason: "solved"}); err != nil {
		t.Fatal(err)
	}
	other := e.phoneSubmission("HOT-CORR-2")
	other.Product.SerialNumber = "SN-OTHER" // another problem: not a duplicate
	fresh, err := r.client.SubmitComplaint(as(tokPhone), other)
	if err != nil || !fresh.GetCreated() {
		t.Fatalf("fresh submission: %v %v", fresh, err)
	}

	named := map[string]string{} // span id -> span name
	for _, s := range spans.Ended() {
		named[s.SpanContext().SpanID().String()] = s.Name()
	}
	read := func(id string) []*eventsv1.Envelope {
		recs, err := e.store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		var out []*eventsv1.Envelope
		for _, r := range recs {
			out = append(out, r.Event)
		}
		return out
	}
	check := func(e *eventsv1.Envelope, span, actor, correlation, causation string) {
		t.Helper()
		if got := named[spanID(e.GetTraceparent())]; got != span {
			t.Errorf("%s: traceparent %q is of span %q, want %q", eventlog.TypeOf(e), e.GetTraceparent(), got, span)
		}
		if e.GetActor() != actor || e.GetCorrelationId() != correlation || e.GetCausationId() != causation {
			t.Errorf("%s: actor %q correlation %q causation %q; want %q, %q, %q", eventlog.TypeOf(e),
				e.GetActor(), e.GetCorrelationId(), e.GetCausationId(), actor, correlation, causation)
		}
	}

	evs := read(retried.GetComplaintId())
	if len(evs) != 3 {
		t.Fatalf("stream = %d events, want received, accepted, withdrawn", len(evs))
	}
	rcv := evs[0]
	if rcv.GetCorrelationId() == "" {
		t.Fatal("ComplaintReceived has no correlation id: the submission must start one")
	}
	check(rcv, "SubmitComplaint", "adapter-hotline", rcv.GetCorrelationId(), "")
	check(evs[1], "FinishReceive", "adapter-hotline", rcv.GetCorrelationId(), rcv.GetEventId())
	if evs[2].GetCorrelationId() == "" || evs[2].GetCorrelationId() == rcv.GetCorrelationId() {
		t.Errorf("withdrawal correlation %q: an agent's command starts its own", evs[2].GetCorrelationId())
	}
	check(evs[2], "WithdrawComplaint", "agent-li", evs[2].GetCorrelationId(), "")

	evs = read(fresh.GetComplaintId())
	if len(evs) != 2 || evs[0].GetCorrelationId() == "" {
		t.Fatalf("fresh stream: %v", evs)
	}
	check(evs[0], "SubmitComplaint", "adapter-hotline", evs[0].GetCorrelationId(), "")
	check(evs[1], "SubmitComplaint", "adapter-hotline", evs[0].GetCorrelationId(), evs[0].GetEventId())

	var rm metricdata.ResourceMetrics
	if err := metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			found = found || m.Name == "rpc.server.call.duration"
		}
	}
	if !found {
		t.Error("the API server recorded no call duration with the service's meter provider")
	}
}
