package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Directory answers who is in which team: the roster data escalation and
// assignment need. Teams returned are the caller's to read.
type Directory interface {
	// Team returns a team's roster, or nil when the team is unknown.
	Team(id string) *Team
	// WithRole lists the members of every team with a role.
	WithRole(r Role) []string
}

// LoadFunc reports a member's open load and idle time.
type LoadFunc func(member string) Workload

// ---- reactions to events -------------------------------------------------

// Classify classifies an accepted complaint once: ComplaintClassified, and
// RepeatComplaintFlagged when earlier complaints of the same customer and
// product/problem fall within the policy's window (found by the caller).
// The flag is decided on its own when the log kept the classification of
// that append but not the rest: earlier only shrinks as the view moves on,
// so a non-empty earlier here means the classification counted the repeat.
func Classify(c *Complaint, p *Policy, earlier []string) []proto.Message {
	repeat := len(earlier) > 0
	var out []proto.Message
	priority := c.Priority
	switch {
	case c.Status == StatusClassified:
		// The flag, when missing, is all that is left of that append.
	case c.Status != StatusAccepted || c.Classified:
		return nil
	default:
		cl := p.Decide(ClassifyInput{Text: c.Text, Description: c.Description, Channel: c.Channel, Tier: c.Tier, Repeat: repeat})
		by := "policy " + p.Version
		if cl.ModelVersion != "" {
			by += ", model " + cl.ModelVersion
		}
		out = append(out, &eventsv1.ComplaintClassified{
			Category: cl.Category, Severity: cl.Severity, Priority: cl.Priority,
			RulesFired: cl.RulesFired, ClassifiedBy: by,
			ModelVersion: cl.ModelVersion, Confidence: cl.Confidence, DecidingFeatures: cl.Deciding,
			NeedsTriage: cl.NeedsTriage, SuggestedDispatch: cl.Dispatch,
		})
		priority = cl.Priority
	}
	if repeat && !c.Repeat {
		out = append(out, &eventsv1.RepeatComplaintFlagged{
			EarlierComplaintIds: earlier, WindowDays: uint32(p.RepeatWindowDays), RaisedPriority: priority,
		})
	}
	return out
}

// AssignNew gives a classified complaint without an owner to the team its
// severity picks, choosing the owner by skill and load. Nothing when the
// complaint is owned already or nobody in the team is on shift (it is then
// assigned when the roster changes).
func AssignNew(c *Complaint, p *Policy, dir Directory, load LoadFunc) []proto.Message {
	if !c.Classified || c.Owner != "" || !c.Open() {
		return nil
	}
	teamID := p.TeamFor(c.Severity)
	t := dir.Team(teamID)
	if t == nil {
		return nil
	}
	owner, reason := PickOwner(t, p.SkillFor(c.Category), load, "")
	if owner == "" {
		return nil
	}
	return []proto.Message{&eventsv1.ComplaintAssigned{
		Team: teamID, Owner: owner, Reason: fmt.Sprintf("%s → %s; %s", SeverityName(c.Severity), teamID, reason),
		FirstReceiver: c.FirstReceiver, AssignedBy: "system",
	}}
}

// EscalateOnArrival escalates what must be escalated as soon as it is
// classified: L4 straight to emergency response, and a repeat one level up.
// causeEventID is the acceptance that led to it.
func EscalateOnArrival(c *Complaint, dir Directory, causeEventID string) []proto.Message {
	var out []proto.Message
	if c.Severity == eventsv1.Severity_SEVERITY_L4 {
		out = append(out, escalateTo(c, dir, eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE, eventsv1.EscalationCause_ESCALATION_CAUSE_SEVERITY, causeEventID, "severity L4: emergency response starts")...)
	}
	if c.Repeat {
		out = append(out, Escalate(c, dir, eventsv1.EscalationCause_ESCALATION_CAUSE_REPEAT, causeEventID, "repeat complaint: root cause required")...)
	}
	return out
}

