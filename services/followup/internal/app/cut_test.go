package app

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
)

// cutStore stores a multi-event append one event at a time, as jsstore does
// by default, and can cut the next one after its first event: then it runs
// between (a writer slipping in) and goes on, or, with between nil, stops
// with errAckLost, as when NATS dies after storing the first event and
// before acknowledging it.
type cutStore struct {
	*memstore.Store
	mu      sync.Mutex
	armed   bool
	between func()
}

var errAckLost = errors.New("context deadline exceeded (the acknowledgement was lost)")

func (c *cutStore) cutNext(between func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed, c.between = true, between
}

func (c *cutStore) Append(ctx context.Context, stream eventlog.StreamID, expected uint64, events ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	c.mu.Lock()
	cut, between := c.armed && len(events) > 1, c.between
	if cut {
		c.armed = false
	}
	c.mu.Unlock()
	if !cut {
		return c.Store.Append(ctx, stream, expected, events...)
	}
	if _, err := c.Store.Append(ctx, stream, expected, events[0]); err != nil {
		return eventlog.AppendResult{}, err
	}
	if between == nil {
		return eventlog.AppendResult{}, errAckLost
	}
	between()
	return c.Store.Append(ctx, stream, expected+1, events[1:]...)
}

func newCutFixture(t *testing.T) (*fixture, *cutStore) {
	t.Helper()
	f := newFixture(t)
	cs := &cutStore{Store: f.log}
	f.useLog(t, cs)
	return f, cs
}

func phoneAnswer(surveyID string, satisfaction uint32) domain.AnswerSurvey {
	return domain.AnswerSurvey{SurveyID: surveyID, Satisfaction: satisfaction, Resolved: true, RecordedBy: "agent-1"}
}

// answered returns the complaint's SurveyAnswered record, as the bus delivers it.
func (f *fixture) answered(t *testing.T, id string) eventlog.Record {
	t.Helper()
	recs, err := f.log.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if eventlog.TypeOf(r.Event) == "SurveyAnswered" {
			return r
		}
	}
	t.Fatal("no SurveyAnswered in the stream")
	return eventlog.Record{}
}

// The chaos harness's stuck complaint: NATS died after storing the answer
// and before acknowledging it, so the answer is in the stream without its
// close. The caller's retry is refused (a survey takes one answer); the
// reaction to the answer closes the complaint, once.
func TestAnswerStoredWithoutItsCloseIsConcludedByTheReaction(t *testing.T) {
	f, cs := newCutFixture(t)
	ctx := context.Background()
	sv := f.resolve(t, "c1").CurrentSurvey()

	cs.cutNext(nil)
	if _, _, err := f.app.RecordPhoneAnswer(ctx, "c1", phoneAnswer(sv.ID, 5), kernel.Cause{Actor: "agent-1"}); !errors.Is(err, errAckLost) {
		t.Fatalf("RecordPhoneAnswer with the ack lost = %v, want errAckLost", err)
	}
	if f.count(t, "c1", "SurveyAnswered") != 1 || f.count(t, "c1", "ComplaintClosed") != 0 {
		t.Fatal("the cut append should leave the answer alone in the stream")
	}
	if _, _, err := f.app.RecordPhoneAnswer(ctx, "c1", phoneAnswer(sv.ID, 5), kernel.Cause{Actor: "agent-1"}); !errors.Is(err, domain.ErrSurveyAnswered) {
		t.Fatalf("retried answer = %v, want ErrSurveyAnswered", err)
	}
	rec := f.answered(t, "c1")
	for range 2 { // a redelivery writes nothing more
		if err := f.app.React(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	s, err := f.app.FollowUp(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != domain.StatusClosed || s.Outcome != eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED || f.count(t, "c1", "ComplaintClosed") != 1 {
		t.Fatalf("after the reaction: status %v outcome %v, %d closes; want closed SATISFIED once", s.Status, s.Outcome, f.count(t, "c1", "ComplaintClosed"))
	}
}

// The reaction to the answer slips in between the answer's two events and
// closes the complaint first: the answer's append is refused as a conflict,
// and the call still reports its outcome instead of "already answered".
func TestAnswerOvertakenByItsOwnReactionReportsTheOutcome(t *testing.T) {
	for _, tt := range []struct {
		satisfaction uint32
		want         Outcome
		wantType     string
	}{
		{5, OutcomeClosedSatisfied, "ComplaintClosed"},
		{1, OutcomeReopened, "ComplaintReopened"},
	} {
		t.Run(tt.want.String(), func(t *testing.T) {
			f, cs := newCutFixture(t)
			ctx := context.Background()
			sv := f.resolve(t, "c1").CurrentSurvey()
			cs.cutNext(func() {
				if err := f.app.React(ctx, f.answered(t, "c1")); err != nil {
					t.Error(err)
				}
			})
			out, v, err := f.app.RecordPhoneAnswer(ctx, "c1", phoneAnswer(sv.ID, tt.satisfaction), kernel.Cause{Actor: "agent-1"})
			if err != nil || out != tt.want || v != 7 {
				t.Fatalf("RecordPhoneAnswer = %v, version %d, %v; want %v, version 7, no error", out, v, err, tt.want)
			}
			if n := f.count(t, "c1", tt.wantType); n != 1 {
				t.Fatalf("%d %s, want 1", n, tt.wantType)
			}
		})
	}
}
