// Package app runs dispatch's use cases: every write is a kernel.Execute on
// a technician's or a complaint's stream (fold, decide, append with the
// version read, re-read and re-decide on a conflict). Matching reads the
// in-memory View; booking reads the technician's stream up to its last
// version (the view's copy and the tail after it) so capacity is never
// exceeded, whatever the view says.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
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

// Deps are what the use cases run on; every one is required.
type Deps struct {
	Log   eventlog.Store
	Clock clock.Clock
	// TracerProvider is the service's own: every decision is a span of it.
	TracerProvider trace.TracerProvider
	View           *View
	Sealer         Sealer
	Logger         *slog.Logger
	// NewID names follow-on work orders.
	NewID func() string
}

// App holds the use cases of dispatch.
type App struct {
	log    eventlog.Store
	clock  clock.Clock
	w      *kernel.Writer
	view   *View
	cfg    Config
	sealer Sealer
	logger *slog.Logger
	newID  func() string
}

// New builds the use cases.
func New(d Deps, cfg Config) (*App, error) {
	switch {
	case d.View == nil:
		return nil, errors.New("app: view is required")
	case d.Sealer == nil:
		return nil, errors.New("app: sealer is required")
	case d.Logger == nil:
		return nil, errors.New("app: logger is required")
	case d.NewID == nil:
		return nil, errors.New("app: id generator is required")
	}
	w, err := kernel.NewWriter(d.Log, Producer, d.Clock, d.TracerProvider)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return &App{log: d.Log, clock: d.Clock, w: w, view: d.View, cfg: cfg, sealer: d.Sealer, logger: d.Logger, newID: d.NewID}, nil
}

// View is the read model the app keeps up to date.
func (a *App) View() *View { return a.view }

// actorOf is who a cause says acts: its actor, or dispatch itself for a
// reaction (as the kernel stamps it).
func actorOf(by kernel.Cause) string {
	if by.Actor == "" {
		return Producer
	}
	return by.Actor
}

// orderCause is the cause of a command on a work order by actor: it
// continues the correlation of the event that opened the order, when the
// view knows it (else the kernel starts one).
func (a *App) orderCause(actor, workOrderID string) kernel.Cause {
	return kernel.Cause{Actor: actor, CorrelationID: a.view.CorrelationOf(workOrderID)}
}

