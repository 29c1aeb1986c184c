package app

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

const day = 24 * time.Hour

// tracks tells whether the view still holds a complaint.
func (v *View) tracks(id string) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.complaints[id] != nil
}

// loads is every member's open load.
func (v *View) loads() map[string]int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return maps.Clone(v.load)
}

// checkLoads: the load counts are the open owned complaints the view holds.
func checkLoads(t *testing.T, v *View) {
	t.Helper()
	v.mu.RLock()
	want := map[string]int{}
	for _, c := range v.complaints {
		if c.open && c.owner != "" {
			want[c.owner]++
		}
	}
	v.mu.RUnlock()
	if got := v.loads(); !maps.Equal(got, want) {
		t.Fatalf("loads %v, want %v (the open owned complaints)", got, want)
	}
}

// TestClosedComplaintsLeaveTheViewOutsideTheRepeatWindow: a closed
// complaint accepted longer than the repeat window (and the grace) before
// the log time leaves the view, loads unchanged, and a late event of it is
// ignored; one inside the window is still found as an earlier complaint.
func TestClosedComplaintsLeaveTheViewOutsideTheRepeatWindow(t *testing.T) {
	h := newHarness(t)
	v := h.app.View()
	closeIt := func(id string) {
		t.Helper()
		h.respond(id, agentOf(h.complaint(id).Owner))
		ok(t)(h.app.Resolve(h.ctx, Target{ComplaintID: id}, agentOf(h.complaint(id).Owner), "DELIVERED", "parcel found"))
		h.append(id, "followup", &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, ClosedBy: "system"})
	}
	old := complaintSpec{text: "快递一直没收到", customer: "cust-p", model: "M-1"}
	mid := complaintSpec{text: "快递一直没收到", customer: "cust-q", model: "M-2"}
	h.intake("c-old", old) // day 0
	closeIt("c-old")
	h.clock.Advance(100 * day)
	h.intake("c-mid", mid) // day 100
	closeIt("c-mid")
	h.intake("c-busy", complaintSpec{text: "快递一直没收到", customer: "cust-r"}) // open
	checkLoads(t, v)
	before := v.loads()
	if !v.tracks("c-old") {
		t.Fatal("c-old left the view 100 days after acceptance, within the window and grace")
	}

	// Day 125: any event moves the log time on; c-old (125 days) goes,
	// c-mid (25 days) stays.
	h.clock.Advance(25 * day)
	h.append("c-busy", "routing", &eventsv1.ResponseRecorded{Summary: "called back"})
	if v.tracks("c-old") || !v.tracks("c-mid") || !v.tracks("c-busy") {
		t.Fatalf("tracks c-old %v c-mid %v c-busy %v, want false true true", v.tracks("c-old"), v.tracks("c-mid"), v.tracks("c-busy"))
	}
	if got := v.loads(); !maps.Equal(got, before) {
		t.Fatalf("loads %v after pruning, want %v", got, before)
	}
	// A late event of the pruned complaint is ignored.
	h.append("c-old", "test", &eventsv1.ComplaintAssigned{Team: "customer-service", Owner: "cs-1"})
	if v.tracks("c-old") || !maps.Equal(v.loads(), before) {
		t.Fatalf("late event of a pruned complaint: tracked %v, loads %v, want %v", v.tracks("c-old"), v.loads(), before)
	}

	h.intake("c-mid-again", mid)
	flags := events[*eventsv1.RepeatComplaintFlagged](h, "c-mid-again")
	if len(flags) != 1 || !slices.Equal(flags[0].GetEarlierComplaintIds(), []string{"c-mid"}) {
		t.Fatalf("repeat flags %v, want one naming c-mid", flags)
	}
	h.intake("c-old-again", old)
	if c := h.complaint("c-old-again"); c.Repeat {
		t.Fatal("a complaint 125 days after the last one is flagged as a repeat")
	}
	checkLoads(t, v)
}

