package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// RunAcceptTimeouts declines, for the technician, every assigned order not
// accepted by its accept-by time, and dispatches it again to someone else.
// It waits on the injected clock for the earliest deadline, and re-plans when
// an order changes. Every instance may run it: the decline is an optimistic
// append, so only one wins. It returns when ctx is done.
func (a *App) RunAcceptTimeouts(ctx context.Context) error {
	for {
		changed := a.view.Changed()
		pending := a.view.Orders(func(o *domain.WorkOrder) bool { return o.Status == domain.StatusAssigned })
		var next time.Time
		for _, o := range pending {
			if next.IsZero() || o.AcceptBy.Before(next) {
				next = o.AcceptBy
			}
		}
		var fire <-chan time.Time
		var timer interface{ Stop() bool }
		if !next.IsZero() {
			t := a.clock.NewTimer(next.Sub(a.clock.Now()))
			fire, timer = t.C(), t
		}
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return nil
		case <-changed:
			if timer != nil {
				timer.Stop()
			}
		case now := <-fire:
			failed := false
			for _, o := range pending {
				if now.Before(o.AcceptBy) {
					continue
				}
				if err := a.declineOnTimeout(ctx, o); err != nil && !errors.Is(err, context.Canceled) {
					a.logger.Error("accept timeout: decline failed", "work_order_id", o.ID, "err", err)
					failed = true
				}
			}
			if failed { // do not spin on a deadline already past: retry a little later
				select {
				case <-ctx.Done():
					return nil
				case <-a.clock.After(retryAfter):
				}
			}
		}
	}
}

// retryAfter spaces out retries of a failed timeout decline.
const retryAfter = 5 * time.Second

// declineOnTimeout is caused by the assignment whose accept-by passed: the
// decline and what settling it writes are its reactions, in its trace.
func (a *App) declineOnTimeout(ctx context.Context, o *domain.WorkOrder) error {
	ctx, by, err := a.causeOfAssignment(ctx, o)
	if err != nil {
		return err
	}
	if _, err := a.onComplaint(ctx, "DeclineOnTimeout", o.ComplaintID, by, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return domain.DeclineOnTimeout(c, o.ID, now)
	}); err != nil {
		return err
	}
	return a.Settle(ctx, o.ComplaintID, o.ID, by)
}

// causeOfAssignment finds the order's last TechnicianAssigned: the cause
// of its timeout, whose trace ctx continues. The read is one per timeout;
// the view keeps orders, not their events.
func (a *App) causeOfAssignment(ctx context.Context, o *domain.WorkOrder) (context.Context, kernel.Cause, error) {
	stream := eventlog.ComplaintStream(o.ComplaintID)
	recs, err := a.log.ReadStream(ctx, stream, 1)
	if err != nil {
		return ctx, kernel.Cause{}, fmt.Errorf("read %s: %w", stream, err)
	}
	rec, ok := lastOf(recs, func(e *eventsv1.Envelope) bool {
		return e.GetTechnicianAssigned().GetWorkOrderId() == o.ID
	})
	if !ok { // the view is ahead of this read: decide without a cause event
		return ctx, a.orderCause("", o.ID), nil
	}
	return kernel.Traced(ctx, rec.Event), kernel.CauseOf(rec.Event, true), nil
}
