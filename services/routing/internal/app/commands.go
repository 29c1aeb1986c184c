package app

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// Target names the complaint a command is for, and the version the caller
// decided on (0: the latest).
type Target struct {
	ComplaintID     string
	ExpectedVersion uint64
}

// run is a caller's command: a write on the caller's behalf, returning the
// stream's version afterwards.
func (a *Application) run(ctx context.Context, name string, t Target, actor domain.Actor, decide func(c *domain.Complaint, _ time.Time) ([]proto.Message, error)) (uint64, error) {
	res, err := a.write(ctx, name, t, kernel.Cause{Actor: actor.ID}, decide)
	return res.Version, err
}

// OverrideClassification replaces the policy's classification.
func (a *Application) OverrideClassification(ctx context.Context, t Target, actor domain.Actor, cat eventsv1.Category, sev eventsv1.Severity, pri eventsv1.Priority, reason string) (uint64, error) {
	return a.run(ctx, "OverrideClassification", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Override(c, actor, cat, sev, pri, reason)
	})
}

// Reassign moves the complaint to another owner; team "" keeps its team,
// owner "" lets routing pick. It returns the new team and owner.
func (a *Application) Reassign(ctx context.Context, t Target, actor domain.Actor, teamID, owner, reason string) (version uint64, team, newOwner string, err error) {
	version, err = a.run(ctx, "Reassign", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		team = teamID
		if team == "" {
			team = c.Team
		}
		roster, err := a.LoadTeam(ctx, team)
		if err != nil {
			return nil, err
		}
		if roster.Version == 0 {
			roster = nil
		}
		msgs, err := domain.Reassign(c, actor, roster, team, owner, reason, a.view.Load, a.policy)
		if err == nil {
			newOwner = msgs[0].(*eventsv1.ComplaintAssigned).GetOwner()
		}
		return msgs, err
	})
	return version, team, newOwner, err
}

// AcceptAssignment: the owner takes the complaint on.
func (a *Application) AcceptAssignment(ctx context.Context, t Target, actor domain.Actor) (uint64, error) {
	return a.run(ctx, "AcceptAssignment", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.AcceptAssignment(c, actor)
	})
}

// RecordResponse records a response to the customer.
func (a *Application) RecordResponse(ctx context.Context, t Target, actor domain.Actor, ch eventsv1.Channel, summary string) (uint64, error) {
	return a.run(ctx, "RecordResponse", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.RecordResponse(c, actor, ch, summary)
	})
}

// ProposeSolution proposes a solution; it returns the solution id and the
// reviews it needs.
func (a *Application) ProposeSolution(ctx context.Context, t Target, actor domain.Actor, summary string) (uint64, string, []eventsv1.ReviewLevel, error) {
	id := newID()
	var required []eventsv1.ReviewLevel
	v, err := a.run(ctx, "ProposeSolution", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		msgs, err := domain.ProposeSolution(c, actor, a.policy, id, summary)
		if err == nil {
			required = msgs[0].(*eventsv1.SolutionProposed).GetRequiredReviews()
		}
		return msgs, err
	})
	return v, id, required, err
}

// ReviewSolution records one level's verdict.
func (a *Application) ReviewSolution(ctx context.Context, t Target, actor domain.Actor, solutionID string, level eventsv1.ReviewLevel, approved bool, comment string) (uint64, error) {
	return a.run(ctx, "ReviewSolution", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.ReviewSolution(c, actor, a.policy, solutionID, level, approved, comment)
	})
}

// RequestDispatch asks dispatch for a technician; it returns the work order id.
func (a *Application) RequestDispatch(ctx context.Context, t Target, actor domain.Actor, spec *eventsv1.WorkOrderSpec) (uint64, string, error) {
	id := newID()
	v, err := a.run(ctx, "RequestDispatch", t, actor, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return domain.RequestDispatch(c, actor, id, spec, now)
	})
	return v, id, err
}

// RecordRootCause records a 5W1H analysis.
func (a *Application) RecordRootCause(ctx context.Context, t Target, actor domain.Actor, rc domain.RootCause) (uint64, error) {
	return a.run(ctx, "RecordRootCause", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.RecordRootCause(c, actor, rc)
	})
}

// PutOnHold pauses handling.
func (a *Application) PutOnHold(ctx context.Context, t Target, actor domain.Actor, reason eventsv1.HoldReason, note string) (uint64, error) {
	return a.run(ctx, "PutOnHold", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.PutOnHold(c, actor, reason, note)
	})
}

// TakeOffHold resumes handling.
func (a *Application) TakeOffHold(ctx context.Context, t Target, actor domain.Actor) (uint64, error) {
	return a.run(ctx, "TakeOffHold", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.TakeOffHold(c, actor)
	})
}

// Resolve resolves the complaint.
func (a *Application) Resolve(ctx context.Context, t Target, actor domain.Actor, code, summary string) (uint64, error) {
	return a.run(ctx, "Resolve", t, actor, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Resolve(c, actor, a.policy, code, summary)
	})
}
