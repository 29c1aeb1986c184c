package view

import (
	"context"
	"maps"
	"slices"
	"strings"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// What a team lead's pages need: the current solution of each complaint
// and its reviews, and the teams' rosters (who leads which team).

// Solution is a complaint's current proposal (routing's ProposeSolution).
// The summary is not kept (free text stays in the log, like the
// description); the team page reads it from the log.
type Solution struct {
	ID         string                 `json:"id"`
	ProposedBy string                 `json:"proposed_by"`
	Required   []eventsv1.ReviewLevel `json:"required,omitempty"` // in chain order
	Reviews    []Review               `json:"reviews,omitempty"`
}

// Review is one level's verdict on a solution.
type Review struct {
	Level    eventsv1.ReviewLevel `json:"level"`
	Approved bool                 `json:"approved"`
	By       string               `json:"by"`
}

func (s *Solution) clone() *Solution {
	if s == nil {
		return nil
	}
	out := *s
	out.Required = slices.Clone(s.Required)
	out.Reviews = slices.Clone(s.Reviews)
	return &out
}

// Next is the level the solution waits for (unspecified: none), as routing
// counts reviews: any rejection rejects it; an approval counts only under
// four eyes (not by the proposer, one level per person), so a level given
// against the rule is still pending. The levels are those recorded with
// the proposal; routing may add some after a reclassification.
func (s *Solution) Next() (next eventsv1.ReviewLevel, rejected bool) {
	got := map[eventsv1.ReviewLevel]bool{}
	approvers := map[string]bool{}
	for _, r := range s.Reviews {
		if !r.Approved {
			return 0, true
		}
		if got[r.Level] || r.By == s.ProposedBy || approvers[r.By] {
			continue
		}
		got[r.Level], approvers[r.By] = true, true
	}
	required := slices.Clone(s.Required)
	slices.Sort(required)
	for _, l := range required {
		if !got[l] {
			return l, false
		}
	}
	return 0, false
}

// Reviewed: by is among those who reviewed it (four eyes: one level each).
func (s *Solution) Reviewed(by string) bool {
	return slices.ContainsFunc(s.Reviews, func(r Review) bool { return r.By == by })
}

// AwaitingReview: a current solution that is neither rejected nor fully
// approved.
func (c *Complaint) AwaitingReview() bool {
	if c.Solution == nil {
		return false
	}
	next, rejected := c.Solution.Next()
	return !rejected && next != 0
}

// applyRoster follows a team stream's membership events.
func (v *View) applyRoster(e *eventsv1.Envelope) {
	set := func(team, member, role string) {
		m := v.teams[team]
		if m == nil {
			m = map[string]string{}
			v.teams[strings.Clone(team)] = m
		}
		m[strings.Clone(member)] = strings.Clone(role)
	}
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_TeamMemberJoined:
		set(p.TeamMemberJoined.GetTeam(), p.TeamMemberJoined.GetMemberId(), p.TeamMemberJoined.GetRole())
	case *eventsv1.Envelope_TeamMemberUpdated:
		set(p.TeamMemberUpdated.GetTeam(), p.TeamMemberUpdated.GetMemberId(), p.TeamMemberUpdated.GetRole())
	case *eventsv1.Envelope_TeamMemberLeft:
		if m := v.teams[p.TeamMemberLeft.GetTeam()]; m != nil {
			delete(m, p.TeamMemberLeft.GetMemberId())
		}
	}
}

// Teams lists the teams with a roster, by name.
func (v *View) Teams() []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.Sorted(maps.Keys(v.teams))
}

// TeamsOf lists the teams member is on the roster of, with the given role
// (any role when role is empty), by name.
func (v *View) TeamsOf(member, role string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for team, m := range v.teams {
		if r, ok := m[member]; ok && (role == "" || r == role) {
			out = append(out, team)
		}
	}
	slices.Sort(out)
	return out
}

// warnedAtLeast: a running clock is breached or warned at pct or more.
func (c *Complaint) warnedAtLeast(pct uint32) bool {
	return slices.ContainsFunc(c.Clocks, func(k Clock) bool { return k.Breached || k.Warned >= pct })
}

// WaitForComplaint returns once the view has applied a complaint's stream
// up to version (or the complaint left the view): a page shown right after
// an action shows the action.
func (v *View) WaitForComplaint(ctx context.Context, id string, version uint64) error {
	for {
		v.mu.RLock()
		c, ch := v.complaints[id], v.advanced
		done := c == nil || c.Version >= version
		v.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// indexTeam files c under its team, out of old's set when it moved.
func (v *View) indexTeam(old string, c *Complaint) {
	if old != c.Team {
		v.unindexTeam(old, c)
	}
	set := v.byTeam[c.Team]
	if set == nil {
		set = map[*Complaint]struct{}{}
		v.byTeam[c.Team] = set
	}
	set[c] = struct{}{}
}

func (v *View) unindexTeam(team string, c *Complaint) {
	if set := v.byTeam[team]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(v.byTeam, team)
		}
	}
}
