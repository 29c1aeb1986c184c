package app

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// What routing writes in answer to an event carries that event as its
// causation and the event's correlation, is stamped with the policy it
// was decided by, and is in the trace of the decision's span; a caller's
// command carries the caller and starts a correlation of its own.
func TestEventsCarryTheirCause(t *testing.T) {
	h := newHarness(t)
	spans := tracetest.NewSpanRecorder()
	a, err := New(h.store, h.clock, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)), loadPolicy(t), h.app.View(), nil)
	if err != nil {
		t.Fatal(err)
	}
	id := "c-cause"
	meta := eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "hotline-7", CorrelationID: "corr-submission", OccurredAt: t0}
	received, err := eventlog.NewEvent(meta, &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "ref-" + id,
		Description: "快递一直没收到", FirstReceiver: "hotline-7", Customer: &eventsv1.Customer{CustomerRef: "cust-cause", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR}})
	if err != nil {
		t.Fatal(err)
	}
	meta.CausationID = received.GetEventId()
	accepted, err := eventlog.NewEvent(meta, &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, eventlog.ComplaintStream(id), 0, received, accepted); err != nil {
		t.Fatal(err)
	}
	recs, err := h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandleEvent(h.ctx, recs[1]); err != nil {
		t.Fatal(err)
	}
	h.pumped = recs[1].Position

	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Name() != "AssignOnAccepted" {
		t.Fatalf("spans %v, want one AssignOnAccepted", ended)
	}
	traceID := ended[0].SpanContext().TraceID().String()
	recs, err = h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 2 {
		t.Fatalf("routing wrote %d events on acceptance, want a classification and an assignment", len(recs))
	}
	for _, r := range recs {
		e := r.Event
		if e.GetCausationId() != accepted.GetEventId() || e.GetCorrelationId() != "corr-submission" {
			t.Errorf("%s: causation %q correlation %q, want %q and corr-submission", e.GetType(), e.GetCausationId(), e.GetCorrelationId(), accepted.GetEventId())
		}
		if e.GetProducer() != Producer || e.GetActor() != Producer || e.GetPolicyVersion() != "classification.v2" {
			t.Errorf("%s: producer %q actor %q policy %q", e.GetType(), e.GetProducer(), e.GetActor(), e.GetPolicyVersion())
		}
		if tp := e.GetTraceparent(); len(tp) < 35 || tp[3:35] != traceID {
			t.Errorf("%s: traceparent %q is not in the decision's trace %s", e.GetType(), tp, traceID)
		}
	}

	owner := agentOf(h.complaint(id).Owner)
	v, err := a.AcceptAssignment(h.ctx, Target{ComplaintID: id}, owner)
	if err != nil {
		t.Fatal(err)
	}
	recs, err = h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), v)
	if err != nil || len(recs) != 1 {
		t.Fatalf("AcceptAssignment wrote %v (%v)", recs, err)
	}
	if e := recs[0].Event; e.GetActor() != owner.ID || e.GetCausationId() != "" || e.GetCorrelationId() == "" || e.GetCorrelationId() == "corr-submission" {
		t.Errorf("command's event: actor %q causation %q correlation %q, want the owner, none and a new one", e.GetActor(), e.GetCausationId(), e.GetCorrelationId())
	}
	if ended := spans.Ended(); ended[len(ended)-1].Name() != "AcceptAssignment" {
		t.Errorf("last span %q, want AcceptAssignment", ended[len(ended)-1].Name())
	}
}
