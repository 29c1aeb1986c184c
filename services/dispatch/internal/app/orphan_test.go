package app_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// A DispatchRequested for a complaint never received (its stream does not
// start with ComplaintReceived: published past intake) sends nobody: it is
// refused as unusable, which the bus dead-letters, and nothing is stored.
func TestDispatchForAComplaintNeverReceivedIsRefused(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-a", "east")
	stream := eventlog.ComplaintStream("orphan-1")
	req, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "orphan-1", Producer: "routing", Actor: "agent-1", OccurredAt: h.clock.Now()},
		&eventsv1.DispatchRequested{WorkOrderId: "wo-o", Spec: h.onSiteSpec("east"), RequestedBy: "agent-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, stream, 0, req); err != nil {
		t.Fatal(err)
	}
	recs := h.complaintEvents("orphan-1")
	err = a.HandleComplaintEvent(h.ctx, recs[0])
	if !errors.Is(err, app.ErrUnusable) || !errors.Is(err, domain.ErrNotFound) || !strings.Contains(err.Error(), "never received") {
		t.Fatalf("HandleComplaintEvent(orphan DispatchRequested) = %v, want unusable and not found, saying it was never received", err)
	}
	if got := typesOf(h.complaintEvents("orphan-1")); len(got) != 1 {
		t.Fatalf("orphan stream now holds %v: dispatch acted on it", got)
	}
	if jobs := h.technician("tech-a").Open; len(jobs) != 0 {
		t.Fatalf("tech-a booked for %v", jobs)
	}
}
