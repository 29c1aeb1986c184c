// Package app is routing's application layer: the commands callers send,
// the reactions to other services' events, and the view they read rosters
// and history from. Every write goes through the kernel's command loop
// (libs/kernel): read the stream, decide with the domain, append at the
// version read, re-decide on a conflict.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// Producer is the name routing stamps on its events.
const Producer = "routing"

// Application runs routing's commands and reactions.
type Application struct {
	store  eventlog.Store
	writer *kernel.Writer
	policy *domain.Policy
	view   *View
	log    *slog.Logger
}

// New refuses nil dependencies. tp is the service's tracer provider: every
// command and reaction is a span of it.
func New(store eventlog.Store, c clock.Clock, tp trace.TracerProvider, p *domain.Policy, view *View, log *slog.Logger) (*Application, error) {
	switch {
	case p == nil:
		return nil, errors.New("app: policy: required")
	case view == nil:
		return nil, errors.New("app: view: required")
	}
	w, err := kernel.NewWriter(store, Producer, c, tp)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Application{store: store, writer: w, policy: p, view: view, log: log}, nil
}

// Policy is the classification policy in use.
func (a *Application) Policy() *domain.Policy { return a.policy }

// View is the projection the application reads.
func (a *Application) View() *View { return a.view }

// stamp marks every event routing writes with the policy it decided by.
func (a *Application) stamp(m *eventlog.Meta) { m.PolicyVersion = a.policy.Version }

// Load reads a complaint's stream and folds it: kernel.ErrNotFound when
// it is empty, kernel.ErrNotReceived when it does not start with
// ComplaintReceived.
func (a *Application) Load(ctx context.Context, complaintID string) (*domain.Complaint, error) {
	if err := requireComplaintID(complaintID); err != nil {
		return nil, err
	}
	recs, err := a.store.ReadStream(ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		return nil, fmt.Errorf("read complaint %s: %w", complaintID, err)
	}
	return fold(complaintID, recs)
}

func requireComplaintID(id string) error {
	if id == "" {
		return kernel.Invalid(kernel.Violation{Field: "complaint_id", Rule: "required", Message: "must not be empty"})
	}
	return nil
}

// fold is a complaint's state from its records. Events of a complaint
// never received (published past intake) leave nothing to classify or
// assign.
func fold(complaintID string, recs []eventlog.Record) (*domain.Complaint, error) {
	if err := kernel.Received(recs); errors.Is(err, kernel.ErrNotReceived) {
		first := recs[0].Event
		return nil, fmt.Errorf("complaint_id %q: %w: its stream starts with %s at version %d, not ComplaintReceived",
			complaintID, err, eventlog.TypeOf(first), first.GetVersion())
	} else if err != nil {
		return nil, fmt.Errorf("complaint_id %q: %w", complaintID, err)
	}
	c := &domain.Complaint{ID: complaintID}
	for _, r := range recs {
		c.Evolve(r.Event)
	}
	return c, nil
}

// write is every write to a complaint: the kernel's command loop on its
// stream, with routing's fold and policy stamp. A caller's expected
// version (t.ExpectedVersion, 0: none) that is not the stream's is
// kernel.ErrStale, and so is a conflict after it: the caller decided on
// something out of date.
func (a *Application) write(ctx context.Context, name string, t Target, by kernel.Cause, decide func(c *domain.Complaint, now time.Time) ([]proto.Message, error)) (kernel.Result[*domain.Complaint], error) {
	if err := requireComplaintID(t.ComplaintID); err != nil {
		return kernel.Result[*domain.Complaint]{}, err
	}
	return kernel.Execute(ctx, a.writer, kernel.Command[*domain.Complaint]{
		Name:        name,
		Stream:      eventlog.ComplaintStream(t.ComplaintID),
		ComplaintID: t.ComplaintID,
		Expected:    t.ExpectedVersion,
		Cause:       by,
		Fold:        func(recs []eventlog.Record) (*domain.Complaint, error) { return fold(t.ComplaintID, recs) },
		Decide:      decide,
		Stamp:       a.stamp,
	})
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }
