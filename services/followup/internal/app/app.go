// Package app runs follow-up's use cases: each command goes through the
// kernel (libs/kernel), which reads the complaint's stream, lets the domain
// decide and appends the result at the version it read, so two instances
// (or a redelivery and a timer) never both act.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

// Producer is the envelope's producer of every event follow-up writes.
const Producer = "followup"

// App is follow-up's application layer.
type App struct {
	log     eventlog.Store // what queries read; commands go through w
	w       *kernel.Writer
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
	// TracerProvider is the service's: every command is a span of it
	// (nil: none).
	TracerProvider trace.TracerProvider
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
	if o.TracerProvider == nil {
		o.TracerProvider = noop.NewTracerProvider()
	}
	a := &App{clock: o.Clock, signer: o.Signer, policy: o.Policy, baseURL: o.BaseURL, logger: o.Logger, tracker: o.Tracker}
	if err := a.use(o.Log, o.TracerProvider); err != nil {
		return nil, err
	}
	return a, nil
}

// use reads and writes log.
func (a *App) use(log eventlog.Store, tp trace.TracerProvider) error {
	w, err := kernel.NewWriter(log, Producer, a.clock, tp)
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.log, a.w = log, w
	return nil
}

// load folds the complaint's stream.
func (a *App) load(ctx context.Context, complaintID string) (*domain.State, error) {
	recs, err := a.log.ReadStream(ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		return nil, fmt.Errorf("read complaint %s: %w", complaintID, err)
	}
	return fold(complaintID, recs)
}

// fold folds a complaint's records: kernel.ErrNotFound when there are
// none, kernel.ErrNotReceived when they do not start with its receipt
// (events published past intake for a complaint never accepted).
func fold(complaintID string, recs []eventlog.Record) (*domain.State, error) {
	if err := kernel.Received(recs); err != nil {
		return nil, fmt.Errorf("complaint %s: %w", complaintID, err)
	}
	s := &domain.State{ComplaintID: complaintID}
	for _, r := range recs {
		domain.Evolve(s, r.Event)
	}
	return s, nil
}

// decision is what a command decides on: the complaint's state and, when
// an earlier attempt of this command stored its answer before a conflict
// refused the rest, that stored answer, which the command then concludes.
type decision struct {
	state  *domain.State
	answer *eventsv1.Envelope
}

// execute runs cmd on the complaint's stream through the kernel. It
// returns the events written (none when nothing was left to do) and the
// stream's version after them.
//
// A survey answer is appended with its consequence one event at a time, so
// a writer slipping in between (the Conclude reaction to the answer itself)
// can store the answer and refuse the rest. The answer then stands: instead
// of refusing it as a second one, execute concludes it and reports the
// events the answer was decided with.
func (a *App) execute(ctx context.Context, complaintID string, cmd domain.Command, cause kernel.Cause) ([]*eventsv1.Envelope, uint64, error) {
	var refused []*eventsv1.Envelope // the last refused append that began with an answer
	res, err := kernel.Execute(ctx, a.w, kernel.Command[decision]{
		Name:        reflect.TypeOf(cmd).Name(),
		Stream:      eventlog.ComplaintStream(complaintID),
		ComplaintID: complaintID,
		Cause:       cause,
		Fold: func(recs []eventlog.Record) (decision, error) {
			s, err := fold(complaintID, recs)
			if err != nil {
				return decision{}, err
			}
			d := decision{state: s}
			if len(refused) > 0 {
				d.answer = find(recs, refused[0].GetEventId())
			}
			return d, nil
		},
		Decide: func(d decision, now time.Time) ([]proto.Message, error) {
			if d.answer != nil {
				return domain.Decide(d.state, domain.Conclude{}, now, a.policy)
			}
			return domain.Decide(d.state, cmd, now, a.policy)
		},
		// An answer is the cause of what it leads to (the close or reopen,
		// a return visit): appended with it, they name the answer's event
		// id, which exists only once the answer is stamped. The conclusion
		// of an answer stored by an earlier attempt is caused by that
		// answer, in its correlation, as if its own append had gone
		// through.
		StampEach: func(d decision, envs []*eventsv1.Envelope) {
			switch {
			case d.answer != nil:
				for _, e := range envs {
					e.CausationId, e.CorrelationId = d.answer.GetEventId(), d.answer.GetCorrelationId()
				}
			case len(envs) > 1 && envs[0].GetSurveyAnswered() != nil:
				for _, e := range envs[1:] {
					e.CausationId = envs[0].GetEventId()
				}
			}
		},
		Refused: func(envs []*eventsv1.Envelope) {
			if len(envs) > 0 && envs[0].GetSurveyAnswered() != nil {
				refused = envs
			}
		},
	})
	if err != nil {
		return nil, 0, err
	}
	if res.State.answer != nil {
		return refused, res.Version, nil
	}
	return res.Events, res.Version, nil
}

// find returns the event eventID of recs, or nil.
func find(recs []eventlog.Record, eventID string) *eventsv1.Envelope {
	for _, r := range recs {
		if r.Event.GetEventId() == eventID {
			return r.Event
		}
	}
	return nil
}
