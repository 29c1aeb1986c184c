package timers

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)

func event(id string, version uint64, payload proto.Message) *ev.Envelope {
	e := &ev.Envelope{ComplaintId: id, Version: version}
	if err := eventlog.SetPayload(e, payload); err != nil {
		panic(err)
	}
	return e
}

func start(clockID string, deadline time.Time, warn ...uint32) *ev.SlaClockStarted {
	return &ev.SlaClockStarted{ClockId: clockID, Target: ev.SlaTarget_SLA_TARGET_ACCEPTANCE, StartedAt: timestamppb.New(t0),
		Deadline: timestamppb.New(deadline), Budget: durationpb.New(deadline.Sub(t0)), WarnPercents: warn}
}

func TestIndexFoldsOwnEventsIntoNextDue(t *testing.T) {
	x := New(calOf)
	x.Apply(event("c1", 1, start("acceptance-1", t0.Add(24*time.Hour), 50)))
	x.Apply(event("c2", 1, start("acceptance-1", t0.Add(10*time.Hour))))
	if next, _ := x.Next(); !next.Equal(t0.Add(10 * time.Hour)) {
		t.Fatalf("next = %v", next)
	}
	// The same event again (the log delivering what was applied) changes nothing.
	x.Apply(event("c2", 1, start("acceptance-1", t0.Add(10*time.Hour))))
	if x.Open() != 2 {
		t.Fatalf("open = %d after a repeated event", x.Open())
	}
	x.Apply(event("c2", 2, &ev.SlaClockPaused{ClockId: "acceptance-1", Remaining: durationpb.New(time.Hour)}))
	if next, _ := x.Next(); !next.Equal(t0.Add(12 * time.Hour)) { // c1's 50 % warning
		t.Fatalf("next after pause = %v", next)
	}
	x.Apply(event("c1", 2, &ev.SlaWarning{ClockId: "acceptance-1", ThresholdPercent: 50}))
	x.Apply(event("c2", 3, &ev.SlaClockResumed{ClockId: "acceptance-1", NewDeadline: timestamppb.New(t0.Add(30 * time.Hour))}))
	if next, _ := x.Next(); !next.Equal(t0.Add(24 * time.Hour)) {
		t.Fatalf("next after warning and resume = %v", next)
	}
	if due := x.DueBefore(t0.Add(25*time.Hour), 10); len(due) != 1 || due[0].ComplaintID != "c1" {
		t.Fatalf("due before 25h = %+v", due)
	}
	x.Apply(event("c1", 3, &ev.SlaBreached{ClockId: "acceptance-1"}))
	if x.Open() != 1 || x.Complaints() != 1 {
		t.Fatalf("open %d complaints %d after breach", x.Open(), x.Complaints())
	}
	got := x.TakeDue(t0.Add(31 * time.Hour))
	if len(got) != 1 || got[0].ComplaintID != "c2" || !got[0].At.Equal(t0.Add(30*time.Hour)) {
		t.Fatalf("TakeDue = %+v", got)
	}
	if _, ok := x.Next(); ok {
		t.Fatal("a taken complaint is still armed")
	}
}

func TestRunFiresOnTheFakeClock(t *testing.T) {
	clk := clock.NewFake(t0)
	x := New(calOf)
	x.Apply(event("c1", 1, start("acceptance-1", t0.Add(2*time.Hour))))
	x.Apply(event("c2", 1, start("acceptance-1", t0.Add(time.Hour))))
	fired := make(chan Due, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go x.Run(ctx, clk, func(_ context.Context, ds []Due) {
		for _, d := range ds {
			fired <- d
		}
	})
	clk.Advance(90 * time.Minute)
	if d := <-fired; d.ComplaintID != "c2" {
		t.Fatalf("first fired %+v", d)
	}
	select {
	case d := <-fired:
		t.Fatalf("fired before due: %+v", d)
	default:
	}
	clk.Advance(30 * time.Minute)
	if d := <-fired; d.ComplaintID != "c1" {
		t.Fatalf("second fired %+v", d)
	}
}
