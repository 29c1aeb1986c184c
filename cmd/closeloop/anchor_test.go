package main

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The EVENTS stream lost (a disk, an operator): the runner refuses to
// create an empty log in its place, naming the anchor; and were an empty
// one there, the services refuse to start on it.
func TestTheRunnerRefusesALogLostUnderItsAnchor(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, anchor.FileName)
	t.Setenv(platform.EnvAnchorFile, file)
	opts := natsembed.Options{StoreDir: filepath.Join(dir, "nats"), NoSync: true}
	ctx := t.Context()
	ns, err := startBus(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, log := openLogAs(t, ctx, ns, "intake")
	id := "0190c0de-0000-7000-8000-0000000000bb"
	if _, err := log.Append(ctx, eventlog.ComplaintStream(id), 0, complaintEvent(t, id, "intake", &eventsv1.SurveySent{})); err != nil {
		t.Fatal(err)
	}
	// The runner's own writer, under admin's permissions.
	a, err := ns.newAnchorer(ctx, clock.Real{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.w.Write(ctx); err != nil {
		t.Fatalf("anchor as admin: %v", err)
	}
	a.close()
	ns.Shutdown()

	removeStream(t, opts.StoreDir, "EVENTS")
	_, err = startBus(ctx, dir, opts)
	if !errors.Is(err, anchor.ErrLogBehind) || !strings.Contains(err.Error(), "refusing to create an empty event log") || !strings.Contains(err.Error(), "stream ANCHORS") {
		t.Fatalf("start on a lost log: %v; want a refusal naming the ANCHORS anchor", err)
	}

	// Both anchors out of the way, the bus starts with an empty log; the
	// anchor file back, the services refuse it.
	removeStream(t, opts.StoreDir, anchor.StreamName)
	if err := os.Rename(file, file+".aside"); err != nil {
		t.Fatal(err)
	}
	ns, err = startBus(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	if err := os.Rename(file+".aside", file); err != nil {
		t.Fatal(err)
	}
	sys, err := startServices(ctx, ns, clock.Real{}, io.Discard)
	if err == nil {
		sys.close()
		t.Fatal("services started on an empty log whose anchor vouches for an event")
	}
	if !errors.Is(err, anchor.ErrLogBehind) || !strings.Contains(err.Error(), "refusing to start on this event log") ||
		!strings.Contains(err.Error(), "file "+file) || !strings.Contains(err.Error(), "the log is empty") {
		t.Fatalf("services' start: %v; want the refusal naming the anchor file", err)
	}
}

// removeStream deletes a stream's files from a stopped server's store.
func removeStream(t *testing.T, storeDir, name string) {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(storeDir, "jetstream", "*", "streams", name))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("stream %s on disk: %v %v", name, dirs, err)
	}
	if err := os.RemoveAll(dirs[0]); err != nil {
		t.Fatal(err)
	}
}
