// Package domain is the SLA clock of one complaint as pure functions:
// Evolve folds the complaint's stream (the facts other services recorded and
// the clock events this service wrote) into a State; Decide says which clock
// events are missing given that state, the policy and the time. No I/O.
package domain

import (
	"fmt"
	"slices"
	"time"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
)

// Producer is the name this service writes its events under.
const Producer = "slaclock"

// Status of a clock.
type Status uint8

const (
	Running Status = iota + 1
	Paused
	Met
	Breached // deadline passed; still open to a late SlaMet
	Cancelled
)

func (s Status) String() string {
	return [...]string{"", "running", "paused", "met", "breached", "cancelled"}[s]
}

// Clock is one target's clock.
type Clock struct {
	ID        string
	Target    ev.SlaTarget
	Subject   string // work order id for the dispatch targets
	Status    Status
	StartedAt time.Time
	// Deadline while running (kept when breached, met or cancelled).
	Deadline time.Time
	// Remaining budget while paused.
	Remaining       time.Duration
	Budget          time.Duration
	Business        bool
	CalendarID      string
	CalendarVersion string
	PolicyVersion   string
	WarnPercents    []uint32
	Warned          []uint32
	// WasBreached stays true when a breached clock is met late.
	WasBreached bool
	MetAt       time.Time
	// MetPaused: the clock was met while paused (its margin is Remaining).
	MetPaused bool
	// StartedBy is the causation id of the clock's start: the trigger (or
	// operation) whose handling started it.
	StartedBy string
	// LastChange is the event that started or last changed the clock: its
	// next firing is caused by it and continues its trace.
	LastChange Change
}

// Change is an event of this service that started or changed a clock, as
// the cause of the clock's next firing. A change decided but not stored
// yet has no id: it stands for the trigger that caused it.
type Change struct {
	EventID, CorrelationID, Traceparent string
}

func changeOf(e *ev.Envelope) Change {
	if e.GetEventId() == "" {
		return Change{EventID: e.GetCausationId(), CorrelationID: e.GetCorrelationId()}
	}
	return Change{EventID: e.GetEventId(), CorrelationID: e.GetCorrelationId(), Traceparent: e.GetTraceparent()}
}

// Open reports whether the clock may still fire or be met.
func (c *Clock) Open() bool { return c.Status == Running || c.Status == Paused }

// Facts are what the complaint's other events told this service.
type Facts struct {
	policy.Facts
	// ClassifiedAt is when the classification in Facts was made: the
	// latest one by its time wins, whatever the order of the stream.
	ClassifiedAt time.Time
	Software     bool
	Team         string
	Closed       bool
	OnHold       bool
	HoldReason   ev.HoldReason
	// Holds are the holds put on and taken off, in stream order: a
	// clock's timing is recomputed from them (Terms).
	Holds []HoldMark
}

// HoldMark is a hold put on (On, with its reason) or taken off, at the time
// it happened.
type HoldMark struct {
	At     time.Time
	On     bool
	Reason ev.HoldReason
}

// State is one complaint as this service sees it.
type State struct {
	ComplaintID string
	Version     uint64
	// LastOwnVersion is the version of the last event of the last whole
	// append this service made: whoever appended it had handled every
	// trigger before it. An append cut short (a crash between its events,
	// see Envelope.batch_remaining) does not count: its triggers stay
	// pending, and Decide redoes them over what the stored part did.
	LastOwnVersion uint64
	Facts          Facts
	Clocks         []Clock
	// Pending are trigger events after LastOwnVersion, in stream order.
	Pending []*ev.Envelope
	// RedoFrom indexes, in Pending, the trigger an append cut short was
	// handling when it stopped: it stores a decision's events in trigger
	// order, so the triggers before that one were handled whole.
	RedoFrom int
}

// Clock returns the clock with the id, or nil.
func (s *State) Clock(id string) *Clock {
	for i := range s.Clocks {
		if s.Clocks[i].ID == id {
			return &s.Clocks[i]
		}
	}
	return nil
}

