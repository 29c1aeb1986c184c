package anchor_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type world struct {
	js     jetstream.JetStream
	log    *jsstore.Store
	stores []anchor.Store
	writer *anchor.Writer
	clk    *clock.Fake
}

func newWorld(t *testing.T) *world {
	t.Helper()
	_, js := natstest.JetStream(t)
	w := &world{js: js, clk: clock.NewFake(t0), log: openLog(t, js)}
	if err := anchor.EnsureStream(t.Context(), js, 1); err != nil {
		t.Fatal(err)
	}
	w.stores = []anchor.Store{anchor.JetStream{JS: js}, anchor.File{Path: filepath.Join(t.TempDir(), anchor.FileName)}}
	w.writer = &anchor.Writer{Log: w.log, Stores: w.stores, Clock: w.clk, Logger: slog.New(slog.DiscardHandler)}
	return w
}

func openLog(t *testing.T, js jetstream.JetStream) *jsstore.Store {
	t.Helper()
	s, err := jsstore.New(t.Context(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func (w *world) appendEvents(t *testing.T, n int) {
	t.Helper()
	id := uuid.NewString()
	for v := range n {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "anchor-test", Actor: "system", OccurredAt: t0},
			&eventsv1.ResponseRecorded{Summary: "step", RespondedBy: "agent-7"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.log.Append(t.Context(), eventlog.ComplaintStream(id), uint64(v), e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAnchorsFollowAGrowingLog(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.appendEvents(t, 3)
	if err := w.writer.Write(ctx); err != nil {
		t.Fatal(err)
	}
	w.appendEvents(t, 2)
	if err := anchor.Check(ctx, w.log, w.stores...); err != nil {
		t.Fatalf("a log grown past its anchor: %v", err)
	}
	w.clk.Advance(time.Minute)
	if err := w.writer.Write(ctx); err != nil {
		t.Fatal(err)
	}
	for _, s := range w.stores {
		a, ok, err := s.Latest(ctx)
		if err != nil || !ok || a.Position != 5 || a.Messages != 5 || !a.At.Equal(t0.Add(time.Minute)) || len(a.SHA256) != 64 {
			t.Fatalf("%s: latest anchor %+v %v %v, want position 5, 5 messages, at %s", s.Name(), a, ok, err, t0.Add(time.Minute))
		}
	}
}

// A log deleted and recreated empty is a lost log: Check names the anchor,
// and the writer refuses to anchor it (which would vouch for the loss).
func TestALogRecreatedEmptyFailsItsAnchors(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.appendEvents(t, 4)
	if err := w.writer.Write(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.js.DeleteStream(ctx, jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	err := anchor.Check(ctx, w.log, w.stores...)
	if !errors.Is(err, anchor.ErrLogBehind) || !strings.Contains(err.Error(), "the log is gone") || !strings.Contains(err.Error(), "stream ANCHORS") {
		t.Fatalf("check of a deleted log = %v, want the ANCHORS anchor failing on a gone log", err)
	}
	openLog(t, w.js) // recreates EVENTS, empty
	for _, s := range w.stores {
		err := anchor.Check(ctx, w.log, s)
		if !errors.Is(err, anchor.ErrLogBehind) || !strings.Contains(err.Error(), "the log is empty") || !strings.Contains(err.Error(), s.Name()) || !strings.Contains(err.Error(), "up to log position 4") {
			t.Fatalf("check against %s = %v, want the empty log refused, naming the anchor", s.Name(), err)
		}
	}
	w.appendEvents(t, 1)
	if err := w.writer.Write(ctx); !errors.Is(err, anchor.ErrLogBehind) {
		t.Fatalf("anchoring a log that lost anchored events: %v, want a refusal", err)
	}
	if a, _, _ := w.stores[0].Latest(ctx); a.Position != 4 {
		t.Fatalf("latest anchor at %d after the refusal, want still 4", a.Position)
	}
}

// A different log of the same length (events replaced) fails on the hash.
func TestALogReplacedFailsOnTheHash(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.appendEvents(t, 2)
	if err := w.writer.Write(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w.js.DeleteStream(ctx, jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	openLog(t, w.js)
	w.appendEvents(t, 3)
	err := anchor.Check(ctx, w.log, w.stores...)
	if !errors.Is(err, anchor.ErrLogBehind) || !strings.Contains(err.Error(), "SHA-256 differs") {
		t.Fatalf("check of a replaced log = %v, want a hash mismatch at the anchored position", err)
	}
}

func TestAnAnchorFileThatDoesNotParseIsAnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), anchor.FileName)
	if err := os.WriteFile(path, []byte("{half"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := (anchor.File{Path: path}).Latest(context.Background()); err == nil {
		t.Fatal("a damaged anchor file read as no anchor")
	}
	if _, ok, err := (anchor.File{Path: filepath.Join(t.TempDir(), "none.json")}).Latest(context.Background()); ok || err != nil {
		t.Fatalf("no file: ok %v, err %v; want no anchor", ok, err)
	}
}

type fakeSigner struct{ payload []byte }

func (f *fakeSigner) Sign(p []byte) (string, []byte, error) {
	f.payload = p
	return "k1", []byte("sig"), nil
}

func TestASignerSignsThePayload(t *testing.T) {
	w := newWorld(t)
	s := &fakeSigner{}
	w.writer.Signer = s
	w.appendEvents(t, 1)
	if err := w.writer.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	a, _, err := w.stores[1].Latest(t.Context())
	if err != nil || a.KeyID != "k1" || string(a.Signature) != "sig" || string(a.Payload()) != string(s.payload) {
		t.Fatalf("anchor %+v (%v): want signed by k1 over its payload", a, err)
	}
}

// A runner whose EVENTS stream was deleted must still stop on SIGINT: the
// writer's last anchor on the way out fails fast and Run returns.
func TestTheWriterStopsPromptlyOnALostLog(t *testing.T) {
	w := newWorld(t)
	w.appendEvents(t, 1)
	if err := w.writer.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := w.js.DeleteStream(t.Context(), jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.writer.Run(ctx) }()
	w.clk.Advance(anchor.DefaultInterval) // one tick on the lost log
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not stop after its context was cancelled")
	}
}
