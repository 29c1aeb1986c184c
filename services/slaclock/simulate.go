package slaclock

import (
	"fmt"
	"time"

	"github.com/closeloop/closeloop/libs/calendar"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

// Simulator tells, without I/O, which clock events the sla-clock would
// append to a complaint's stream at a given time, under the shipped policy
// and calendars. It exists for tools that write a realistic log straight
// into the store (the scale harness, cmd/closeloop/scale): they get the
// service's own decisions instead of a copy of its rules.
type Simulator struct{ env domain.Env }

// NewSimulator returns a simulator on the shipped policy and calendars.
func NewSimulator() (*Simulator, error) {
	pol, err := policy.Parse(policydata.Default)
	if err != nil {
		return nil, fmt.Errorf("slaclock: shipped policy: %w", err)
	}
	cals, err := calendar.Default()
	if err != nil {
		return nil, err
	}
	return &Simulator{env: domain.Env{Policies: policy.NewBook(pol), Calendars: cals}}, nil
}

// SimulatedComplaint is one complaint's clocks as the sla-clock folds them.
// Not safe for concurrent use.
type SimulatedComplaint struct {
	sim *Simulator
	st  domain.State
}

// Complaint starts the fold of a complaint's stream.
func (s *Simulator) Complaint(id string) *SimulatedComplaint {
	return &SimulatedComplaint{sim: s, st: domain.State{ComplaintID: id}}
}

// Apply folds one event as stored (with its version, event id, producer and
// batch_remaining set by the store).
func (c *SimulatedComplaint) Apply(e *ev.Envelope) { c.st = domain.Evolve(c.st, e) }

// Decide returns the clock events the sla-clock would append at now: the
// handling of the triggers applied since its last append, and the warnings
// and breaches due by now. They have no event id yet; the caller sets ids,
// appends them in one batch and applies them as stored.
func (c *SimulatedComplaint) Decide(now time.Time) []*ev.Envelope {
	env := c.sim.env
	env.Now = now
	return domain.Decide(c.st, env)
}

// OpenClocks counts the clocks still running or paused.
func (c *SimulatedComplaint) OpenClocks() int {
	n := 0
	for i := range c.st.Clocks {
		if c.st.Clocks[i].Open() {
			n++
		}
	}
	return n
}
