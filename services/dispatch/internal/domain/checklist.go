package domain

import (
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Check is one test the equipment must pass before the technician leaves
// (002 第八条 5).
type Check struct {
	Name     string
	Required bool
}

// Checklists are the checks per service type. They are data: the service
// loads the defaults or a replacement from configuration.
type Checklists map[eventsv1.ServiceType][]Check

// DefaultChecklists are the checks every completion is held to unless
// configured otherwise.
func DefaultChecklists() Checklists {
	return Checklists{
		eventsv1.ServiceType_SERVICE_TYPE_INSTALLATION: {
			{"site_inspected", true}, {"installed_per_manual", true}, {"power_on_self_test", true}, {"customer_briefed", false},
		},
		eventsv1.ServiceType_SERVICE_TYPE_COMMISSIONING: {
			{"parameters_configured", true}, {"power_on_self_test", true}, {"functional_test", true}, {"customer_briefed", false},
		},
		eventsv1.ServiceType_SERVICE_TYPE_REPAIR: {
			{"fault_reproduced", false}, {"fault_cleared", true}, {"functional_test", true}, {"electrical_safety", true},
		},
		eventsv1.ServiceType_SERVICE_TYPE_MAINTENANCE: {
			{"cleaned_and_inspected", true}, {"wear_parts_checked", true}, {"functional_test", true},
		},
	}
}

// verify lists the required checks that are missing or failed in results.
func (c Checklists) verify(service eventsv1.ServiceType, results []*eventsv1.CheckResult, vs *violations) {
	got := make(map[string]bool, len(results))
	for _, r := range results {
		prev, seen := got[r.GetCheck()]
		got[r.GetCheck()] = r.GetPassed() && (!seen || prev) // any failed run fails the check
	}
	for _, ch := range c[service] {
		if !ch.Required {
			continue
		}
		passed, present := got[ch.Name]
		switch {
		case !present:
			vs.add("report.checks", "required_check:"+ch.Name, "required check "+ch.Name+" is missing")
		case !passed:
			vs.add("report.checks", "check_passed:"+ch.Name, "required check "+ch.Name+" did not pass")
		}
	}
}
