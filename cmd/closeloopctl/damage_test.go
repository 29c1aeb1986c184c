package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
)

// One flipped byte in a block file: the server drops the record (its
// checksum fails) and hides the event. verify, history, export and as-of
// report it at its own position, version 3, and exit 3; history and export
// stop there rather than skipping it.
func TestAFlippedByteIsReportedAtItsOwnPosition(t *testing.T) {
	dir := t.TempDir()
	ns, err := natsembed.Start(natsembed.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	w := worldOn(t, ns)
	before, err := w.store.ReadStream(t.Context(), eventlog.ComplaintStream(w.id), 1)
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	flipByte(t, dir, []byte("resolution-1"), 'X') // in version 3, SlaClockStarted

	ns, err = natsembed.Start(natsembed.Options{StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	w.url = ns.ClientURL()
	where := "version 3 (log position " + strconv.FormatUint(before[2].Position, 10) + ")"

	code, out, errOut := w.ctl(t, "verify", w.id)
	if code != exitBroken || !strings.Contains(out, where) || !strings.Contains(out, "missing") {
		t.Fatalf("verify: exit %d, %s%s; want 3 naming %s as missing", code, out, errOut, where)
	}
	code, out, errOut = w.ctl(t, "verify", "--all")
	if code != exitBroken || !strings.Contains(out, where) {
		t.Fatalf("verify --all: exit %d, %s%s; want 3 naming %s", code, out, errOut, where)
	}
	code, out, errOut = w.ctl(t, "history", w.id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitBroken || len(lines) != 3 || !strings.Contains(errOut, "history stops at a damaged link") || !strings.Contains(errOut, where) {
		t.Fatalf("history: exit %d, %d lines:\n%s%s\nwant 3, versions 1 and 2 then the damage at %s", code, len(lines)-1, out, errOut, where)
	}
	code, out, errOut = w.ctl(t, "export", w.id)
	if code != exitBroken || strings.Count(out, "\n") != 2 || !strings.Contains(errOut, where) {
		t.Fatalf("export: exit %d, %s%s; want 3 after 2 lines, naming %s", code, out, errOut, where)
	}
	code, _, errOut = w.ctl(t, "as-of", w.id, t0.Add(48*time.Hour).Format(time.RFC3339))
	if code != exitBroken || !strings.Contains(errOut, where) {
		t.Fatalf("as-of: exit %d, %s; want 3 naming %s", code, errOut, where)
	}
}

// After EVENTS is deleted (an operator, a lost disk) and recreated empty,
// verify --all is no longer "OK — 0 events": the anchor vouches for more.
func TestVerifyAllReportsALogLostUnderItsAnchor(t *testing.T) {
	w := newWorld(t)
	data := t.TempDir()
	ctx := t.Context()
	if err := anchor.EnsureStream(ctx, w.js, 1); err != nil {
		t.Fatal(err)
	}
	wr := &anchor.Writer{Log: w.store, Stores: []anchor.Store{anchor.JetStream{JS: w.js}, anchor.File{Path: filepath.Join(data, anchor.FileName)}}, Clock: clock.NewFake(t0)}
	if err := wr.Write(ctx); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := w.ctl(t, "-data", data, "verify", "--all"); code != exitOK {
		t.Fatalf("verify --all of an anchored log: exit %d %s%s", code, out, errOut)
	}
	if err := w.js.DeleteStream(ctx, jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := w.ctl(t, "-data", data, "verify", "--all")
	if code != exitBroken || !strings.Contains(errOut, "the log is gone") || !strings.Contains(errOut, "stream ANCHORS") {
		t.Fatalf("verify --all with EVENTS deleted: exit %d %s%s; want 3, the log gone, naming the anchor", code, out, errOut)
	}
	if _, err := w.js.Stream(ctx, jsstore.StreamName); err != jetstream.ErrStreamNotFound {
		t.Fatalf("verify created the missing stream: %v", err)
	}
	if _, err := jsstore.New(ctx, w.js, jsstore.Config{}); err != nil { // recreated empty
		t.Fatal(err)
	}
	for _, args := range [][]string{{"verify", "--all"}, {"-data", data, "verify", "--all"}} {
		code, out, errOut = w.ctl(t, args...)
		if code != exitBroken || !strings.Contains(out, "MISSING: ") || !strings.Contains(out, "the log is empty") || !strings.Contains(out, "up to log position 6") {
			t.Fatalf("%v with EVENTS recreated empty: exit %d %s%s; want 3 and the anchor's message", args, code, out, errOut)
		}
	}
	// Without the ANCHORS stream, the file of the data directory still knows.
	if err := w.js.DeleteStream(ctx, anchor.StreamName); err != nil {
		t.Fatal(err)
	}
	code, out, _ = w.ctl(t, "-data", data, "verify", "--all")
	if code != exitBroken || !strings.Contains(out, "file "+filepath.Join(data, anchor.FileName)) {
		t.Fatalf("verify --all with the file anchor only: exit %d %s; want 3 naming the file", code, out)
	}
}

// flipByte changes one byte of the only record holding marker in the
// EVENTS stream's block files, leaving the record's checksum as it was.
func flipByte(t *testing.T, dir string, marker []byte, to byte) {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", jsstore.StreamName, "msgs", "*.blk"))
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no block files under %s: %v", dir, err)
	}
	flipped := 0
	for _, path := range blocks {
		buf, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(buf, marker); i >= 0 {
			buf[i+len(marker)-1] = to
			flipped++
			if err := os.WriteFile(path, buf, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if flipped != 1 {
		t.Fatalf("flipped %d bytes, want 1", flipped)
	}
}

// Where no runner anchors the log (a cluster), admin runs closeloopctl
// anchor; it refuses to anchor a log that lost anchored events.
func TestAnchorCommandAnchorsTheHeadAndRefusesALostLog(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	code, out, errOut := w.ctl(t, "-data", t.TempDir(), "anchor", "--once")
	if code != exitOK || !strings.Contains(out, "6 messages up to log position 6") {
		t.Fatalf("anchor --once: exit %d %s%s; want the head anchored at 6", code, out, errOut)
	}
	if a, ok, err := (anchor.JetStream{JS: w.js}).Latest(ctx); err != nil || !ok || a.Position != 6 {
		t.Fatalf("latest anchor %+v %v %v, want position 6", a, ok, err)
	}
	if err := w.js.DeleteStream(ctx, jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	if _, err := jsstore.New(ctx, w.js, jsstore.Config{}); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := w.ctl(t, "-data", t.TempDir(), "anchor", "--once"); code != exitBroken || !strings.Contains(errOut, "the log is empty") {
		t.Fatalf("anchor --once on an emptied log: exit %d %s%s; want 3", code, out, errOut)
	}
}
