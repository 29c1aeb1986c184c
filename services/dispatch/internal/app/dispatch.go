package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// Outcome says what dispatching an order came to.
type Outcome struct {
	TechnicianID string // set when assigned
	Unassignable bool
	Reason       string
}

// OpenWorkOrder opens the order routing asked for (idempotent by id).
func (a *App) OpenWorkOrder(ctx context.Context, complaintID, workOrderID string, spec *eventsv1.WorkOrderSpec, by kernel.Cause) error {
	_, err := a.onComplaint(ctx, "OpenWorkOrder", complaintID, by, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.OpenWorkOrder(c, workOrderID, spec, "")
	})
	return err
}

// Dispatch finds, books and assigns a technician for an unassigned order,
// or marks it unassignable. It is idempotent: an order already assigned is
// left alone, and a booking left by a dispatcher that crashed before
// assigning is completed into the assignment rather than duplicated.
func (a *App) Dispatch(ctx context.Context, complaintID, workOrderID string, by kernel.Cause) (Outcome, error) {
	c, err := a.loadComplaint(ctx, complaintID, by)
	if err != nil {
		return Outcome{}, err
	}
	o := c.Order(workOrderID)
	if o == nil {
		return Outcome{}, fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotFound)
	}
	if !o.Status.Unassigned() {
		return Outcome{TechnicianID: o.TechnicianID}, nil
	}
	now := a.clock.Now()
	res := a.view.Match(a.cfg.Policy, domain.MatchRequest{Spec: o.Spec, Exclude: o.Declined, Now: now})
	// A booking already held for this order (a crash between the two
	// appends) goes first: completing it is cheaper than booking again.
	if held := a.heldFor(workOrderID, o.Declined); held != "" {
		res.Ranked = append([]domain.Scored{{TechnicianID: held, Eligible: true, Day: domain.Day(nil, now), Arrival: now}}, res.Ranked...)
	}
	for _, s := range res.Ranked {
		ok, err := a.book(ctx, s.TechnicianID, workOrderID, complaintID, s.Day, by)
		if err != nil {
			return Outcome{}, err
		}
		if !ok {
			continue
		}
		out, err := a.assign(ctx, complaintID, workOrderID, s, res, by)
		if err != nil || !out.retry {
			return out.Outcome, err
		}
	}
	reason := res.WhyNone()
	_, err = a.onComplaint(ctx, "MarkUnassignable", complaintID, by, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.MarkUnassignable(c, workOrderID, reason, res.Explain(a.cfg.Policy.MaxExplained))
	})
	if errors.Is(err, domain.ErrWrongState) {
		return a.currentOutcome(workOrderID), nil // another dispatcher assigned it meanwhile
	}
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Unassignable: true, Reason: reason}, nil
}

func (a *App) currentOutcome(workOrderID string) Outcome {
	o := a.view.Order(workOrderID)
	if o == nil {
		return Outcome{}
	}
	return Outcome{TechnicianID: o.TechnicianID, Unassignable: o.Status == domain.StatusUnassignable}
}

// heldFor returns a technician (per the view) holding a booking for the
// order who did not decline it.
func (a *App) heldFor(workOrderID string, declined []string) string {
	for _, h := range a.view.Holders(workOrderID) {
		if slices.Contains(declined, h.TechnicianID) {
			return ""
		}
		return h.TechnicianID
	}
	return ""
}

// book takes a slot on the technician's stream with the version just read;
// on a conflict it re-reads and re-decides, so two dispatchers can never
// both take the last slot. It reports false when the technician is full.
func (a *App) book(ctx context.Context, technicianID, workOrderID, complaintID, day string, by kernel.Cause) (bool, error) {
	_, err := a.onTechnician(ctx, "BookJob", technicianID, by, func(t *domain.Technician) ([]proto.Message, error) {
		return domain.BookJob(t, workOrderID, complaintID, day)
	})
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, domain.ErrNoCapacity), errors.Is(err, domain.ErrWrongState), errors.Is(err, domain.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// assign records the assignment of a booked technician. If the order was
// taken meanwhile (another instance assigned it, or it was cancelled), the
// booking is released.
func (a *App) assign(ctx context.Context, complaintID, workOrderID string, s domain.Scored, res domain.MatchResult, by kernel.Cause) (assigned, error) {
	acceptBy := a.clock.Now().Add(a.cfg.AcceptTimeout)
	c, err := a.onComplaint(ctx, "Assign", complaintID, by, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Assign(c, workOrderID, s.TechnicianID, res.Explain(a.cfg.Policy.MaxExplained), res.WhyChosen(s), acceptBy)
	})
	if err != nil && !errors.Is(err, domain.ErrWrongState) {
		return assigned{}, err
	}
	o := c.Order(workOrderID)
	if o.Status.Holding() && o.TechnicianID == s.TechnicianID {
		return assigned{Outcome: Outcome{TechnicianID: s.TechnicianID}}, nil
	}
	if err := a.release(ctx, s.TechnicianID, workOrderID, domain.ReleaseReassigned, by); err != nil {
		return assigned{}, err
	}
	return assigned{
		Outcome: Outcome{TechnicianID: o.TechnicianID, Unassignable: o.Status == domain.StatusUnassignable},
		retry:   o.Status == domain.StatusOpen, // this technician may not take it: try the next
	}, nil
}

type assigned struct {
	Outcome
	retry bool
}

