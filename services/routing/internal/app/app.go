// Package app is routing's application layer: command handlers that load a
// stream, decide with the domain, and append with the expected version
// (re-reading and re-deciding on a conflict), the reactions to other
// services' events, and the view they read rosters and history from.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// Producer is the name routing stamps on its events.
const Producer = "routing"

// maxAttempts bounds the re-read/re-decide loop on concurrent appends.
const maxAttempts = 8

// Application runs routing's commands and reactions.
type Application struct {
	store  eventlog.Store
	clock  clock.Clock
	policy *domain.Policy
	view   *View
	log    *slog.Logger
}

// New refuses nil dependencies.
func New(store eventlog.Store, c clock.Clock, p *domain.Policy, view *View, log *slog.Logger) (*Application, error) {
	switch {
	case store == nil:
		return nil, errors.New("app: store: required")
	case c == nil:
		return nil, errors.New("app: clock: required")
	case p == nil:
		return nil, errors.New("app: policy: required")
	case view == nil:
		return nil, errors.New("app: view: required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Application{store: store, clock: c, policy: p, view: view, log: log}, nil
}

// Policy is the classification policy in use.
func (a *Application) Policy() *domain.Policy { return a.policy }

// View is the projection the application reads.
func (a *Application) View() *View { return a.view }

// cause is the event a reaction answers, for correlation and causation.
type cause struct {
	eventID, correlationID string
	// version is the event's version when it is on the complaint's own
	// stream: a read of the complaint must reach it (eventlog.Reached).
	version uint64
}

// Load reads a complaint's stream and folds it; ErrNotFound when empty or
// when it does not start with ComplaintReceived.
func (a *Application) Load(ctx context.Context, complaintID string) (*domain.Complaint, error) {
	if complaintID == "" {
		return nil, &domain.InvalidError{Violations: []domain.Violation{{Field: "complaint_id", Rule: "required", Message: "must not be empty"}}}
	}
	recs, err := a.store.ReadStream(ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		return nil, fmt.Errorf("read complaint %s: %w", complaintID, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("complaint_id %q: %w", complaintID, domain.ErrNotFound)
	}
	if first := recs[0].Event; eventlog.TypeOf(first) != "ComplaintReceived" {
		// Events of a complaint never received (published past intake):
		// nothing to classify or assign.
		return nil, fmt.Errorf("complaint_id %q: %w: its stream starts with %s at version %d, not ComplaintReceived",
			complaintID, domain.ErrNotFound, eventlog.TypeOf(first), first.GetVersion())
	}
	c := &domain.Complaint{ID: complaintID}
	for _, r := range recs {
		c.Evolve(r.Event)
	}
	return c, nil
}

// execute is every write to a complaint: load, check the caller's expected
// version (0: none), decide, append at the version read. On a conflict it
// re-reads and re-decides, unless the caller stated a version, which is then
// stale. It returns the stream's version afterwards.
func (a *Application) execute(ctx context.Context, complaintID string, expected uint64, actor domain.Actor, by cause, decide func(c *domain.Complaint) ([]proto.Message, error)) (uint64, error) {
	res, err := a.write(ctx, complaintID, expected, actor, by, decide)
	return res.Version, err
}

// write is execute returning where the events landed (Position 0 when
// nothing was appended).
func (a *Application) write(ctx context.Context, complaintID string, expected uint64, actor domain.Actor, by cause, decide func(c *domain.Complaint) ([]proto.Message, error)) (eventlog.AppendResult, error) {
	var none eventlog.AppendResult
	for attempt := 1; ; attempt++ {
		c, err := a.Load(ctx, complaintID)
		if err != nil {
			return none, err
		}
		if err := eventlog.Reached(eventlog.ComplaintStream(complaintID), c.Version, by.version); err != nil {
			return none, err // deciding on it could find nothing to do: the bus retries
		}
		if expected != 0 && expected != c.Version {
			return none, fmt.Errorf("expected_version %d: %w: the complaint is at version %d", expected, domain.ErrStaleVersion, c.Version)
		}
		read := c.Version
		msgs, err := decide(c)
		if err != nil || len(msgs) == 0 {
			return eventlog.AppendResult{Version: read}, err
		}
		envs, err := a.envelopes(ctx, complaintID, actor, by, msgs)
		if err != nil {
			return none, err
		}
		res, err := a.store.Append(ctx, eventlog.ComplaintStream(complaintID), read, envs...)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, eventlog.ErrConflict) {
			return none, fmt.Errorf("append to complaint %s: %w", complaintID, err)
		}
		if expected != 0 {
			return none, fmt.Errorf("expected_version %d: %w: the complaint changed meanwhile", expected, domain.ErrStaleVersion)
		}
		if attempt == maxAttempts {
			return none, fmt.Errorf("complaint %s: gave up after %d conflicting appends: %w", complaintID, attempt, err)
		}
	}
}

// envelopes wraps decided events with routing's metadata: the actor, the
// policy version, causation and trace context.
func (a *Application) envelopes(ctx context.Context, complaintID string, actor domain.Actor, by cause, msgs []proto.Message) ([]*eventsv1.Envelope, error) {
	carrier := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, carrier)
	corr := by.correlationID
	if corr == "" {
		corr = uuid.NewString()
	}
	meta := eventlog.Meta{
		ComplaintID: complaintID, Producer: Producer, Actor: actor.ID,
		CorrelationID: corr, CausationID: by.eventID,
		Traceparent: carrier.Get("traceparent"), Tracestate: carrier.Get("tracestate"),
		PolicyVersion: a.policy.Version, OccurredAt: a.clock.Now(),
	}
	envs := make([]*eventsv1.Envelope, 0, len(msgs))
	for _, m := range msgs {
		e, err := eventlog.NewEvent(meta, m)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e)
	}
	return envs, nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