// NextLevel is one step up the escalation ladder: owner → team lead →
// department manager → senior management, the top. Emergency response (L4)
// that misses a deadline goes to senior management.
func NextLevel(l eventsv1.EscalationLevel) eventsv1.EscalationLevel {
	switch l {
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE, eventsv1.EscalationLevel_ESCALATION_LEVEL_SENIOR_MANAGEMENT:
		return eventsv1.EscalationLevel_ESCALATION_LEVEL_SENIOR_MANAGEMENT
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_UNSPECIFIED:
		return eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD
	}
	return l + 1
}

// Escalate moves the complaint one level up for a cause (an SLA breach, a
// reopen, a repeat, no technician), once per cause event. At the top of the
// ladder it notifies that level again instead.
func Escalate(c *Complaint, dir Directory, cause eventsv1.EscalationCause, causeEventID, reason string) []proto.Message {
	return escalateTo(c, dir, NextLevel(c.Level), cause, causeEventID, reason)
}

func escalateTo(c *Complaint, dir Directory, to eventsv1.EscalationLevel, cause eventsv1.EscalationCause, causeEventID, reason string) []proto.Message {
	if !c.Exists() || c.Escalated(cause, causeEventID) || c.Notified(causeEventID) {
		return nil
	}
	from := c.Level
	if from == eventsv1.EscalationLevel_ESCALATION_LEVEL_UNSPECIFIED {
		from = eventsv1.EscalationLevel_ESCALATION_LEVEL_OWNER
	}
	recipients := recipientsFor(c, dir, to)
	if to == from {
		return []proto.Message{&eventsv1.StakeholdersNotified{Recipients: recipients, Reason: reason + " (already at " + to.String() + ")", CauseEventId: causeEventID}}
	}
	return []proto.Message{&eventsv1.ComplaintEscalated{FromLevel: from, ToLevel: to, Cause: cause, CauseEventId: causeEventID, Reason: reason, Notified: recipients}}
}

// NotifyWarning tells the owner and the team lead of an SLA warning, once.
func NotifyWarning(c *Complaint, dir Directory, causeEventID, reason string) []proto.Message {
	if !c.Exists() || !c.Open() || c.Notified(causeEventID) {
		return nil
	}
	return []proto.Message{&eventsv1.StakeholdersNotified{
		Recipients: recipientsFor(c, dir, eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD), Reason: reason, CauseEventId: causeEventID,
	}}
}

