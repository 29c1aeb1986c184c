package app

import (
	"errors"
	"strings"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A ComplaintAccepted for a complaint never received (its stream does not
// start with ComplaintReceived) is refused as not found, which the service
// dead-letters; nothing is classified or assigned, and the view neither
// tracks it nor lets a roster change trip over it.
func TestOrphanEventsOfAComplaintNeverReceivedAreRefused(t *testing.T) {
	h := newHarness(t)
	id := "orphan-1"
	stream := eventlog.ComplaintStream(id)
	accepted, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "system", OccurredAt: h.clock.Now()},
		&eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	if err != nil {
		t.Fatal(err)
	}
	classified, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", Actor: "system", OccurredAt: h.clock.Now()},
		&eventsv1.ComplaintClassified{Severity: eventsv1.Severity_SEVERITY_L3})
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.store.Append(h.ctx, stream, 0, accepted, classified)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := h.store.ReadStream(h.ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	err = h.app.HandleEvent(h.ctx, recs[0])
	if !errors.Is(err, kernel.ErrNotReceived) || !strings.Contains(err.Error(), "not ComplaintReceived") {
		t.Fatalf("HandleEvent(orphan ComplaintAccepted) = %v, want ErrNotReceived saying the stream does not start with ComplaintReceived", err)
	}
	if got := h.types(id); len(got) != 2 {
		t.Fatalf("orphan stream now holds %v: routing acted on it", got)
	}
	if err := h.app.View().WaitFor(h.ctx, res.Position); err != nil {
		t.Fatal(err)
	}
	if w := h.app.View().Waiting(eventsv1.Severity_SEVERITY_L3); len(w) != 0 {
		t.Fatalf("view lists %v as waiting for an owner", w)
	}
	if _, err := h.app.Load(h.ctx, id); !errors.Is(err, kernel.ErrNotReceived) {
		t.Fatalf("Load(orphan) = %v, want ErrNotReceived", err)
	}
	h.pumped = res.Position // handled above, as the bus would (then dead-lettered)
	// A received complaint is still handled after it.
	h.intake("real-1", complaintSpec{text: "the pump leaks", customer: "c-1", model: "X1"})
	if got := h.types("real-1"); len(got) < 3 {
		t.Fatalf("received complaint not routed: %v", got)
	}
}
