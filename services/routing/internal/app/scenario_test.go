package app

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

const (
	levelOwner     = eventsv1.EscalationLevel_ESCALATION_LEVEL_OWNER
	levelLead      = eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD
	levelManager   = eventsv1.EscalationLevel_ESCALATION_LEVEL_DEPARTMENT_MANAGER
	levelSenior    = eventsv1.EscalationLevel_ESCALATION_LEVEL_SENIOR_MANAGEMENT
	levelEmergency = eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE
	revSup         = eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR
	revQual        = eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY
	revSenior      = eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT
)

// TestScenarioPerSeverity drives one complaint per severity from acceptance
// to resolution: classification, assignment, an SLA breach escalating one
// level (once, even when the breach is delivered twice), the review chain
// the policy requires, and the resolution refused until it is complete.
func TestScenarioPerSeverity(t *testing.T) {
	for _, tc := range []struct {
		name, text     string
		sev            eventsv1.Severity
		team, owner    string
		arrivalLevel   eventsv1.EscalationLevel // after classification
		breachFrom     eventsv1.EscalationLevel
		breachTo       eventsv1.EscalationLevel
		breachNotifies string
		reviews        []eventsv1.ReviewLevel
		reviewers      []domain.Actor
	}{
		{"L1", "客服态度很差，说话不耐烦", eventsv1.Severity_SEVERITY_L1, "customer-service", "cs-1",
			eventsv1.EscalationLevel_ESCALATION_LEVEL_UNSPECIFIED, levelOwner, levelLead, "lead-1", nil, nil},
		{"L2", "冰箱买了一个月就不制冷了", eventsv1.Severity_SEVERITY_L2, "technical-support", "tech-1",
			eventsv1.EscalationLevel_ESCALATION_LEVEL_UNSPECIFIED, levelOwner, levelLead, "lead-2", []eventsv1.ReviewLevel{revSup}, []domain.Actor{lead}},
		{"L3", "If this is not fixed by Friday my lawyer will be in touch.", eventsv1.Severity_SEVERITY_L3, "management-coordination", "mgr-1",
			eventsv1.EscalationLevel_ESCALATION_LEVEL_UNSPECIFIED, levelOwner, levelLead, "lead-3", []eventsv1.ReviewLevel{revSup, revQual}, []domain.Actor{lead, quality}},
		{"L4", "Microwave caught fire after two minutes.", eventsv1.Severity_SEVERITY_L4, "emergency-response", "er-1",
			levelEmergency, levelEmergency, levelSenior, "vp-1", []eventsv1.ReviewLevel{revSup, revQual, revSenior}, []domain.Actor{lead, quality, senior}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			id := "c-" + tc.name
			h.intake(id, complaintSpec{text: tc.text, customer: "cust-" + tc.name, model: "M-" + tc.name})

			c := h.complaint(id)
			if c.Severity != tc.sev || c.Team != tc.team || c.Owner != tc.owner || c.Status != domain.StatusAssigned {
				t.Fatalf("after acceptance: severity %s team %q owner %q status %s; want %s %q %q assigned", c.Severity, c.Team, c.Owner, c.Status, tc.sev, tc.team, tc.owner)
			}
			if c.PolicyVersion != "classification.v2" {
				t.Errorf("classification records policy %q", c.PolicyVersion)
			}
			if cl := events[*eventsv1.ComplaintClassified](h, id); len(cl) != 1 || !strings.HasPrefix(cl[0].GetModelVersion(), "classifier.v1+") || cl[0].GetConfidence() <= 0 || len(cl[0].GetDecidingFeatures()) == 0 {
				t.Errorf("classifications %v: want one naming the model, its confidence and features", cl)
			}
			if a := events[*eventsv1.ComplaintAssigned](h, id); len(a) != 1 || a[0].GetFirstReceiver() != "hotline-7" {
				t.Errorf("assignments %v: want one naming the first receiver", a)
			}
			if c.Level != tc.arrivalLevel {
				t.Errorf("level after arrival %s, want %s", c.Level, tc.arrivalLevel)
			}
			owner := agentOf(tc.owner)
			if tc.owner == "mgr-1" {
				owner = manager
			}
			ok(t)(h.app.AcceptAssignment(h.ctx, Target{ComplaintID: id}, owner))
			ok(t)(h.app.RecordResponse(h.ctx, Target{ComplaintID: id}, owner, eventsv1.Channel_CHANNEL_PHONE, "called back, apologised, collected details"))

			// An SLA breach escalates one level, once per breach event.
			h.clock.Advance(24 * time.Hour)
			breach := h.breach(id)
			h.pumped = 0
			h.pump() // the bus delivers everything again: nothing new happens
			esc := events[*eventsv1.ComplaintEscalated](h, id)
			var byBreach []*eventsv1.ComplaintEscalated
			for _, e := range esc {
				if e.GetCause() == eventsv1.EscalationCause_ESCALATION_CAUSE_SLA_BREACH {
					byBreach = append(byBreach, e)
				}
			}
			if len(byBreach) != 1 {
				t.Fatalf("escalations by the breach: %v, want exactly one", byBreach)
			}
			e := byBreach[0]
			if e.GetFromLevel() != tc.breachFrom || e.GetToLevel() != tc.breachTo || e.GetCauseEventId() != breach.GetEventId() || !slices.Contains(e.GetNotified(), tc.breachNotifies) {
				t.Errorf("breach escalation %v: want %s → %s caused by %s notifying %s", e, tc.breachFrom, tc.breachTo, breach.GetEventId(), tc.breachNotifies)
			}

			_, sol, required, err := h.app.ProposeSolution(h.ctx, Target{ComplaintID: id}, owner, "replace the unit and refund delivery")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(required, tc.reviews) {
				t.Fatalf("required reviews %v, want %v", required, tc.reviews)
			}
			for i, level := range tc.reviews {
				_, err := h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "REPLACED", "unit replaced")
				var pe *kernel.PreconditionError
				if !errors.As(err, &pe) || !strings.Contains(err.Error(), domain.ReviewName(level)+" review") {
					t.Fatalf("resolve before the %s review: %v, want a failed precondition naming it", domain.ReviewName(level), err)
				}
				ok(t)(h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, tc.reviewers[i], sol, level, true, "ok"))
			}
			before := h.complaint(id).Version
			v, err := h.app.Resolve(h.ctx, Target{ComplaintID: id, ExpectedVersion: before}, owner, "REPLACED", "unit replaced")
			if err != nil {
				t.Fatal(err)
			}
			if c := h.complaint(id); c.Status != domain.StatusResolved || c.Version != v {
				t.Fatalf("status %s version %d, want resolved at %d", c.Status, c.Version, v)
			}
			h.pump()
			if got := h.app.View().Load(tc.owner).Open; got != 0 {
				t.Errorf("owner's open load after resolution %d, want 0", got)
			}
		})
	}
}

