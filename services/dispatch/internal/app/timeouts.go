package app

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

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

func (a *App) declineOnTimeout(ctx context.Context, o *domain.WorkOrder) error {
	by := ByActor("system")
	if _, err := a.onComplaint(ctx, o.ComplaintID, by, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return domain.DeclineOnTimeout(c, o.ID, now)
	}); err != nil {
		return err
	}
	return a.Settle(ctx, o.ComplaintID, o.ID, by)
}
