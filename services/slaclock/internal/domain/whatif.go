package domain

import (
	"fmt"
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

// WhatIf replays each history under the current and the candidate
// environment and counts, per target, the clocks met and breached and those
// whose outcome changes. Clocks are paired by target, subject and order;
// cancelled clocks (replaced on reclassification) are left out.
func WhatIf(histories map[string][]*ev.Envelope, current, candidate Env, until time.Time) map[ev.SlaTarget]*Tally {
	out := map[ev.SlaTarget]*Tally{}
	for id, h := range histories {
		before := outcomes(Replay(id, h, current, until))
		after := outcomes(Replay(id, h, candidate, until))
		for k, b := range before {
			t := tally(out, k.target)
			switch b {
			case Met:
				t.MetBefore++
			case Breached:
				t.BreachedBefore++
			}
			switch a := after[k]; {
			case b == Met && a == Breached:
				t.NewlyBreached++
			case b == Breached && a == Met:
				t.NewlyMet++
			}
		}
		for k, a := range after {
			t := tally(out, k.target)
			switch a {
			case Met:
				t.MetAfter++
			case Breached:
				t.BreachedAfter++
			}
		}
	}
	return out
}

func tally(m map[ev.SlaTarget]*Tally, t ev.SlaTarget) *Tally {
	if m[t] == nil {
		m[t] = &Tally{}
	}
	return m[t]
}

type clockKey struct {
	target ev.SlaTarget
	key    string
}

// outcomes: Met for a clock met in time, Breached for one that breached
// (met late or not); open and cancelled clocks have no outcome yet.
func outcomes(s State) map[clockKey]Status {
	out := map[clockKey]Status{}
	seen := map[string]int{}
	for _, c := range s.Clocks {
		if c.Status == Cancelled {
			continue
		}
		base := fmt.Sprintf("%s/%s", c.Target, c.Subject)
		seen[base]++
		k := clockKey{c.Target, fmt.Sprintf("%s#%d", base, seen[base])}
		switch {
		case c.WasBreached:
			out[k] = Breached
		case c.Status == Met:
			out[k] = Met
		}
	}
	return out
}
