package domain

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Member is one person of a team roster.
type Member struct {
	ID          string
	DisplayName string
	Skills      []string
	Role        Role
	OnShift     bool
}

// Team is a roster rebuilt from its "team-<id>" stream.
type Team struct {
	ID      string
	Version uint64
	Members map[string]Member
}

// NewTeam returns an empty roster.
func NewTeam(id string) *Team { return &Team{ID: id, Members: map[string]Member{}} }

// Evolve applies one event of the team's stream.
func (t *Team) Evolve(e *eventsv1.Envelope) {
	t.Version = e.GetVersion()
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_TeamMemberJoined:
		x := p.TeamMemberJoined
		t.Members[x.GetMemberId()] = Member{ID: x.GetMemberId(), DisplayName: x.GetDisplayName(), Skills: x.GetSkills(), Role: Role(x.GetRole()), OnShift: x.GetOnShift()}
	case *eventsv1.Envelope_TeamMemberUpdated:
		x := p.TeamMemberUpdated
		m := t.Members[x.GetMemberId()]
		m.ID, m.Skills, m.Role, m.OnShift = x.GetMemberId(), x.GetSkills(), Role(x.GetRole()), x.GetOnShift()
		t.Members[x.GetMemberId()] = m
	case *eventsv1.Envelope_TeamMemberLeft:
		delete(t.Members, p.TeamMemberLeft.GetMemberId())
	}
}

// WithRole lists the members with a role, sorted by id.
func (t *Team) WithRole(r Role) []string {
	var out []string
	for _, m := range t.Members {
		if m.Role == r {
			out = append(out, m.ID)
		}
	}
	slices.Sort(out)
	return out
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidateID checks a team or member id: lower-case letters, digits, '.', '_', '-'.
func ValidateID(field, id string) error {
	if id == "" {
		return invalid(field, "required", "must not be empty")
	}
	if !idPattern.MatchString(id) {
		return invalid(field, "format", "must be 1-64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
	}
	return nil
}

// MemberChange is a roster command: join, update or leave.
type MemberChange struct {
	Team, MemberID, DisplayName string
	Skills                      []string
	Role                        Role
	OnShift                     bool
}

// Join adds a member to a team.
func Join(t *Team, a Actor, c MemberChange) ([]proto.Message, error) {
	if err := Authorize(a, "manage team rosters"); err != nil {
		return nil, err
	}
	if err := validateMember(c); err != nil {
		return nil, err
	}
	if _, ok := t.Members[c.MemberID]; ok {
		return nil, precondition(fmt.Sprintf("member %q is already in team %q", c.MemberID, c.Team))
	}
	return []proto.Message{&eventsv1.TeamMemberJoined{Team: c.Team, MemberId: c.MemberID, DisplayName: c.DisplayName, Skills: c.Skills, Role: string(c.Role), OnShift: c.OnShift}}, nil
}

// Update changes a member's skills, role or shift.
func Update(t *Team, a Actor, c MemberChange) ([]proto.Message, error) {
	if err := Authorize(a, "manage team rosters"); err != nil {
		return nil, err
	}
	if err := validateMember(c); err != nil {
		return nil, err
	}
	if _, ok := t.Members[c.MemberID]; !ok {
		return nil, fmt.Errorf("member_id %q: %w in team %q", c.MemberID, kernel.ErrNotFound, c.Team)
	}
	return []proto.Message{&eventsv1.TeamMemberUpdated{Team: c.Team, MemberId: c.MemberID, Skills: c.Skills, Role: string(c.Role), OnShift: c.OnShift}}, nil
}

// Leave removes a member from a team.
func Leave(t *Team, a Actor, teamID, memberID string) ([]proto.Message, error) {
	if err := Authorize(a, "manage team rosters"); err != nil {
		return nil, err
	}
	if _, ok := t.Members[memberID]; !ok {
		return nil, fmt.Errorf("member_id %q: %w in team %q", memberID, kernel.ErrNotFound, teamID)
	}
	return []proto.Message{&eventsv1.TeamMemberLeft{Team: teamID, MemberId: memberID}}, nil
}

func validateMember(c MemberChange) error {
	if err := ValidateID("team", c.Team); err != nil {
		return err
	}
	if err := ValidateID("member_id", c.MemberID); err != nil {
		return err
	}
	if !ValidRole(c.Role) {
		return invalid("role", "enum", fmt.Sprintf("unknown role %q (agent, team_lead, manager, quality_reviewer, senior_manager)", c.Role))
	}
	return nil
}

// Workload is a member's current open load and when they were last given
// a complaint (zero: never).
type Workload struct {
	Open         int
	LastAssigned time.Time
}

// canOwn: reviewers and senior managers review and oversee, they do not own.
func canOwn(r Role) bool {
	return r == RoleAgent || r == RoleTeamLead || r == RoleManager
}

// PickOwner chooses the owner within a team: among on-shift members who may
// own complaints, those with the skill (all of them when none has it), the
// least loaded, ties to the longest idle, then the smallest id. It returns
// "" when nobody is on shift.
func PickOwner(t *Team, skill string, load func(member string) Workload, exclude string) (owner, reason string) {
	var eligible []Member
	for _, m := range t.Members {
		if m.OnShift && canOwn(m.Role) && m.ID != exclude {
			eligible = append(eligible, m)
		}
	}
	if len(eligible) == 0 {
		return "", ""
	}
	skilled := slices.DeleteFunc(slices.Clone(eligible), func(m Member) bool { return !slices.Contains(m.Skills, skill) })
	reason = fmt.Sprintf("skill %q, least open load, longest idle", skill)
	if len(skilled) > 0 {
		eligible = skilled
	} else {
		reason = fmt.Sprintf("nobody on shift has skill %q: least open load, longest idle", skill)
	}
	slices.SortFunc(eligible, func(a, b Member) int {
		la, lb := load(a.ID), load(b.ID)
		if la.Open != lb.Open {
			return la.Open - lb.Open
		}
		if c := la.LastAssigned.Compare(lb.LastAssigned); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	return eligible[0].ID, reason
}