// recipientsFor: the owner and first receiver always, plus the people of
// the level.
func recipientsFor(c *Complaint, dir Directory, l eventsv1.EscalationLevel) []string {
	out := []string{c.Owner, c.FirstReceiver}
	team := func(id string) *Team {
		if t := dir.Team(id); t != nil {
			return t
		}
		return NewTeam(id)
	}
	switch l {
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD:
		out = append(out, team(c.Team).WithRole(RoleTeamLead)...)
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_DEPARTMENT_MANAGER:
		out = append(out, dir.WithRole(RoleManager)...)
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_SENIOR_MANAGEMENT:
		out = append(out, dir.WithRole(RoleSeniorManager)...)
	case eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE:
		t := team(EmergencyTeam)
		for id, m := range t.Members {
			if m.OnShift {
				out = append(out, id)
			}
		}
		out = append(out, dir.WithRole(RoleSeniorManager)...)
	}
	out = slices.DeleteFunc(out, func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// EmergencyTeam is the team L4 complaints escalate to.
const EmergencyTeam = "emergency-response"

// ---- commands ------------------------------------------------------------

// Override replaces the policy's classification, with a reason.
func Override(c *Complaint, a Actor, cat eventsv1.Category, sev eventsv1.Severity, pri eventsv1.Priority, reason string) ([]proto.Message, error) {
	if err := Authorize(a, "override the classification"); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	if CategoryName(cat) == "" {
		vs = append(vs, kernel.Violation{Field: "category", Rule: "enum", Message: "must be one of the five categories"})
	}
	if SeverityName(sev) == "" {
		vs = append(vs, kernel.Violation{Field: "severity", Rule: "enum", Message: "must be L1..L4"})
	}
	if PriorityName(pri) == "" {
		vs = append(vs, kernel.Violation{Field: "priority", Rule: "enum", Message: "must be general, important or urgent"})
	}
	if strings.TrimSpace(reason) == "" {
		vs = append(vs, kernel.Violation{Field: "reason", Rule: "required", Message: "an override needs a reason"})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	if !c.Classified {
		return nil, precondition("complaint is not classified yet", "classification")
	}
	if !c.Open() {
		return nil, precondition("complaint is " + string(c.Status))
	}
	return []proto.Message{&eventsv1.ComplaintClassified{
		Category: cat, Severity: sev, Priority: pri, RulesFired: []string{"override"},
		Overridden: true, OverrideReason: reason, ClassifiedBy: a.ID,
	}}, nil
}

// Reassign moves the complaint to another owner. team is the target team's
// roster (nil: unknown); owner "" lets routing pick within it. The first
// receiver and the previous owner are told.
func Reassign(c *Complaint, a Actor, team *Team, teamID, owner, reason string, load LoadFunc, p *Policy) ([]proto.Message, error) {
	if err := Authorize(a, "reassign a complaint"); err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, invalid("reason", "required", "a reassignment needs a reason")
	}
	if team == nil {
		return nil, fmt.Errorf("team %q: %w", teamID, kernel.ErrNotFound)
	}
	if !c.Classified {
		return nil, precondition("complaint is not classified yet", "classification")
	}
	if !c.Open() {
		return nil, precondition("complaint is " + string(c.Status))
	}
	if owner != "" {
		m, ok := team.Members[owner]
		if !ok {
			return nil, fmt.Errorf("owner %q: %w in team %q", owner, kernel.ErrNotFound, teamID)
		}
		if !canOwn(m.Role) {
			return nil, invalid("owner", "role", fmt.Sprintf("a %s does not own complaints", m.Role))
		}
	} else {
		owner, _ = PickOwner(team, p.SkillFor(c.Category), load, c.Owner)
		if owner == "" {
			return nil, precondition(fmt.Sprintf("nobody in team %q is on shift", teamID), "an on-shift member")
		}
	}
	if owner == c.Owner && teamID == c.Team {
		return nil, precondition(fmt.Sprintf("%q already owns the complaint", owner))
	}
	return []proto.Message{
		&eventsv1.ComplaintAssigned{Team: teamID, Owner: owner, PreviousOwner: c.Owner, Reason: reason, FirstReceiver: c.FirstReceiver, AssignedBy: a.ID},
		&eventsv1.StakeholdersNotified{Recipients: nonEmpty(c.FirstReceiver, c.Owner), Reason: fmt.Sprintf("owner changed to %s (team %s): %s", owner, teamID, reason)},
	}, nil
}

func nonEmpty(ss ...string) []string {
	out := slices.DeleteFunc(ss, func(s string) bool { return s == "" })
	slices.Sort(out)
	return slices.Compact(out)
}

// AcceptAssignment: the owner takes the complaint on.
func AcceptAssignment(c *Complaint, a Actor) ([]proto.Message, error) {
	if c.Owner == "" {
		return nil, precondition("complaint has no owner yet", "assignment")
	}
	if a.ID != c.Owner {
		return nil, denied(a, "accept the assignment", "only the owner may")
	}
	if c.OwnerAccepted {
		return nil, precondition("assignment already accepted")
	}
	if !c.Open() {
		return nil, precondition("complaint is " + string(c.Status))
	}
	return []proto.Message{&eventsv1.AssignmentAccepted{Owner: a.ID}}, nil
}

// handling checks what every handling operation needs: the owner (or a
// supervisor), an owned complaint still being handled.
func handling(c *Complaint, a Actor, op string, allowOnHold bool) error {
	if err := authorizeOwner(c, a, op); err != nil {
		return err
	}
	if c.Owner == "" {
		return precondition("complaint has no owner yet", "assignment")
	}
	if !c.Open() {
		return precondition("complaint is " + string(c.Status))
	}
	if c.Status == StatusOnHold && !allowOnHold {
		return precondition("complaint is on hold", "take off hold")
	}
	return nil
}

// RecordResponse records a response to the customer.
func RecordResponse(c *Complaint, a Actor, ch eventsv1.Channel, summary string) ([]proto.Message, error) {
	if _, ok := eventsv1.Channel_name[int32(ch)]; !ok || ch == eventsv1.Channel_CHANNEL_UNSPECIFIED {
		return nil, invalid("channel", "enum", "must name the channel used to respond")
	}
	if strings.TrimSpace(summary) == "" {
		return nil, invalid("summary", "required", "must say what was told to the customer")
	}
	if err := handling(c, a, "record a response", true); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.ResponseRecorded{Channel: ch, Summary: summary, RespondedBy: a.ID}}, nil
}

// ProposeSolution proposes a solution; the policy says which reviews it needs.
func ProposeSolution(c *Complaint, a Actor, p *Policy, solutionID, summary string) ([]proto.Message, error) {
	if strings.TrimSpace(summary) == "" {
		return nil, invalid("summary", "required", "must describe the solution")
	}
	if err := handling(c, a, "propose a solution", false); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.SolutionProposed{SolutionId: solutionID, Summary: summary, ProposedBy: a.ID, RequiredReviews: p.RequiredReviews(c.Severity)}}, nil
}

