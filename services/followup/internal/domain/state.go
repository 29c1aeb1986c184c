// Package domain is follow-up's model of one complaint after resolution:
// feedback tasks, the satisfaction survey, the close-or-reopen decision and
// return visits. It is pure: Evolve folds the complaint's events into a State,
// Decide turns a command into new events; neither does I/O nor reads a clock.
package domain

import (
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Status is where a complaint stands in follow-up.
type Status int

const (
	// StatusInHandling: not resolved yet, or reopened and not resolved again.
	StatusInHandling Status = iota
	// StatusResolved: resolved, follow-up not scheduled yet.
	StatusResolved
	// StatusAwaitingAnswer: the survey is out.
	StatusAwaitingAnswer
	StatusClosed
	StatusWithdrawn
)

// Task is a feedback task: an agent has to get back to the customer by DueAt.
type Task struct {
	ID           string
	Round        eventsv1.FeedbackRound
	DueAt        time.Time
	ResolutionID string
	Delivered    bool
}

// Survey is one satisfaction survey; a complaint gets one per resolution.
type Survey struct {
	ID           string
	ExpiresAt    time.Time
	ResolutionID string
	Answered     bool
	Satisfaction uint32
	Resolved     bool
	RecordedBy   string
}

// Visit is a return visit (回访) after closing.
type Visit struct {
	ID        string
	DueAt     time.Time
	Completed bool
}

// State is what follow-up knows of one complaint, folded from its stream.
type State struct {
	ComplaintID string
	// Version is the stream version of the last event folded in: the
	// expected version of the next append.
	Version  uint64
	Status   Status
	Severity eventsv1.Severity
	// Resolution is the event id of the latest ComplaintResolved.
	Resolution string
	ResolvedAt time.Time
	Tasks      []*Task
	// Surveys in the order they were sent; the last one is the current one.
	Surveys []*Survey
	Outcome eventsv1.CloseOutcome
	Reopens uint32
	Visits  []*Visit
}

// Survey returns the survey with that id, or nil.
func (s *State) Survey(id string) *Survey {
	for _, v := range s.Surveys {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// CurrentSurvey is the survey of the latest resolution, or nil.
func (s *State) CurrentSurvey() *Survey {
	if n := len(s.Surveys); n > 0 && s.Surveys[n-1].ResolutionID == s.Resolution {
		return s.Surveys[n-1]
	}
	return nil
}

// Task returns the feedback task with that id, or nil.
func (s *State) Task(id string) *Task {
	for _, t := range s.Tasks {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// Visit returns the return visit with that id, or nil.
func (s *State) Visit(id string) *Visit {
	for _, v := range s.Visits {
		if v.ID == id {
			return v
		}
	}
	return nil
}

// NoResponseDeadline is when the open survey closes unanswered; ok is false
// when no survey is waiting for an answer.
func (s *State) NoResponseDeadline() (time.Time, bool) {
	if s.Status != StatusAwaitingAnswer {
		return time.Time{}, false
	}
	sv := s.CurrentSurvey()
	if sv == nil || sv.Answered {
		return time.Time{}, false
	}
	return sv.ExpiresAt, true
}

// OpenTasks are the undelivered feedback tasks of the latest resolution:
// tasks of an earlier resolution were overtaken by the reopen. A closed or
// withdrawn complaint has none: the loop is closed (a customer who answered
// the survey within a day needs no feedback call), and an agent's list
// would only fill with tasks nobody must do. A return visit is another
// matter: it is scheduled by the close (OpenVisits).
func (s *State) OpenTasks() []*Task {
	var out []*Task
	if s.Status == StatusClosed || s.Status == StatusWithdrawn {
		return nil
	}
	for _, t := range s.Tasks {
		if !t.Delivered && t.ResolutionID == s.Resolution {
			out = append(out, t)
		}
	}
	return out
}

// OpenVisits are the return visits not yet made.
func (s *State) OpenVisits() []*Visit {
	var out []*Visit
	for _, v := range s.Visits {
		if !v.Completed {
			out = append(out, v)
		}
	}
	return out
}

// Fold builds the state from a stream's events, in order.
func Fold(complaintID string, events []*eventsv1.Envelope) *State {
	s := &State{ComplaintID: complaintID}
	for _, e := range events {
		Evolve(s, e)
	}
	return s
}

// Evolve applies one event of the complaint's stream to s. Events follow-up
// does not care about only move the version.
func Evolve(s *State, e *eventsv1.Envelope) {
	if e.GetVersion() > s.Version {
		s.Version = e.GetVersion()
	}
	if s.ComplaintID == "" {
		s.ComplaintID = e.GetComplaintId()
	}
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintClassified:
		s.Severity = p.ComplaintClassified.GetSeverity()
	case *eventsv1.Envelope_ComplaintResolved:
		if s.Status == StatusWithdrawn {
			return
		}
		s.Status = StatusResolved
		s.Resolution = e.GetEventId()
		s.ResolvedAt = e.GetOccurredAt().AsTime()
		s.Outcome = eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED
	case *eventsv1.Envelope_ComplaintWithdrawn:
		s.Status = StatusWithdrawn
	case *eventsv1.Envelope_FeedbackTaskScheduled:
		m := p.FeedbackTaskScheduled
		s.Tasks = append(s.Tasks, &Task{ID: m.GetTaskId(), Round: m.GetRound(), DueAt: m.GetDueAt().AsTime(), ResolutionID: m.GetResolutionEventId()})
	case *eventsv1.Envelope_FeedbackDelivered:
		if t := s.Task(p.FeedbackDelivered.GetTaskId()); t != nil {
			t.Delivered = true
		}
	case *eventsv1.Envelope_SurveySent:
		m := p.SurveySent
		s.Surveys = append(s.Surveys, &Survey{ID: m.GetSurveyId(), ExpiresAt: m.GetExpiresAt().AsTime(), ResolutionID: m.GetResolutionEventId()})
		if s.Status == StatusResolved && m.GetResolutionEventId() == s.Resolution {
			s.Status = StatusAwaitingAnswer
		}
	case *eventsv1.Envelope_SurveyAnswered:
		if sv := s.Survey(p.SurveyAnswered.GetSurveyId()); sv != nil {
			sv.Answered = true
			sv.Satisfaction = p.SurveyAnswered.GetSatisfaction()
			sv.Resolved = p.SurveyAnswered.GetResolved()
			sv.RecordedBy = p.SurveyAnswered.GetRecordedBy()
		}
	case *eventsv1.Envelope_ComplaintReopened:
		s.Status = StatusInHandling
		s.Reopens++
	case *eventsv1.Envelope_ComplaintClosed:
		s.Status = StatusClosed
		s.Outcome = p.ComplaintClosed.GetOutcome()
		if s.Outcome == eventsv1.CloseOutcome_CLOSE_OUTCOME_WITHDRAWN {
			s.Status = StatusWithdrawn
		}
	case *eventsv1.Envelope_ReturnVisitScheduled:
		m := p.ReturnVisitScheduled
		s.Visits = append(s.Visits, &Visit{ID: m.GetVisitId(), DueAt: m.GetDueAt().AsTime()})
	case *eventsv1.Envelope_ReturnVisitCompleted:
		if v := s.Visit(p.ReturnVisitCompleted.GetVisitId()); v != nil {
			v.Completed = true
		}
	}
}
