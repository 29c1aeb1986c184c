package main

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The deployed permissions (deploy/nats/accounts.conf) on a real server: a
// service opens the log, appends to a stream of a kind it writes, saves a
// snapshot twice (the second replaces the first, which purges its chunks)
// and loads it; it may not write another kind nor purge the log.
func TestDeployedPermissionsLetAServiceWorkAndProtectTheLog(t *testing.T) {
	for _, u := range []string{"INTAKE", "ROUTING", "SLACLOCK", "DISPATCH", "FOLLOWUP", "RELAY", "OPS", "SYS"} {
		t.Setenv("NATS_"+u+"_PASSWORD", "pw-"+u)
	}
	opts, err := server.ProcessConfigFile("../../deploy/nats/accounts.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.JetStream, opts.StoreDir, opts.NoLog, opts.NoSigs = "127.0.0.1", -1, true, t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("server not ready")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("followup", "pw-FOLLOWUP"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	store, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	id := "0190c0de-0000-7000-8000-00000000000f"
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "followup", Actor: "system", OccurredAt: time.Now()},
		&eventsv1.SurveySent{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, eventlog.ComplaintStream(id), 0, e); err != nil {
		t.Fatalf("append a complaint event: %v", err)
	}
	if _, err := store.ReadStream(ctx, eventlog.ComplaintStream(id), 1); err != nil {
		t.Fatalf("read it: %v", err)
	}

	snaps, err := checkpoint.NewJetStream(ctx, js, 1)
	if err != nil {
		t.Fatalf("open the snapshot store: %v", err)
	}
	for pos := range uint64(2) {
		if err := snaps.Save(ctx, "followup-kpi", checkpoint.Snapshot{Format: 1, Position: pos + 1, Hash: make([]byte, 32), Data: make([]byte, 200_000)}); err != nil {
			t.Fatalf("save snapshot %d: %v", pos+1, err)
		}
	}
	snap, err := snaps.Load(ctx, "followup-kpi")
	if err != nil || snap.Position != 2 {
		t.Fatalf("load the snapshot: %+v, %v", snap.Position, err)
	}
	obj, err := js.Stream(ctx, "OBJ_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	// One object's chunks and its metadata: the first save's chunks were purged.
	if st := obj.CachedInfo().State; st.Msgs > 3 {
		t.Errorf("snapshot bucket holds %d messages after replacing an object: the old chunks were not purged", st.Msgs)
	}

	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, time.Second)
		t.Cleanup(cancel)
		return c
	}
	if _, err := js.Publish(short(), jsstore.Subject(eventlog.StreamID("team-x")), []byte("x")); err == nil {
		t.Error("followup may write a team stream")
	}
	events, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Purge(short()); err == nil {
		t.Error("followup may purge the log")
	} else if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, nats.ErrTimeout) {
		t.Logf("purge refused: %v", err)
	}
}
