package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/faulty"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

var t0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // Mon 09:00 Shanghai

// instance is a running App over a shared store and fake clock.
type instance struct {
	app  *App
	stop func()
}

func startInstance(t *testing.T, store eventlog.Store, clk clock.Clock, part Partition) *instance {
	t.Helper()
	a := newApp(t, store, clk, part)
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	in := &instance{app: a}
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(in.stop)
	return in
}

// write appends another service's event to a complaint's stream.
func write(t *testing.T, store eventlog.Store, id string, at time.Time, payload proto.Message) {
	t.Helper()
	ctx := context.Background()
	for {
		recs, err := store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", Actor: "agent-1", OccurredAt: at}, payload)
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Append(ctx, eventlog.ComplaintStream(id), uint64(len(recs)), e)
		if err == nil {
			return
		}
		if !isConflict(err) {
			t.Fatal(err)
		}
	}
}

func isConflict(err error) bool { return errors.Is(err, eventlog.ErrConflict) }

func received(at time.Time) *ev.ComplaintReceived {
	return &ev.ComplaintReceived{ReceivedAt: timestamppb.New(at), Customer: &ev.Customer{Tier: ev.CustomerTier_CUSTOMER_TIER_REGULAR}}
}

// own returns the events slaclock wrote on a complaint's stream, as
// "Type clock [threshold]" keys with their envelopes.
func own(t *testing.T, store eventlog.Store, id string) []*ev.Envelope {
	t.Helper()
	recs, err := store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ev.Envelope
	for _, r := range recs {
		if r.Event.GetProducer() == domain.Producer {
			out = append(out, r.Event)
		}
	}
	return out
}

func key(e *ev.Envelope) string {
	switch p := eventlog.Payload(e).(type) {
	case *ev.SlaWarning:
		return fmt.Sprintf("Warning %s %d", p.GetClockId(), p.GetThresholdPercent())
	case interface{ GetClockId() string }:
		return e.GetType() + " " + p.GetClockId()
	}
	return e.GetType()
}

func keys(es []*ev.Envelope) []string {
	var out []string
	for _, e := range es {
		out = append(out, key(e))
	}
	return out
}

