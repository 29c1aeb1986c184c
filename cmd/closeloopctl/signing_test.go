package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// verify checks signatures with the keyring of the data directory (as
// `make run` writes it): a correctly chained event that is unsigned, or
// signed by a service that may not write its type, fails with exit 3
// naming the stream, version, position and reason.
func TestVerifyNamesUnsignedAndWronglySignedEvents(t *testing.T) {
	url, js := startNATS(t)
	ctx := t.Context()
	intake := signingtest.Signer(t, "intake-1", "intake")
	routing := signingtest.Signer(t, "routing-1", "routing")
	dispatch := signingtest.Signer(t, "dispatch-1", "dispatch")
	data := t.TempDir()
	ring, err := signing.MarshalKeyring([]signing.Key{intake.Public(), routing.Public(), dispatch.Public()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(data, "secrets", "signing"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "secrets", "signing", "signers.json"), ring, 0o644); err != nil {
		t.Fatal(err)
	}
	stores := map[string]*jsstore.Store{}
	for _, s := range []*signing.Signer{intake, routing} {
		st, err := jsstore.New(ctx, js, jsstore.Config{Signer: s})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		stores[s.Producer()] = st
	}
	complaint := func() (string, eventlog.StreamID) {
		id := uuid.NewString()
		stream := eventlog.ComplaintStream(id)
		if _, err := stores["intake"].Append(ctx, stream, 0, signingtest.Event(t, "intake", id, &eventsv1.ComplaintAccepted{AcceptedBy: "system"})); err != nil {
			t.Fatal(err)
		}
		if _, err := stores["routing"].Append(ctx, stream, 1, signingtest.Event(t, "routing", id, &eventsv1.ComplaintAssigned{Team: "t", Owner: "o"})); err != nil {
			t.Fatal(err)
		}
		return id, stream
	}
	ctl := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"-nats", url, "-data", data}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}

	good, _ := complaint()
	if code, out := ctl("verify", good); code != exitOK || !strings.Contains(out, "every event signed") {
		t.Fatalf("signed complaint: exit %d: %s", code, out)
	}

	unsignedID, stream := complaint()
	unsigned := signingtest.Forge(t, ctx, js, stores["routing"], stream,
		signingtest.Event(t, "routing", unsignedID, &eventsv1.ComplaintResolved{ResolutionCode: "REPAIRED"}), nil)
	wrongID, stream := complaint()
	wrong := signingtest.Forge(t, ctx, js, stores["routing"], stream,
		signingtest.Event(t, "dispatch", wrongID, &eventsv1.ComplaintResolved{ResolutionCode: "REPAIRED"}), dispatch)

	for _, c := range []struct {
		id     string
		pos    uint64
		reason string
	}{
		{unsignedID, unsigned, "unsigned event"},
		{wrongID, wrong, "dispatch may not write ComplaintResolved"},
	} {
		want := "complaint-" + c.id + ": chain broken at version 3 (log position " + itoa(c.pos) + "): signature: " + c.reason
		code, out := ctl("verify", c.id)
		if code != exitBroken || !strings.Contains(out, want) {
			t.Fatalf("verify %s: exit %d, want %d naming %q:\n%s", c.id, code, exitBroken, want, out)
		}
		code, out = ctl("verify", "--all")
		if code != exitBroken || !strings.Contains(out, want) {
			t.Fatalf("verify --all: exit %d, want %d naming %q:\n%s", code, exitBroken, want, out)
		}
	}

	// Without a keyring only the chains are checked, and verify says so.
	code, out := ctl("-signers", "", "-data", t.TempDir(), "verify", unsignedID)
	if code != exitOK || !strings.Contains(out, "signatures NOT checked") {
		t.Fatalf("verify without a keyring: exit %d: %s", code, out)
	}
}

// signing-keys makes a deployment's keys as `make run` does: one per
// writing service (0600) in the keyring, with the boundary it is given; a
// rerun keeps them, and a deleted key file is replaced by a new key that
// joins the old one in the keyring.
func TestSigningKeysMakesCompletesAndRotatesADeploymentsKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "signing")
	ctl := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(context.Background(), append([]string{"signing-keys", "-out", dir}, args...), &out, &errOut); code != exitOK {
			t.Fatalf("signing-keys %v: exit %d: %s", args, code, errOut.String())
		}
		return out.String()
	}
	ctl("-unsigned-until", "42")
	ring, err := signing.ReadKeyring(filepath.Join(dir, "signers.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ring.UnsignedUntil() != 42 {
		t.Fatalf("unsigned until %d, want 42", ring.UnsignedUntil())
	}
	writers := []string{"intake", "routing", "slaclock", "dispatch", "followup"}
	first := map[string]string{}
	for _, svc := range writers {
		path := filepath.Join(dir, svc+".key")
		s, err := signing.ReadSigner(path)
		if err != nil {
			t.Fatalf("%s: %v", svc, err)
		}
		if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 || s.Producer() != svc || !ring.Holds(s.Public()) {
			t.Fatalf("%s.key: mode %v, producer %s, in keyring %v; want 0600, its own, listed", svc, info.Mode().Perm(), s.Producer(), ring.Holds(s.Public()))
		}
		first[svc] = s.KeyID()
	}
	if len(ring.Keys()) != len(writers) {
		t.Fatalf("keyring of %d keys, want %d", len(ring.Keys()), len(writers))
	}

	if err := os.Remove(filepath.Join(dir, "dispatch.key")); err != nil {
		t.Fatal(err)
	}
	out := ctl()
	ring, err = signing.ReadKeyring(filepath.Join(dir, "signers.json"))
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := signing.ReadSigner(filepath.Join(dir, "dispatch.key"))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.KeyID() == first["dispatch"] || !ring.Holds(fresh.Public()) || len(ring.Keys()) != len(writers)+1 {
		t.Fatalf("after rotation: dispatch key %s (was %s), keyring of %d keys; want a new key beside the old", fresh.KeyID(), first["dispatch"], len(ring.Keys()))
	}
	if s, _ := signing.ReadSigner(filepath.Join(dir, "routing.key")); s.KeyID() != first["routing"] || !strings.Contains(out, first["routing"]) {
		t.Fatalf("a rerun replaced routing's key or did not name it:\n%s", out)
	}
	if ring.UnsignedUntil() != 42 {
		t.Fatalf("a rerun moved the boundary to %d, want 42", ring.UnsignedUntil())
	}

	var errOut bytes.Buffer
	if code := run(context.Background(), []string{"signing-keys"}, io.Discard, &errOut); code != exitUsage || !strings.Contains(errOut.String(), "-out") {
		t.Fatalf("signing-keys without -out: exit %d: %s", code, errOut.String())
	}
}
