package domain

import (
	"fmt"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Policy holds follow-up's time limits (domain.md §6; 001 §4.1).
type Policy struct {
	// First feedback within 24 h of the resolution, second within 72 h.
	FirstFeedbackWithin  time.Duration
	SecondFeedbackWithin time.Duration
	// A survey with no answer after this long closes the complaint NO_RESPONSE.
	NoResponseAfter time.Duration
	// Complaints of at least ReturnVisitFrom get a return visit this long after closing.
	ReturnVisitAfter time.Duration
	ReturnVisitFrom  eventsv1.Severity
}

// DefaultPolicy is the policy of domain.md §6.
func DefaultPolicy() Policy {
	return Policy{
		FirstFeedbackWithin:  24 * time.Hour,
		SecondFeedbackWithin: 72 * time.Hour,
		NoResponseAfter:      7 * 24 * time.Hour,
		ReturnVisitAfter:     30 * 24 * time.Hour,
		ReturnVisitFrom:      eventsv1.Severity_SEVERITY_L3,
	}
}

// MaxTextLen bounds the free-text fields (summary, comment, notes), in characters.
const MaxTextLen = 2000

// Command is one of the commands below.
type Command interface{ command() }

// ScheduleFollowUp reacts to a ComplaintResolved: two feedback tasks and a survey.
type ScheduleFollowUp struct {
	// ResolutionEventID is the event id of the ComplaintResolved.
	ResolutionEventID string
}

// DeliverFeedback records the feedback an agent gave.
type DeliverFeedback struct {
	TaskID      string
	Channel     eventsv1.Channel
	DeliveredBy string
	Summary     string
}

// AnswerSurvey records the customer's answer (link or phone).
type AnswerSurvey struct {
	SurveyID     string
	Satisfaction uint32
	Resolved     bool
	Comment      string
	Via          eventsv1.SurveyVia
	// RecordedBy is the agent for a phone answer, "customer" for a link.
	RecordedBy string
}

// CloseUnanswered is the no-response timer firing.
type CloseUnanswered struct{}

// Conclude reacts to a SurveyAnswered: it writes the close or reopen the
// answer leads to when the stream holds the answer without it. An answer is
// appended with its consequence, one publish per event, so a lost ack or a
// crash in between can store the answer alone; the answer then refuses any
// retry (single use), and only this reaction finishes the decision.
type Conclude struct{}

// CompleteReturnVisit records a return visit.
type CompleteReturnVisit struct {
	VisitID   string
	VisitedBy string
	Notes     string
	// 1–5, or 0 when the customer was not asked.
	Satisfaction uint32
}

func (ScheduleFollowUp) command()    {}
func (DeliverFeedback) command()     {}
func (AnswerSurvey) command()        {}
func (CloseUnanswered) command()     {}
func (Conclude) command()            {}
func (CompleteReturnVisit) command() {}

// Decide returns the events cmd leads to in state s at time now. An empty
// result with a nil error means there is nothing to do (the command's effect
// is already in the stream), which makes reactions and timers idempotent.
func Decide(s *State, cmd Command, now time.Time, p Policy) ([]proto.Message, error) {
	switch c := cmd.(type) {
	case ScheduleFollowUp:
		return scheduleFollowUp(s, c, now, p)
	case DeliverFeedback:
		return deliverFeedback(s, c)
	case AnswerSurvey:
		return answerSurvey(s, c, now, p)
	case CloseUnanswered:
		return closeUnanswered(s, now, p)
	case Conclude:
		return conclude(s, now, p), nil
	case CompleteReturnVisit:
		return completeReturnVisit(s, c)
	default:
		return nil, fmt.Errorf("domain: unknown command %T", cmd)
	}
}

func scheduleFollowUp(s *State, c ScheduleFollowUp, now time.Time, p Policy) ([]proto.Message, error) {
	// Only the latest resolution gets a follow-up, and only once: a
	// redelivered or stale ComplaintResolved changes nothing.
	if c.ResolutionEventID == "" || c.ResolutionEventID != s.Resolution || s.Status != StatusResolved {
		return nil, nil
	}
	// Only what is missing: the log may have stored the first part of an
	// earlier attempt's append when another service appended in between.
	res := c.ResolutionEventID
	var out []proto.Message
	if s.Task("fb1-"+res) == nil {
		out = append(out, &eventsv1.FeedbackTaskScheduled{
			TaskId: "fb1-" + res, Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST,
			DueAt: timestamppb.New(s.ResolvedAt.Add(p.FirstFeedbackWithin)), ResolutionEventId: res,
		})
	}
	if s.Task("fb2-"+res) == nil {
		out = append(out, &eventsv1.FeedbackTaskScheduled{
			TaskId: "fb2-" + res, Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_SECOND,
			DueAt: timestamppb.New(s.ResolvedAt.Add(p.SecondFeedbackWithin)), ResolutionEventId: res,
		})
	}
	for _, sv := range s.Surveys {
		if sv.ResolutionID == res {
			return out, nil
		}
	}
	return append(out, &eventsv1.SurveySent{
		SurveyId: "sv-" + res, ExpiresAt: timestamppb.New(now.Add(p.NoResponseAfter)), ResolutionEventId: res,
	}), nil
}

func deliverFeedback(s *State, c DeliverFeedback) ([]proto.Message, error) {
	var vs violations
	if c.TaskID == "" {
		vs.add("task_id", "required", "is required")
	}
	if c.Channel == eventsv1.Channel_CHANNEL_UNSPECIFIED || eventsv1.Channel_name[int32(c.Channel)] == "" {
		vs.add("channel", "enum", "must name a channel (phone, email, …)")
	}
	if c.DeliveredBy == "" {
		vs.add("delivered_by", "required", "is required")
	}
	checkText(&vs, "summary", c.Summary, true)
	if err := vs.err(); err != nil {
		return nil, err
	}
	t := s.Task(c.TaskID)
	if t == nil {
		return nil, (violations{{Field: "task_id", Rule: "exists", Message: "no such feedback task on this complaint"}}).err()
	}
	switch {
	case s.Status == StatusWithdrawn:
		return nil, ErrWithdrawn
	case t.Delivered:
		return nil, ErrTaskDelivered
	case t.ResolutionID != s.Resolution:
		return nil, ErrTaskOverTaken
	}
	return []proto.Message{&eventsv1.FeedbackDelivered{
		TaskId: t.ID, Round: t.Round, Channel: c.Channel, DeliveredBy: c.DeliveredBy, Summary: c.Summary,
	}}, nil
}

func answerSurvey(s *State, c AnswerSurvey, now time.Time, p Policy) ([]proto.Message, error) {
	var vs violations
	if c.SurveyID == "" {
		vs.add("survey_id", "required", "is required")
	}
	if c.Satisfaction < 1 || c.Satisfaction > 5 {
		vs.add("satisfaction", "range", "must be 1 to 5")
	}
	if c.Via != eventsv1.SurveyVia_SURVEY_VIA_LINK && c.Via != eventsv1.SurveyVia_SURVEY_VIA_PHONE {
		vs.add("via", "enum", "must be LINK or PHONE")
	}
	if c.RecordedBy == "" {
		vs.add("recorded_by", "required", "is required")
	}
	checkText(&vs, "comment", c.Comment, false)
	if err := vs.err(); err != nil {
		return nil, err
	}
	if err := s.CheckAnswerable(c.SurveyID, now); err != nil {
		return nil, err
	}
	sv := s.Survey(c.SurveyID)
	answered := &eventsv1.SurveyAnswered{
		SurveyId: sv.ID, Satisfaction: c.Satisfaction, Resolved: c.Resolved,
		Comment: c.Comment, Via: c.Via, RecordedBy: c.RecordedBy,
	}
	return append([]proto.Message{answered}, conclusion(s, sv.ID, c.Satisfaction, c.Resolved, c.RecordedBy, now, p)...), nil
}

// conclude is the close or reopen of an answered current survey whose
// consequence is missing from the stream; nothing otherwise.
func conclude(s *State, now time.Time, p Policy) []proto.Message {
	sv := s.CurrentSurvey()
	if s.Status != StatusAwaitingAnswer || sv == nil || !sv.Answered {
		return nil
	}
	return conclusion(s, sv.ID, sv.Satisfaction, sv.Resolved, sv.RecordedBy, now, p)
}

// conclusion is what an answer leads to: a reopen when the customer is
// dissatisfied, else the close (and a return visit for serious complaints).
func conclusion(s *State, surveyID string, satisfaction uint32, resolved bool, by string, now time.Time, p Policy) []proto.Message {
	switch outcome := Judge(satisfaction, resolved); outcome {
	case eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED: // dissatisfied
		reason := fmt.Sprintf("customer dissatisfied: satisfaction %d of 5", satisfaction)
		if !resolved {
			reason = fmt.Sprintf("customer says the problem is not resolved (satisfaction %d of 5)", satisfaction)
		}
		return []proto.Message{&eventsv1.ComplaintReopened{
			Reason: reason, SurveyId: surveyID, Satisfaction: satisfaction, ReopenCount: s.Reopens + 1,
		}}
	default:
		return closing(s, outcome, surveyID, by, now, p)
	}
}

// CheckAnswerable tells whether survey surveyID takes an answer at now.
// Single use: an answer already in the stream refuses any other.
func (s *State) CheckAnswerable(surveyID string, now time.Time) error {
	sv := s.Survey(surveyID)
	switch {
	case sv == nil:
		return (violations{{Field: "survey_id", Rule: "exists", Message: "no such survey on this complaint"}}).err()
	case sv.Answered:
		return ErrSurveyAnswered
	case s.Status == StatusWithdrawn:
		return ErrWithdrawn
	case sv != s.CurrentSurvey():
		return ErrSurveyOverTaken
	case s.Status != StatusAwaitingAnswer:
		return ErrSurveyClosed
	case !now.Before(sv.ExpiresAt):
		return ErrSurveyExpired
	}
	return nil
}

// Judge turns an answer into an outcome: SATISFIED (score ≥ 4 and
// resolved), NEUTRAL (score 3 and resolved: closed, counted apart, since the
// customer neither asks for more nor is pleased), or UNSPECIFIED meaning
// dissatisfied (score ≤ 2, or not resolved): the complaint reopens.
func Judge(satisfaction uint32, resolved bool) eventsv1.CloseOutcome {
	switch {
	case !resolved || satisfaction <= 2:
		return eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED
	case satisfaction == 3:
		return eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL
	default:
		return eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED
	}
}

func closeUnanswered(s *State, now time.Time, p Policy) ([]proto.Message, error) {
	deadline, ok := s.NoResponseDeadline()
	if !ok || now.Before(deadline) {
		return nil, nil
	}
	return closing(s, eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE, s.CurrentSurvey().ID, "system", now, p), nil
}

// closing is ComplaintClosed, plus a return visit for serious complaints.
func closing(s *State, outcome eventsv1.CloseOutcome, surveyID, by string, now time.Time, p Policy) []proto.Message {
	out := []proto.Message{&eventsv1.ComplaintClosed{Outcome: outcome, SurveyId: surveyID, ClosedBy: by}}
	if p.ReturnVisitFrom != eventsv1.Severity_SEVERITY_UNSPECIFIED && s.Severity >= p.ReturnVisitFrom {
		out = append(out, &eventsv1.ReturnVisitScheduled{VisitId: "rv-" + surveyID, DueAt: timestamppb.New(now.Add(p.ReturnVisitAfter))})
	}
	return out
}

func completeReturnVisit(s *State, c CompleteReturnVisit) ([]proto.Message, error) {
	var vs violations
	if c.VisitID == "" {
		vs.add("visit_id", "required", "is required")
	}
	if c.VisitedBy == "" {
		vs.add("visited_by", "required", "is required")
	}
	if c.Satisfaction > 5 {
		vs.add("satisfaction", "range", "must be 1 to 5, or 0 when not asked")
	}
	checkText(&vs, "notes", c.Notes, false)
	if err := vs.err(); err != nil {
		return nil, err
	}
	v := s.Visit(c.VisitID)
	if v == nil {
		return nil, (violations{{Field: "visit_id", Rule: "exists", Message: "no such return visit on this complaint"}}).err()
	}
	if v.Completed {
		return nil, ErrVisitCompleted
	}
	return []proto.Message{&eventsv1.ReturnVisitCompleted{
		VisitId: v.ID, VisitedBy: c.VisitedBy, Notes: c.Notes, Satisfaction: c.Satisfaction,
	}}, nil
}

func checkText(vs *violations, field, v string, required bool) {
	switch {
	case required && v == "":
		vs.add(field, "required", "is required")
	case !utf8.ValidString(v):
		vs.add(field, "utf8", "must be valid UTF-8")
	case utf8.RuneCountInString(v) > MaxTextLen:
		vs.add(field, "max_len", fmt.Sprintf("must be at most %d characters", MaxTextLen))
	}
}