// waitingByScan is how Waiting was answered before the waiting sets.
func waitingByScan(v *View, sev eventsv1.Severity) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for id, c := range v.complaints {
		if c.waiting && c.severity == sev {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// TestWaitingSetsAnswerAsTheScanDid: classification, a reclassification,
// assignment, withdrawal and a close move complaints between the waiting
// sets as the scan over every complaint saw them; a snapshot restores them.
func TestWaitingSetsAnswerAsTheScanDid(t *testing.T) {
	h := newHarness(t)
	v := h.app.View()
	// Appended without the reactions, which would assign.
	write := func(id string, msgs ...proto.Message) {
		t.Helper()
		stream := eventlog.ComplaintStream(id)
		recs, err := h.store.ReadStream(h.ctx, stream, 1)
		if err != nil {
			t.Fatal(err)
		}
		var envs []*eventsv1.Envelope
		for _, m := range msgs {
			e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "test", OccurredAt: h.clock.Now()}, m)
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, e)
		}
		res, err := h.store.Append(h.ctx, stream, uint64(len(recs)), envs...)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.WaitFor(h.ctx, res.Position); err != nil {
			t.Fatal(err)
		}
	}
	classified := func(sev eventsv1.Severity) proto.Message {
		return &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_DELIVERY, Severity: sev, Priority: eventsv1.Priority_PRIORITY_GENERAL}
	}
	arrive := func(id string, sev eventsv1.Severity) {
		write(id, &eventsv1.ComplaintReceived{Customer: &eventsv1.Customer{CustomerRef: "cust-" + id}}, &eventsv1.ComplaintAccepted{AcceptedBy: "system"}, classified(sev))
	}
	l1, l2, l3 := eventsv1.Severity_SEVERITY_L1, eventsv1.Severity_SEVERITY_L2, eventsv1.Severity_SEVERITY_L3
	steps := []struct {
		name string
		do   func()
		want map[eventsv1.Severity][]string
	}{
		{"two L2 and an L1 arrive", func() { arrive("w-1", l2); arrive("w-2", l2); arrive("w-3", l1) },
			map[eventsv1.Severity][]string{l1: {"w-3"}, l2: {"w-1", "w-2"}}},
		{"w-2 reclassified L3", func() { write("w-2", classified(l3)) },
			map[eventsv1.Severity][]string{l1: {"w-3"}, l2: {"w-1"}, l3: {"w-2"}}},
		{"w-1 assigned", func() { write("w-1", &eventsv1.ComplaintAssigned{Team: "technical-support", Owner: "tech-1"}) },
			map[eventsv1.Severity][]string{l1: {"w-3"}, l3: {"w-2"}}},
		{"w-2 withdrawn", func() { write("w-2", &eventsv1.ComplaintWithdrawn{Reason: "sorted out"}) },
			map[eventsv1.Severity][]string{l1: {"w-3"}}},
		{"w-3 closed unassigned: still listed, as before", func() { write("w-3", &eventsv1.ComplaintClosed{ClosedBy: "system"}) },
			map[eventsv1.Severity][]string{l1: {"w-3"}}},
	}
	for _, s := range steps {
		s.do()
		for sev := l1; sev <= eventsv1.Severity_SEVERITY_L4; sev++ {
			got, scan := v.Waiting(sev), waitingByScan(v, sev)
			if !slices.Equal(got, scan) || !slices.Equal(got, s.want[sev]) {
				t.Fatalf("%s: Waiting(%s) = %v, the scan finds %v, want %v", s.name, sev, got, scan, s.want[sev])
			}
		}
	}

	snap, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewView(h.app.Policy())
	if err := restored.Restore(v.Position(), snap); err != nil {
		t.Fatal(err)
	}
	again, err := restored.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snap, again) || restored.Position() != v.Position() {
		t.Fatalf("restored view encodes to\n%s\nwant\n%s", again, snap)
	}
	for sev := l1; sev <= eventsv1.Severity_SEVERITY_L4; sev++ {
		if got, want := restored.Waiting(sev), v.Waiting(sev); !slices.Equal(got, want) {
			t.Fatalf("restored Waiting(%s) = %v, want %v", sev, got, want)
		}
	}

	// Once pruned, the closed w-3 is no longer listed.
	h.clock.Advance(200 * day)
	write("w-1", &eventsv1.ResponseRecorded{Summary: "called"})
	if got := v.Waiting(l1); len(got) != 0 || v.tracks("w-3") {
		t.Fatalf("Waiting(L1) = %v after w-3 was pruned", got)
	}
}

// A log written out of time order (imported history; the scale harness's
// log): log time is at its end from the first events on, and the old
// complaints logged after them end long past the window. Each leaves the
// view at its own close, with no later log time needed; a recent one
// stays; a snapshot taken anywhere, restored and caught up, is the view
// rebuilt from the whole log.
func TestHistoryLoggedAfterItsTimeLeavesTheView(t *testing.T) {
	p := loadPolicy(t)
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	end := t0.Add(3 * 365 * day)
	var recs []eventlog.Record
	versions := map[string]uint64{}
	add := func(id string, at time.Time, msgs ...proto.Message) {
		for _, m := range msgs {
			e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "test", OccurredAt: at}, m)
			if err != nil {
				t.Fatal(err)
			}
			versions[id]++
			e.StreamId, e.Version, e.RecordedAt = string(eventlog.ComplaintStream(id)), versions[id], timestamppb.New(at)
			recs = append(recs, eventlog.Record{Event: e, Position: uint64(len(recs) + 1)})
		}
	}
	life := func(id string, at time.Time) {
		add(id, at, &eventsv1.ComplaintReceived{Customer: &eventsv1.Customer{CustomerRef: "cust-" + id}, Product: &eventsv1.Product{Model: "M-1"}},
			&eventsv1.ComplaintAccepted{AcceptedBy: "system"},
			&eventsv1.ComplaintAssigned{Team: "customer-service", Owner: "cs-1"})
		add(id, at.Add(2*day), &eventsv1.ComplaintResolved{}, &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED})
	}
	add("today", end, &eventsv1.ComplaintReceived{Customer: &eventsv1.Customer{CustomerRef: "cust-today"}}, &eventsv1.ComplaintAccepted{AcceptedBy: "system"})
	for i := range 20 {
		life(fmt.Sprintf("old-%02d", i), t0.Add(time.Duration(i)*30*day))
	}
	life("recent", end.Add(-20*day))

	v := NewView(p)
	for _, r := range recs {
		if err := v.Apply(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	v.mu.RLock()
	kept := slices.Sorted(maps.Keys(v.complaints))
	v.mu.RUnlock()
	if !slices.Equal(kept, []string{"recent", "today"}) {
		t.Fatalf("the view keeps %v, want [recent today]: closed complaints past the window stay", kept)
	}
	checkLoads(t, v)
	want, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 4, len(recs) / 2, len(recs) - 2} {
		part := NewView(p)
		for _, r := range recs[:cut] {
			_ = part.Apply(context.Background(), r)
		}
		snap, err := part.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		restored := NewView(p)
		if err := restored.Restore(uint64(cut), snap); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[cut:] {
			_ = restored.Apply(context.Background(), r)
		}
		if got, _ := restored.Snapshot(); !bytes.Equal(got, want) {
			t.Fatalf("cut %d: restored and caught up\n%s\nwant\n%s", cut, got, want)
		}
	}
}
