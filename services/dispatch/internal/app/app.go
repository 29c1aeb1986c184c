// Package app runs dispatch's use cases: it loads a technician or a
// complaint by folding its stream, asks the domain to decide, and appends
// the events with the version it read (re-reading and re-deciding on a
// conflict). Matching reads the in-memory View; booking re-reads the
// technician's stream so capacity is never exceeded, whatever the view says.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// Producer is the name dispatch signs its events with.
const Producer = "dispatch"

// Schedules resolves a technician's calendar id to their working time.
type Schedules interface {
	Schedule(calendarID string) domain.Schedule
	// Known reports whether the calendar id exists ("" is the default).
	Known(calendarID string) bool
}

// Sealer seals personal data (the signer's name) with the customer's key.
type Sealer interface {
	Seal(ctx context.Context, customerRef string, pd *eventsv1.PersonalData) (*eventsv1.SealedPersonalData, error)
}

// Config are the use cases' settings.
type Config struct {
	// AcceptTimeout is how long an assigned technician has to accept before
	// the order is declined for them and dispatched again.
	AcceptTimeout time.Duration
	// FollowOnOnSite and FollowOnRemote are the due times of follow-on
	// orders (domain.md §4: hardware on site within 24 h, software 48 h).
	FollowOnOnSite time.Duration
	FollowOnRemote time.Duration
	// ReconcileGrace is how old a booking without an assignment must be
	// before reconciliation completes or releases it (a dispatcher may be
	// between the two appends).
	ReconcileGrace time.Duration
	Policy         domain.MatchPolicy
	Checklists     domain.Checklists
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		AcceptTimeout: 10 * time.Minute, FollowOnOnSite: 24 * time.Hour, FollowOnRemote: 48 * time.Hour,
		ReconcileGrace: time.Minute, Policy: domain.DefaultMatchPolicy(), Checklists: domain.DefaultChecklists(),
	}
}

// App holds the use cases of dispatch.
type App struct {
	log    eventlog.Store
	clock  clock.Clock
	view   *View
	cfg    Config
	sealer Sealer
	logger *slog.Logger
	newID  func() string
}

// New builds the use cases; every dependency is required.
func New(log eventlog.Store, clk clock.Clock, view *View, sealer Sealer, cfg Config, logger *slog.Logger, newID func() string) (*App, error) {
	switch {
	case log == nil:
		return nil, errors.New("app: event log is required")
	case clk == nil:
		return nil, errors.New("app: clock is required")
	case view == nil:
		return nil, errors.New("app: view is required")
	case sealer == nil:
		return nil, errors.New("app: sealer is required")
	case logger == nil:
		return nil, errors.New("app: logger is required")
	case newID == nil:
		return nil, errors.New("app: id generator is required")
	}
	return &App{log: log, clock: clk, view: view, cfg: cfg, sealer: sealer, logger: logger, newID: newID}, nil
}

// View is the read model the app keeps up to date.
func (a *App) View() *View { return a.view }

// Cause is what led to an append: the actor, and the event that caused it
// (for correlation and causation ids).
type Cause struct {
	actor       string
	correlation string
	causation   string
	// version of the triggering event on its complaint's stream: a read
	// of that complaint must reach it (eventlog.Reached).
	version uint64
}

// ByActor is a cause with no triggering event: a command of actor.
func ByActor(actor string) Cause { return Cause{actor: actor} }

func (c Cause) after(rec eventlog.Record) Cause {
	c.causation = rec.Event.GetEventId()
	c.correlation = rec.Event.GetCorrelationId()
	if eventlog.StreamID(rec.Event.GetStreamId()).Kind() == eventlog.KindComplaint {
		c.version = rec.Event.GetVersion()
	}
	if c.correlation == "" {
		c.correlation = c.causation
	}
	return c
}

