package faulty_test

import (
	"context"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/faulty"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestShortReadLeavesOutTheLastEventOnce(t *testing.T) {
	ctx := context.Background()
	inner := memstore.New(nil)
	stream := eventlog.ComplaintStream("c1")
	for v := range uint64(2) {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "intake", OccurredAt: time.Now()}, &eventsv1.ComplaintAccepted{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := inner.Append(ctx, stream, v, e); err != nil {
			t.Fatal(err)
		}
	}
	s := &faulty.ShortRead{Store: inner}
	for i, want := range []int{1, 2, 2} {
		recs, err := s.ReadStream(ctx, stream, 1)
		if err != nil || len(recs) != want {
			t.Fatalf("read %d: %d events, %v; want %d", i, len(recs), err, want)
		}
	}
	if !s.Done() {
		t.Error("Done is false after the short read")
	}
}
