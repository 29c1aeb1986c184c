package checkpoint_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// positions is a view that records what it applied.
type positions struct {
	mu  sync.Mutex
	got []uint64
}

func (p *positions) Apply(_ context.Context, r eventlog.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, r.Position)
	return nil
}
func (p *positions) Snapshot() ([]byte, error)    { return []byte("x"), nil }
func (p *positions) Restore(uint64, []byte) error { return nil }

func (p *positions) applied() []uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// With a Verifier, a view never applies a forged event, neither while
// catching up nor while following: it is quarantined (recorded with its
// reason) and the view goes on past it.
func TestAViewNeverAppliesAForgedEvent(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	routing := signingtest.Signer(t, "routing-1", "routing")
	dispatch := signingtest.Signer(t, "dispatch-1", "dispatch")
	signed, err := jsstore.New(ctx, r.js, jsstore.Config{Signer: routing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = signed.Close() })
	type quarantine struct {
		reader string
		pos    uint64
		reason string
	}
	var mu sync.Mutex
	var recorded []quarantine
	v, err := eventlog.NewVerifier(signed, eventlog.VerifierOptions{Keys: signingtest.Keyring(t, routing, dispatch),
		DeadLetter: func(_ context.Context, reader string, rec eventlog.Record, reason string) error {
			mu.Lock()
			defer mu.Unlock()
			recorded = append(recorded, quarantine{reader, rec.Position, reason})
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}

	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)
	response := func(producer string) *eventsv1.Envelope {
		return signingtest.Event(t, producer, id, &eventsv1.ResponseRecorded{Summary: "called back"})
	}
	first, err := signed.Append(ctx, stream, 0, response("routing"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned := signingtest.Forge(t, ctx, r.js, signed, stream, response("routing"), nil)

	view := &positions{}
	f, _ := r.run(t, checkpoint.Options{Name: "routing-view", Verifier: v}, view) // caught up past the unsigned one
	wrongKey := signingtest.Forge(t, ctx, r.js, signed, stream, response("dispatch"), dispatch)
	last, err := signed.Append(ctx, stream, 3, response("routing"))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !slices.Contains(view.applied(), last.Position); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("view applied %v, never the last event at %d", view.applied(), last.Position)
		}
	}

	if want := []uint64{first.Position, last.Position}; !slices.Equal(view.applied(), want) {
		t.Fatalf("view applied %v, want only the signed events %v", view.applied(), want)
	}
	if f.Position() != last.Position {
		t.Errorf("follower at %d, want %d", f.Position(), last.Position)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[uint64]string{unsigned: "unsigned", wrongKey: "dispatch may not write ResponseRecorded"}
	if len(recorded) != len(want) {
		t.Fatalf("recorded %v, want the 2 forgeries", recorded)
	}
	for _, q := range recorded {
		if q.reader != "routing-view" || !strings.Contains(q.reason, want[q.pos]) {
			t.Errorf("recorded %+v, want reader routing-view and %q", q, want[q.pos])
		}
	}
}