func count(es []*ev.Envelope, k string) int {
	n := 0
	for _, e := range es {
		if key(e) == k {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or 10 s pass (the effect is
// asynchronous: the instances run in goroutines).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func has(t *testing.T, store eventlog.Store, id, k string) func() bool {
	return func() bool { return count(own(t, store, id), k) > 0 }
}

func TestWarningsThenBreachInOrder(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	startInstance(t, store, clk, Partition{})
	write(t, store, "c1", t0, received(t0))
	waitFor(t, "clocks started", has(t, store, "c1", "SlaClockStarted resolution-1"))

	for _, step := range []struct {
		at   time.Duration
		want string
	}{
		{12 * time.Hour, "Warning acceptance-1 50"},
		{18 * time.Hour, "Warning acceptance-1 75"},
		{21*time.Hour + 36*time.Minute, "Warning acceptance-1 90"},
		{24 * time.Hour, "SlaBreached acceptance-1"},
	} {
		clk.Set(t0.Add(step.at))
		waitFor(t, step.want, has(t, store, "c1", step.want))
	}
	got := keys(own(t, store, "c1"))
	want := []string{
		"SlaClockStarted acceptance-1", "SlaClockStarted first_response-1", "SlaClockStarted resolution-1",
		"Warning acceptance-1 50", "Warning first_response-1 50",
		"Warning acceptance-1 75", "Warning first_response-1 75",
		"Warning acceptance-1 90", "Warning first_response-1 90",
		"SlaBreached acceptance-1", "SlaBreached first_response-1",
		"Warning resolution-1 50",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	for _, e := range own(t, store, "c1") {
		if w := e.GetSlaWarning(); w != nil && w.GetLateBy().AsDuration() != 0 {
			t.Errorf("%s fired on time but late_by = %v", key(e), w.GetLateBy().AsDuration())
		}
		if e.GetPolicyVersion() != "sla.v1" || e.GetCalendarVersion() == "" {
			t.Errorf("%s: policy %q calendar %q", key(e), e.GetPolicyVersion(), e.GetCalendarVersion())
		}
	}
}

func TestPauseAndResume(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	in := startInstance(t, store, clk, Partition{})
	write(t, store, "c1", t0, received(t0))
	write(t, store, "c1", t0, &ev.ComplaintAccepted{})
	write(t, store, "c1", t0, &ev.ResponseRecorded{})
	waitFor(t, "met", has(t, store, "c1", "SlaMet first_response-1"))

	clk.Set(t0.Add(time.Hour))
	write(t, store, "c1", t0.Add(time.Hour), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
	waitFor(t, "paused", has(t, store, "c1", "SlaClockPaused resolution-1"))

	clk.Set(t0.Add(100 * time.Hour)) // far past the 48 h: a paused clock does not fire
	write(t, store, "c1", t0.Add(100*time.Hour), &ev.ComplaintTakenOffHold{})
	waitFor(t, "resumed", has(t, store, "c1", "SlaClockResumed resolution-1"))
	if n := count(own(t, store, "c1"), "SlaBreached resolution-1"); n != 0 {
		t.Fatal("paused clock breached")
	}
	views, _, err := in.app.Clocks(context.Background(), "c1", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range views {
		if v.ID == "resolution-1" && (v.Remaining != 47*time.Hour || !v.Deadline.Equal(t0.Add(147*time.Hour))) {
			t.Fatalf("resumed clock: remaining %v deadline %v", v.Remaining, v.Deadline)
		}
	}
	clk.Set(t0.Add(147 * time.Hour))
	waitFor(t, "breach after resume", has(t, store, "c1", "SlaBreached resolution-1"))
}

// A restart in the middle: the instance stops, the clock moves past two
// deadlines, a new instance on the same log fires both exactly once, late.
func TestRestartFiresMissedDeadlinesOnceMarkedLate(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	first := startInstance(t, store, clk, Partition{})
	write(t, store, "c1", t0, received(t0))
	write(t, store, "c1", t0, &ev.ComplaintAccepted{})
	write(t, store, "c1", t0, &ev.ResponseRecorded{})
	write(t, store, "c2", t0, received(t0))
	write(t, store, "c2", t0, &ev.ComplaintAccepted{})
	write(t, store, "c2", t0, &ev.ResponseRecorded{})
	waitFor(t, "c2 clocks", has(t, store, "c2", "SlaMet first_response-1"))
	first.stop()

	// While it is down: both resolution deadlines (48 h) pass, and c1 is put on hold.
	write(t, store, "c1", t0.Add(50*time.Hour), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
	clk.Set(t0.Add(60 * time.Hour))

	second := startInstance(t, store, clk, Partition{})
	for _, id := range []string{"c1", "c2"} {
		waitFor(t, id+" breach", has(t, store, id, "SlaBreached resolution-1"))
	}
	// A third instance on the same log, and more time, change nothing.
	third := startInstance(t, store, clk, Partition{})
	clk.Advance(time.Hour)
	second.stop()
	third.stop()
	for _, id := range []string{"c1", "c2"} {
		es := own(t, store, id)
		for _, k := range []string{"SlaBreached resolution-1", "Warning resolution-1 50", "Warning resolution-1 75", "Warning resolution-1 90"} {
			if n := count(es, k); n != 1 {
				t.Errorf("%s: %s written %d times", id, k, n)
			}
		}
		for _, e := range es {
			if b := e.GetSlaBreached(); b != nil && b.GetLateBy().AsDuration() != 12*time.Hour {
				t.Errorf("%s: breach late_by = %v, want 12h", id, b.GetLateBy().AsDuration())
			}
		}
	}
	// c1's breach (due at 48 h) came before its hold (at 50 h), which then had nothing to pause.
	if n := count(own(t, store, "c1"), "SlaClockPaused resolution-1"); n != 0 {
		t.Error("a breached clock was paused")
	}
}

// Several instances: each warning and breach is appended exactly once, both
// when they all own everything and when they split the complaints.
func TestInstancesNeverFireTwice(t *testing.T) {
	for _, parts := range [][]Partition{
		{{0, 1}, {0, 1}, {0, 1}},
		{{0, 2}, {1, 2}},
	} {
		t.Run(fmt.Sprint(parts), func(t *testing.T) {
			clk := clock.NewFake(t0)
			store := memstore.New(clk)
			for _, p := range parts {
				startInstance(t, store, clk, p)
			}
			var ids []string
			for i := range 12 {
				id := fmt.Sprintf("c%02d", i)
				ids = append(ids, id)
				write(t, store, id, t0, received(t0))
			}
			for _, id := range ids {
				waitFor(t, id+" started", has(t, store, id, "SlaClockStarted resolution-1"))
			}
			for h := 1; h <= 50; h++ {
				clk.Set(t0.Add(time.Duration(h) * time.Hour))
				if h%12 == 0 {
					for _, id := range ids {
						waitFor(t, id+" caught up", has(t, store, id, "Warning acceptance-1 50"))
					}
				}
			}
			for _, id := range ids {
				waitFor(t, id+" resolution breach", has(t, store, id, "SlaBreached resolution-1"))
			}
			for _, id := range ids {
				seen := map[string]int{}
				for _, e := range own(t, store, id) {
					seen[key(e)]++
				}
				for k, n := range seen {
					if n != 1 {
						t.Errorf("%s: %s written %d times", id, k, n)
					}
				}
				if len(seen) != 3+3*4 {
					t.Errorf("%s: %d distinct events, want 15: %v", id, len(seen), seen)
				}
			}
		})
	}
}

func TestClocksAsOfAndDueWithin(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	in := startInstance(t, store, clk, Partition{})
	write(t, store, "c1", t0, received(t0))
	waitFor(t, "started", has(t, store, "c1", "SlaClockStarted resolution-1"))
	clk.Set(t0.Add(2 * time.Hour))
	write(t, store, "c1", t0.Add(2*time.Hour), &ev.ComplaintAccepted{})
	waitFor(t, "met", has(t, store, "c1", "SlaMet acceptance-1"))

	due := in.app.DueWithin(23*time.Hour, 10)
	if len(due) != 1 || due[0].ClockID != "first_response-1" {
		t.Fatalf("due within 23h = %+v", due)
	}
	// As of 1 h after receipt (by the store's clock), acceptance was still running.
	views, _, err := in.app.Clocks(context.Background(), "c1", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(views) != 3 || views[0].Status != domain.Running || views[0].Remaining != 23*time.Hour {
		t.Fatalf("as of +1h: %+v", views)
	}
	views, _, _ = in.app.Clocks(context.Background(), "c1", time.Time{})
	if views[0].Status != domain.Met || views[0].Remaining != 22*time.Hour {
		t.Fatalf("now: %+v", views[0])
	}
}

func TestPublishedPolicyAppliesToNewClocksOnly(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	in := startInstance(t, store, clk, Partition{})
	write(t, store, "c1", t0, received(t0))
	waitFor(t, "c1 started", has(t, store, "c1", "SlaClockStarted resolution-1"))

	v2 := strings.NewReplacer(`"version": "sla.v1"`, `"version": "sla.v2"`, `"acceptance":         {"limit": "24h"`, `"acceptance":         {"limit": "8h"`).Replace(string(policydata.Default))
	if _, err := in.app.PublishPolicy(context.Background(), []byte("{}"), "manager-1"); !isInvalid(err, "document") {
		t.Fatalf("bad document: err = %v", err)
	}
	if v, err := in.app.PublishPolicy(context.Background(), []byte(v2), "manager-1"); err != nil || v != "sla.v2" {
		t.Fatalf("publish: %q %v", v, err)
	}
	if _, err := in.app.PublishPolicy(context.Background(), []byte(v2), "manager-1"); !isInvalid(err, "document") {
		t.Fatalf("same version twice: err = %v", err)
	}
	write(t, store, "c2", t0, received(t0))
	waitFor(t, "c2 started", has(t, store, "c2", "SlaClockStarted resolution-1"))
	for id, want := range map[string]string{"c1": "sla.v1", "c2": "sla.v2"} {
		for _, e := range own(t, store, id) {
			if e.GetPolicyVersion() != want {
				t.Errorf("%s: %s under %q, want %q", id, key(e), e.GetPolicyVersion(), want)
			}
		}
	}
	// A new instance learns the published version from the log.
	other := startInstance(t, store, clk, Partition{})
	if got := other.app.CurrentPolicyVersion(); got != "sla.v2" {
		t.Fatalf("rebuilt instance uses %q", got)
	}
	// Re-applied on purpose, c1's acceptance moves to v2's 8 h.
	ids, err := in.app.Reapply(context.Background(), "c1", "policy review", "manager-1")
	if err != nil || len(ids) != 3 {
		t.Fatalf("reapply: %v %v", ids, err)
	}
	views, _, _ := in.app.Clocks(context.Background(), "c1", time.Time{})
	for _, v := range views {
		if v.Status == domain.Running && v.Target == ev.SlaTarget_SLA_TARGET_ACCEPTANCE && (v.PolicyVersion != "sla.v2" || !v.Deadline.Equal(t0.Add(8*time.Hour))) {
			t.Fatalf("re-applied acceptance: %+v", v)
		}
	}
}

func TestWhatIfChangesNothing(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	in := startInstance(t, store, clk, Partition{})
	accepted := []time.Duration{2 * time.Hour, 10 * time.Hour, 30 * time.Hour}
	for i := range accepted {
		write(t, store, fmt.Sprintf("c%d", i), t0, received(t0))
	}
	// Each acceptance is written once the clock has reached it: an event
	// from sla-clock's future is taken as happening now, and whether the
	// instance read it before or after the clock moved would decide the
	// outcome.
	for i, after := range accepted {
		clk.Set(t0.Add(after))
		write(t, store, fmt.Sprintf("c%d", i), t0.Add(after), &ev.ComplaintAccepted{})
	}
	clk.Set(t0.Add(40 * time.Hour))
	waitFor(t, "c2 breach", has(t, store, "c2", "SlaBreached acceptance-1"))
	in.stop() // nothing else writes from here on; WhatIf needs no running loop
	before, _ := store.ReadAll(context.Background(), 1, 1000)

	stricter := strings.NewReplacer(`"version": "sla.v1"`, `"version": "strict"`, `"acceptance":         {"limit": "24h"`, `"acceptance":         {"limit": "8h"`).Replace(string(policydata.Default))
	rep, err := in.app.WhatIf(context.Background(), []byte(stricter), "", t0.Add(-time.Hour), t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	acc := rep.Targets[ev.SlaTarget_SLA_TARGET_ACCEPTANCE]
	if rep.Complaints != 3 || rep.CandidateVersion != "strict" || acc.NewlyBreached != 1 || acc.MetBefore != 2 || acc.MetAfter != 1 {
		t.Fatalf("report %+v acceptance %+v", rep, acc)
	}
	// Named: the three acceptance clocks move to 8 h; c1's flips to breached.
	if rep.ChangesTotal != 3 || len(rep.Changes) != 3 {
		t.Fatalf("changes %d of %d: %+v", len(rep.Changes), rep.ChangesTotal, rep.Changes)
	}
	if c := rep.Changes[1]; c.ComplaintID != "c1" || c.ClockID != "acceptance-1" || c.Before.Status != domain.Met || c.After.Status != domain.Breached ||
		!c.After.Deadline.Equal(t0.Add(8*time.Hour)) {
		t.Fatalf("c1's change = %+v", c)
	}
	after, _ := store.ReadAll(context.Background(), 1, 1000)
	if len(after) != len(before) {
		t.Fatalf("what-if wrote %d events", len(after)-len(before))
	}
	if _, err := in.app.WhatIf(context.Background(), nil, "no-such-calendar", t0, t0.Add(time.Hour)); !isInvalid(err, "calendar_id") {
		t.Fatalf("unknown calendar: err = %v", err)
	}
}

// flakyFollow fails its first Follow after one record, as when NATS goes away.
type flakyFollow struct {
	eventlog.Store
	failed atomic.Bool
}

func (s *flakyFollow) Follow(ctx context.Context, from uint64, fn func(eventlog.Record) error) error {
	if s.failed.CompareAndSwap(false, true) {
		return errors.New("nats: connection closed")
	}
	return s.Store.Follow(ctx, from, fn)
}

// Losing the log does not stop the service: it follows again from where it
// was and handles what came meanwhile.
func TestRunFollowsAgainAfterTheLogFails(t *testing.T) {
	const id = "0190abcd-0000-7000-8000-0000000000f1"
	inner := memstore.New(nil)
	store := &flakyFollow{Store: inner}
	startInstance(t, store, clock.NewFake(t0), Partition{})
	write(t, inner, id, t0, received(t0))
	waitFor(t, "the acceptance clock", has(t, inner, id, "SlaClockStarted acceptance-1"))
	if !store.failed.Load() {
		t.Fatal("Follow never failed: the scenario did not happen")
	}
}

// failOnce refuses sla-clock's first append, as when NATS times out.
type failOnce struct {
	eventlog.Store
	failed atomic.Bool
}

func (s *failOnce) Append(ctx context.Context, stream eventlog.StreamID, expected uint64, events ...*ev.Envelope) (eventlog.AppendResult, error) {
	if events[0].GetProducer() == domain.Producer && s.failed.CompareAndSwap(false, true) {
		return eventlog.AppendResult{}, errors.New("nats: timeout")
	}
	return s.Store.Append(ctx, stream, expected, events...)
}

// A trigger whose decision fails to append is tried again a second later,
// whether it came while running or was found by the rebuild; the rebuild
// does not give up on it.
func TestFailedTriggerIsRetried(t *testing.T) {
	for _, atRebuild := range []bool{false, true} {
		t.Run(fmt.Sprintf("found by rebuild %v", atRebuild), func(t *testing.T) {
			const id = "0190abcd-0000-7000-8000-0000000000f2"
			inner := memstore.New(nil)
			store := &failOnce{Store: inner}
			clk := clock.NewFake(t0)
			if atRebuild {
				write(t, inner, id, t0, received(t0))
			}
			in := startInstance(t, store, clk, Partition{})
			if !atRebuild {
				write(t, inner, id, t0, received(t0))
			}
			waitFor(t, "the retry", func() bool { next, ok := in.app.Index().Next(); return ok && next.Equal(t0.Add(time.Second)) })
			if !store.failed.Load() || len(own(t, inner, id)) != 0 {
				t.Fatalf("the first append did not fail (failed %v, %d events stored)", store.failed.Load(), len(own(t, inner, id)))
			}
			clk.Advance(time.Second)
			waitFor(t, "the acceptance clock", has(t, inner, id, "SlaClockStarted acceptance-1"))
		})
	}
}

// A read that ends before the trigger's version is not decided on (that
// would find nothing to do and forget the complaint): it is retried.
func TestShortReadIsRetriedNotDecided(t *testing.T) {
	const id = "0190abcd-0000-7000-8000-0000000000f3"
	inner := memstore.New(nil)
	store := &faulty.ShortRead{Store: inner}
	clk := clock.NewFake(t0)
	in := startInstance(t, store, clk, Partition{})
	write(t, inner, id, t0, received(t0))
	waitFor(t, "the retry", func() bool { next, ok := in.app.Index().Next(); return ok && next.Equal(t0.Add(time.Second)) })
	if !store.Done() {
		t.Fatal("no short read happened: the scenario did not")
	}
	clk.Advance(time.Second)
	waitFor(t, "the acceptance clock", has(t, inner, id, "SlaClockStarted acceptance-1"))
}

// isInvalid reports a request refused for the content of field.
func isInvalid(err error, field string) bool {
	var inv *kernel.InvalidError
	return errors.As(err, &inv) && len(inv.Violations) == 1 && inv.Violations[0].Field == field
}
