package anchor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// DefaultInterval is how often a Writer anchors the log by default.
const DefaultInterval = 10 * time.Second

// Writer anchors the log's head in every store, every Interval when the
// head moved, and once more when it stops. It reads only the head, on its
// own goroutine: appends never wait for it. Run only one per log.
type Writer struct {
	Log    eventlog.HeadReader
	Stores []Store
	// Interval between anchors (DefaultInterval when 0).
	Interval time.Duration
	// Signer signs each anchor; nil writes them unsigned.
	Signer Signer
	Clock  clock.Clock  // default clock.Real
	Logger *slog.Logger // default slog.Default()

	last eventlog.Head
}

// Run anchors until ctx is done, then writes a last anchor and returns
// nil. A failed anchor is logged and tried again at the next tick.
func (w *Writer) Run(ctx context.Context) error {
	if w.Clock == nil {
		w.Clock = clock.Real{}
	}
	if w.Logger == nil {
		w.Logger = slog.Default()
	}
	every := w.Interval
	if every <= 0 {
		every = DefaultInterval
	}
	t := w.Clock.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			w.logFailure(w.Write(final))
			return nil
		case <-t.C():
			w.logFailure(w.Write(ctx))
			t.Reset(every)
		}
	}
}

func (w *Writer) logFailure(err error) {
	switch {
	case err == nil:
	case errors.Is(err, ErrLogBehind):
		w.Logger.Error("anchor: the event log lost what its anchor vouches for; not anchoring it", "error", err)
	default:
		w.Logger.Warn("anchor: could not anchor the event log; trying again at the next tick", "error", err)
	}
}

// Write anchors the head now, unless it has not moved since the last
// anchor this writer wrote. It first checks the log against the stores'
// latest anchors: a log that lost anchored events must never be anchored
// (that would vouch for the loss), so it returns the *Mismatch instead.
func (w *Writer) Write(ctx context.Context) error {
	if err := Check(ctx, w.Log, w.Stores...); err != nil {
		return err
	}
	head, err := w.Log.Head(ctx)
	if err != nil {
		return err
	}
	if head.Position == 0 || (head.Position == w.last.Position && head.Messages == w.last.Messages) {
		return nil
	}
	clk := w.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	a := Of(head, clk.Now())
	if w.Signer != nil {
		if a.KeyID, a.Signature, err = w.Signer.Sign(a.Payload()); err != nil {
			return err
		}
	}
	var errs []error
	for _, s := range w.Stores {
		errs = append(errs, s.Save(ctx, a))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	w.last = head
	return nil
}
