package scale

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/slaclock"
)

// Given a small generated log (200 complaints, 5 % open), its chains verify,
// every complaint ends as its mix says, and the sla-clock rebuilt from it
// keeps clocks for exactly the open complaints and has nothing to add: the
// generator wrote what the service would have.
func TestGeneratedLogIsWhatTheServicesWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect("scale-test", true)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	cfg := Config{Complaints: 200, OpenPercent: 5, Now: now, Seed: 7, Workers: 8}
	sum, err := Generate(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Open != 10 || sum.Closed != 190 {
		t.Fatalf("open/closed = %d/%d, want 10/190", sum.Open, sum.Closed)
	}

	store, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := eventlog.VerifyLog(ctx, store, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Broken) > 0 || int64(rep.Events) != sum.Events {
		t.Fatalf("verify: %d events (generator says %d), broken links %v", rep.Events, sum.Events, rep.Broken)
	}

	// Every complaint ends as the mix says: the closed ones with a close or
	// a withdrawal after which no clock is left open.
	open, closed := 0, 0
	for i := range cfg.Complaints {
		recs, err := store.ReadStream(ctx, eventlog.ComplaintStream(complaintID(i)), 1)
		if err != nil {
			t.Fatal(err)
		}
		ended := false
		for _, r := range recs {
			switch r.Event.GetType() {
			case "ComplaintClosed", "ComplaintWithdrawn":
				ended = true
			case "ComplaintReopened":
				ended = false
			}
		}
		if ended == cfg.Open(i) {
			t.Errorf("complaint %d (%s): ended %v, but open %v by the mix", i, complaintID(i), ended, cfg.Open(i))
		}
		if ended {
			closed++
		} else {
			open++
		}
	}
	if open != sum.Open || closed != sum.Closed {
		t.Fatalf("streams: %d open, %d closed; want %d, %d", open, closed, sum.Open, sum.Closed)
	}

	before, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	msgs := before.CachedInfo().State.Msgs
	svc, err := slaclock.New(platform.Deps{NC: nc, JS: js, Log: store, Clock: clock.NewFake(now), Logger: slog.New(slog.DiscardHandler)},
		slaclock.Config{GRPCAddr: "127.0.0.1:0", Partition: slaclock.DefaultConfig().Partition, Policy: slaclock.DefaultConfig().Policy, Authenticator: auth.Allow})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.App().Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if got := svc.App().Index().Complaints(); got != sum.Open {
		t.Errorf("sla-clock keeps clocks for %d complaints, want the %d open ones", got, sum.Open)
	}
	after, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	if n := after.CachedInfo().State.Msgs; n != msgs {
		t.Errorf("the sla-clock's rebuild appended %d events: the generator left decisions out", n-msgs)
	}
}
