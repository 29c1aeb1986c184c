package domain

import (
	"strings"
	"testing"
	"time"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

func TestWhatIfCountsChangedOutcomes(t *testing.T) {
	h := time.Hour
	histories := map[string][]*ev.Envelope{}
	// c1 accepted after 20 h, c2 after 30 h, c3 after 2 h; c2 also responds at 30 h.
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
	current := testEnv(t, t0)
	stricter, err := policy.Parse([]byte(strings.NewReplacer(`"version": "sla.v1"`, `"version": "candidate"`,
		`"acceptance":         {"limit": "24h"`, `"acceptance":         {"limit": "12h"`).Replace(string(policydata.Default))))
	if err != nil {
		t.Fatal(err)
	}
	candidate := testEnv(t, t0)
	candidate.Policies = policy.NewBook(stricter)

	got := WhatIf(histories, current, candidate, t0.Add(100*h))
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
