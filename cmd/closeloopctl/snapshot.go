package main

import (
	"sort"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Snapshot is what the whole system knew of a complaint at one instant: the
// auditor's "state as of". It is folded from the complaint's own stream, so
// it needs no service to be running.
type Snapshot struct {
	ComplaintID     string            `json:"complaint_id"`
	AsOf            time.Time         `json:"as_of"`
	Version         uint64            `json:"version"`
	Status          string            `json:"status"`
	Channel         string            `json:"channel,omitempty"`
	FirstReceiver   string            `json:"first_receiver,omitempty"`
	Category        string            `json:"category,omitempty"`
	Severity        string            `json:"severity,omitempty"`
	Priority        string            `json:"priority,omitempty"`
	Repeat          bool              `json:"repeat,omitempty"`
	Team            string            `json:"team,omitempty"`
	Owner           string            `json:"owner,omitempty"`
	EscalationLevel string            `json:"escalation_level,omitempty"`
	Duplicates      int               `json:"duplicates_linked,omitempty"`
	OpenClocks      []ClockView       `json:"open_clocks,omitempty"`
	WorkOrders      map[string]string `json:"work_orders,omitempty"`
	Reopened        int               `json:"reopened,omitempty"`
	Outcome         string            `json:"outcome,omitempty"`
}

// ClockView is one running SLA clock.
type ClockView struct {
	ID       string    `json:"id"`
	Target   string    `json:"target"`
	Deadline time.Time `json:"deadline"`
	Paused   bool      `json:"paused,omitempty"`
}

// snapshotAsOf folds the events recorded at or before asOf.
func snapshotAsOf(complaintID string, recs []eventlog.Record, asOf time.Time) Snapshot {
	s := Snapshot{ComplaintID: complaintID, AsOf: asOf, Status: "unknown", WorkOrders: map[string]string{}}
	clocks := map[string]*ClockView{}
	for _, r := range recs {
		e := r.Event
		if e.GetRecordedAt().AsTime().After(asOf) {
			break
		}
		s.Version = e.GetVersion()
		switch p := eventlog.Payload(e).(type) {
		case *eventsv1.ComplaintReceived:
			s.Status = "received"
			s.Channel = shortEnum("Channel", p.GetChannel().String())
			s.FirstReceiver = p.GetFirstReceiver()
		case *eventsv1.ComplaintAccepted:
			s.Status = "accepted"
		case *eventsv1.DuplicateLinked:
			s.Duplicates++
		case *eventsv1.ComplaintWithdrawn:
			s.Status = "withdrawn"
		case *eventsv1.ComplaintClassified:
			s.Category = shortEnum("Category", p.GetCategory().String())
			s.Severity = shortEnum("Severity", p.GetSeverity().String())
			s.Priority = shortEnum("Priority", p.GetPriority().String())
			if s.Status == "accepted" {
				s.Status = "classified"
			}
		case *eventsv1.RepeatComplaintFlagged:
			s.Repeat = true
			s.Priority = shortEnum("Priority", p.GetRaisedPriority().String())
		case *eventsv1.ComplaintAssigned:
			s.Team, s.Owner = p.GetTeam(), p.GetOwner()
			if s.Status != "reopened" {
				s.Status = "assigned"
			}
		case *eventsv1.ComplaintEscalated:
			s.EscalationLevel = shortEnum("EscalationLevel", p.GetToLevel().String())
		case *eventsv1.ComplaintPutOnHold:
			s.Status = "on hold"
		case *eventsv1.ComplaintTakenOffHold:
			s.Status = "in progress"
		case *eventsv1.ComplaintResolved:
			s.Status = "resolved"
		case *eventsv1.ComplaintReopened:
			s.Status = "reopened"
			s.Reopened++
		case *eventsv1.ComplaintClosed:
			s.Status = "closed"
			s.Outcome = shortEnum("CloseOutcome", p.GetOutcome().String())
		case *eventsv1.SlaClockStarted:
			clocks[p.GetClockId()] = &ClockView{ID: p.GetClockId(), Target: shortEnum("SlaTarget", p.GetTarget().String()), Deadline: p.GetDeadline().AsTime()}
		case *eventsv1.SlaClockPaused:
			if c := clocks[p.GetClockId()]; c != nil {
				c.Paused = true
			}
		case *eventsv1.SlaClockResumed:
			if c := clocks[p.GetClockId()]; c != nil {
				c.Paused, c.Deadline = false, p.GetNewDeadline().AsTime()
			}
		case *eventsv1.SlaClockRetermed:
			if c := clocks[p.GetClockId()]; c != nil {
				c.Paused, c.Deadline = p.GetTerms().GetPaused(), p.GetTerms().GetDeadline().AsTime()
			}
		case *eventsv1.SlaBreachWithdrawn:
			if p.GetReopened() { // running again: back among the open clocks
				clocks[p.GetClockId()] = &ClockView{ID: p.GetClockId(), Target: shortEnum("SlaTarget", p.GetTarget().String()),
					Deadline: p.GetTerms().GetDeadline().AsTime(), Paused: p.GetTerms().GetPaused()}
			}
		case *eventsv1.SlaMet:
			delete(clocks, p.GetClockId())
		case *eventsv1.SlaBreached:
			delete(clocks, p.GetClockId())
		case *eventsv1.SlaClockCancelled:
			delete(clocks, p.GetClockId())
		case *eventsv1.WorkOrderOpened:
			s.WorkOrders[p.GetWorkOrderId()] = "opened"
		case *eventsv1.TechnicianAssigned:
			s.WorkOrders[p.GetWorkOrderId()] = "assigned to " + p.GetTechnicianId()
		case *eventsv1.WorkOrderUnassignable:
			s.WorkOrders[p.GetWorkOrderId()] = "unassignable"
		case *eventsv1.TechnicianAccepted:
			s.WorkOrders[p.GetWorkOrderId()] = "accepted by " + p.GetTechnicianId()
		case *eventsv1.TechnicianDeclined:
			s.WorkOrders[p.GetWorkOrderId()] = "declined"
		case *eventsv1.CustomerContacted:
			s.WorkOrders[p.GetWorkOrderId()] = "customer contacted"
		case *eventsv1.TechnicianEnRoute:
			s.WorkOrders[p.GetWorkOrderId()] = "en route"
		case *eventsv1.TechnicianArrived:
			s.WorkOrders[p.GetWorkOrderId()] = "on site"
		case *eventsv1.RemoteSessionStarted:
			s.WorkOrders[p.GetWorkOrderId()] = "remote session"
		case *eventsv1.WorkCompleted:
			s.WorkOrders[p.GetWorkOrderId()] = "completed"
		case *eventsv1.RemoteResolved:
			s.WorkOrders[p.GetWorkOrderId()] = "resolved remotely"
		case *eventsv1.EscalatedToOnSite:
			s.WorkOrders[p.GetWorkOrderId()] = "escalated to on-site"
		case *eventsv1.WorkOrderFailed:
			s.WorkOrders[p.GetWorkOrderId()] = "failed"
		case *eventsv1.WorkOrderCancelled:
			s.WorkOrders[p.GetWorkOrderId()] = "cancelled"
		}
	}
	for _, c := range clocks {
		s.OpenClocks = append(s.OpenClocks, *c)
	}
	sort.Slice(s.OpenClocks, func(i, j int) bool { return s.OpenClocks[i].Deadline.Before(s.OpenClocks[j].Deadline) })
	if len(s.WorkOrders) == 0 {
		s.WorkOrders = nil
	}
	return s
}