// Fold evolves an empty state over a stream's envelopes.
func Fold(id string, events []*ev.Envelope) State {
	s := State{ComplaintID: id}
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

// Evolve applies one event of the complaint's stream. It may reuse s's
// slices: callers hand over s and keep the result.
func Evolve(s State, e *ev.Envelope) State {
	if e.GetVersion() != 0 {
		s.Version = e.GetVersion()
	}
	switch p := eventlog.Payload(e).(type) {
	case *ev.SlaClockStarted:
		s.Clocks = append(s.Clocks, Clock{
			ID: p.GetClockId(), Target: p.GetTarget(), Subject: p.GetSubjectId(), Status: Running,
			StartedAt: p.GetStartedAt().AsTime(), Deadline: p.GetDeadline().AsTime(),
			Budget: p.GetBudget().AsDuration(), Business: p.GetBusinessTime(), CalendarID: p.GetCalendarId(),
			CalendarVersion: e.GetCalendarVersion(), PolicyVersion: e.GetPolicyVersion(),
			WarnPercents: slices.Clone(p.GetWarnPercents()), Warned: slices.Clone(p.GetPastWarnings()),
			StartedBy: e.GetCausationId(), LastChange: changeOf(e),
		})
	case *ev.SlaClockPaused:
		if c := s.Clock(p.GetClockId()); c != nil {
			c.Status, c.Remaining, c.LastChange = Paused, p.GetRemaining().AsDuration(), changeOf(e)
		}
	case *ev.SlaClockResumed:
		if c := s.Clock(p.GetClockId()); c != nil {
			c.Status, c.Deadline, c.LastChange = Running, p.GetNewDeadline().AsTime(), changeOf(e)
		}
	case *ev.SlaWarning:
		if c := s.Clock(p.GetClockId()); c != nil {
			c.Warned, c.LastChange = append(c.Warned, p.GetThresholdPercent()), changeOf(e)
		}
	case *ev.SlaBreached:
		if c := s.Clock(p.GetClockId()); c != nil {
			// A met clock found late after all (re-termed) stays met.
			if c.Status != Met {
				c.Status = Breached
			}
			c.WasBreached = true
		}
	case *ev.SlaMet:
		if c := s.Clock(p.GetClockId()); c != nil {
			c.Status, c.MetAt, c.MetPaused = Met, p.GetMetAt().AsTime(), c.Status == Paused
		}
	case *ev.SlaClockRetermed:
		if c := s.Clock(p.GetClockId()); c != nil {
			applyTerms(c, p.GetTerms(), e)
			if c.Open() {
				c.Status = Running
				if p.GetTerms().GetPaused() {
					c.Status = Paused
				}
			}
		}
	case *ev.SlaBreachWithdrawn:
		if c := s.Clock(p.GetClockId()); c != nil {
			applyTerms(c, p.GetTerms(), e)
			c.WasBreached = false
			if c.Status == Breached {
				c.Status = Running
				if p.GetTerms().GetPaused() {
					c.Status = Paused
				}
			}
		}
	case *ev.SlaClockCancelled:
		if c := s.Clock(p.GetClockId()); c != nil {
			c.Status = Cancelled
		}
	case *ev.ComplaintReceived:
		s.Facts.Tier = p.GetCustomer().GetTier()
		s.Facts.Software = p.GetProduct().GetIsSoftware()
	case *ev.CustomerDetailsAmended:
		if p.GetTier() != ev.CustomerTier_CUSTOMER_TIER_UNSPECIFIED {
			s.Facts.Tier = p.GetTier()
		}
	case *ev.ComplaintClassified:
		if at := e.GetOccurredAt().AsTime(); !at.Before(s.Facts.ClassifiedAt) {
			s.Facts.Severity, s.Facts.Priority, s.Facts.Category = p.GetSeverity(), p.GetPriority(), p.GetCategory()
			s.Facts.ClassifiedAt = at
		}
	case *ev.ComplaintAssigned:
		s.Facts.Team = p.GetTeam()
	case *ev.ComplaintPutOnHold:
		s.Facts.OnHold, s.Facts.HoldReason = true, p.GetReason()
		s.Facts.Holds = append(s.Facts.Holds, HoldMark{At: e.GetOccurredAt().AsTime(), On: true, Reason: p.GetReason()})
	case *ev.ComplaintTakenOffHold:
		s.Facts.OnHold = false
		s.Facts.Holds = append(s.Facts.Holds, HoldMark{At: e.GetOccurredAt().AsTime()})
	case *ev.ComplaintReopened:
		s.Facts.Closed = false
	case *ev.ComplaintWithdrawn, *ev.ComplaintClosed:
		s.Facts.Closed = true
	}
	if e.GetProducer() == Producer {
		if e.GetBatchRemaining() == 0 {
			s.LastOwnVersion, s.Pending, s.RedoFrom = s.Version, nil, 0
		} else if i := slices.IndexFunc(s.Pending, func(p *ev.Envelope) bool { return p.GetEventId() == e.GetCausationId() }); i > s.RedoFrom {
			s.RedoFrom = i
		}
	} else if IsTrigger(e.GetType()) {
		s.Pending = append(s.Pending, e)
	}
	return s
}

// applyTerms sets a clock's terms and timing from a re-term or a withdrawn
// breach; the status is the caller's.
func applyTerms(c *Clock, t *ev.SlaClockTerms, e *ev.Envelope) {
	c.Budget, c.Business, c.CalendarID = t.GetBudget().AsDuration(), t.GetBusinessTime(), t.GetCalendarId()
	c.WarnPercents, c.Warned = slices.Clone(t.GetWarnPercents()), slices.Clone(t.GetWarned())
	c.Deadline, c.Remaining = t.GetDeadline().AsTime(), t.GetRemaining().AsDuration()
	c.CalendarVersion, c.LastChange = e.GetCalendarVersion(), changeOf(e)
	if c.Status == Met {
		c.MetPaused = t.GetPaused()
	}
}

// triggers are the event types a clock starts, stops, pauses or resumes on.
var triggers = map[string]bool{
	"ComplaintReceived": true, "ComplaintAccepted": true, "ResponseRecorded": true,
	"ComplaintClassified": true, "ComplaintPutOnHold": true, "ComplaintTakenOffHold": true,
	"ComplaintResolved": true, "FeedbackDelivered": true, "ComplaintReopened": true,
	"ComplaintWithdrawn": true, "ComplaintClosed": true, "WorkOrderOpened": true,
	"TechnicianAssigned": true, "TechnicianDeclined": true, "CustomerContacted": true,
	"TechnicianArrived": true, "RemoteSessionStarted": true, "RemoteResolved": true,
	"WorkOrderCancelled": true, "WorkOrderFailed": true, "EscalatedToOnSite": true,
}

// IsTrigger reports whether an event type can change a clock.
func IsTrigger(eventType string) bool { return triggers[eventType] }

// NextDue is the next instant the clock fires at (a warning or the breach),
// and whether there is one: only a running clock fires.
func (c *Clock) NextDue(cal *calendar.Calendar) (time.Time, uint32, bool) {
	if c.Status != Running {
		return time.Time{}, 0, false
	}
	for _, p := range c.WarnPercents {
		if !slices.Contains(c.Warned, p) {
			return WarningDue(cal, c.Deadline, c.Budget, p), p, true
		}
	}
	return c.Deadline, 0, true
}

// WarningDue is when p percent of the budget is used: (100-p) percent before
// the deadline, in the clock's time. Counting back from the deadline keeps it
// right after pauses and restarts.
func WarningDue(cal *calendar.Calendar, deadline time.Time, budget time.Duration, p uint32) time.Time {
	return cal.Add(deadline, -budget*time.Duration(100-p)/100)
}

// ClockID names the n-th clock of a target within a complaint, e.g. "resolution-2".
func ClockID(t ev.SlaTarget, n int) string { return fmt.Sprintf("%s-%d", policy.TargetName(t), n) }
