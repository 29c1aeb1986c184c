package app

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/faulty"
	"github.com/closeloop/closeloop/libs/kernel"
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
	if _, err := f.app.FollowUp(ctx, "orphan-1"); !errors.Is(err, kernel.ErrNotReceived) {
		t.Fatalf("FollowUp(orphan) = %v, want kernel.ErrNotReceived", err)
	}
}

// A read that ends before the resolution being handled is refused, for the
// bus to retry: decided on, it would show nothing resolved, and follow-up
// would ack the resolution having scheduled no feedback.
func TestShortReadIsRetriedNotDecided(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var envs []*eventsv1.Envelope
	for _, p := range []proto.Message{&eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{}} {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c-short", Producer: "routing", OccurredAt: f.clk.Now()}, p)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	if _, err := f.log.Append(ctx, eventlog.ComplaintStream("c-short"), 0, envs...); err != nil {
		t.Fatal(err)
	}
	recs, err := f.log.ReadStream(ctx, eventlog.ComplaintStream("c-short"), 2)
	if err != nil {
		t.Fatal(err)
	}
	f.useLog(t, &faulty.ShortRead{Store: f.log})
	if err := f.app.ScheduleFollowUpOnResolved(ctx, recs[0]); !errors.Is(err, eventlog.ErrShortRead) {
		t.Fatalf("ScheduleFollowUpOnResolved on a short read = %v, want ErrShortRead", err)
	}
	if n := f.count(t, "c-short", "SurveySent"); n != 0 {
		t.Fatalf("%d surveys sent on a short read", n)
	}
	if err := f.app.ScheduleFollowUpOnResolved(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, "c-short", "SurveySent"); n != 1 {
		t.Fatalf("%d surveys sent after the retry, want 1", n)
	}
}
