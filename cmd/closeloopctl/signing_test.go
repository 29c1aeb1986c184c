package main

import (
	"bytes"
	"context"
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
