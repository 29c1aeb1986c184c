package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A ComplaintResolved of a complaint never received starts no feedback
// clock: slaclock appends nothing, and Handle does not fail (Rebuild and
// Follow would stop or retry forever).
func TestOrphanComplaintGetsNoClocks(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	a := newApp(t, store, clk, Partition{})
	ctx := context.Background()
	stream := eventlog.ComplaintStream("orphan-1")
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "orphan-1", Producer: "routing", Actor: "system", OccurredAt: t0}, &ev.ComplaintResolved{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, stream, 0, e); err != nil {
		t.Fatal(err)
	}
	if err := a.Handle(ctx, "orphan-1"); err != nil {
		t.Fatalf("Handle(orphan) = %v, want nil", err)
	}
	if err := a.Rebuild(ctx); err != nil {
		t.Fatalf("Rebuild over an orphan: %v", err)
	}
	recs, err := store.ReadStream(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 {
		t.Fatalf("orphan stream holds %d events: slaclock acted on it", len(recs))
	}
	if _, _, err := a.Clocks(ctx, "orphan-1", time.Time{}); !errors.Is(err, kernel.ErrNotReceived) {
		t.Fatalf("Clocks(orphan) = %v, want kernel.ErrNotReceived", err)
	}
}
