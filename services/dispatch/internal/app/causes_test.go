package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
)

// requestCorrelated appends intake's ComplaintReceived and routing's
// DispatchRequested, both of correlation corr, and returns the request.
func (h *harness) requestCorrelated(complaintID, workOrderID, corr string, spec *eventsv1.WorkOrderSpec) eventlog.Record {
	h.t.Helper()
	meta := eventlog.Meta{ComplaintID: complaintID, Producer: "intake", Actor: "adapter-1", CorrelationID: corr, OccurredAt: h.clock.Now()}
	rcv, err := eventlog.NewEvent(meta, &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: complaintID})
	if err != nil {
		h.t.Fatal(err)
	}
	meta.Producer, meta.Actor, meta.CausationID = "routing", "agent-1", rcv.GetEventId()
	req, err := eventlog.NewEvent(meta, &eventsv1.DispatchRequested{WorkOrderId: workOrderID, Spec: spec, RequestedBy: "agent-1"})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, eventlog.ComplaintStream(complaintID), 0, rcv, req); err != nil {
		h.t.Fatal(err)
	}
	return h.complaintEvents(complaintID)[1]
}

// last returns the last record of recs of type typ.
func last(t *testing.T, recs []eventlog.Record, typ string) *eventsv1.Envelope {
	t.Helper()
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Event.GetType() == typ {
			return recs[i].Event
		}
	}
	t.Fatalf("no %s in %v", typ, typesOf(recs))
	return nil
}

func (h *harness) technicianEvents(id string) []eventlog.Record {
	h.t.Helper()
	recs, err := h.store.ReadStream(h.ctx, eventlog.Stream(eventlog.KindTechnician, id), 1)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// cause checks an event's correlation and causation ids.
func cause(t *testing.T, e *eventsv1.Envelope, correlation, causation string) {
	t.Helper()
	if e.GetCorrelationId() != correlation || e.GetCausationId() != causation {
		t.Errorf("%s on %s: correlation %q causation %q; want %q and %q",
			e.GetType(), e.GetStreamId(), e.GetCorrelationId(), e.GetCausationId(), correlation, causation)
	}
}

// traceOf is the trace an event was written in.
func traceOf(t *testing.T, e *eventsv1.Envelope) trace.TraceID {
	t.Helper()
	parts := strings.Split(e.GetTraceparent(), "-")
	if len(parts) != 4 {
		t.Fatalf("%s traceparent %q", e.GetType(), e.GetTraceparent())
	}
	id, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("%s traceparent %q: %v", e.GetType(), e.GetTraceparent(), err)
	}
	return id
}

