package app

import (
	"context"
	"fmt"
	"time"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

// Questions are the survey's questions, in the order the page asks them.
var Questions = []string{
	"How satisfied are you with how your complaint was handled? (1 = very dissatisfied, 5 = very satisfied)",
	"Is your problem resolved?",
	"Anything else you would like to tell us?",
}

// OpenSurvey is a survey a valid link points to.
type OpenSurvey struct {
	SurveyID  string
	ExpiresAt time.Time
}

// CheckSurveyLink verifies a link's token and that its survey still takes
// an answer. Errors: the survey package's token errors, kernel.ErrNotFound,
// or the domain's precondition errors (answered, expired, closed…).
func (a *App) CheckSurveyLink(ctx context.Context, complaintID, token string) (OpenSurvey, error) {
	now := a.clock.Now()
	claims, err := a.signer.Verify(token, complaintID, now)
	if err != nil {
		return OpenSurvey{}, err
	}
	s, err := a.load(ctx, complaintID)
	if err != nil {
		return OpenSurvey{}, err
	}
	if err := s.CheckAnswerable(claims.SurveyID, now); err != nil {
		return OpenSurvey{}, err
	}
	return OpenSurvey{SurveyID: claims.SurveyID, ExpiresAt: s.Survey(claims.SurveyID).ExpiresAt}, nil
}

// LinkAnswer is the customer's answer through a survey link.
type LinkAnswer struct {
	Satisfaction uint32
	Resolved     bool
	Comment      string
}

// AnswerByLink records an answer given through a survey link: the token
// must verify (signature, complaint, expiry); the stream then refuses a
// second answer, a survey of an earlier resolution or an expired one.
func (a *App) AnswerByLink(ctx context.Context, complaintID, token string, ans LinkAnswer) (Outcome, error) {
	claims, err := a.signer.Verify(token, complaintID, a.clock.Now())
	if err != nil {
		return OutcomeNone, err
	}
	envs, _, err := a.execute(ctx, complaintID, domain.AnswerSurvey{
		SurveyID: claims.SurveyID, Satisfaction: ans.Satisfaction, Resolved: ans.Resolved, Comment: ans.Comment,
		Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer",
	}, kernel.Cause{Actor: "customer", CorrelationID: claims.SurveyID})
	if err != nil {
		return OutcomeNone, err
	}
	return outcomeOf(envs), nil
}

// SurveyLink is the customer's link to the complaint's open survey, or ""
// when no survey is waiting for an answer.
func (a *App) SurveyLink(s *domain.State) string {
	if _, ok := s.NoResponseDeadline(); !ok {
		return ""
	}
	sv := s.CurrentSurvey()
	return a.signer.Link(a.baseURL, survey.Claims{ComplaintID: s.ComplaintID, SurveyID: sv.ID, ExpiresAt: sv.ExpiresAt})
}

// FollowUp returns the complaint's follow-up state, read from its stream.
func (a *App) FollowUp(ctx context.Context, complaintID string) (*domain.State, error) {
	s, err := a.load(ctx, complaintID)
	if err != nil {
		return nil, fmt.Errorf("follow-up of %s: %w", complaintID, err)
	}
	return s, nil
}

// DueTasks lists open feedback tasks and return visits due by dueBy (now
// when zero), earliest first, at most limit.
func (a *App) DueTasks(dueBy time.Time, limit int) []DueTask {
	if dueBy.IsZero() {
		dueBy = a.clock.Now()
	}
	return a.tracker.DueTasks(dueBy, a.clock.Now(), limit)
}
