package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
)

// React is follow-up's bus handler: a resolution schedules the follow-up,
// an answer is concluded if its close or reopen is missing.
func (a *App) React(ctx context.Context, rec eventlog.Record) error {
	switch rec.Event.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintResolved:
		return a.ScheduleFollowUpOnResolved(ctx, rec)
	case *eventsv1.Envelope_SurveyAnswered:
		return a.ConcludeOnAnswered(ctx, rec)
	}
	return nil
}

// ConcludeOnAnswered reacts to a SurveyAnswered read from the bus: when the
// stream holds the answer without its consequence (the answer's append was
// cut by a lost ack or a crash, and a survey takes no second answer), it
// writes the close or reopen. Usually the consequence is there and it
// writes nothing.
func (a *App) ConcludeOnAnswered(ctx context.Context, rec eventlog.Record) error {
	e := rec.Event
	_, _, err := a.execute(kernel.Traced(ctx, e), e.GetComplaintId(), domain.Conclude{}, kernel.CauseOf(e, true))
	if errors.Is(err, kernel.ErrNotFound) {
		return nil
	}
	return err
}

// ScheduleFollowUpOnResolved reacts to a ComplaintResolved read from the
// bus: feedback tasks and the survey. A redelivery writes nothing.
func (a *App) ScheduleFollowUpOnResolved(ctx context.Context, rec eventlog.Record) error {
	e := rec.Event
	if _, ok := e.GetPayload().(*eventsv1.Envelope_ComplaintResolved); !ok {
		return nil
	}
	_, _, err := a.execute(kernel.Traced(ctx, e), e.GetComplaintId(), domain.ScheduleFollowUp{ResolutionEventID: e.GetEventId()}, kernel.CauseOf(e, true))
	if errors.Is(err, kernel.ErrNotFound) {
		return nil
	}
	return err
}

// DeliverFeedback records feedback an agent gave; it returns the stream's version.
func (a *App) DeliverFeedback(ctx context.Context, complaintID string, cmd domain.DeliverFeedback, c kernel.Cause) (uint64, error) {
	_, v, err := a.execute(ctx, complaintID, cmd, c)
	return v, err
}

// RecordPhoneAnswer records a survey answer an agent took by phone.
func (a *App) RecordPhoneAnswer(ctx context.Context, complaintID string, cmd domain.AnswerSurvey, c kernel.Cause) (Outcome, uint64, error) {
	cmd.Via = eventsv1.SurveyVia_SURVEY_VIA_PHONE
	envs, v, err := a.execute(ctx, complaintID, cmd, c)
	if err != nil {
		return OutcomeNone, 0, err
	}
	return outcomeOf(envs), v, nil
}

// CloseUnanswered closes the complaint NO_RESPONSE if its survey's time is
// up; otherwise it does nothing. The close is the timer's reaction to the
// SurveySent that set the deadline: in its trace and correlation, caused
// by it.
func (a *App) CloseUnanswered(ctx context.Context, complaintID string) error {
	recs, err := a.log.ReadStream(ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		return fmt.Errorf("read complaint %s: %w", complaintID, err)
	}
	s, err := fold(complaintID, recs)
	if err != nil {
		return err
	}
	if at, ok := s.NoResponseDeadline(); !ok || a.clock.Now().Before(at) {
		return nil // answered, closed or not yet due: the decision below would agree
	}
	sent := surveySent(recs, s.CurrentSurvey().ID)
	if sent == nil {
		return fmt.Errorf("complaint %s: survey %s has a deadline but no SurveySent", complaintID, s.CurrentSurvey().ID)
	}
	_, _, err = a.execute(kernel.Traced(ctx, sent), complaintID, domain.CloseUnanswered{}, kernel.CauseOf(sent, true))
	return err
}

// surveySent returns the SurveySent of survey surveyID in recs, or nil.
func surveySent(recs []eventlog.Record, surveyID string) *eventsv1.Envelope {
	for _, r := range recs {
		if r.Event.GetSurveySent().GetSurveyId() == surveyID {
			return r.Event
		}
	}
	return nil
}

// CompleteReturnVisit records a return visit; it returns the stream's version.
func (a *App) CompleteReturnVisit(ctx context.Context, complaintID string, cmd domain.CompleteReturnVisit, c kernel.Cause) (uint64, error) {
	_, v, err := a.execute(ctx, complaintID, cmd, c)
	return v, err
}

// Outcome is what a survey answer led to.
type Outcome int

const (
	OutcomeNone Outcome = iota
	OutcomeClosedSatisfied
	OutcomeClosedNeutral
	OutcomeReopened
)

// outcomeOf is the outcome of an answer's events.
func outcomeOf(envs []*eventsv1.Envelope) Outcome {
	for _, env := range envs {
		switch e := eventlog.Payload(env).(type) {
		case *eventsv1.ComplaintReopened:
			return OutcomeReopened
		case *eventsv1.ComplaintClosed:
			if e.GetOutcome() == eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL {
				return OutcomeClosedNeutral
			}
			return OutcomeClosedSatisfied
		}
	}
	return OutcomeNone
}

func (o Outcome) String() string {
	switch o {
	case OutcomeClosedSatisfied:
		return "closed, satisfied"
	case OutcomeClosedNeutral:
		return "closed, neutral"
	case OutcomeReopened:
		return "reopened"
	default:
		return fmt.Sprintf("outcome(%d)", int(o))
	}
}
