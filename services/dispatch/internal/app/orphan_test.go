package app_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/faulty"
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

// A read that ends before the event being handled is refused, for the bus to
// retry: decided on, it would show no work order requested, and dispatch
// would ack the request having sent nobody.
func TestShortReadIsRetriedNotDecided(t *testing.T) {
	h := newHarness(t)
	h.register(h.newApp(), "tech-a", "east")
	a := h.newAppOn(&faulty.ShortRead{Store: h.store})
	checkFor(t, 5*time.Second, func() error { // else the retry finds nobody to send
		if a.View().Technician("tech-a") == nil {
			return errors.New("the view has not seen tech-a")
		}
		return nil
	})
	req := h.requestDispatch("c-short", "wo-s", h.onSiteSpec("east"))
	if err := a.HandleComplaintEvent(h.ctx, req); !errors.Is(err, eventlog.ErrShortRead) {
		t.Fatalf("HandleComplaintEvent on a short read = %v, want ErrShortRead", err)
	}
	if got := typesOf(h.complaintEvents("c-short")); len(got) != 2 {
		t.Fatalf("stream after the short read: %v, want nothing added", got)
	}
	if err := a.HandleComplaintEvent(h.ctx, req); err != nil {
		t.Fatal(err)
	}
	if got := typesOf(h.complaintEvents("c-short")); !slices.Contains(got, "TechnicianAssigned") {
		t.Fatalf("stream after the retry: %v, want a technician assigned", got)
	}
}
