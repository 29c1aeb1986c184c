package app

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// jetStream starts an embedded NATS server for the test and returns a log
// on it, and its JetStream context (for snapshots).
func jetStream(t testing.TB, clk clock.Clock) (*jsstore.Store, jetstream.JetStream) {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(t.Name(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := jsstore.New(context.Background(), js, jsstore.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return store, js
}

// burst writes n new complaints, each received and accepted in one append
// (as routing's assignment follows intake's receipt), from 8 writers at
// once; it returns their ids.
func burst(t testing.TB, store eventlog.Store, n int, at time.Time) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				id := ids[i]
				rec, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", OccurredAt: at}, received(at))
				if err != nil {
					errs <- err
					return
				}
				acc, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: at}, &ev.ComplaintAccepted{})
				if err != nil {
					errs <- err
					return
				}
				if _, err := store.Append(context.Background(), eventlog.ComplaintStream(id), 0, rec, acc); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// BenchmarkLiveBurst writes 2,000 complaints at once (received and
// accepted) to a running instance on embedded JetStream and measures the
// time until every one's clocks are decided: the backlog a burst leaves.
func BenchmarkLiveBurst(b *testing.B) {
	const n = 2000
	for b.Loop() {
		clk := clock.NewFake(t0)
		store, _ := jetStream(b, clk)
		a := newApp(b, store, clk, Partition{})
		var decided atomic.Int64
		done := make(chan struct{})
		a.OnAppended(func(e *ev.Envelope) {
			if e.GetSlaMet() != nil && decided.Add(1) == n {
				close(done)
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		run := make(chan error, 1)
		go func() { run <- a.Run(ctx) }()
		<-a.Rebuilt()
		began := time.Now()
		burst(b, store, n, t0)
		written := time.Since(began)
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("only %d of %d complaints decided", decided.Load(), n)
		}
		took := time.Since(began)
		cancel()
		if err := <-run; err != nil {
			b.Fatal(err)
		}
		events := a.Follower().Position()
		b.ReportMetric(written.Seconds(), "write-s")
		b.ReportMetric(took.Seconds(), "decided-s")
		b.ReportMetric(float64(n)/took.Seconds(), "complaints/s")
		b.ReportMetric(float64(events)/took.Seconds(), "events/s")
	}
}
