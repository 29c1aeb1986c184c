package app

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
)

// interferingStore lets other services write in the middle of sla-clock's
// appends, as the log allows (a batch is stored one event at a time): the
// first append is cut after its first event, each next one is beaten by
// another writer, until the interferences run out.
type interferingStore struct {
	*memstore.Store
	t      *testing.T
	id     string
	others []proto.Message // what the other writers append, in turn
}

func (s *interferingStore) Append(ctx context.Context, stream eventlog.StreamID, expected uint64, events ...*ev.Envelope) (eventlog.AppendResult, error) {
	if len(s.others) == 0 || events[0].GetProducer() != domain.Producer {
		return s.Store.Append(ctx, stream, expected, events...)
	}
	other := s.others[0]
	s.others = s.others[1:]
	if len(events) > 1 && expected == 1 { // the first: cut after one event
		if err := s.AppendCut(ctx, stream, expected, 1, events...); !errors.Is(err, memstore.ErrCut) {
			return eventlog.AppendResult{}, err
		}
		write(s.t, s.Store, s.id, t0, other)
		return eventlog.AppendResult{}, eventlog.ErrConflict
	}
	write(s.t, s.Store, s.id, t0, other) // beaten to it: nothing of this one is stored
	return s.Store.Append(ctx, stream, expected, events...)
}

// A batch cut by another writer, then beaten by a third: what of the batch
// was not stored must still be, exactly once, whatever the number of
// conflicts in between.
func TestBatchCutThenBeatenIsCompleted(t *testing.T) {
	const id = "0190abcd-0000-7000-8000-0000000000c1"
	inner := memstore.New(nil)
	write(t, inner, id, t0, received(t0))
	store := &interferingStore{Store: inner, t: t, id: id, others: []proto.Message{
		&ev.ComplaintAccepted{AcceptedBy: "agent-1"},
		&ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L2, Category: ev.Category_CATEGORY_SERVICE},
	}}
	a := newApp(t, store, clock.NewFake(t0), Partition{})
	if err := a.Handle(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if len(store.others) != 0 {
		t.Fatalf("%d interferences left unused: the scenario did not happen", len(store.others))
	}
	got := own(t, inner, id)
	for _, k := range []string{"SlaClockStarted acceptance-1", "SlaClockStarted first_response-1", "SlaClockStarted resolution-1", "SlaMet acceptance-1"} {
		if n := count(got, k); n != 1 {
			t.Errorf("%s stored %d times, want once; sla-clock wrote %v", k, n, keys(got))
		}
	}
}
