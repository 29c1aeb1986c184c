package natsembed

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestStartServesJetStreamAndCleansUp(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for _, inProc := range []bool{true, false} {
		nc, err := s.Connect("test", inProc)
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := js.AccountInfo(ctx)
		cancel()
		if err != nil {
			t.Fatalf("in-process=%v: JetStream not enabled: %v", inProc, err)
		}
		if info.Tier.Streams != 0 {
			t.Fatalf("fresh server has %d streams", info.Tier.Streams)
		}
		nc.Close()
	}
}

// With Accounts the server takes only the users declared, their passwords
// given as variables, and JetStream works in their account.
func TestStartWithAccountsTakesOnlyItsUsers(t *testing.T) {
	s, err := Start(Options{
		Accounts: `accounts { APP { jetstream: enabled, users: [ { user: app, password: $APP_PASSWORD } ] } }`,
		// A quote in a password must not end the string.
		Variables: map[string]string{"APP_PASSWORD": `s3cr"et`},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	if nc, err := s.Connect("anonymous", false); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected")
	}
	if nc, err := s.Connect("wrong", false, nats.UserInfo("app", "guess")); err == nil {
		nc.Close()
		t.Fatal("a client with a wrong password connected")
	}
	nc, err := s.Connect("app", false, nats.UserInfo("app", `s3cr"et`))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(t.Context()); err != nil {
		t.Fatalf("JetStream in the account: %v", err)
	}
}
