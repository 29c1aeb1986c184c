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

// A firing continues the trace of the event that last changed the clock
// falling due, not of another clock of the complaint.
func TestTakeDueCarriesTheTraceOfTheClockFallingDue(t *testing.T) {
	x := New(calOf)
	first := event("c1", 1, start("acceptance-1", t0.Add(10*time.Hour)))
	first.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	second := event("c1", 2, &ev.SlaClockStarted{ClockId: "resolution-1", Target: ev.SlaTarget_SLA_TARGET_RESOLUTION,
		Deadline: timestamppb.New(t0.Add(5 * time.Hour)), Budget: durationpb.New(5 * time.Hour)})
	second.Traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
	x.Apply(first)
	x.Apply(second)
	due := x.TakeDue(t0.Add(6 * time.Hour))
	if len(due) != 1 || due[0].Trace.Traceparent() != second.Traceparent {
		t.Fatalf("due %+v, want resolution-1's trace %s", due, second.Traceparent)
	}
	// A warning changes its clock: the breach after it continues its trace.
	warned := event("c1", 3, &ev.SlaWarning{ClockId: "acceptance-1", ThresholdPercent: 50})
	warned.Traceparent = "00-11111111111111111111111111111111-2222222222222222-01"
	x.Apply(warned)
	x.Apply(event("c1", 4, &ev.SlaBreached{ClockId: "resolution-1"}))
	if due := x.TakeDue(t0.Add(11 * time.Hour)); len(due) != 1 || due[0].Trace.Traceparent() != warned.Traceparent {
		t.Fatalf("due %+v, want the warning's trace %s", due, warned.Traceparent)
	}
}

func TestParseTraceRefusesMalformedTraceparents(t *testing.T) {
	for _, tp := range []string{"", "00-zz-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01"} {
		if tr := ParseTrace(tp); !tr.IsZero() {
			t.Errorf("ParseTrace(%q) = %+v, want none", tp, tr)
		}
	}
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
	if got := ParseTrace(tp).Traceparent(); got != tp {
		t.Errorf("round trip of %s: %s", tp, got)
	}
}

// A re-term moves an open clock's next due instant; a withdrawn breach
// brings the clock back into the schedule with its new terms, unless the
// clock had been met.
func TestIndexFollowsRetermsAndWithdrawnBreaches(t *testing.T) {
	h := time.Hour
	terms := func(budget time.Duration, warned ...uint32) *ev.SlaClockTerms {
		return &ev.SlaClockTerms{Budget: durationpb.New(budget), Deadline: timestamppb.New(t0.Add(budget)),
			WarnPercents: []uint32{50, 90}, Warned: warned}
	}
	x := New(calOf)
	x.Apply(event("c1", 1, start("acceptance-1", t0.Add(24*h), 50, 90)))
	x.Apply(event("c1", 2, &ev.SlaClockRetermed{ClockId: "acceptance-1", Target: ev.SlaTarget_SLA_TARGET_ACCEPTANCE, Terms: terms(48*h, 50)}))
	if next, _ := x.Next(); !next.Equal(t0.Add(48*h - 48*h/10)) { // the 90 % warning of 48 h; 50 % counts as warned
		t.Fatalf("next after the re-term = %v", next)
	}
	x.Apply(event("c1", 3, &ev.SlaBreached{ClockId: "acceptance-1"}))
	if x.Open() != 0 {
		t.Fatalf("open %d after the breach", x.Open())
	}
	x.Apply(event("c1", 4, &ev.SlaBreachWithdrawn{ClockId: "resolution-1", Target: ev.SlaTarget_SLA_TARGET_RESOLUTION, Terms: terms(72 * h)}))
	if x.Open() != 0 {
		t.Fatal("a withdrawn breach of a met clock put it back in the schedule")
	}
	x.Apply(event("c1", 5, &ev.SlaBreachWithdrawn{ClockId: "acceptance-1", Target: ev.SlaTarget_SLA_TARGET_ACCEPTANCE, Terms: terms(72*h, 50, 90), Reopened: true}))
	if next, _ := x.Next(); x.Open() != 1 || !next.Equal(t0.Add(72*h)) {
		t.Fatalf("open %d, next %v after the withdrawal", x.Open(), next)
	}
}
