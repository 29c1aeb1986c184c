package eventlog_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// countingReads counts the stream reads a verifier makes to find a
// predecessor.
type countingReads struct {
	eventlog.Store
	reads atomic.Int64
}

func (c *countingReads) ReadStream(ctx context.Context, s eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	c.reads.Add(1)
	return c.Store.ReadStream(ctx, s, from)
}

// Each reader keeps its own tips: a reader far behind another (a bus
// consumer held back by a backlog, a view ahead of it) still finds each
// event's predecessor among what it verified itself, not in the log.
func TestAReaderBehindAnotherNeedsNoReadsOfTheLog(t *testing.T) {
	ctx := context.Background()
	routing := signingtest.Signer(t, "routing-1", "routing")
	log := memstore.NewSigned(clock.NewFake(time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)), routing)
	stream := eventlog.ComplaintStream("c1")
	for v := range 4 {
		e := signingtest.Event(t, "routing", "c1", &eventsv1.ResponseRecorded{Summary: "called back"})
		if _, err := log.Append(ctx, stream, uint64(v), e); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := log.ReadAll(ctx, 1, 100)
	if err != nil || len(recs) != 4 {
		t.Fatalf("read %d events, %v", len(recs), err)
	}
	counted := &countingReads{Store: log}
	v, err := eventlog.NewVerifier(counted, eventlog.VerifierOptions{Keys: signingtest.Keyring(t, routing)})
	if err != nil {
		t.Fatal(err)
	}
	for _, reader := range []string{"view", "bus"} { // the view first, all the way
		for _, r := range recs {
			if err := v.Check(ctx, reader, r); err != nil {
				t.Fatalf("%s: version %d: %v", reader, r.Event.GetVersion(), err)
			}
		}
	}
	// A command's tail read from version 3 finds version 2 among the tips
	// another reader verified.
	other, err := eventlog.NewVerifier(counted, eventlog.VerifierOptions{Keys: signingtest.Keyring(t, routing)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs[:2] {
		if err := other.Check(ctx, "bus", r); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.CheckRead(ctx, stream, recs[2:]); err != nil {
		t.Fatalf("a tail read past the bus's tip: %v", err)
	}
	if n := counted.reads.Load(); n != 0 {
		t.Fatalf("%d reads of the log to find predecessors, want 0", n)
	}
}