// TestReopenedComplaintGoesBackToItsOwner: a dissatisfied customer reopens
// an L2 complaint; it escalates, returns to the owner, needs a new reviewed
// solution, and resolves again.
func TestReopenedComplaintGoesBackToItsOwner(t *testing.T) {
	h := newHarness(t)
	id := "c-reopen"
	h.intake(id, complaintSpec{text: "Laptop won't turn on since yesterday.", customer: "cust-r", model: "X1"})
	owner := agentOf("tech-1")
	_, sol, _, err := h.app.ProposeSolution(h.ctx, Target{ComplaintID: id}, owner, "replace mainboard")
	if err != nil {
		t.Fatal(err)
	}
	ok(t)(h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, lead, sol, revSup, true, ""))
	h.respond(id, owner)
	ok(t)(h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "REPAIRED", "mainboard replaced"))

	reopen := h.append(id, "followup", &eventsv1.ComplaintReopened{Reason: "still broken", Satisfaction: 1, ReopenCount: 1})[0]
	c := h.complaint(id)
	if c.Status != domain.StatusInProgress || c.Owner != "tech-1" || c.Level != levelLead {
		t.Fatalf("after reopen: status %s owner %q level %s", c.Status, c.Owner, c.Level)
	}
	esc := events[*eventsv1.ComplaintEscalated](h, id)
	if len(esc) != 1 || esc[0].GetCause() != eventsv1.EscalationCause_ESCALATION_CAUSE_DISSATISFACTION || esc[0].GetCauseEventId() != reopen.GetEventId() {
		t.Fatalf("escalations %v, want one for the reopen", esc)
	}
	if got := h.app.View().Load("tech-1").Open; got != 1 {
		t.Errorf("open load after reopen %d, want 1", got)
	}
	if _, err := h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "REPAIRED", "again"); err == nil || !strings.Contains(err.Error(), "solution proposal") {
		t.Fatalf("resolve after reopen without a new solution: %v", err)
	}
	_, sol2, _, err := h.app.ProposeSolution(h.ctx, Target{ComplaintID: id}, owner, "replace the laptop")
	if err != nil {
		t.Fatal(err)
	}
	ok(t)(h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, lead, sol2, revSup, true, ""))
	ok(t)(h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "REPLACED", "new laptop"))
	if c := h.complaint(id); c.Status != domain.StatusResolved {
		t.Fatalf("status %s after second resolution", c.Status)
	}
}