// append wraps payloads in envelopes and appends them at expected.
func (a *App) append(ctx context.Context, stream eventlog.StreamID, complaintID string, expected uint64, by Cause, payloads []proto.Message) error {
	carrier := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, carrier)
	meta := eventlog.Meta{
		ComplaintID: complaintID, Producer: Producer, Actor: by.actor, CorrelationID: by.correlation, CausationID: by.causation,
		Traceparent: carrier.Get("traceparent"), Tracestate: carrier.Get("tracestate"), OccurredAt: a.clock.Now(),
	}
	envs := make([]*eventsv1.Envelope, len(payloads))
	for i, p := range payloads {
		e, err := eventlog.NewEvent(meta, p)
		if err != nil {
			return err
		}
		envs[i] = e
	}
	if _, err := a.log.Append(ctx, stream, expected, envs...); err != nil {
		return fmt.Errorf("append to %s: %w", stream, err)
	}
	return nil
}

// loadComplaint folds a complaint's stream (and refreshes the view with it).
// by's triggering event, when on this stream, must be in the read: a
// shorter read could look like nothing to do (eventlog.Reached).
func (a *App) loadComplaint(ctx context.Context, complaintID string, by Cause) (*domain.Complaint, error) {
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := a.log.ReadStream(ctx, stream, 1)
	if err != nil {
		return nil, fmt.Errorf("read complaint stream: %w", err)
	}
	if err := eventlog.Reached(stream, eventlog.LastVersion(recs), by.version); err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%w: complaint %s", domain.ErrNotFound, complaintID)
	}
	if recs[0].Event.GetComplaintReceived() == nil {
		// Events of a complaint never received (published past intake):
		// no technician is sent for it. The bus dead-letters the event.
		return nil, fmt.Errorf("%w: %w: complaint %s was never received: its stream starts with %s",
			ErrUnusable, domain.ErrNotFound, complaintID, recs[0].Event.GetType())
	}
	c := &domain.Complaint{ID: complaintID, Orders: map[string]*domain.WorkOrder{}}
	for _, r := range recs {
		c = domain.EvolveComplaint(c, complaintID, r.Event.GetVersion(), r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
	}
	a.view.PutComplaint(c)
	return c, nil
}

// loadTechnician folds a technician's stream (and refreshes the view).
func (a *App) loadTechnician(ctx context.Context, id string) (*domain.Technician, error) {
	recs, err := a.log.ReadStream(ctx, eventlog.Stream(eventlog.KindTechnician, id), 1)
	if err != nil {
		return nil, fmt.Errorf("read technician stream: %w", err)
	}
	var t *domain.Technician
	for _, r := range recs {
		t = domain.EvolveTechnician(t, r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
	}
	if t == nil {
		return &domain.Technician{ID: id}, nil
	}
	a.view.PutTechnician(t)
	return t, nil
}

// maxAttempts bounds re-read/re-decide loops on conflicts; contention on one
// stream beyond this is reported, and the bus retries the message.
const maxAttempts = 20

// onTechnician decides on a fresh fold of a technician and appends.
func (a *App) onTechnician(ctx context.Context, id string, by Cause, decide func(*domain.Technician) ([]proto.Message, error)) (*domain.Technician, error) {
	for range maxAttempts {
		t, err := a.loadTechnician(ctx, id)
		if err != nil {
			return nil, err
		}
		evs, err := decide(t)
		if err != nil || len(evs) == 0 {
			return t, err
		}
		err = a.append(ctx, eventlog.Stream(eventlog.KindTechnician, id), "", t.Version, by, evs)
		if errors.Is(err, eventlog.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return a.loadTechnician(ctx, id)
	}
	return nil, fmt.Errorf("technician %s: %w after %d attempts", id, eventlog.ErrConflict, maxAttempts)
}

// onComplaint decides on a fresh fold of a complaint and appends.
func (a *App) onComplaint(ctx context.Context, complaintID string, by Cause, decide func(*domain.Complaint, time.Time) ([]proto.Message, error)) (*domain.Complaint, error) {
	for range maxAttempts {
		c, err := a.loadComplaint(ctx, complaintID, by)
		if err != nil {
			return nil, err
		}
		evs, err := decide(c, a.clock.Now())
		if err != nil || len(evs) == 0 {
			return c, err
		}
		err = a.append(ctx, eventlog.ComplaintStream(complaintID), complaintID, c.Version, by, evs)
		if errors.Is(err, eventlog.ErrConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return a.loadComplaint(ctx, complaintID, by)
	}
	return nil, fmt.Errorf("complaint %s: %w after %d attempts", complaintID, eventlog.ErrConflict, maxAttempts)
}