// ReviewSolution records one level's verdict on the current solution. The
// levels go in order: supervisor, quality, senior management.
// Four eyes: nobody reviews a solution they proposed, and each level is
// given by a different person.
func ReviewSolution(c *Complaint, a Actor, p *Policy, solutionID string, level eventsv1.ReviewLevel, approved bool, comment string) ([]proto.Message, error) {
	if ReviewName(level) == "" {
		return nil, invalid("level", "enum", "must be supervisor, quality or senior_management")
	}
	if !a.Has(reviewerRoles[int32(level)]...) {
		return nil, denied(a, "give a "+ReviewName(level)+" review", "needs one of the roles "+roleNames(reviewerRoles[int32(level)]))
	}
	if !approved && strings.TrimSpace(comment) == "" {
		return nil, invalid("comment", "required", "a rejection needs a comment")
	}
	s := c.solution(solutionID)
	if s == nil {
		return nil, fmt.Errorf("solution_id %q: %w", solutionID, kernel.ErrNotFound)
	}
	if !c.Open() {
		return nil, precondition("complaint is " + string(c.Status))
	}
	if s != c.Current() {
		return nil, precondition("solution was superseded by a newer proposal")
	}
	required := c.RequiredReviews(s, p)
	ok, rejected, pending := s.Verdict(required)
	switch {
	case rejected:
		return nil, precondition("solution was rejected", "a new solution proposal")
	case ok:
		return nil, precondition("solution is already approved at every required level")
	case !slices.Contains(required, level):
		return nil, invalid("level", "required_reviews", fmt.Sprintf("%s review is not required for this solution", ReviewName(level)))
	case pending[0] != level:
		return nil, precondition(ReviewName(level)+" review comes later in the chain", ReviewName(pending[0])+" review")
	case a.ID == s.ProposedBy:
		return nil, precondition(fmt.Sprintf("four eyes (%s): %s proposed this solution and may not review it", p.Handling.Version, a.ID),
			ReviewName(level)+" review by someone other than the proposer")
	}
	for _, r := range s.Reviews {
		if r.By == a.ID {
			return nil, precondition(fmt.Sprintf("four eyes (%s): %s gave this solution's %s review; each review level needs a different person", p.Handling.Version, a.ID, ReviewName(r.Level)),
				ReviewName(level)+" review by another person")
		}
	}
	return []proto.Message{&eventsv1.SolutionReviewed{SolutionId: solutionID, Level: level, Approved: approved, Comment: comment, ReviewedBy: a.ID}}, nil
}

