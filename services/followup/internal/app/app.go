// Package app runs follow-up's use cases: each command loads the complaint's
// stream, lets the domain decide, and appends the result with the version it
// read, so two instances (or a redelivery and a timer) never both act.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

// Producer is the envelope's producer of every event follow-up writes.
const Producer = "followup"

// ErrNotFound: the complaint has no events.
var ErrNotFound = errors.New("complaint not found")

// maxConflictRetries bounds re-read/re-decide rounds on a concurrency conflict.
const maxConflictRetries = 5

// App is follow-up's application layer.
type App struct {
	log     eventlog.Store
	clock   clock.Clock
	signer  *survey.Signer
	policy  domain.Policy
	baseURL string
	logger  *slog.Logger
	tracker *Tracker
}

// Options are App's dependencies.
type Options struct {
	Log     eventlog.Store
	Clock   clock.Clock
	Signer  *survey.Signer
	Policy  domain.Policy
	BaseURL string // survey links: <BaseURL>/survey/<complaint id>?t=<token>
	Logger  *slog.Logger
	Tracker *Tracker // the in-memory view of open follow-ups (due tasks)
}

// New refuses missing dependencies.
func New(o Options) (*App, error) {
	switch {
	case o.Log == nil:
		return nil, errors.New("app: event log: required")
	case o.Clock == nil:
		return nil, errors.New("app: clock: required")
	case o.Signer == nil:
		return nil, errors.New("app: survey signer: required")
	case o.Tracker == nil:
		return nil, errors.New("app: tracker: required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &App{log: o.Log, clock: o.Clock, signer: o.Signer, policy: o.Policy, baseURL: o.BaseURL, logger: o.Logger, tracker: o.Tracker}, nil
}

// Cause is who or what a command comes from, for the envelopes it writes.
type Cause struct {
	Actor         string
	CorrelationID string
	CausationID   string
	Traceparent   string
	// Version of the triggering event on the complaint's stream (0: a
	// command): a read of the complaint must reach it (eventlog.Reached).
	Version uint64
}

// load folds the complaint's stream.
func (a *App) load(ctx context.Context, complaintID string) (*domain.State, error) {
	s, _, err := a.loadRecords(ctx, complaintID, 0)
	return s, err
}

// loadRecords folds the complaint's stream and returns its records too. A
// read that ends before version atLeast is refused (eventlog.Reached): it
// could look like nothing to do.
func (a *App) loadRecords(ctx context.Context, complaintID string, atLeast uint64) (*domain.State, []eventlog.Record, error) {
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := a.log.ReadStream(ctx, stream, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("read complaint stream: %w", err)
	}
	if err := eventlog.Reached(stream, eventlog.LastVersion(recs), atLeast); err != nil {
		return nil, nil, err
	}
	if len(recs) == 0 {
		return nil, nil, ErrNotFound
	}
	if _, ok := recs[0].Event.GetPayload().(*eventsv1.Envelope_ComplaintReceived); !ok {
		// Events of a complaint never received, published past intake.
		return nil, nil, fmt.Errorf("%w: its stream does not start with ComplaintReceived", ErrNotFound)
	}
	s := &domain.State{ComplaintID: complaintID}
	for _, r := range recs {
		domain.Evolve(s, r.Event)
	}
	return s, recs, nil
}

// execute loads, decides and appends with the version read; on a conflict
// it starts over from a fresh read. It returns the events written (none
// when the decision was that nothing is left to do) and the stream's version
// after them.
//
// A survey answer is appended with its consequence one event at a time, so
// a writer slipping in between (the Conclude reaction to the answer itself)
// can store the answer and refuse the rest. The answer then stands: instead
// of refusing it as a second one, execute concludes it and reports the
// events it decided.
func (a *App) execute(ctx context.Context, complaintID string, cmd domain.Command, c Cause) ([]proto.Message, uint64, error) {
	var cut []proto.Message // an answer whose append stored only its first event
	var answerID string     // the event id of the answer of the last refused append
	for attempt := 0; ; attempt++ {
		s, recs, err := a.loadRecords(ctx, complaintID, c.Version)
		if err != nil {
			return nil, 0, err
		}
		if answerID != "" && holds(recs, answerID) {
			cmd = domain.Conclude{}
		} else {
			cut = nil
		}
		now := a.clock.Now()
		msgs, err := domain.Decide(s, cmd, now, a.policy)
		if err != nil {
			return nil, 0, err
		}
		if len(msgs) == 0 {
			return cut, s.Version, nil
		}
		envs := make([]*eventsv1.Envelope, 0, len(msgs))
		for _, m := range msgs {
			e, err := eventlog.NewEvent(eventlog.Meta{
				ComplaintID: complaintID, Producer: Producer, Actor: c.Actor,
				CorrelationID: c.CorrelationID, CausationID: c.CausationID, Traceparent: c.Traceparent,
				OccurredAt: now,
			}, m)
			if err != nil {
				return nil, 0, err
			}
			envs = append(envs, e)
		}
		res, err := a.log.Append(ctx, eventlog.ComplaintStream(complaintID), s.Version, envs...)
		if err == nil {
			if cut != nil {
				return cut, res.Version, nil
			}
			return msgs, res.Version, nil
		}
		if !errors.Is(err, eventlog.ErrConflict) || attempt >= maxConflictRetries {
			return nil, 0, fmt.Errorf("append follow-up events: %w", err)
		}
		if _, ok := cmd.(domain.AnswerSurvey); ok {
			answerID, cut = envs[0].GetEventId(), msgs
		}
	}
}

// holds tells whether recs hold the event eventID.
func holds(recs []eventlog.Record, eventID string) bool {
	for _, r := range recs {
		if r.Event.GetEventId() == eventID {
			return true
		}
	}
	return false
}
