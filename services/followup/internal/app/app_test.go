package app

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type fixture struct {
	app *App
	log *memstore.Store
	clk *clock.Fake
	sig *survey.Signer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := clock.NewFake(t0)
	log := memstore.New(clk)
	sig, err := survey.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Log: log, Clock: clk, Signer: sig, Policy: domain.DefaultPolicy(), BaseURL: "https://cl.example", Tracker: NewTracker()})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{app: a, log: log, clk: clk, sig: sig}
}

// resolve writes received + resolved for id and lets follow-up react (twice:
// a redelivery must write nothing more).
func (f *fixture) resolve(t *testing.T, id string) *domain.State {
	t.Helper()
	ctx := context.Background()
	var envs []*eventsv1.Envelope
	for _, p := range []proto.Message{&eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{}} {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: f.clk.Now()}, p)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	if _, err := f.log.Append(ctx, eventlog.ComplaintStream(id), 0, envs...); err != nil {
		t.Fatal(err)
	}
	recs, _ := f.log.ReadStream(ctx, eventlog.ComplaintStream(id), 2)
	for range 2 {
		if err := f.app.ScheduleFollowUpOnResolved(ctx, recs[0]); err != nil {
			t.Fatal(err)
		}
	}
	s, err := f.app.FollowUp(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != 5 {
		t.Fatalf("version %d after a redelivered resolution, want 5 (2 + two tasks + survey)", s.Version)
	}
	return s
}

// useLog makes the app read and write log (a store with faults).
func (f *fixture) useLog(t *testing.T, log eventlog.Store) {
	t.Helper()
	if err := f.app.use(log, noop.NewTracerProvider()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) count(t *testing.T, id, typ string) int {
	t.Helper()
	recs, err := f.log.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if eventlog.TypeOf(r.Event) == typ {
			n++
		}
	}
	return n
}

// Eight customers' browsers submit the same link at once: one answer is
// stored; the rest are told it was already answered.
func TestConcurrentAnswersOneWins(t *testing.T) {
	f := newFixture(t)
	s := f.resolve(t, "c1")
	token := f.sig.Sign(survey.Claims{ComplaintID: "c1", SurveyID: s.CurrentSurvey().ID, ExpiresAt: s.CurrentSurvey().ExpiresAt})

	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = f.app.AnswerByLink(context.Background(), "c1", token, LinkAnswer{Satisfaction: 5, Resolved: true})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, domain.ErrSurveyAnswered):
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || f.count(t, "c1", "SurveyAnswered") != 1 || f.count(t, "c1", "ComplaintClosed") != 1 {
		t.Fatalf("%d answers accepted, %d stored, %d closes; want 1, 1, 1", ok, f.count(t, "c1", "SurveyAnswered"), f.count(t, "c1", "ComplaintClosed"))
	}
}

// Two instances' timers (and a stray third) fire together: one close.
func TestConcurrentNoResponseClosesOnce(t *testing.T) {
	f := newFixture(t)
	f.resolve(t, "c1")
	if err := f.app.CloseUnanswered(context.Background(), "c1"); err != nil || f.count(t, "c1", "ComplaintClosed") != 0 {
		t.Fatalf("closed before the deadline: %v", err)
	}
	f.clk.Advance(7 * 24 * time.Hour)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f.app.CloseUnanswered(context.Background(), "c1"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := f.count(t, "c1", "ComplaintClosed"); n != 1 {
		t.Fatalf("%d closes, want 1", n)
	}
}

func TestAnswerByLinkRefusals(t *testing.T) {
	f := newFixture(t)
	s := f.resolve(t, "c1")
	f.resolve(t, "c2")
	sv := s.CurrentSurvey()
	good := f.sig.Sign(survey.Claims{ComplaintID: "c1", SurveyID: sv.ID, ExpiresAt: sv.ExpiresAt})
	other, _ := survey.NewSigner([]byte("ffffffffffffffffffffffffffffffff"))
	ans := LinkAnswer{Satisfaction: 4, Resolved: true}
	ctx := context.Background()

	tests := []struct {
		name      string
		complaint string
		token     string
		advance   time.Duration
		want      error
	}{
		{"wrong complaint", "c2", good, 0, survey.ErrWrongComplaint},
		{"forged", "c1", other.Sign(survey.Claims{ComplaintID: "c1", SurveyID: sv.ID, ExpiresAt: sv.ExpiresAt}), 0, survey.ErrForged},
		// A token signed with a later expiry than the survey's: the token
		// is genuine, the stream still refuses the expired survey.
		{"survey expired", "c1", f.sig.Sign(survey.Claims{ComplaintID: "c1", SurveyID: sv.ID, ExpiresAt: sv.ExpiresAt.Add(time.Hour)}), 7 * 24 * time.Hour, domain.ErrSurveyExpired},
		{"token expired", "c1", good, time.Hour, survey.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.clk.Advance(tt.advance)
			if _, err := f.app.AnswerByLink(ctx, tt.complaint, tt.token, ans); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
	for _, id := range []string{"c1", "c2"} {
		if n := f.count(t, id, "SurveyAnswered"); n != 0 {
			t.Fatalf("%s: %d answers stored by refused links", id, n)
		}
	}
}

func TestTrackerDeadlinesAndDueTasks(t *testing.T) {
	f := newFixture(t)
	f.resolve(t, "c1")
	tr := NewTracker()
	recs, _ := f.log.ReadAll(context.Background(), 1, 100)
	for _, r := range append(recs, recs...) { // applied twice: idempotent
		tr.Apply(r)
	}
	at, ok := tr.Earliest()
	if !ok || !at.Equal(t0.Add(7*24*time.Hour)) {
		t.Fatalf("earliest deadline %v %v", at, ok)
	}
	if due := tr.Due(at.Add(-time.Second)); len(due) != 0 {
		t.Fatalf("due early: %v", due)
	}
	if due := tr.Due(at); len(due) != 1 || due[0] != "c1" {
		t.Fatalf("due at the deadline: %v", due)
	}
	tasks := tr.DueTasks(t0.Add(72*time.Hour), t0.Add(48*time.Hour), 0)
	if len(tasks) != 2 || !tasks[0].Overdue || tasks[1].Overdue || tasks[0].Round != eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST {
		t.Fatalf("due tasks at 48 h: %+v", tasks)
	}
}
