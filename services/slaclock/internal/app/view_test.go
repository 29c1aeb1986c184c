package app

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Given complaints decided live, some closed with every clock met (nothing
// to append: their last trigger stays pending in a rebuild), a rebuild that
// decides pending triggers along the catch-up (every event, a lag of one)
// ends with the same schedule as one that decides them all at the end, and
// neither appends anything.
func TestDecidingAlongTheCatchUpEqualsDecidingAtTheEnd(t *testing.T) {
	ctx := context.Background()
	store := memstore.New(nil)
	clk := clock.NewFake(t0.Add(3 * time.Hour))
	live := newApp(t, store, clk, Partition{})
	for i := range 12 {
		id := fmt.Sprintf("0190abcd-0000-7000-8000-%012d", i)
		steps := []proto.Message{received(t0), &ev.ComplaintAccepted{}}
		if i%3 == 0 {
			steps = append(steps, &ev.ResponseRecorded{}, &ev.ComplaintResolved{},
				&ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_FIRST},
				&ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_SECOND}, &ev.ComplaintClosed{})
		}
		for j, p := range steps {
			write(t, store, id, t0.Add(time.Duration(j)*time.Minute), p)
			if err := live.Handle(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	head := func() uint64 {
		recs, err := store.ReadAll(ctx, 1, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		return uint64(len(recs))
	}
	events := head()

	atEnd := newApp(t, store, clk, Partition{})
	if err := atEnd.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	along := newApp(t, store, clk, Partition{})
	along.lag = 1
	if err := along.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if atEnd.decided < 4 || along.decided < 4 {
		t.Fatalf("decided %d at the end, %d along: want at least the 4 closed complaints", atEnd.decided, along.decided)
	}
	if !bytes.Equal(atEnd.idx.Encode(), along.idx.Encode()) || atEnd.idx.Complaints() != 8 {
		t.Fatalf("schedules differ, or not the 8 open complaints (%d)", atEnd.idx.Complaints())
	}
	if head() != events {
		t.Fatalf("the rebuilds appended %d events", head()-events)
	}
}

// The last snapshot, saved on a stop, still decides the triggers pending
// then: a stopped run's context must not turn it into "not saved", which
// left the next start deciding again everything since the last periodic
// save (30,000 complaints through the API: minutes before ready).
func TestTheSnapshotOfAStopDecidesWhatIsPending(t *testing.T) {
	store := memstore.New(nil)
	clk := clock.NewFake(t0.Add(time.Hour))
	a := newApp(t, store, clk, Partition{})
	id := "0190abcd-0000-7000-8000-000000000001"
	write(t, store, id, t0, received(t0))
	recs, err := store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	a.runCtx = stopped
	a.pending[id] = trigger{cause: kernel.CauseOf(recs[0].Event, true), position: recs[0].Position}

	if _, err := (*timersView)(a).Snapshot(); err != nil {
		t.Fatalf("the snapshot of a stop: %v", err)
	}
	if len(a.pending) != 0 {
		t.Errorf("%d triggers left pending", len(a.pending))
	}
	after, err := store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) == len(recs) {
		t.Error("the pending trigger was not decided: no clock started")
	}
}
