package scale

import (
	"fmt"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// problem is one kind of complaint and the classification the generated log
// records for it: the generator writes ComplaintClassified itself (as
// routing's first, keyword-only policy, classification.v1, would have), it
// does not run routing's classifier.
type problem struct {
	description string
	category    ev.Category
	severity    ev.Severity
	priority    ev.Priority
	rule        string
	// workOrder is the share (percent) of such complaints that need a technician.
	workOrder int
	weight    int
}

var problems = []problem{
	{"The unit stopped working after two weeks and shows a fault code", ev.Category_CATEGORY_PRODUCT_QUALITY, ev.Severity_SEVERITY_L2, ev.Priority_PRIORITY_IMPORTANT, "quality.core_function", 70, 18},
	{"Loud noise from the outdoor unit at night, it is not cooling", ev.Category_CATEGORY_PRODUCT_QUALITY, ev.Severity_SEVERITY_L2, ev.Priority_PRIORITY_IMPORTANT, "quality.core_function", 60, 8},
	{"Scratch and a dent on the front panel on arrival", ev.Category_CATEGORY_PRODUCT_QUALITY, ev.Severity_SEVERITY_L1, ev.Priority_PRIORITY_GENERAL, "quality.cosmetic", 10, 12},
	{"The delivery is late, the parcel has not arrived after ten days", ev.Category_CATEGORY_DELIVERY, ev.Severity_SEVERITY_L1, ev.Priority_PRIORITY_IMPORTANT, "delivery.late", 0, 16},
	{"I was charged twice and the invoice shows the wrong price", ev.Category_CATEGORY_PRICE_PROMOTION, ev.Severity_SEVERITY_L1, ev.Priority_PRIORITY_GENERAL, "price.promotion", 0, 12},
	{"The agent was rude and nobody called back as promised", ev.Category_CATEGORY_SERVICE, ev.Severity_SEVERITY_L1, ev.Priority_PRIORITY_IMPORTANT, "service.attitude", 0, 10},
	{"How to set up the timer? The manual does not say", ev.Category_CATEGORY_OTHER, ev.Severity_SEVERITY_L1, ev.Priority_PRIORITY_GENERAL, "other.usage_question", 5, 8},
	{"Production stopped for a day because the controller failed, major loss", ev.Category_CATEGORY_OTHER, ev.Severity_SEVERITY_L3, ev.Priority_PRIORITY_URGENT, "loss.major", 80, 7},
	{"If this is not fixed this week I will ask my lawyer to take legal action", ev.Category_CATEGORY_OTHER, ev.Severity_SEVERITY_L3, ev.Priority_PRIORITY_URGENT, "legal.threat", 30, 6},
	{"The outdoor unit smokes and smells of burning", ev.Category_CATEGORY_PRODUCT_QUALITY, ev.Severity_SEVERITY_L4, ev.Priority_PRIORITY_URGENT, "safety.fire_smoke_shock", 95, 3},
}

var problemWeights = func() int {
	n := 0
	for _, p := range problems {
		n += p.weight
	}
	return n
}()

// teams are the policy's four teams, by severity, and the skill each
// category asks for.
var (
	teamFor = map[ev.Severity]string{
		ev.Severity_SEVERITY_L1: "customer-service",
		ev.Severity_SEVERITY_L2: "technical-support",
		ev.Severity_SEVERITY_L3: "management-coordination",
		ev.Severity_SEVERITY_L4: "emergency-response",
	}
	teams  = []string{"customer-service", "technical-support", "management-coordination", "emergency-response"}
	skills = []string{"product", "service", "logistics", "billing", "general"}
)

// Reviewers of solutions (routing's review levels), one of each per team.
const (
	roleAgent    = "agent"
	roleLead     = "team_lead"
	roleQuality  = "quality_reviewer"
	roleSenior   = "senior_manager"
	roleManager  = "manager"
	adapterID    = "adapter-webform"
	policyRoute  = "classification.v1"
	productModel = "AC-3000"
	productLine  = "AC-3000"
)

// directory is who the generated log knows: team members and technicians,
// sized with the number of complaints (a bigger site has more staff).
type directory struct {
	members     map[string][]string // team -> agent ids (current roster)
	leads       map[string]string   // team -> team lead
	quality     string
	senior      string
	technicians []string
	regions     []string
}

func newDirectory(complaints int) *directory {
	perTeam := min(max(complaints/4000, 6), 250)
	techs := min(max(complaints/5000, 5), 400)
	d := &directory{members: map[string][]string{}, leads: map[string]string{}, regions: []string{"east", "north", "south", "west", "central"}}
	for ti, t := range teams {
		for i := range perTeam {
			d.members[t] = append(d.members[t], fmt.Sprintf("agent-%d-%03d", ti, i))
		}
		d.leads[t] = fmt.Sprintf("lead-%d", ti)
	}
	d.quality, d.senior = "quality-1", "senior-1"
	for i := range techs {
		d.technicians = append(d.technicians, fmt.Sprintf("tech-%03d", i))
	}
	return d
}
