package domain

import (
	"strings"
	"testing"
	"time"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

// stricterAcceptance: c1 accepted after 20 h, c2 after 30 h, c3 after 2 h
// (each responded to then too), and a candidate policy that halves the
// acceptance limit (24 h to 12 h).
func stricterAcceptance(t *testing.T) (map[string][]*ev.Envelope, Env, Env) {
	h := time.Hour
	histories := map[string][]*ev.Envelope{}
	for id, acceptedAfter := range map[string]time.Duration{"c1": 20 * h, "c2": 30 * h, "c3": 2 * h} {
		x := &history{t: t}
		x.add(t0, received(t0))
		x.add(t0.Add(acceptedAfter), &ev.ComplaintAccepted{})
		x.add(t0.Add(acceptedAfter), &ev.ResponseRecorded{})
		for _, e := range x.events {
			e.ComplaintId = id
		}
		histories[id] = x.events
	}
	stricter, err := policy.Parse([]byte(strings.NewReplacer(`"version": "sla.v1"`, `"version": "candidate"`,
		`"acceptance":         {"limit": "24h"`, `"acceptance":         {"limit": "12h"`).Replace(string(policydata.Default))))
	if err != nil {
		t.Fatal(err)
	}
	candidate := testEnv(t, t0)
	candidate.Policies = policy.NewBook(stricter)
	return histories, testEnv(t, t0), candidate
}

func TestWhatIfCountsChangedOutcomes(t *testing.T) {
	h := time.Hour
	histories, current, candidate := stricterAcceptance(t)
	got := WhatIf(histories, current, candidate, t0.Add(100*h), 100).Targets
	acc := got[ev.SlaTarget_SLA_TARGET_ACCEPTANCE]
	if *acc != (Tally{MetBefore: 2, BreachedBefore: 1, MetAfter: 1, BreachedAfter: 2, NewlyBreached: 1}) {
		t.Fatalf("acceptance = %+v", *acc)
	}
	fr := got[ev.SlaTarget_SLA_TARGET_FIRST_RESPONSE]
	if *fr != (Tally{MetBefore: 2, BreachedBefore: 1, MetAfter: 2, BreachedAfter: 1}) {
		t.Fatalf("first response changed: %+v", *fr)
	}
	// Resolution never resolved within 100 h: breached under both.
	if r := got[ev.SlaTarget_SLA_TARGET_RESOLUTION]; r.BreachedBefore != 3 || r.BreachedAfter != 3 || r.NewlyBreached != 0 {
		t.Fatalf("resolution = %+v", *r)
	}
	// Nothing in the input was changed.
	for _, hs := range histories {
		if len(hs) != 3 {
			t.Fatal("what-if changed a history")
		}
	}
}

// The what-if names the clocks that flip and those whose deadline moves,
// running ones included, at most max of them, and counts them all.
func TestWhatIfNamesTheClocksThatChange(t *testing.T) {
	h := time.Hour
	histories, current, candidate := stricterAcceptance(t)
	// c4, received at 80 h, is still waiting for acceptance at 100 h:
	// running under the current rules, breached at 92 h under the candidate.
	x := &history{t: t}
	x.add(t0.Add(80*h), received(t0.Add(80*h)))
	for _, e := range x.events {
		e.ComplaintId = "c4"
	}
	histories["c4"] = x.events

	rep := WhatIf(histories, current, candidate, t0.Add(100*h), 100)
	acc := ev.SlaTarget_SLA_TARGET_ACCEPTANCE
	want := []ClockChange{
		{ComplaintID: "c1", ClockID: "acceptance-1", Target: acc, Before: Outcome{Met, t0.Add(24 * h)}, After: Outcome{Breached, t0.Add(12 * h)}},
		{ComplaintID: "c2", ClockID: "acceptance-1", Target: acc, Before: Outcome{Breached, t0.Add(24 * h)}, After: Outcome{Breached, t0.Add(12 * h)}},
		{ComplaintID: "c3", ClockID: "acceptance-1", Target: acc, Before: Outcome{Met, t0.Add(24 * h)}, After: Outcome{Met, t0.Add(12 * h)}},
		{ComplaintID: "c4", ClockID: "acceptance-1", Target: acc, Before: Outcome{Running, t0.Add(104 * h)}, After: Outcome{Breached, t0.Add(92 * h)}},
	}
	if rep.ChangesTotal != len(want) || len(rep.Changes) != len(want) {
		t.Fatalf("changes %d of %d: %+v", len(rep.Changes), rep.ChangesTotal, rep.Changes)
	}
	for i, c := range rep.Changes {
		if c.ComplaintID != want[i].ComplaintID || c.ClockID != want[i].ClockID || c.Target != want[i].Target ||
			c.Before.Status != want[i].Before.Status || !c.Before.Deadline.Equal(want[i].Before.Deadline) ||
			c.After.Status != want[i].After.Status || !c.After.Deadline.Equal(want[i].After.Deadline) {
			t.Fatalf("change %d = %+v, want %+v", i, c, want[i])
		}
	}
	// Bounded: the first two named, all four counted.
	if rep := WhatIf(histories, current, candidate, t0.Add(100*h), 2); len(rep.Changes) != 2 || rep.ChangesTotal != 4 || rep.Changes[1].ComplaintID != "c2" {
		t.Fatalf("bounded: %d of %d: %+v", len(rep.Changes), rep.ChangesTotal, rep.Changes)
	}
}
