package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
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
	corr := e.GetCorrelationId()
	if corr == "" {
		corr = e.GetEventId()
	}
	_, _, err := a.execute(ctx, e.GetComplaintId(), domain.Conclude{},
		Cause{Actor: "system", CorrelationID: corr, CausationID: e.GetEventId(), Traceparent: e.GetTraceparent(), Version: e.GetVersion()})
	if errors.Is(err, ErrNotFound) {
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
	corr := e.GetCorrelationId()
	if corr == "" {
		corr = e.GetEventId()
	}
	_, _, err := a.execute(ctx, e.GetComplaintId(), domain.ScheduleFollowUp{ResolutionEventID: e.GetEventId()},
		Cause{Actor: "system", CorrelationID: corr, CausationID: e.GetEventId(), Traceparent: e.GetTraceparent(), Version: e.GetVersion()})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// DeliverFeedback records feedback an agent gave; it returns the stream's version.
func (a *App) DeliverFeedback(ctx context.Context, complaintID string, cmd domain.DeliverFeedback, c Cause) (uint64, error) {
	_, v, err := a.execute(ctx, complaintID, cmd, c)
	return v, err
}

// RecordPhoneAnswer records a survey answer an agent took by phone.
func (a *App) RecordPhoneAnswer(ctx context.Context, complaintID string, cmd domain.AnswerSurvey, c Cause) (Outcome, uint64, error) {
	cmd.Via = eventsv1.SurveyVia_SURVEY_VIA_PHONE
	msgs, v, err := a.execute(ctx, complaintID, cmd, c)
	if err != nil {
		return OutcomeNone, 0, err
	}
	return outcomeOf(msgs), v, nil
}

// CloseUnanswered closes the complaint NO_RESPONSE if its survey's time is
// up; otherwise it does nothing.
func (a *App) CloseUnanswered(ctx context.Context, complaintID string) error {
	_, _, err := a.execute(ctx, complaintID, domain.CloseUnanswered{}, Cause{Actor: "system"})
	return err
}

// CompleteReturnVisit records a return visit; it returns the stream's version.
func (a *App) CompleteReturnVisit(ctx context.Context, complaintID string, cmd domain.CompleteReturnVisit, c Cause) (uint64, error) {
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

func outcomeOf(msgs []proto.Message) Outcome {
	for _, m := range msgs {
		switch e := m.(type) {
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
