package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	natsconf "github.com/closeloop/closeloop/deploy/nats"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// On the closed bus of `make run` (the deployed accounts) the CLI reads
// the operators' password from the data directory and works read-only;
// without it the server turns it away.
func TestCLIConnectsWithTheDataDirectorysCredentials(t *testing.T) {
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, v := range natsconf.PasswordVars() {
		vars[v] = "pw-" + v
		if err := os.WriteFile(filepath.Join(secrets, v), []byte(vars[v]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ns := natstest.Start(t, natsembed.Options{Accounts: natsconf.Accounts, Variables: vars})
	_, js := natstest.Connect(t, ns, nats.UserInfo("intake", vars["NATS_INTAKE_PASSWORD"]))
	store, err := jsstore.New(t.Context(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	id := "0190c0de-0000-7000-8000-0000000000c1"
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "system", OccurredAt: time.Now()},
		&eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(t.Context(), eventlog.ComplaintStream(id), 0, e); err != nil {
		t.Fatal(err)
	}

	t.Setenv("NATS_PASSWORD", "")
	ctl := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append([]string{"-nats", ns.ClientURL(), "-timeout", "10s"}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := ctl("-data", dir, "verify", id); code != exitOK {
		t.Fatalf("verify as ops from the data directory: exit %d: %s", code, out)
	}
	if code, out := ctl("-data", dir, "history", id); code != exitOK || !strings.Contains(out, "ComplaintAccepted") {
		t.Fatalf("history as ops: exit %d: %s", code, out)
	}
	if code, out := ctl("-data", t.TempDir(), "verify", id); code != exitFailure || !strings.Contains(strings.ToLower(out), "authorization") {
		t.Fatalf("without credentials: exit %d: %s", code, out)
	}
	t.Setenv("NATS_PASSWORD", vars["NATS_OPS_PASSWORD"])
	if code, out := ctl("-data", t.TempDir(), "verify", id); code != exitOK {
		t.Fatalf("with $NATS_PASSWORD: exit %d: %s", code, out)
	}
	// Admin (dead-letter replay) gets its own password from the data
	// directory: it connects and finds no dead letter 1.
	t.Setenv("NATS_PASSWORD", "")
	if code, out := ctl("-data", dir, "-user", "admin", "deadletters", "show", "1"); code == exitOK || strings.Contains(strings.ToLower(out), "authorization") {
		t.Fatalf("admin looks up a dead letter: exit %d: %s", code, out)
	}
}
