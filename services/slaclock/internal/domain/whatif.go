package domain

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"time"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Replay runs a complaint's history (other services' events only; this
// service's own events are ignored) through Decide under env, as if the
// service had handled each event when it happened, and then lets the clocks
// run until until. It changes nothing: the result is a state.
func Replay(complaintID string, history []*ev.Envelope, env Env, until time.Time) State {
	s := State{ComplaintID: complaintID}
	for _, e := range history {
		if e.GetProducer() == Producer {
			continue
		}
		s = Evolve(s, e)
		if len(s.Pending) == 0 {
			continue
		}
		env.Now = triggerTime(e)
		if at := e.GetOccurredAt().AsTime(); at.After(env.Now) {
			env.Now = at
		}
		for _, o := range Decide(s, env) {
			s = Evolve(s, o)
		}
		s.Pending = nil
	}
	env.Now = until
	for _, o := range Decide(s, env) {
		s = Evolve(s, o)
	}
	return s
}

// Tally counts one target's outcomes under the current and the candidate rules.
type Tally struct {
	MetBefore, BreachedBefore, MetAfter, BreachedAfter int
	// NewlyBreached were met under the current rules and breach under the candidate;
	// NewlyMet the other way round.
	NewlyBreached, NewlyMet int
}

// ClockChange is one clock the candidate rules treat differently: its
// outcome flips (met, breached, or still running or paused at until) or
// its deadline moves. A clock missing on one side has Status 0 there.
type ClockChange struct {
	ComplaintID, ClockID, Subject string
	Target                        ev.SlaTarget
	Before, After                 Outcome
}

// Outcome is how a clock stands at the end of a replay: Met (in time),
// Breached (met late or not met), Running or Paused; Deadline is zero
// while paused.
type Outcome struct {
	Status   Status
	Deadline time.Time
}

// Report is the what-if's answer: the counts per target, and the changed
// clocks by name, the first max of them (by complaint id, then clock).
type Report struct {
	Targets      map[ev.SlaTarget]*Tally
	Changes      []ClockChange
	ChangesTotal int
}

// WhatIf replays each history under the current and the candidate
// environment and counts, per target, the clocks met and breached and those
// whose outcome changes, and names the clocks that change (at most max;
// ChangesTotal counts them all). Clocks are paired by target, subject and
// order; cancelled clocks (replaced by ReapplyPolicy) are left out.
func WhatIf(histories map[string][]*ev.Envelope, current, candidate Env, until time.Time, max int) Report {
	rep := Report{Targets: map[ev.SlaTarget]*Tally{}}
	out := rep.Targets
	for _, id := range slices.Sorted(maps.Keys(histories)) {
		h := histories[id]
		before := outcomes(Replay(id, h, current, until))
		after := outcomes(Replay(id, h, candidate, until))
		for _, b := range before {
			t := tally(out, b.target)
			switch b.Status {
			case Met:
				t.MetBefore++
			case Breached:
				t.BreachedBefore++
			}
			switch a := find(after, b.key); {
			case b.Status == Met && a.Status == Breached:
				t.NewlyBreached++
			case b.Status == Breached && a.Status == Met:
				t.NewlyMet++
			}
		}
		for _, a := range after {
			t := tally(out, a.target)
			switch a.Status {
			case Met:
				t.MetAfter++
			case Breached:
				t.BreachedAfter++
			}
		}
		rep.changes(id, before, after, max)
	}
	return rep
}

// changes names the clocks of one complaint whose outcome or deadline differ.
func (r *Report) changes(id string, before, after []outcome, max int) {
	add := func(b, a outcome) {
		if b.Outcome == a.Outcome {
			return
		}
		r.ChangesTotal++
		if len(r.Changes) < max {
			named := cmp.Or(b.id, a.id)
			r.Changes = append(r.Changes, ClockChange{ComplaintID: id, ClockID: named, Subject: cmp.Or(b.subject, a.subject),
				Target: cmp.Or(b.target, a.target), Before: b.Outcome, After: a.Outcome})
		}
	}
	for _, b := range before {
		add(b, find(after, b.key))
	}
	for _, a := range after {
		if find(before, a.key).key == "" {
			add(outcome{}, a)
		}
	}
}

func tally(m map[ev.SlaTarget]*Tally, t ev.SlaTarget) *Tally {
	if m[t] == nil {
		m[t] = &Tally{}
	}
	return m[t]
}

// outcome is one clock's Outcome, keyed by target, subject and order.
type outcome struct {
	Outcome
	key, id, subject string
	target           ev.SlaTarget
}

func find(os []outcome, key string) outcome {
	for _, o := range os {
		if o.key == key {
			return o
		}
	}
	return outcome{}
}

// outcomes lists the clocks of a replayed state that were not cancelled:
// Met for a clock met in time, Breached for one that breached (met late or
// not), else Running or Paused.
func outcomes(s State) []outcome {
	var out []outcome
	seen := map[string]int{}
	for _, c := range s.Clocks {
		if c.Status == Cancelled {
			continue
		}
		base := fmt.Sprintf("%s/%s", c.Target, c.Subject)
		seen[base]++
		o := outcome{Outcome: Outcome{Status: c.Status, Deadline: c.Deadline}, key: fmt.Sprintf("%s#%d", base, seen[base]),
			id: c.ID, subject: c.Subject, target: c.Target}
		switch {
		case c.WasBreached:
			o.Status = Breached
		case c.Status == Paused:
			o.Deadline = time.Time{}
		}
		out = append(out, o)
	}
	return out
}