// foldComplaint folds a complaint's records (and refreshes the view with
// them). A complaint never received (its events published past intake)
// gets no technician: the refusal is unusable, and the bus dead-letters
// the event.
func (a *App) foldComplaint(complaintID string) func([]eventlog.Record) (*domain.Complaint, error) {
	return func(recs []eventlog.Record) (*domain.Complaint, error) {
		if err := kernel.Received(recs); err != nil {
			if errors.Is(err, kernel.ErrNotReceived) {
				return nil, fmt.Errorf("%w: complaint %s: %w", ErrUnusable, complaintID, err)
			}
			return nil, fmt.Errorf("complaint %s: %w", complaintID, err)
		}
		c := &domain.Complaint{ID: complaintID, Orders: map[string]*domain.WorkOrder{}}
		for _, r := range recs {
			c = domain.EvolveComplaint(c, complaintID, r.Event.GetVersion(), r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
		}
		a.view.PutComplaint(c, Correlations(recs))
		return c, nil
	}
}

// loadComplaint reads a complaint to decide what to do next, outside a
// write. by's event, when on this stream, must be in the read: a shorter
// read could look like nothing to do (eventlog.Reached).
func (a *App) loadComplaint(ctx context.Context, complaintID string, by kernel.Cause) (*domain.Complaint, error) {
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := a.log.ReadStream(ctx, stream, 1)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	if err := eventlog.Reached(stream, eventlog.LastVersion(recs), by.Version); err != nil {
		return nil, err
	}
	return a.foldComplaint(complaintID)(recs)
}

func technicianStream(id string) eventlog.StreamID {
	return eventlog.Stream(eventlog.KindTechnician, id)
}

// foldTechnician folds a technician's whole stream; a technician never
// registered is an empty one, for RegisterTechnician. Commands resume from
// the view instead (resumeTechnician): this is their fallback. The view is
// not handed the fold here: a command goes on to evolve it.
func foldTechnician(id string) func([]eventlog.Record) (*domain.Technician, error) {
	return func(recs []eventlog.Record) (*domain.Technician, error) {
		t := &domain.Technician{ID: id}
		for _, r := range recs {
			t, _ = evolveTechnician(t, r)
		}
		return t, nil
	}
}

// resumeTechnician starts a technician's command from the view's copy, its
// version and the log position of that version, so only the events the
// view has not seen are read, and looked for only after that position: a
// technician's stream holds every job they ever had.
func (a *App) resumeTechnician(id string) func() (*domain.Technician, uint64, uint64) {
	return func() (*domain.Technician, uint64, uint64) {
		if t := a.view.Technician(id); t != nil { // a copy: the command may evolve it
			return t, t.Version, t.Position
		}
		return &domain.Technician{ID: id}, 0, 0
	}
}

// evolveTechnician applies one record to a technician the command owns.
func evolveTechnician(t *domain.Technician, r eventlog.Record) (*domain.Technician, error) {
	t = domain.EvolveTechnician(t, r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
	t.Position = r.Position
	return t, nil
}

// loadTechnician reads a technician outside a write: the view's copy and
// what its stream holds after it, or the whole stream when that does not
// follow (see kernel.Command.Resume).
func (a *App) loadTechnician(ctx context.Context, id string) (*domain.Technician, error) {
	stream := technicianStream(id)
	t, from, after := a.resumeTechnician(id)()
	tail, err := eventlog.ReadTail(ctx, a.log, stream, from+1, after)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	if len(tail) > 0 && tail[0].Event.GetVersion() != from+1 {
		recs, err := a.log.ReadStream(ctx, stream, 1)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", stream, err)
		}
		t, _ = foldTechnician(id)(recs)
		tail = recs
	} else {
		for _, r := range tail {
			t, _ = evolveTechnician(t, r)
		}
	}
	if len(tail) > 0 {
		a.view.PutTechnician(t)
	}
	return t, nil
}

// onTechnician decides the command name on a technician as of their
// stream's last version and appends (kernel.Execute), returning the
// technician after it. It resumes from the view and reads only the
// stream's tail, and folds what it appended onto the technician decided
// on rather than reading the stream again, so a command costs what
// changed, not the technician's years of jobs. Technician events name no
// complaint, as they always have: a booking says which in its payload.
func (a *App) onTechnician(ctx context.Context, name, id string, by kernel.Cause, decide func(*domain.Technician) ([]proto.Message, error)) (*domain.Technician, error) {
	by.Version = 0 // the cause is on a complaint's stream, never this one
	res, err := kernel.Execute(ctx, a.w, kernel.Command[*domain.Technician]{
		Name: name, Stream: technicianStream(id), Cause: by,
		Resume: a.resumeTechnician(id), Evolve: evolveTechnician, Fold: foldTechnician(id),
		Decide: func(t *domain.Technician, _ time.Time) ([]proto.Message, error) { return decide(t) },
	})
	t := res.State
	if t == nil {
		return nil, err
	}
	// t is the command's own (a copy of the view's, or a fresh fold), so
	// the appended events are folded onto it in place.
	for _, e := range res.Events {
		t = domain.EvolveTechnician(t, e.GetOccurredAt().AsTime(), eventlog.Payload(e))
	}
	// Only the last appended event's position is known; those before it
	// keep the one before the append, earlier than theirs, which is safe.
	if len(res.Events) > 0 && res.Position > 0 {
		t.Position = res.Position
	}
	if len(res.Events) > 0 && t.Version != res.Version {
		// A backend stored what this instance did not decide (only
		// duplicates of a retried batch can do that): read it.
		return a.loadTechnician(ctx, id)
	}
	if t.Registered() {
		a.view.PutTechnician(t)
	}
	return t, err
}

// onComplaint decides the command name on a fresh fold of a complaint and
// appends (kernel.Execute), returning the complaint after it (on a refusal,
// the one decided on).
func (a *App) onComplaint(ctx context.Context, name, complaintID string, by kernel.Cause, decide func(*domain.Complaint, time.Time) ([]proto.Message, error)) (*domain.Complaint, error) {
	res, err := kernel.Execute(ctx, a.w, kernel.Command[*domain.Complaint]{
		Name: name, Stream: eventlog.ComplaintStream(complaintID), ComplaintID: complaintID, Cause: by,
		Fold: a.foldComplaint(complaintID), Decide: decide,
	})
	if err != nil || len(res.Events) == 0 {
		return res.State, err
	}
	return a.loadComplaint(ctx, complaintID, kernel.Cause{Version: res.Version})
}
