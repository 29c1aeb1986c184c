package chaos

import (
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// workOrder is what the driver needs to know of one work order.
type workOrder struct {
	id, tech                    string
	mode                        eventsv1.ServiceMode
	assigned, accepted          bool
	contacted, enRoute, arrived bool
	remoteStarted, done, ended  bool // done: completed or resolved remotely; ended: failed/cancelled/escalated
	unassignable                bool
}

// complaint is the driver's fold of one complaint stream: just enough to
// pick the next step of a script.
type complaint struct {
	version   uint64
	last      string // type of the last event
	received  *eventsv1.ComplaintReceived
	accepted  bool
	severity  eventsv1.Severity
	owner     string
	responded bool
	solution  string // current solution id ("" after a reopen)
	required  []eventsv1.ReviewLevel
	reviewed  map[eventsv1.ReviewLevel]bool
	resolved  bool // currently resolved (a reopen clears it)
	resolves  int
	reopens   int
	survey    string // current survey id
	answered  bool
	closed    bool
	outcome   eventsv1.CloseOutcome
	orders    map[string]*workOrder
	order     string // the latest requested work order
	breaches  map[eventsv1.SlaTarget]int
	escalated int
}

func fold(recs []eventlog.Record) *complaint {
	c := &complaint{reviewed: map[eventsv1.ReviewLevel]bool{}, orders: map[string]*workOrder{}, breaches: map[eventsv1.SlaTarget]int{}}
	wo := func(id string) *workOrder {
		o := c.orders[id]
		if o == nil {
			o = &workOrder{id: id}
			c.orders[id] = o
		}
		return o
	}
	for _, r := range recs {
		c.version, c.last = r.Event.GetVersion(), eventlog.TypeOf(r.Event)
		switch p := eventlog.Payload(r.Event).(type) {
		case *eventsv1.ComplaintReceived:
			c.received = p
		case *eventsv1.ComplaintAccepted:
			c.accepted = true
		case *eventsv1.ComplaintClassified:
			c.severity = p.GetSeverity()
		case *eventsv1.ComplaintAssigned:
			c.owner = p.GetOwner()
		case *eventsv1.ComplaintEscalated:
			c.escalated++
		case *eventsv1.ResponseRecorded:
			c.responded = true
		case *eventsv1.SolutionProposed:
			c.solution, c.required, c.reviewed = p.GetSolutionId(), p.GetRequiredReviews(), map[eventsv1.ReviewLevel]bool{}
		case *eventsv1.SolutionReviewed:
			if p.GetSolutionId() == c.solution && p.GetApproved() {
				c.reviewed[p.GetLevel()] = true
			}
		case *eventsv1.DispatchRequested:
			wo(p.GetWorkOrderId()).mode = p.GetSpec().GetMode()
			c.order = p.GetWorkOrderId()
		case *eventsv1.WorkOrderOpened:
			o := wo(p.GetWorkOrderId())
			o.mode = p.GetSpec().GetMode()
			if p.GetFollowsWorkOrderId() != "" && c.order == p.GetFollowsWorkOrderId() {
				c.order = p.GetWorkOrderId()
			}
		case *eventsv1.TechnicianAssigned:
			o := wo(p.GetWorkOrderId())
			o.tech, o.assigned, o.accepted, o.unassignable = p.GetTechnicianId(), true, false, false
		case *eventsv1.WorkOrderUnassignable:
			wo(p.GetWorkOrderId()).unassignable = true
		case *eventsv1.TechnicianDeclined:
			o := wo(p.GetWorkOrderId())
			o.assigned, o.accepted = false, false
		case *eventsv1.TechnicianAccepted:
			wo(p.GetWorkOrderId()).accepted = true
		case *eventsv1.CustomerContacted:
			wo(p.GetWorkOrderId()).contacted = true
		case *eventsv1.TechnicianEnRoute:
			wo(p.GetWorkOrderId()).enRoute = true
		case *eventsv1.TechnicianArrived:
			wo(p.GetWorkOrderId()).arrived = true
		case *eventsv1.RemoteSessionStarted:
			o := wo(p.GetWorkOrderId())
			o.remoteStarted, o.accepted = true, true
		case *eventsv1.WorkCompleted:
			wo(p.GetWorkOrderId()).done = true
		case *eventsv1.RemoteResolved:
			wo(p.GetWorkOrderId()).done = true
		case *eventsv1.WorkOrderFailed:
			wo(p.GetWorkOrderId()).ended = true
		case *eventsv1.WorkOrderCancelled:
			wo(p.GetWorkOrderId()).ended = true
		case *eventsv1.EscalatedToOnSite:
			wo(p.GetWorkOrderId()).ended = true
		case *eventsv1.ComplaintResolved:
			c.resolved = true
			c.resolves++
		case *eventsv1.SurveySent:
			c.survey, c.answered = p.GetSurveyId(), false
		case *eventsv1.SurveyAnswered:
			c.answered = true
		case *eventsv1.ComplaintReopened:
			c.resolved, c.reopens, c.solution = false, c.reopens+1, ""
		case *eventsv1.ComplaintClosed:
			c.closed, c.outcome = true, p.GetOutcome()
		case *eventsv1.SlaBreached:
			c.breaches[p.GetTarget()]++
		}
	}
	return c
}

// reviewsDone reports whether the current solution has every review it needs.
func (c *complaint) reviewsDone() bool {
	for _, l := range c.required {
		if !c.reviewed[l] {
			return false
		}
	}
	return true
}

// nextReview is the first review the current solution still needs.
func (c *complaint) nextReview() eventsv1.ReviewLevel {
	for _, l := range c.required {
		if !c.reviewed[l] {
			return l
		}
	}
	return eventsv1.ReviewLevel_REVIEW_LEVEL_UNSPECIFIED
}