// WorkOrderDefaults returns a copy of spec with what the caller left empty
// taken from the complaint: the site contact from the customer's sealed
// personal data, the organisation from the customer record, the equipment
// model and serial number from the product, the region from the place.
// The caller's values always win; spec itself is not changed.
func WorkOrderDefaults(c *Complaint, spec *eventsv1.WorkOrderSpec) *eventsv1.WorkOrderSpec {
	out := &eventsv1.WorkOrderSpec{}
	if spec != nil {
		out = proto.Clone(spec).(*eventsv1.WorkOrderSpec)
	}
	if out.GetSiteContact() == nil && c.Contact != nil {
		out.SiteContact = proto.Clone(c.Contact).(*eventsv1.SealedPersonalData)
	}
	if strings.TrimSpace(out.GetCustomerOrganisation()) == "" {
		out.CustomerOrganisation = c.Organisation
	}
	if strings.TrimSpace(out.GetEquipmentModel()) == "" {
		out.EquipmentModel = c.ProductModel
	}
	if len(out.GetSerialNumbers()) == 0 && c.SerialNumber != "" {
		out.SerialNumbers = []string{c.SerialNumber}
	}
	if strings.TrimSpace(out.GetRegion()) == "" {
		out.Region = c.Region
	}
	return out
}

// RequestDispatch asks dispatch for a technician (on site or remote). Empty
// fields of the work sheet are filled in from the complaint first
// (WorkOrderDefaults); what is still missing is refused, naming the field.
func RequestDispatch(c *Complaint, a Actor, workOrderID string, spec *eventsv1.WorkOrderSpec, now time.Time) ([]proto.Message, error) {
	spec = WorkOrderDefaults(c, spec)
	var vs []kernel.Violation
	onSite := spec.GetMode() == eventsv1.ServiceMode_SERVICE_MODE_ON_SITE
	if !onSite && spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_REMOTE {
		vs = append(vs, kernel.Violation{Field: "spec.mode", Rule: "enum", Message: "must be on-site or remote"})
	}
	if _, ok := eventsv1.ServiceType_name[int32(spec.GetServiceType())]; !ok || spec.GetServiceType() == eventsv1.ServiceType_SERVICE_TYPE_UNSPECIFIED {
		vs = append(vs, kernel.Violation{Field: "spec.service_type", Rule: "enum", Message: "must be installation, commissioning, repair, maintenance or remote support"})
	}
	if strings.TrimSpace(spec.GetEquipmentModel()) == "" {
		vs = append(vs, kernel.Violation{Field: "spec.equipment_model", Rule: "required", Message: "must name the equipment model (the complaint's product names none)"})
	}
	if spec.GetQuantity() == 0 {
		vs = append(vs, kernel.Violation{Field: "spec.quantity", Rule: "positive", Message: "must be at least 1"})
	}
	if strings.TrimSpace(spec.GetRegion()) == "" {
		vs = append(vs, kernel.Violation{Field: "spec.region", Rule: "required", Message: "must name the region, which picks the service centre (the complaint's place names none)"})
	}
	if spec.GetRequiredBy() == nil || !spec.GetRequiredBy().AsTime().After(now) {
		vs = append(vs, kernel.Violation{Field: "spec.required_by", Rule: "future", Message: "must be a time in the future"})
	}
	if sc := spec.GetSiteContact(); sc != nil && (sc.GetKeyId() == "" || len(sc.GetCiphertext()) == 0) {
		vs = append(vs, kernel.Violation{Field: "spec.site_contact", Rule: "sealed", Message: "must be sealed personal data with a key id and ciphertext"})
	} else if sc == nil && onSite {
		vs = append(vs, kernel.Violation{Field: "spec.site_contact", Rule: "required", Message: "an on-site order needs the sealed site address and contact, and " + noContact(c)})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	if err := handling(c, a, "request a dispatch", false); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.DispatchRequested{WorkOrderId: workOrderID, Spec: spec, RequestedBy: a.ID}}, nil
}

// noContact says why the complaint has no contact to default to.
func noContact(c *Complaint) string {
	switch {
	case c.Erased:
		return "the customer's personal data was erased"
	case c.Anonymous:
		return "the customer is anonymous and left no contact"
	}
	return "the customer left no contact"
}

// RootCause is a 5W1H analysis.
type RootCause struct{ What, Why, Where, When, Who, How string }