// Every event dispatch writes carries a correlation id and the causation of
// what caused it: a reaction to routing's request continues its correlation
// on the complaint's stream and the technician's alike; the technician's
// commands on the order continue the correlation of the event that opened
// it; a manager's command starts one; a timeout is caused by the
// assignment it ends, in the assignment's trace.
func TestEveryEventCarriesItsCorrelationAndCause(t *testing.T) {
	h := newHarness(t)
	a := h.newApp(func(c *app.Config) { c.AcceptTimeout = 10 * time.Minute })
	h.register(a, "tech-a", "east")
	h.register(a, "tech-b", "east")
	reg := last(t, h.technicianEvents("tech-a"), "TechnicianRegistered")
	if reg.GetCorrelationId() == "" || reg.GetCausationId() != "" || reg.GetActor() != "admin" {
		t.Errorf("TechnicianRegistered: correlation %q causation %q actor %q; want a new correlation, no causation, admin",
			reg.GetCorrelationId(), reg.GetCausationId(), reg.GetActor())
	}
	if other := last(t, h.technicianEvents("tech-b"), "TechnicianRegistered"); other.GetCorrelationId() == reg.GetCorrelationId() {
		t.Error("two commands share a correlation")
	}

	// Routing's request: everything dispatch does about it is its reaction.
	spec := h.onSiteSpec("east")
	spec.PreferredTechnicianId = "tech-a"
	req := h.requestCorrelated("c1", "wo1", "corr-c1", spec)
	if err := a.HandleComplaintEvent(h.ctx, req); err != nil {
		t.Fatal(err)
	}
	reqID := req.Event.GetEventId()
	recs := h.complaintEvents("c1")
	cause(t, last(t, recs, "WorkOrderOpened"), "corr-c1", reqID)
	assigned := last(t, recs, "TechnicianAssigned")
	cause(t, assigned, "corr-c1", reqID)
	booked := last(t, h.technicianEvents("tech-a"), "TechnicianJobBooked")
	cause(t, booked, "corr-c1", reqID)
	if booked.GetComplaintId() != "" {
		t.Errorf("TechnicianJobBooked names complaint %q: technician events name none", booked.GetComplaintId())
	}
	if assigned.GetActor() != app.Producer {
		t.Errorf("a reaction's actor %q, want %q", assigned.GetActor(), app.Producer)
	}

	// The technician's command continues the order's correlation, in the
	// span of its decision.
	if _, err := a.Accept(h.ctx, "tech-a", "wo1"); err != nil {
		t.Fatal(err)
	}
	accepted := last(t, h.complaintEvents("c1"), "TechnicianAccepted")
	cause(t, accepted, "corr-c1", "")
	var span trace.SpanContext
	for _, s := range h.spans.Ended() {
		if s.Name() == "Accept" {
			span = s.SpanContext()
		}
	}
	if !span.IsValid() || traceOf(t, accepted) != span.TraceID() {
		t.Errorf("TechnicianAccepted traceparent %q is not in the Accept span %v", accepted.GetTraceparent(), span.TraceID())
	}
	if _, err := a.CancelWorkOrder(h.ctx, "boss", "wo1", "customer fixed it"); err != nil {
		t.Fatal(err)
	}
	cause(t, last(t, h.complaintEvents("c1"), "WorkOrderCancelled"), "corr-c1", "")
	checkFor(t, 5*time.Second, func() error {
		if len(h.technician("tech-a").Open) != 0 {
			return errors.New("tech-a still holds wo1")
		}
		return nil
	})
	cause(t, last(t, h.technicianEvents("tech-a"), "TechnicianJobReleased"), "corr-c1", "")

	// An assignment never accepted: its timeout is its reaction.
	req = h.requestCorrelated("c2", "wo2", "corr-c2", spec)
	if err := a.HandleComplaintEvent(h.ctx, req); err != nil {
		t.Fatal(err)
	}
	assigned = last(t, h.complaintEvents("c2"), "TechnicianAssigned")
	h.runAcceptTimeouts(a)
	h.clock.Advance(10 * time.Minute)
	checkFor(t, 5*time.Second, func() error {
		for _, r := range h.technicianEvents("tech-a") {
			if r.Event.GetTechnicianJobReleased().GetWorkOrderId() == "wo2" {
				return nil
			}
		}
		return errors.New("tech-a's booking for wo2 not released yet")
	})
	declined := last(t, h.complaintEvents("c2"), "TechnicianDeclined")
	cause(t, declined, "corr-c2", assigned.GetEventId())
	cause(t, last(t, h.technicianEvents("tech-a"), "TechnicianJobReleased"), "corr-c2", assigned.GetEventId())
	if traceOf(t, declined) != traceOf(t, assigned) {
		t.Errorf("the timeout's decline is in trace %v, not its assignment's %v", traceOf(t, declined), traceOf(t, assigned))
	}

	// A view restored from its snapshot still knows what the orders continue.
	snap, err := a.View().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := h.newView()
	if err := restored.Restore(a.View().Position(), snap); err != nil {
		t.Fatal(err)
	}
	if got := restored.CorrelationOf("wo2"); got != "corr-c2" {
		t.Errorf("restored view: wo2's correlation %q, want corr-c2", got)
	}
}
