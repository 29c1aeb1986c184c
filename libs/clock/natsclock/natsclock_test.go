package natsclock_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock/natsclock"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
)

func setup(t *testing.T) (context.Context, jetstream.JetStream, jetstream.KeyValue) {
	t.Helper()
	ns := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	kv, err := natsclock.Bucket(ctx, js, "CLOCK")
	if err != nil {
		t.Fatal(err)
	}
	return ctx, js, kv
}

// waitFor polls cond until it holds or a deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var start = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

// Given no time in the bucket, New waits until the controller sets one.
func TestNewWaitsForTheTime(t *testing.T) {
	ctx, js, kv := setup(t)
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := natsclock.New(short, js, "CLOCK"); err == nil {
		t.Fatal("New returned before any time was set")
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = natsclock.Set(ctx, kv, start)
	}()
	c, err := natsclock.New(ctx, js, "CLOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if !c.Now().Equal(start) {
		t.Fatalf("Now = %v, want %v", c.Now(), start)
	}
}

// Timers fire when the published time passes their deadline, in order, and
// not before; a clock opened later starts at the current time.
func TestTimersFollowThePublishedTime(t *testing.T) {
	ctx, js, kv := setup(t)
	if err := natsclock.Set(ctx, kv, start); err != nil {
		t.Fatal(err)
	}
	c, err := natsclock.New(ctx, js, "CLOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	a := c.After(time.Minute)
	b := c.NewTimer(time.Hour)
	stopped := c.NewTimer(2 * time.Minute)
	if !stopped.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}

	if err := natsclock.Set(ctx, kv, start.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "30s", func() bool { return c.Now().Equal(start.Add(30 * time.Second)) })
	select {
	case <-a:
		t.Fatal("1m timer fired at 30s")
	default:
	}

	if err := natsclock.Set(ctx, kv, start.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-a:
		if !got.Equal(start.Add(5 * time.Minute)) {
			t.Fatalf("timer fired with %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("1m timer did not fire after the time moved 5m")
	}
	select {
	case <-b.C():
		t.Fatal("1h timer fired at 5m")
	case <-stopped.C():
		t.Fatal("a stopped timer fired")
	default:
	}
	b.Reset(time.Minute) // due at 6m now
	if err := natsclock.Set(ctx, kv, start.Add(6*time.Minute)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.C():
	case <-time.After(10 * time.Second):
		t.Fatal("reset timer did not fire")
	}

	late, err := natsclock.New(ctx, js, "CLOCK")
	if err != nil {
		t.Fatal(err)
	}
	defer late.Stop()
	if !late.Now().Equal(start.Add(6 * time.Minute)) {
		t.Fatalf("a clock opened later starts at %v, want the current time", late.Now())
	}
	if err := natsclock.Set(ctx, kv, start); err == nil {
		t.Fatal("Set moved the time backwards")
	}
	if d := late.After(0); d == nil {
		t.Fatal("nil channel")
	} else {
		select {
		case <-d:
		default:
			t.Fatal("After(0) did not fire at once")
		}
	}
}
