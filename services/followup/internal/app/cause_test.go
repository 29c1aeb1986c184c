package app

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
)

// events returns the complaint's envelopes of type typ, in stream order.
func (f *fixture) events(t *testing.T, id, typ string) []*eventsv1.Envelope {
	t.Helper()
	recs, err := f.log.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []*eventsv1.Envelope
	for _, r := range recs {
		if eventlog.TypeOf(r.Event) == typ {
			out = append(out, r.Event)
		}
	}
	return out
}

// one returns the complaint's only event of type typ.
func (f *fixture) one(t *testing.T, id, typ string) *eventsv1.Envelope {
	t.Helper()
	es := f.events(t, id, typ)
	if len(es) != 1 {
		t.Fatalf("%s: %d %s, want 1", id, len(es), typ)
	}
	return es[0]
}

// causedBy checks that e was caused by cause, in its correlation.
func causedBy(t *testing.T, e, cause *eventsv1.Envelope) {
	t.Helper()
	if e.GetCausationId() != cause.GetEventId() || e.GetCorrelationId() == "" || e.GetCorrelationId() != cause.GetCorrelationId() {
		t.Errorf("%s: causation %q correlation %q; want %s's id %q and correlation %q",
			eventlog.TypeOf(e), e.GetCausationId(), e.GetCorrelationId(), eventlog.TypeOf(cause), cause.GetEventId(), cause.GetCorrelationId())
	}
}

// A reaction is caused by the event it reacts to, in its correlation;
// the resolution here has none, so its own id starts one.
func TestScheduledFollowUpIsCausedByTheResolution(t *testing.T) {
	f := newFixture(t)
	f.resolve(t, "c1")
	res := f.one(t, "c1", "ComplaintResolved")
	for _, typ := range []string{"FeedbackTaskScheduled", "SurveySent"} {
		for _, e := range f.events(t, "c1", typ) {
			if e.GetCausationId() != res.GetEventId() || e.GetCorrelationId() != res.GetEventId() {
				t.Errorf("%s: causation %q correlation %q; want the resolution's id %q for both", typ, e.GetCausationId(), e.GetCorrelationId(), res.GetEventId())
			}
		}
	}
}

// An answer appended with its consequence in one decision is their cause:
// the close or reopen (and a return visit) name the answer written in the
// same append, and every event carries the command's correlation.
func TestAnswerCausesItsConsequenceInOneAppend(t *testing.T) {
	for _, tt := range []struct {
		satisfaction uint32
		severity     eventsv1.Severity
		consequences []string
	}{
		{5, eventsv1.Severity_SEVERITY_L1, []string{"ComplaintClosed"}},
		{5, eventsv1.Severity_SEVERITY_L4, []string{"ComplaintClosed", "ReturnVisitScheduled"}},
		{1, eventsv1.Severity_SEVERITY_L1, []string{"ComplaintReopened"}},
	} {
		f := newFixture(t)
		sv := f.resolve(t, "c1").CurrentSurvey()
		f.classify(t, "c1", tt.severity)
		if _, _, err := f.app.RecordPhoneAnswer(context.Background(), "c1", phoneAnswer(sv.ID, tt.satisfaction), kernel.Cause{Actor: "agent-1"}); err != nil {
			t.Fatal(err)
		}
		answer := f.one(t, "c1", "SurveyAnswered")
		if answer.GetCorrelationId() == "" || answer.GetCausationId() != "" || answer.GetActor() != "agent-1" {
			t.Errorf("answer: correlation %q causation %q actor %q; want a new correlation, no causation (a command), agent-1",
				answer.GetCorrelationId(), answer.GetCausationId(), answer.GetActor())
		}
		for _, typ := range tt.consequences {
			causedBy(t, f.one(t, "c1", typ), answer)
		}
	}
}

// The answer's append stored the answer and a conflict refused the rest
// (another writer appended in between): the command concludes the stored
// answer itself, and the conclusion names that answer as its cause.
func TestConclusionOfAStoredAnswerIsCausedByIt(t *testing.T) {
	f, cs := newCutFixture(t)
	ctx := context.Background()
	sv := f.resolve(t, "c1").CurrentSurvey()
	fb := f.events(t, "c1", "FeedbackTaskScheduled")[0].GetFeedbackTaskScheduled()
	cs.cutNext(func() {
		if _, err := f.app.DeliverFeedback(ctx, "c1", deliver(fb.GetTaskId()), kernel.Cause{Actor: "agent-2"}); err != nil {
			t.Error(err)
		}
	})
	out, v, err := f.app.RecordPhoneAnswer(ctx, "c1", phoneAnswer(sv.ID, 4), kernel.Cause{Actor: "agent-1"})
	if err != nil || out != OutcomeClosedSatisfied || v != 8 {
		t.Fatalf("RecordPhoneAnswer = %v, version %d, %v; want closed satisfied at version 8", out, v, err)
	}
	causedBy(t, f.one(t, "c1", "ComplaintClosed"), f.one(t, "c1", "SurveyAnswered"))
}

// The reaction to an answer left alone concludes it, caused by it.
func TestReactionToAnAnswerIsCausedByIt(t *testing.T) {
	f, cs := newCutFixture(t)
	ctx := context.Background()
	sv := f.resolve(t, "c1").CurrentSurvey()
	cs.cutNext(nil)
	_, _, _ = f.app.RecordPhoneAnswer(ctx, "c1", phoneAnswer(sv.ID, 1), kernel.Cause{Actor: "agent-1"})
	if err := f.app.React(ctx, f.answered(t, "c1")); err != nil {
		t.Fatal(err)
	}
	reopened := f.one(t, "c1", "ComplaintReopened")
	causedBy(t, reopened, f.one(t, "c1", "SurveyAnswered"))
	if reopened.GetActor() != Producer {
		t.Errorf("reaction's actor %q, want %q", reopened.GetActor(), Producer)
	}
}

// The no-response close is the timer's reaction to the survey it closes.
func TestNoResponseCloseIsCausedByTheSurvey(t *testing.T) {
	f := newFixture(t)
	f.resolve(t, "c1")
	f.clk.Advance(7 * 24 * time.Hour)
	if err := f.app.CloseUnanswered(context.Background(), "c1"); err != nil {
		t.Fatal(err)
	}
	causedBy(t, f.one(t, "c1", "ComplaintClosed"), f.one(t, "c1", "SurveySent"))
}

// classify appends a ComplaintClassified as routing would.
func (f *fixture) classify(t *testing.T, id string, sev eventsv1.Severity) {
	t.Helper()
	f.append(t, id, &eventsv1.ComplaintClassified{Severity: sev})
}

func (f *fixture) append(t *testing.T, id string, p proto.Message) {
	t.Helper()
	ctx := context.Background()
	recs, err := f.log.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: f.clk.Now()}, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.log.Append(ctx, eventlog.ComplaintStream(id), uint64(len(recs)), e); err != nil {
		t.Fatal(err)
	}
}

func deliver(taskID string) domain.DeliverFeedback {
	return domain.DeliverFeedback{TaskID: taskID, Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "agent-2", Summary: "called back"}
}
