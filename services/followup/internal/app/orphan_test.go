package app

import (
	"context"
	"errors"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A ComplaintResolved of a complaint never received schedules nothing.
func TestOrphanResolutionSchedulesNothing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	stream := eventlog.ComplaintStream("orphan-1")
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "orphan-1", Producer: "routing", OccurredAt: f.clk.Now()}, &eventsv1.ComplaintResolved{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, stream, 0, e); err != nil {
		t.Fatal(err)
	}
	recs, err := f.log.ReadStream(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.app.ScheduleFollowUpOnResolved(ctx, recs[0]); err != nil {
		t.Fatalf("ScheduleFollowUpOnResolved(orphan) = %v, want nil (ignored)", err)
	}
	if recs, _ = f.log.ReadStream(ctx, stream, 1); len(recs) != 1 {
		t.Fatalf("orphan stream holds %d events, want the 1 published: follow-up acted on it", len(recs))
	}
	if _, err := f.app.FollowUp(ctx, "orphan-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FollowUp(orphan) = %v, want ErrNotFound", err)
	}
}