// RecordRootCause records a 5W1H root-cause analysis; every part is required.
func RecordRootCause(c *Complaint, a Actor, rc RootCause) ([]proto.Message, error) {
	var vs []kernel.Violation
	for _, f := range []struct{ name, v string }{{"what", rc.What}, {"why", rc.Why}, {"where", rc.Where}, {"when", rc.When}, {"who", rc.Who}, {"how", rc.How}} {
		if strings.TrimSpace(f.v) == "" {
			vs = append(vs, kernel.Violation{Field: f.name, Rule: "required", Message: "5W1H needs every part"})
		}
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	if err := handling(c, a, "record a root cause", true); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.RootCauseRecorded{What: rc.What, Why: rc.Why, Where: rc.Where, When: rc.When, Who: rc.Who, How: rc.How, RecordedBy: a.ID}}, nil
}

// PutOnHold pauses handling while waiting for the customer or parts.
func PutOnHold(c *Complaint, a Actor, reason eventsv1.HoldReason, note string) ([]proto.Message, error) {
	if reason != eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER && reason != eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_PARTS {
		return nil, invalid("reason", "enum", "must be waiting for customer or waiting for parts")
	}
	if err := handling(c, a, "put a complaint on hold", false); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.ComplaintPutOnHold{Reason: reason, Note: note, By: a.ID}}, nil
}

// TakeOffHold resumes handling.
func TakeOffHold(c *Complaint, a Actor) ([]proto.Message, error) {
	if err := handling(c, a, "take a complaint off hold", true); err != nil {
		return nil, err
	}
	if c.Status != StatusOnHold {
		return nil, precondition("complaint is not on hold")
	}
	return []proto.Message{&eventsv1.ComplaintTakenOffHold{By: a.ID}}, nil
}

// Missing lists what the complaint still needs before it may be resolved,
// under the policy's handling rules: a response to the customer; where the
// severity asks for one (or once reopened), a solution proposed since the
// last reopen and approved at every review level it needs; and for a
// repeat, its root cause.
func Missing(c *Complaint, p *Policy) []string {
	var missing []string
	if p.ResponseRequired(c.Severity) && c.Responses == 0 {
		missing = append(missing, "a response to the customer (RecordResponse)")
	}
	if reopened := c.ReopenCount > 0; p.SolutionRequired(c.Severity, reopened) {
		if s := c.Current(); s == nil {
			need := "a solution proposal"
			if reopened {
				need = "a new solution proposal since the reopen (the one before it no longer counts)"
			}
			if req := p.RequiredReviews(c.Severity); len(req) > 0 {
				need += " (reviews required: " + reviewList(req) + ")"
			}
			missing = append(missing, need)
		} else if _, rejected, pending := s.Verdict(c.RequiredReviews(s, p)); rejected {
			missing = append(missing, "a new solution proposal (the last one was rejected)")
		} else {
			for _, l := range pending {
				missing = append(missing, ReviewName(l)+" review")
			}
		}
	}
	if c.RootCauseRequired() && !c.RootCause {
		missing = append(missing, "root cause (5W1H) for a repeat complaint")
	}
	return missing
}

func reviewList(ls []eventsv1.ReviewLevel) string {
	names := make([]string, len(ls))
	for i, l := range ls {
		names[i] = ReviewName(l)
	}
	return strings.Join(names, ", ")
}

// Resolve resolves the complaint, refused while anything Missing names is
// missing.
func Resolve(c *Complaint, a Actor, p *Policy, code, summary string) ([]proto.Message, error) {
	var vs []kernel.Violation
	if strings.TrimSpace(code) == "" {
		vs = append(vs, kernel.Violation{Field: "resolution_code", Rule: "required", Message: "must say how it was resolved"})
	}
	if strings.TrimSpace(summary) == "" {
		vs = append(vs, kernel.Violation{Field: "summary", Rule: "required", Message: "must summarise the resolution"})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	if err := handling(c, a, "resolve a complaint", false); err != nil {
		return nil, err
	}
	if missing := Missing(c, p); len(missing) > 0 {
		return nil, precondition("cannot resolve yet under handling rules "+p.Handling.Version, missing...)
	}
	first := len(c.WorkOrders) == 0 && c.ReopenCount == 0 && c.Assignments <= 1
	return []proto.Message{&eventsv1.ComplaintResolved{ResolutionCode: code, Summary: summary, ResolvedBy: a.ID, FirstContact: first}}, nil
}
