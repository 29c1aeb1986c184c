package jsstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Reads go batch by batch, the fast way (no headers) or the slow way
// (direct get with headers, then a consumer in pull batches): with the
// batches shrunk, a few dozen interleaved events cross every boundary, and
// either way the result must be what short reads give, every event at its
// position in the log, with no consumer left over.
func TestLongReadsCrossEveryBatchBoundary(t *testing.T) {
	for _, fast := range []int{0, 3, 1024} {
		name := fmt.Sprintf("fast batch %d", fast)
		if fast == 0 {
			name = "slow way only"
		}
		t.Run(name, func(t *testing.T) { testLongReads(t, fast) })
	}
}

func testLongReads(t *testing.T, fast int) {
	jsstore.SetReadBatches(t, fast, 4, 3, 5)
	_, js := startServer(t, natsembed.Options{NoSync: true})
	s := newStore(t, js, jsstore.Config{})
	ctx := testContext(t)
	a, _ := newComplaint()
	b, _ := newComplaint()
	var wantA []string // event ids of a, by version
	for i := range 10 {
		for _, st := range []eventlog.StreamID{a, b} {
			batch := []*eventsv1.Envelope{response(t, st.ID(), "x"), response(t, st.ID(), "y")}
			_, err := s.Append(ctx, st, uint64(2*i), batch...)
			must(t, err)
			if st == a {
				wantA = append(wantA, batch[0].GetEventId(), batch[1].GetEventId())
			}
		}
	}

	recs, err := s.ReadStream(ctx, a, 1)
	must(t, err)
	if len(recs) != len(wantA) {
		t.Fatalf("ReadStream read %d events, want %d", len(recs), len(wantA))
	}
	for i, r := range recs {
		if r.Event.GetEventId() != wantA[i] || r.Event.GetVersion() != uint64(i+1) {
			t.Fatalf("ReadStream event %d: id %s version %d, want %s version %d", i, r.Event.GetEventId(), r.Event.GetVersion(), wantA[i], i+1)
		}
		if i > 0 && r.Position <= recs[i-1].Position {
			t.Fatalf("ReadStream positions not increasing: %d after %d", r.Position, recs[i-1].Position)
		}
		if i > 0 && r.Event.GetPrevPosition() != recs[i-1].Position { // what the fast way places events by
			t.Fatalf("version %d has prev_position %d, version %d is at %d", i+1, r.Event.GetPrevPosition(), i, recs[i-1].Position)
		}
	}
	if broken := eventlog.VerifyChain(a, recs); broken != nil {
		t.Fatal(broken)
	}
	from, err := s.ReadStream(ctx, a, 13)
	must(t, err)
	if len(from) != 8 || from[0].Event.GetVersion() != 13 || from[0].Position != recs[12].Position {
		t.Fatalf("ReadStream from version 13 read %d events starting at %v, want 8 from version 13", len(from), from[0].Event)
	}

	// Tails from each version's predecessor, and from version 1 (earlier
	// than needed), read what ReadStream does, crossing the same batches.
	for from := 2; from <= len(recs)+1; from++ {
		want, err := s.ReadStream(ctx, a, uint64(from))
		must(t, err)
		for _, after := range []uint64{recs[from-2].Position, recs[0].Position} {
			tail, err := s.ReadStreamAfter(ctx, a, uint64(from), after)
			must(t, err)
			if len(tail) != len(want) {
				t.Fatalf("ReadStreamAfter(%d, after %d) read %d events, ReadStream %d", from, after, len(tail), len(want))
			}
			for i := range tail {
				if tail[i].Position != want[i].Position || string(tail[i].Raw) != string(want[i].Raw) {
					t.Fatalf("ReadStreamAfter(%d, after %d) event %d at %d, ReadStream's at %d", from, after, i, tail[i].Position, want[i].Position)
				}
			}
		}
		// A short tail is read back from the stream's end, event by event;
		// a long one as a range.
		walked, ok, err := jsstore.WalkBack(s, ctx, a, uint64(from), recs[from-2].Position)
		must(t, err)
		if short := len(want) <= 16; ok != short || (ok && len(walked) != len(want)) {
			t.Fatalf("tail from %d of %d events: walked back %v (%d events), want %v", from, len(want), ok, len(walked), short)
		}
	}

	all, err := s.ReadAll(ctx, 1, 1000)
	must(t, err)
	if len(all) != 40 {
		t.Fatalf("ReadAll read %d events, want 40", len(all))
	}
	for i, r := range all {
		if r.Position != uint64(i+1) {
			t.Fatalf("ReadAll event %d at position %d, want %d", i, r.Position, i+1)
		}
	}
	position := map[string]uint64{}
	for _, r := range all {
		position[r.Event.GetEventId()] = r.Position
	}
	for _, r := range recs {
		if r.Position != position[r.Event.GetEventId()] {
			t.Fatalf("ReadStream placed version %d at %d, ReadAll at %d", r.Event.GetVersion(), r.Position, position[r.Event.GetEventId()])
		}
	}
	page, err := s.ReadAll(ctx, 7, 17)
	must(t, err)
	if len(page) != 17 || page[0].Position != 7 || page[16].Position != 23 {
		t.Fatalf("ReadAll(7, 17) read %d events, want positions 7 to 23", len(page))
	}
	for i, r := range page {
		if string(r.Raw) != string(all[6+i].Raw) {
			t.Fatalf("ReadAll(7, 17) event at %d differs from the full read", r.Position)
		}
	}

	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	info, err := st.Info(ctx)
	must(t, err)
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left after the reads, want 0", info.State.Consumers)
	}
}

// Follow catches up over several ReadAll batches, then follows live events.
func TestFollowCatchesUpInBatchesThenFollows(t *testing.T) {
	jsstore.SetReadBatches(t, 3, 2, 3, 4)
	_, js := startServer(t, natsembed.Options{NoSync: true})
	s := newStore(t, js, jsstore.Config{})
	stream, _ := newComplaint()
	stored := appendN(t, s, stream, 11)

	ctx, cancel := context.WithCancel(testContext(t))
	got := make(chan eventlog.Record, 32)
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(ctx, stored[2].Position, func(r eventlog.Record) error { got <- r; return nil })
	}()
	for i := 2; i < 11; i++ {
		if r := <-got; r.Position != stored[i].Position || string(r.Raw) != string(stored[i].Raw) {
			t.Fatalf("followed event at %d, want the stored one at %d", r.Position, stored[i].Position)
		}
	}
	res, err := s.Append(testContext(t), stream, 11, response(t, stream.ID(), "live"))
	must(t, err)
	if r := <-got; r.Position != res.Position || r.Event.GetVersion() != 12 {
		t.Fatalf("followed live event at %d version %d, want %d version 12", r.Position, r.Event.GetVersion(), res.Position)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow returned %v after cancel, want context.Canceled", err)
	}
}
