package domain

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// fact is one event of another service, with the time it happened.
type fact struct {
	at      time.Time
	payload proto.Message
}

// stream appends facts in the given order, deciding after those marked
// (at the given times) and once more at end; it returns the whole stream.
func stream(t *testing.T, env Env, facts []fact, decideAt map[int]time.Time, end time.Time) []*ev.Envelope {
	t.Helper()
	at := func(now time.Time) Env { env.Now = now; return env }
	x := &history{t: t}
	for i, f := range facts {
		x.add(f.at, f.payload)
		if now, ok := decideAt[i]; ok {
			x.decide(at(now))
		}
	}
	x.decide(at(end))
	return x.events
}

// clocksOf renders the clocks of a stream as what must not depend on the
// order the facts were seen in: ids, status, start, deadline, terms, outcome.
// Warnings are left out: which were emitted depends on when sla-clock looked.
func clocksOf(events []*ev.Envelope) string {
	var b strings.Builder
	for _, c := range Fold("c1", events).Clocks {
		fmt.Fprintf(&b, "%s %s start=%s budget=%s business=%v cal=%q breached=%v",
			c.ID, c.Status, c.StartedAt.Format(time.RFC3339), c.Budget, c.Business, c.CalendarID, c.WasBreached)
		switch {
		case c.Status == Paused || (c.Status == Met && c.MetPaused):
			fmt.Fprintf(&b, " remaining=%s", c.Remaining)
		case c.Status != Cancelled:
			fmt.Fprintf(&b, " deadline=%s", c.Deadline.Format(time.RFC3339))
		}
		if c.Status == Met {
			fmt.Fprintf(&b, " met=%s", c.MetAt.Format(time.RFC3339))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// The case of issue 17: the same L3 complaint with the same back-dated
// receivedAt gets the L3 resolution terms (2 working days on cn-standard:
// Fri 16:00 + 16 business hours, Sun 20 Sep a make-up working day) however
// sla-clock saw the classification, and a breach recorded under the default
// terms is withdrawn explicitly.
func TestLateClassificationRetermsFromReceivedAt(t *testing.T) {
	shanghai := time.FixedZone("CST", 8*3600)
	recv := time.Date(2026, 9, 18, 16, 0, 0, 0, shanghai)
	wantDeadline := time.Date(2026, 9, 21, 16, 0, 0, 0, shanghai)
	entered := time.Date(2026, 9, 20, 18, 0, 0, 0, shanghai) // after the default 48 h deadline (09-20 16:00)
	classified := entered.Add(time.Minute)
	facts := []fact{
		{entered, received(recv)},
		{classified, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3}},
	}
	ways := map[string]map[int]time.Time{
		"classification seen with the receipt":                 {},
		"receipt decided first, classification a minute later": {0: entered},
	}
	var first string
	for name, decideAt := range ways {
		events := stream(t, testEnv(t, entered), facts, decideAt, classified)
		st := Fold("c1", events)
		r := st.Clock("resolution-1")
		if r == nil || r.Status != Running || !r.Deadline.Equal(wantDeadline) || !r.Business || r.Budget != 16*time.Hour {
			t.Fatalf("%s: resolution-1 = %+v, want running to %v", name, r, wantDeadline)
		}
		if len(st.Clocks) != 3 {
			t.Fatalf("%s: %d clocks, want 3 (re-termed in place)", name, len(st.Clocks))
		}
		got := clocksOf(events)
		if first == "" {
			first = got
		} else if got != first {
			t.Fatalf("%s: clocks\n%s\ndiffer from\n%s", name, got, first)
		}
		s := summary(events)
		if decideAt[0].IsZero() {
			if strings.Contains(s, "Breached resolution-1") || strings.Contains(s, "Retermed") {
				t.Fatalf("%s: %s", name, s)
			}
			continue
		}
		// Entered late under the default terms: breached once, then the
		// classification re-terms it and withdraws the breach explicitly.
		if !strings.Contains(s, "Breached resolution-1 late 2h0m0s;") || !strings.Contains(s, "Withdrawn resolution-1 reopened;") ||
			strings.Contains(s, "Warning resolution-1") {
			t.Fatalf("%s: %s", name, s)
		}
	}
}

// For random orders of the same facts, and random moments sla-clock decides
// at, the clocks and their deadlines are those of the facts decided in time
// order as they happened.
func TestClocksDoNotDependOnTheOrderFactsAreSeenIn(t *testing.T) {
	h := time.Hour
	rng := rand.New(rand.NewPCG(17, 4))
	severities := []ev.Severity{ev.Severity_SEVERITY_L1, ev.Severity_SEVERITY_L2, ev.Severity_SEVERITY_L3, ev.Severity_SEVERITY_L4}
	reasons := []ev.HoldReason{ev.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER, ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS}
	span := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	env := testEnv(t, t0) // the policy book is only read
	scenarios, orders := 40, 25
	if testing.Short() {
		scenarios = 10
	}
	for sc := range scenarios {
		// Received at t0, entered up to 60 h later (back-dated); the other
		// facts after the entry.
		entered := t0.Add(span(0, 60*h))
		after := func(lo, hi time.Duration) time.Time { return entered.Add(span(lo, hi)) }
		hold := after(0, 40*h)
		facts := []fact{
			{entered, received(t0)},
			{after(0, 20*h), &ev.ComplaintAccepted{}},
			{after(0, 30*h), &ev.ComplaintClassified{Severity: severities[rng.IntN(4)]}},
			{hold, &ev.ComplaintPutOnHold{Reason: reasons[rng.IntN(2)]}},
			{hold.Add(span(h, 30*h)), &ev.ComplaintTakenOffHold{}},
			{after(10*h, 80*h), &ev.ComplaintResolved{}},
		}
		facts = append(facts, fact{facts[2].at.Add(span(h, 40*h)), &ev.ComplaintClassified{Severity: severities[rng.IntN(4)]}})
		end := t0.Add(200 * h)

		// The reference: in time order, each decided when it happened.
		ref := slices.Clone(facts)
		slices.SortStableFunc(ref[1:], func(a, b fact) int { return a.at.Compare(b.at) })
		every := map[int]time.Time{}
		for i, f := range ref {
			every[i] = f.at
		}
		want := clocksOf(stream(t, env, ref, every, end))

		for o := range orders {
			// The receipt first, a hold before its release; the rest in any order.
			order := append([]fact{facts[0]}, shuffled(rng, facts[1:])...)
			on := slices.IndexFunc(order, func(f fact) bool { _, ok := f.payload.(*ev.ComplaintPutOnHold); return ok })
			off := slices.IndexFunc(order, func(f fact) bool { _, ok := f.payload.(*ev.ComplaintTakenOffHold); return ok })
			if off < on {
				order[on], order[off] = order[off], order[on]
			}
			// Decide after some of them, at or after every fact seen so far.
			decideAt, seen := map[int]time.Time{}, time.Time{}
			for i, f := range order {
				if f.at.After(seen) {
					seen = f.at
				}
				if rng.IntN(2) == 0 {
					seen = seen.Add(span(0, 20*h))
					decideAt[i] = seen
				}
			}
			if got := clocksOf(stream(t, env, order, decideAt, end)); got != want {
				t.Fatalf("scenario %d order %d: facts %s decided at %v\ngot\n%swant\n%s", sc, o, describe(order), decideAt, got, want)
			}
		}
	}
}

func shuffled(rng *rand.Rand, fs []fact) []fact {
	out := slices.Clone(fs)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func describe(fs []fact) string {
	var parts []string
	for _, f := range fs {
		parts = append(parts, fmt.Sprintf("%T@%s", f.payload, f.at.Sub(t0)))
	}
	return strings.Join(parts, " ")
}

// A complaint entered three days after it was received records each
// past-due clock as breached in one decision, late_by from its deadline,
// and fires none of the warnings whose moment had passed.
func TestLateEntryBreachesOnceWithoutPastWarnings(t *testing.T) {
	h := time.Hour
	x := &history{t: t}
	x.add(t0.Add(72*h), received(t0))
	out := x.decide(testEnv(t, t0.Add(72*h)))
	want := "Started acceptance-1 24h0m0s;Started first_response-1 24h0m0s;Started resolution-1 48h0m0s;" +
		"Breached acceptance-1 late 48h0m0s;Breached first_response-1 late 48h0m0s;Breached resolution-1 late 24h0m0s;"
	if got := summary(out); got != want {
		t.Fatalf("got\n  %s\nwant\n  %s", got, want)
	}
	for _, e := range out {
		if s := e.GetSlaClockStarted(); s != nil && !slices.Equal(s.GetPastWarnings(), []uint32{50, 75, 90}) {
			t.Fatalf("%s past warnings %v", s.GetClockId(), s.GetPastWarnings())
		}
	}
	// Entered 20 h late: only the warnings still ahead fire, when due.
	y := &history{t: t}
	y.add(t0.Add(20*h), received(t0))
	y.decide(testEnv(t, t0.Add(20*h)))
	if got := summary(y.decide(testEnv(t, t0.Add(22*h)))); got != "Warning acceptance-1 90 late 24m0s;Warning first_response-1 90 late 24m0s;" {
		t.Fatalf("after a late entry: %s", got)
	}
	// Nothing more later on: each clock breached once.
	x.decide(testEnv(t, t0.Add(100*h)))
	if got := summary(x.decide(testEnv(t, t0.Add(200*h)))); got != "" {
		t.Fatalf("decided again: %s", got)
	}
}

// A hold recorded after the clock it pauses had breached (seen late) moves
// the deadline and withdraws the breach; a met clock found late under the
// facts gets its breach.
func TestLateHoldWithdrawsBreach(t *testing.T) {
	h := time.Hour
	x := &history{t: t}
	x.add(t0, received(t0))
	x.add(t0, &ev.ComplaintAccepted{})
	x.add(t0, &ev.ResponseRecorded{})
	x.decide(testEnv(t, t0))
	x.decide(testEnv(t, t0.Add(50*h))) // resolution breached at 48 h
	x.add(t0.Add(10*h), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
	x.add(t0.Add(20*h), &ev.ComplaintTakenOffHold{})
	got := summary(x.decide(testEnv(t, t0.Add(51*h))))
	if got != "Withdrawn resolution-1 reopened;" {
		t.Fatalf("late hold: %s", got)
	}
	st := Fold("c1", x.events)
	r := st.Clock("resolution-1")
	if r.Status != Running || r.WasBreached || !r.Deadline.Equal(t0.Add(58*h)) {
		t.Fatalf("resolution-1 = %+v", r)
	}
	if got := summary(x.decide(testEnv(t, t0.Add(58*h)))); got != "Breached resolution-1 late 0s;" {
		t.Fatalf("at the new deadline: %s", got)
	}
}

// Redoing a decision cut short after any of its events ends with the same
// clocks: the re-term and the withdrawal are found missing and written.
func TestRetermIsRedoneAfterACutAppend(t *testing.T) {
	h := time.Hour
	base := &history{t: t}
	base.add(t0, received(t0))
	base.decide(testEnv(t, t0.Add(50*h)))
	base.add(t0.Add(50*h), &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
	full := Decide(Fold("c1", base.events), testEnv(t, t0.Add(50*h)))
	whole := clocksOf(append(slices.Clone(base.events), full...))
	for cut := 1; cut < len(full); cut++ {
		x := &history{t: t, events: slices.Clone(base.events)}
		for i, e := range full[:cut] {
			e := proto.Clone(e).(*ev.Envelope)
			e.BatchRemaining = uint32(len(full) - 1 - i)
			x.append(e)
		}
		x.decide(testEnv(t, t0.Add(50*h)))
		if got := clocksOf(x.events); got != whole {
			t.Fatalf("cut after %d of %d:\n%s\nwant\n%s", cut, len(full), got, whole)
		}
	}
}
