package app

import (
	"context"
	"time"
)

// retryAfter is how long a deadline waits after it was acted on before it
// fires again: long enough for the tracker to see the close in the log, and
// the retry delay after a failure.
const retryAfter = 30 * time.Second

// RunNoResponseTimers closes unanswered surveys when their time is up, on
// the injected clock, until ctx is done. Deadlines come from the tracker,
// which is rebuilt from the log at start, so a deadline that passed while the
// service was down fires at once. Firing twice is harmless: the decision is
// re-made from the complaint's stream and a close is written once.
func (a *App) RunNoResponseTimers(ctx context.Context) {
	for {
		var fire <-chan time.Time
		var stop func() bool
		if at, ok := a.tracker.Earliest(); ok {
			d := at.Sub(a.clock.Now())
			if d <= 0 {
				a.fireDue(ctx)
				continue
			}
			t := a.clock.NewTimer(d)
			fire, stop = t.C(), t.Stop
		}
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
			}
			return
		case <-a.tracker.Changed():
			if stop != nil {
				stop()
			}
		case <-fire:
			a.fireDue(ctx)
		}
	}
}

func (a *App) fireDue(ctx context.Context) {
	now := a.clock.Now()
	for _, id := range a.tracker.Due(now) {
		if ctx.Err() != nil {
			return
		}
		if err := a.CloseUnanswered(ctx, id); err != nil {
			a.logger.Warn("followup: closing an unanswered survey failed; will retry", "complaint_id", id, "err", err)
		}
		a.tracker.Postpone(id, now.Add(retryAfter))
	}
}