// TestRepeatComplaint: the same customer and product within the window is
// flagged, linked to the earlier complaint, raised one step, escalated, and
// needs a root cause before resolution; outside the window it is not.
func TestRepeatComplaint(t *testing.T) {
	h := newHarness(t)
	first := complaintSpec{text: "收到的冰箱门上有一道划痕", customer: "cust-9", model: "BCD-520"}
	h.intake("c-first", first)
	if c := h.complaint("c-first"); c.Repeat || c.Priority != eventsv1.Priority_PRIORITY_GENERAL {
		t.Fatalf("first complaint: repeat %v priority %s", c.Repeat, c.Priority)
	}
	h.clock.Advance(30 * 24 * time.Hour)
	h.intake("c-again", first)
	c := h.complaint("c-again")
	flags := events[*eventsv1.RepeatComplaintFlagged](h, "c-again")
	if !c.Repeat || len(flags) != 1 || !slices.Equal(flags[0].GetEarlierComplaintIds(), []string{"c-first"}) || flags[0].GetWindowDays() != 90 {
		t.Fatalf("repeat flags %v", flags)
	}
	if c.Priority != eventsv1.Priority_PRIORITY_IMPORTANT || !slices.Contains(c.RulesFired, "repeat.raise") {
		t.Errorf("priority %s rules %v, want important with repeat.raise", c.Priority, c.RulesFired)
	}
	if esc := events[*eventsv1.ComplaintEscalated](h, "c-again"); len(esc) != 1 || esc[0].GetCause() != eventsv1.EscalationCause_ESCALATION_CAUSE_REPEAT {
		t.Errorf("escalations %v, want one for the repeat", esc)
	}
	owner := agentOf(c.Owner)
	_, err := h.app.Resolve(h.ctx, Target{ComplaintID: "c-again"}, owner, "COMPENSATED", "voucher")
	if err == nil || !strings.Contains(err.Error(), "root cause (5W1H)") {
		t.Fatalf("resolve without root cause: %v", err)
	}
	ok(t)(h.app.RecordRootCause(h.ctx, Target{ComplaintID: "c-again"}, owner, domain.RootCause{
		What: "scratched doors", Why: "packaging corner protectors missing", Where: "warehouse 3", When: "March batch", Who: "packaging line B", How: "protectors added, batch inspected"}))
	h.respond("c-again", owner)
	ok(t)(h.app.Resolve(h.ctx, Target{ComplaintID: "c-again"}, owner, "COMPENSATED", "voucher"))

	h.clock.Advance(91 * 24 * time.Hour)
	h.intake("c-late", first)
	if c := h.complaint("c-late"); c.Repeat {
		t.Errorf("a complaint %d days after the last one is flagged as a repeat", 91)
	}
	// Another customer, same product: not a repeat.
	h.intake("c-other", complaintSpec{text: first.text, customer: "cust-10", model: "BCD-520"})
	if c := h.complaint("c-other"); c.Repeat {
		t.Error("another customer's complaint flagged as a repeat")
	}
}

// TestAssignmentLeastLoadedThenLongestIdle: load first, then idle time.
func TestAssignmentLeastLoadedThenLongestIdle(t *testing.T) {
	h := newHarness(t)
	spec := complaintSpec{text: "快递一直没收到", customer: "a"}
	var owners []string
	for i, cust := range []string{"a", "b", "c", "d"} {
		spec.customer = cust
		id := "c-" + cust
		h.clock.Advance(time.Minute)
		h.intake(id, spec)
		owners = append(owners, h.complaint(id).Owner)
		if i == 1 {
			// cs-1 resolves its complaint: it is now the least loaded.
			h.respond("c-a", agentOf("cs-1"))
			ok(t)(h.app.Resolve(h.ctx, Target{ComplaintID: "c-a"}, agentOf("cs-1"), "DELIVERED", "parcel found"))
		}
	}
	// a → cs-1 (tie, smaller id), b → cs-2 (less loaded), c → cs-1 (cs-1 has 0
	// after resolving, cs-2 has 1), d → cs-2 (both 1: cs-2 idle longer).
	if want := []string{"cs-1", "cs-2", "cs-1", "cs-2"}; !slices.Equal(owners, want) {
		t.Fatalf("owners %v, want %v", owners, want)
	}
}