// release gives a work order's slot back (nothing if it holds none).
func (a *App) release(ctx context.Context, technicianID, workOrderID, reason string, by kernel.Cause) error {
	_, err := a.onTechnician(ctx, "ReleaseJob", technicianID, by, func(t *domain.Technician) ([]proto.Message, error) {
		return domain.ReleaseJob(t, workOrderID, reason), nil
	})
	return err
}

// releaseReason is why a booking for an order in status s is released; ""
// when the holder should keep it.
func releaseReason(s domain.Status) string {
	switch s {
	case domain.StatusCompleted:
		return domain.ReleaseCompleted
	case domain.StatusFailed:
		return domain.ReleaseFailed
	case domain.StatusCancelled:
		return domain.ReleaseCancelled
	case domain.StatusResolvedRemotely:
		return domain.ReleaseResolved
	case domain.StatusEscalated:
		return domain.ReleaseEscalated
	}
	return ""
}

// Settle brings the bookings of one order in line with the order after
// any change of it: an open order is dispatched, a finished order releases
// its technician's slot, a decliner's or a stale booking is released.
// Idempotent; the bus calls it for every dispatch event, commands at once.
func (a *App) Settle(ctx context.Context, complaintID, workOrderID string, by kernel.Cause) error {
	// The order is read fresh, not from the view: a lagging view would keep
	// a finished order's booking.
	c, err := a.loadComplaint(ctx, complaintID, by)
	if err != nil {
		return err
	}
	o := c.Order(workOrderID)
	if o == nil {
		return fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotFound)
	}
	if o.Status == domain.StatusOpen {
		if _, err := a.Dispatch(ctx, complaintID, workOrderID, by); err != nil {
			return err
		}
		if o = a.view.Order(workOrderID); o == nil {
			return fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotFound)
		}
	}
	now := a.clock.Now()
	for _, h := range a.view.Holders(workOrderID) {
		reason := releaseReason(o.Status)
		switch {
		case reason != "":
		case o.Status.Holding() && h.TechnicianID == o.TechnicianID:
			continue // the holder keeps it
		case o.Status.Holding():
			reason = domain.ReleaseReassigned
		case slices.Contains(o.Declined, h.TechnicianID):
			reason = domain.ReleaseDeclined
		case now.Sub(h.Booking.At) >= a.cfg.ReconcileGrace:
			reason = domain.ReleaseReconciled
		default:
			continue // a live dispatcher may be about to assign it
		}
		if err := a.release(ctx, h.TechnicianID, workOrderID, reason, by); err != nil {
			return err
		}
	}
	return nil
}

// Reconcile repairs what a crash between the two appends of a dispatch can
// leave: a booking whose order has no assignment to that technician. Once a
// booking is older than the grace period (so no live dispatcher is still
// between the appends) an open order is completed into the assignment and
// any other booking is released. Run at start and periodically. What it
// writes is caused by the booking it repairs.
func (a *App) Reconcile(ctx context.Context) error {
	var errs []error
	// Only the bookings past the grace period are copied out of the view,
	// not every technician.
	for _, h := range a.view.BookingsMadeBy(a.clock.Now().Add(-a.cfg.ReconcileGrace)) {
		b := h.Booking
		o := a.view.Order(b.WorkOrderID)
		if o != nil && o.Status.Holding() && o.TechnicianID == h.TechnicianID {
			continue
		}
		bctx, by, err := a.causeOfBooking(ctx, h.TechnicianID, b)
		if err == nil {
			err = a.Settle(bctx, b.ComplaintID, b.WorkOrderID, by)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reconcile work order %s: %w", b.WorkOrderID, err))
		}
	}
	return errors.Join(errs...)
}

// causeOfBooking is the cause of repairing a technician's booking for a
// work order: the booking event, whose trace ctx continues. It reads the
// stream from the booking's version on, looking for it only after the
// position the view knew before it (b.After), so neither the read nor the
// store's scan goes through the technician's history. A
// booking written before technician events carried a correlation takes the
// order's.
func (a *App) causeOfBooking(ctx context.Context, technicianID string, b domain.Booking) (context.Context, kernel.Cause, error) {
	stream := technicianStream(technicianID)
	recs, err := eventlog.ReadTail(ctx, a.log, stream, max(b.Version, 1), b.After)
	if err != nil {
		return ctx, kernel.Cause{}, fmt.Errorf("read %s: %w", stream, err)
	}
	rec, ok := lastOf(recs, func(e *eventsv1.Envelope) bool {
		return e.GetTechnicianJobBooked().GetWorkOrderId() == b.WorkOrderID
	})
	if !ok { // the view saw a booking this read does not hold: settle it anyway
		return ctx, a.orderCause("", b.WorkOrderID), nil
	}
	by := kernel.CauseOf(rec.Event, false)
	if c := a.view.CorrelationOf(b.WorkOrderID); rec.Event.GetCorrelationId() == "" && c != "" {
		by.CorrelationID = c
	}
	return kernel.Traced(ctx, rec.Event), by, nil
}

// lastOf returns the last record whose event matches.
func lastOf(recs []eventlog.Record, match func(*eventsv1.Envelope) bool) (eventlog.Record, bool) {
	for i := len(recs) - 1; i >= 0; i-- {
		if match(recs[i].Event) {
			return recs[i], true
		}
	}
	return eventlog.Record{}, false
}
