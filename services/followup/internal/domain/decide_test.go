package domain

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/google/go-cmp/cmp"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// given builds a stream: each payload becomes an envelope with the next
// version, event id "e<version>" and occurred_at t0 + version minutes.
func given(payloads ...proto.Message) []*eventsv1.Envelope {
	var out []*eventsv1.Envelope
	for i, p := range payloads {
		v := uint64(i + 1)
		e := &eventsv1.Envelope{ComplaintId: "c1", Version: v, EventId: "e" + strconv.FormatUint(v, 10), OccurredAt: timestamppb.New(t0.Add(time.Duration(v) * time.Minute))}
		if err := eventlog.SetPayload(e, p); err != nil {
			panic(err)
		}
		out = append(out, e)
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

const day = 24 * time.Hour

// Stream fragments. resolved is event e2 at t0+2m.
var (
	l3       = &eventsv1.ComplaintClassified{Severity: eventsv1.Severity_SEVERITY_L3}
	l1       = &eventsv1.ComplaintClassified{Severity: eventsv1.Severity_SEVERITY_L1}
	resolved = &eventsv1.ComplaintResolved{ResolutionCode: "fixed"}
	resAt    = t0.Add(2 * time.Minute)
	fb1      = &eventsv1.FeedbackTaskScheduled{TaskId: "fb1-e2", Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST, DueAt: ts(resAt.Add(day)), ResolutionEventId: "e2"}
	fb2      = &eventsv1.FeedbackTaskScheduled{TaskId: "fb2-e2", Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_SECOND, DueAt: ts(resAt.Add(3 * day)), ResolutionEventId: "e2"}
	sent     = &eventsv1.SurveySent{SurveyId: "sv-e2", ExpiresAt: ts(t0.Add(7 * day)), ResolutionEventId: "e2"}
)

// errInvalid stands for a *kernel.InvalidError in the table below.
var errInvalid = errors.New("invalid command")

func TestDecide(t *testing.T) {
	p := DefaultPolicy()
	now := t0.Add(time.Hour)
	answer := func(score uint32, ok bool) AnswerSurvey {
		return AnswerSurvey{SurveyID: "sv-e2", Satisfaction: score, Resolved: ok, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"}
	}
	awaiting := []proto.Message{l1, resolved, fb1, fb2, sent} // versions 1..5
	awaitingL3 := []proto.Message{l3, resolved, fb1, fb2, sent}
	tests := []struct {
		name    string
		given   []proto.Message
		cmd     Command
		now     time.Time
		want    []proto.Message
		wantErr error
		field   string // the violation's field, for errInvalid
	}{
		{
			name:  "resolution schedules two feedback tasks (24 h, 72 h after resolution) and a survey expiring after 7 days",
			given: []proto.Message{l1, resolved},
			cmd:   ScheduleFollowUp{ResolutionEventID: "e2"},
			now:   now,
			want:  []proto.Message{fb1, fb2, &eventsv1.SurveySent{SurveyId: "sv-e2", ExpiresAt: ts(now.Add(7 * day)), ResolutionEventId: "e2"}},
		},
		{name: "redelivered resolution does nothing", given: awaiting, cmd: ScheduleFollowUp{ResolutionEventID: "e2"}, now: now},
		{name: "stale resolution (not the latest) does nothing", given: []proto.Message{resolved, resolved}, cmd: ScheduleFollowUp{ResolutionEventID: "e1"}, now: now},
		{name: "withdrawn complaint gets no follow-up", given: []proto.Message{resolved, &eventsv1.ComplaintWithdrawn{}}, cmd: ScheduleFollowUp{ResolutionEventID: "e1"}, now: now},
		{
			name:  "satisfied: score 4 and resolved closes SATISFIED",
			given: awaiting, cmd: answer(4, true), now: now,
			want: []proto.Message{
				&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 4, Resolved: true, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
				&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, SurveyId: "sv-e2", ClosedBy: "customer"},
			},
		},
		{
			name:  "satisfied L3 also schedules a return visit 30 days on",
			given: awaitingL3, cmd: answer(5, true), now: now,
			want: []proto.Message{
				&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 5, Resolved: true, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
				&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, SurveyId: "sv-e2", ClosedBy: "customer"},
				&eventsv1.ReturnVisitScheduled{VisitId: "rv-sv-e2", DueAt: ts(now.Add(30 * day))},
			},
		},
		{
			name:  "neutral: score 3 and resolved closes NEUTRAL",
			given: awaiting, cmd: answer(3, true), now: now,
			want: []proto.Message{
				&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 3, Resolved: true, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
				&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL, SurveyId: "sv-e2", ClosedBy: "customer"},
			},
		},
		{
			name:  "dissatisfied: score 2 reopens",
			given: awaiting, cmd: answer(2, true), now: now,
			want: []proto.Message{
				&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 2, Resolved: true, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
				&eventsv1.ComplaintReopened{Reason: "customer dissatisfied: satisfaction 2 of 5", SurveyId: "sv-e2", Satisfaction: 2, ReopenCount: 1},
			},
		},
		{
			name:  "not resolved reopens even with score 5",
			given: awaiting, cmd: answer(5, false), now: now,
			want: []proto.Message{
				&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 5, Resolved: false, Via: eventsv1.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
				&eventsv1.ComplaintReopened{Reason: "customer says the problem is not resolved (satisfaction 5 of 5)", SurveyId: "sv-e2", Satisfaction: 5, ReopenCount: 1},
			},
		},
		{name: "second answer refused (single use)", given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 4, Resolved: true}, &eventsv1.ComplaintClosed{}), cmd: answer(1, false), now: now, wantErr: ErrSurveyAnswered},
		{name: "answer at expiry refused", given: awaiting, cmd: answer(5, true), now: t0.Add(7 * day), wantErr: ErrSurveyExpired},
		{name: "answer after no-response close refused", given: append(append([]proto.Message{}, awaiting...), &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE}), cmd: answer(5, true), now: now, wantErr: ErrSurveyClosed},
		{name: "answer to a survey of an earlier resolution refused", given: append(append([]proto.Message{}, awaiting...), resolved), cmd: answer(5, true), now: now, wantErr: ErrSurveyOverTaken},
		{name: "answer on withdrawn complaint refused", given: append(append([]proto.Message{}, awaiting...), &eventsv1.ComplaintWithdrawn{}), cmd: answer(5, true), now: now, wantErr: ErrWithdrawn},
		{name: "unknown survey", given: awaiting, cmd: AnswerSurvey{SurveyID: "sv-x", Satisfaction: 4, Via: eventsv1.SurveyVia_SURVEY_VIA_PHONE, RecordedBy: "a1"}, now: now, wantErr: errInvalid, field: "survey_id"},
		{name: "score 0 refused", given: awaiting, cmd: answer(0, true), now: now, wantErr: errInvalid, field: "satisfaction"},
		{name: "score 6 refused", given: awaiting, cmd: answer(6, true), now: now, wantErr: errInvalid, field: "satisfaction"},
		{name: "answer without via refused", given: awaiting, cmd: AnswerSurvey{SurveyID: "sv-e2", Satisfaction: 4, RecordedBy: "a1"}, now: now, wantErr: errInvalid, field: "via"},
		{name: "comment too long refused", given: awaiting, cmd: AnswerSurvey{SurveyID: "sv-e2", Satisfaction: 4, Via: eventsv1.SurveyVia_SURVEY_VIA_PHONE, RecordedBy: "a1", Comment: strings.Repeat("好", MaxTextLen+1)}, now: now, wantErr: errInvalid, field: "comment"},
		// An answer is appended with its consequence one event at a time: a
		// lost ack or a crash can leave the answer alone in the stream.
		{
			name:  "conclude an answer stored without its close: closes SATISFIED by the answer's recorder",
			given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 5, Resolved: true, RecordedBy: "a1"}),
			cmd:   Conclude{}, now: now,
			want: []proto.Message{&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, SurveyId: "sv-e2", ClosedBy: "a1"}},
		},
		{
			name:  "conclude an L3 answer stored alone: close and return visit",
			given: append(append([]proto.Message{}, awaitingL3...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 3, Resolved: true, RecordedBy: "customer"}),
			cmd:   Conclude{}, now: now,
			want: []proto.Message{
				&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL, SurveyId: "sv-e2", ClosedBy: "customer"},
				&eventsv1.ReturnVisitScheduled{VisitId: "rv-sv-e2", DueAt: ts(now.Add(30 * day))},
			},
		},
		{
			name:  "conclude a dissatisfied answer stored alone: reopens",
			given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 1, Resolved: true, RecordedBy: "customer"}),
			cmd:   Conclude{}, now: now,
			want: []proto.Message{&eventsv1.ComplaintReopened{Reason: "customer dissatisfied: satisfaction 1 of 5", SurveyId: "sv-e2", Satisfaction: 1, ReopenCount: 1}},
		},
		{name: "conclude with the answer's close stored does nothing", given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 4, Resolved: true}, &eventsv1.ComplaintClosed{}), cmd: Conclude{}, now: now},
		{name: "conclude before any answer does nothing", given: awaiting, cmd: Conclude{}, now: now},
		{name: "conclude after the reopen and a new resolution does nothing", given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 1, Resolved: true}, &eventsv1.ComplaintReopened{}, resolved), cmd: Conclude{}, now: now},
		{name: "conclude on a withdrawn complaint does nothing", given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 5, Resolved: true}, &eventsv1.ComplaintWithdrawn{}), cmd: Conclude{}, now: now},
		{name: "no-response timer before the deadline does nothing", given: awaiting, cmd: CloseUnanswered{}, now: t0.Add(7*day - time.Second)},
		{
			name: "no-response timer at the deadline closes NO_RESPONSE", given: awaiting, cmd: CloseUnanswered{}, now: t0.Add(7 * day),
			want: []proto.Message{&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE, SurveyId: "sv-e2", ClosedBy: "system"}},
		},
		{name: "no-response timer after an answer does nothing", given: append(append([]proto.Message{}, awaiting...), &eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 4, Resolved: true}, &eventsv1.ComplaintClosed{}), cmd: CloseUnanswered{}, now: t0.Add(8 * day)},
		{
			name: "feedback delivered", given: awaiting, cmd: DeliverFeedback{TaskID: "fb1-e2", Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1", Summary: "explained the repair"}, now: now,
			want: []proto.Message{&eventsv1.FeedbackDelivered{TaskId: "fb1-e2", Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST, Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1", Summary: "explained the repair"}},
		},
		{name: "feedback delivered twice refused", given: append(append([]proto.Message{}, awaiting...), &eventsv1.FeedbackDelivered{TaskId: "fb1-e2"}), cmd: DeliverFeedback{TaskID: "fb1-e2", Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1", Summary: "again"}, now: now, wantErr: ErrTaskDelivered},
		{name: "feedback of an earlier resolution refused", given: append(append([]proto.Message{}, awaiting...), resolved), cmd: DeliverFeedback{TaskID: "fb1-e2", Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1", Summary: "x"}, now: now, wantErr: ErrTaskOverTaken},
		{name: "feedback without a summary refused", given: awaiting, cmd: DeliverFeedback{TaskID: "fb1-e2", Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1"}, now: now, wantErr: errInvalid, field: "summary"},
		{name: "feedback with an unknown channel refused", given: awaiting, cmd: DeliverFeedback{TaskID: "fb1-e2", Channel: 99, DeliveredBy: "a1", Summary: "x"}, now: now, wantErr: errInvalid, field: "channel"},
		{name: "feedback for an unknown task refused", given: awaiting, cmd: DeliverFeedback{TaskID: "nope", Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "a1", Summary: "x"}, now: now, wantErr: errInvalid, field: "task_id"},
		{
			name:  "return visit completed",
			given: append(append([]proto.Message{}, awaitingL3...), &eventsv1.ReturnVisitScheduled{VisitId: "rv-sv-e2", DueAt: ts(t0.Add(30 * day))}),
			cmd:   CompleteReturnVisit{VisitID: "rv-sv-e2", VisitedBy: "a1", Notes: "all good", Satisfaction: 5}, now: now,
			want: []proto.Message{&eventsv1.ReturnVisitCompleted{VisitId: "rv-sv-e2", VisitedBy: "a1", Notes: "all good", Satisfaction: 5}},
		},
		{
			name:  "return visit twice refused",
			given: append(append([]proto.Message{}, awaitingL3...), &eventsv1.ReturnVisitScheduled{VisitId: "rv-sv-e2"}, &eventsv1.ReturnVisitCompleted{VisitId: "rv-sv-e2"}),
			cmd:   CompleteReturnVisit{VisitID: "rv-sv-e2", VisitedBy: "a1"}, now: now, wantErr: ErrVisitCompleted,
		},
		{name: "unknown return visit refused", given: awaiting, cmd: CompleteReturnVisit{VisitID: "rv-x", VisitedBy: "a1"}, now: now, wantErr: errInvalid, field: "visit_id"},
		{name: "return visit satisfaction 6 refused", given: awaiting, cmd: CompleteReturnVisit{VisitID: "rv-x", VisitedBy: "a1", Satisfaction: 6}, now: now, wantErr: errInvalid, field: "satisfaction"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Fold("c1", given(tt.given...))
			got, err := Decide(s, tt.cmd, tt.now, p)
			if tt.wantErr != nil {
				var ve *kernel.InvalidError
				if tt.wantErr == errInvalid && !errors.As(err, &ve) || tt.wantErr != errInvalid && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				if tt.wantErr != errInvalid && !errors.Is(err, kernel.ErrPrecondition) {
					t.Fatalf("err = %v is not a kernel.ErrPrecondition: the API would not answer FailedPrecondition", err)
				}
				if got != nil {
					t.Fatalf("events on error: %v", got)
				}
				if tt.field != "" {
					if !errors.As(err, &ve) || ve.Violations[0].Field != tt.field {
						t.Fatalf("err = %v, want a violation of %s", err, tt.field)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Fatalf("events (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		score    uint32
		resolved bool
		want     eventsv1.CloseOutcome
	}{
		{5, true, eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED},
		{4, true, eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED},
		{3, true, eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL},
		{2, true, eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED},
		{1, true, eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED},
		{5, false, eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED},
		{3, false, eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED},
	}
	for _, tt := range tests {
		if got := Judge(tt.score, tt.resolved); got != tt.want {
			t.Errorf("Judge(%d, %v) = %v, want %v", tt.score, tt.resolved, got, tt.want)
		}
	}
}

func TestEvolveReopenedCycle(t *testing.T) {
	// resolved (e2) → survey → reopened → resolved again (e8): the old tasks
	// are overtaken, the new resolution is what gets scheduled next.
	s := Fold("c1", given(l1, resolved, fb1, fb2, sent,
		&eventsv1.SurveyAnswered{SurveyId: "sv-e2", Satisfaction: 1},
		&eventsv1.ComplaintReopened{ReopenCount: 1},
		resolved))
	if s.Status != StatusResolved || s.Resolution != "e8" || s.Reopens != 1 || s.Version != 8 {
		t.Fatalf("state = status %v resolution %q reopens %d version %d", s.Status, s.Resolution, s.Reopens, s.Version)
	}
	if n := len(s.OpenTasks()); n != 0 {
		t.Fatalf("open tasks of an overtaken resolution: %d", n)
	}
	if s.CurrentSurvey() != nil {
		t.Fatal("current survey should be none until the new one is sent")
	}
	got, err := Decide(s, ScheduleFollowUp{ResolutionEventID: "e8"}, t0.Add(day), DefaultPolicy())
	if err != nil || len(got) != 3 {
		t.Fatalf("schedule after re-resolution: %v, %v", got, err)
	}
	if _, ok := s.NoResponseDeadline(); ok {
		t.Fatal("no deadline before the survey is sent")
	}
}