// TestWarningNotifiesOwnerAndLead and unassignable work orders escalate.
func TestWarningAndUnassignable(t *testing.T) {
	h := newHarness(t)
	id := "c-warn"
	h.intake(id, complaintSpec{text: "The dishwasher stopped working after the last update.", customer: "w"})
	warn := h.append(id, "slaclock", &eventsv1.SlaWarning{ClockId: "k", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, ThresholdPercent: 75})[0]
	h.pumped = 0
	h.pump()
	n := events[*eventsv1.StakeholdersNotified](h, id)
	if len(n) != 1 || n[0].GetCauseEventId() != warn.GetEventId() || !slices.Equal(n[0].GetRecipients(), []string{"hotline-7", "lead-2", "tech-1"}) {
		t.Fatalf("notifications %v", n)
	}
	un := h.append(id, "dispatch", &eventsv1.WorkOrderUnassignable{WorkOrderId: "wo-1", Reason: "no technician in region"})[0]
	esc := events[*eventsv1.ComplaintEscalated](h, id)
	if len(esc) != 1 || esc[0].GetCause() != eventsv1.EscalationCause_ESCALATION_CAUSE_NO_TECHNICIAN || esc[0].GetCauseEventId() != un.GetEventId() || esc[0].GetToLevel() != levelLead {
		t.Fatalf("escalations %v", esc)
	}
}

// TestWaitingComplaintAssignedWhenSomeoneComesOnShift.
func TestWaitingComplaintAssignedWhenSomeoneComesOnShift(t *testing.T) {
	h := newHarness(t)
	ok(t)(h.app.UpdateTeamMember(h.ctx, lead, domain.MemberChange{Team: "technical-support", MemberID: "tech-1", Skills: []string{"product"}, Role: domain.RoleAgent, OnShift: false}))
	h.pump()
	h.intake("c-wait", complaintSpec{text: "电视无法开机", customer: "z"})
	if c := h.complaint("c-wait"); c.Owner != "" || c.Status != domain.StatusClassified {
		t.Fatalf("owner %q status %s with nobody on shift", c.Owner, c.Status)
	}
	ok(t)(h.app.UpdateTeamMember(h.ctx, lead, domain.MemberChange{Team: "technical-support", MemberID: "tech-1", Skills: []string{"product"}, Role: domain.RoleAgent, OnShift: true}))
	h.pump()
	if c := h.complaint("c-wait"); c.Owner != "tech-1" {
		t.Fatalf("owner %q after tech-1 came on shift", c.Owner)
	}
}

// TestReassignTellsFirstReceiver.
func TestReassignTellsFirstReceiver(t *testing.T) {
	h := newHarness(t)
	id := "c-move"
	h.intake(id, complaintSpec{text: "留言三天没人回复", customer: "m"})
	_, team, owner, err := h.app.Reassign(h.ctx, Target{ComplaintID: id}, lead, "", "", "cs-1 is on leave tomorrow")
	if err != nil {
		t.Fatal(err)
	}
	if team != "customer-service" || owner != "cs-2" {
		t.Fatalf("reassigned to %s/%s", team, owner)
	}
	a := events[*eventsv1.ComplaintAssigned](h, id)
	n := events[*eventsv1.StakeholdersNotified](h, id)
	if len(a) != 2 || a[1].GetPreviousOwner() != "cs-1" || a[1].GetFirstReceiver() != "hotline-7" || len(n) != 1 || !slices.Equal(n[0].GetRecipients(), []string{"cs-1", "hotline-7"}) {
		t.Fatalf("assignments %v notifications %v", a, n)
	}
	h.pump()
	if h.app.View().Load("cs-1").Open != 0 || h.app.View().Load("cs-2").Open != 1 {
		t.Errorf("loads cs-1 %d cs-2 %d", h.app.View().Load("cs-1").Open, h.app.View().Load("cs-2").Open)
	}
}
