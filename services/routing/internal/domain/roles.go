package domain

import (
	"slices"
	"strings"
)

// Role of a team member (and of a caller of the API).
type Role string

const (
	RoleAgent           Role = "agent"
	RoleTeamLead        Role = "team_lead"
	RoleManager         Role = "manager"
	RoleQualityReviewer Role = "quality_reviewer"
	RoleSeniorManager   Role = "senior_manager"
	// RoleSystem is routing itself reacting to events.
	RoleSystem Role = "system"
)

// Roles are the roles a person may have.
var Roles = []Role{RoleAgent, RoleTeamLead, RoleManager, RoleQualityReviewer, RoleSeniorManager}

// ValidRole tells whether r is a person's role.
func ValidRole(r Role) bool { return slices.Contains(Roles, r) }

// Actor is who issues a command, with the roles they hold.
type Actor struct {
	ID    string
	Roles []Role
}

// Has tells whether the actor holds one of roles.
func (a Actor) Has(roles ...Role) bool {
	return slices.ContainsFunc(roles, func(r Role) bool { return slices.Contains(a.Roles, r) })
}

// supervisor: may act for the owner.
func (a Actor) supervisor() bool { return a.Has(supervisors...) }

func (a Actor) roleList() string {
	s := make([]string, len(a.Roles))
	for i, r := range a.Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}

// SystemActor is routing's own reactions.
var SystemActor = Actor{ID: "system", Roles: []Role{RoleSystem}}

var supervisors = []Role{RoleTeamLead, RoleManager, RoleSeniorManager}

// allowed lists the roles that may perform each operation.
var allowed = map[string][]Role{
	"override the classification": {RoleAgent, RoleTeamLead, RoleManager, RoleSeniorManager},
	"reassign a complaint":        supervisors,
	"manage team rosters":         supervisors,
	"handle a complaint":          {RoleAgent, RoleTeamLead, RoleManager, RoleSeniorManager},
	"review a solution":           {RoleTeamLead, RoleManager, RoleQualityReviewer, RoleSeniorManager},
}

// Authorize refuses an operation outside the actor's role.
func Authorize(a Actor, op string) error {
	if a.Has(RoleSystem) || a.Has(allowed[op]...) {
		return nil
	}
	return denied(a, op, "needs one of the roles "+roleNames(allowed[op]))
}

// authorizeOwner lets the owner handle the complaint, and supervisors act
// for the owner; another agent is refused.
func authorizeOwner(c *Complaint, a Actor, op string) error {
	if err := Authorize(a, "handle a complaint"); err != nil {
		return err
	}
	if a.ID != c.Owner && !a.supervisor() {
		return denied(a, op, "only the owner (or a supervisor) may")
	}
	return nil
}

// reviewerRoles maps a review level to the roles that may give it.
var reviewerRoles = map[int32][]Role{
	1: {RoleTeamLead, RoleManager}, // supervisor
	2: {RoleQualityReviewer},       // quality
	3: {RoleSeniorManager},         // senior management
}

func roleNames(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}
