// Package conformance is the one acceptance suite every eventlog.Store
// backend must pass, so services can count on the same behaviour whatever log
// they run on: optimistic appends with one conflict error, idempotent event
// ids, refusal of bad input without storing anything, a verifiable hash chain,
// and reads of one stream or of the whole log (paged or followed).
package conformance

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Option tells the suite what the backend promises beyond the contract.
type Option func(*options)

type options struct{ atomicBatches bool }

// AtomicBatches says no concurrent writer can cut a batch: a failed Append
// stored nothing (memstore, KurrentDB, jsstore with Config.AtomicBatches).
// Without it the suite checks the weaker promise every backend keeps: what a
// batch leaves stored is a contiguous prefix of it.
func AtomicBatches() Option { return func(o *options) { o.atomicBatches = true } }

// Run runs the suite. newStore returns a fresh, empty store for each subtest
// (and is responsible for cleaning it up, e.g. with t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) eventlog.Store, opts ...Option) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	writerReadingMidBatch := func(t *testing.T, s eventlog.Store) { writerReadingMidBatch(t, s, o.atomicBatches) }
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, s eventlog.Store)
	}{
		{"AppendThenReadRoundTrip", appendThenReadRoundTrip},
		{"StoreStampsStreamVersionTimeAndChain", storeStampsFields},
		{"VersionsPerStreamPositionsAcrossLog", versionsAndPositions},
		{"PrevPositionIsThePreviousEventsPosition", prevPositions},
		{"BatchRemainingCountsTheRestOfTheAppend", batchRemaining},
		{"NewStreamExpectsVersionZero", newStreamExpectsZero},
		{"StaleWriterGetsConflict", staleWriterGetsConflict},
		{"ExpectedVersionAheadOfStreamIsConflict", expectedAheadIsConflict},
		{"FiftyConcurrentWritersExactlyOneWins", concurrentWritersOneWins},
		{"RetryOfSameEventIDStoresOnce", retryStoresOnce},
		{"RetryOfPartlyStoredBatchCompletesIt", retryCompletesPartialBatch},
		{"RetryOfStoredBatchIsAllDuplicates", retryOfStoredBatch},
		{"BatchSkipsEventIDsStoredEarlier", batchSkipsStoredIDs},
		{"BatchAgainstConcurrentWriterIsAllOrNothing", batchAgainstConcurrentWriter},
		{"WriterReadingMidBatchNeverSplitsIt", writerReadingMidBatch},
		{"BadInputRefusedAndNothingStored", badInputRefused},
		{"NonComplaintStreamNeedsNoComplaintID", nonComplaintStream},
		{"HashChainVerifies", hashChainVerifies},
		{"ReadStreamFromVersion", readStreamFromVersion},
		{"UnknownStreamReadsEmpty", unknownStreamReadsEmpty},
		{"ReadStreamAfterPositionIsReadStreamsTail", readStreamAfter},
		{"ReadAllPagesThroughLog", readAllPages},
		{"FollowDeliversStoredThenLiveEvents", followStoredThenLive},
		{"FollowStopsOnHandlerError", followStopsOnError},
		{"TraceContextFromCtxFillsEmptyTraceparent", traceFromContext},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, newStore(t))
		})
	}
}

// --- scenarios ---

func appendThenReadRoundTrip(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	events := []*eventsv1.Envelope{accepted(t, id), response(t, id, "called back"), response(t, id, "part ordered")}
	want := cloneAll(events)

	res, err := s.Append(ctx, stream, 0, events...)
	mustNot(t, err)
	if res.Version != 3 || res.Duplicates != 0 {
		t.Fatalf("append result = %+v, want version 3 and no duplicates", res)
	}

	recs := readStream(t, s, stream, 1)
	if len(recs) != 3 {
		t.Fatalf("read %d events, want 3", len(recs))
	}
	for i, r := range recs {
		if r.Event.GetEventId() != want[i].GetEventId() || r.Event.GetType() != want[i].GetType() {
			t.Errorf("event %d = %s %s, want %s %s", i, r.Event.GetEventId(), r.Event.GetType(), want[i].GetEventId(), want[i].GetType())
		}
		if !proto.Equal(eventlog.Payload(r.Event), eventlog.Payload(want[i])) {
			t.Errorf("event %d payload = %v, want %v", i, eventlog.Payload(r.Event), eventlog.Payload(want[i]))
		}
		if r.Event.GetCorrelationId() != want[i].GetCorrelationId() || r.Event.GetProducer() != want[i].GetProducer() {
			t.Errorf("event %d lost its metadata: %v", i, r.Event)
		}
		stored := &eventsv1.Envelope{}
		mustNot(t, proto.Unmarshal(r.Raw, stored))
		if !proto.Equal(stored, r.Event) {
			t.Errorf("event %d: Raw does not decode to Event", i)
		}
	}
	if res.Position != recs[2].Position {
		t.Errorf("append result position %d, last event read at %d", res.Position, recs[2].Position)
	}
}

func storeStampsFields(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	e := accepted(t, id)
	// Whatever the writer claims, the store decides these.
	e.StreamId, e.Version, e.PrevHash = "complaint-forged", 99, []byte("forged")
	_, err := s.Append(ctx, stream, 0, e)
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 1, response(t, id, "second"))
	mustNot(t, err)

	recs := readStream(t, s, stream, 1)
	first, second := recs[0].Event, recs[1].Event
	if first.GetStreamId() != string(stream) || first.GetVersion() != 1 || len(first.GetPrevHash()) != 0 {
		t.Errorf("first event stamped stream %q version %d prev_hash %x; want %q, 1, empty", first.GetStreamId(), first.GetVersion(), first.GetPrevHash(), stream)
	}
	if first.GetRecordedAt() == nil || first.GetRecordedAt().AsTime().IsZero() {
		t.Error("recorded_at not set")
	}
	if string(second.GetPrevHash()) != string(eventlog.Hash(recs[0].Raw)) {
		t.Errorf("second event prev_hash %x, want hash of the first event's stored bytes %x", second.GetPrevHash(), eventlog.Hash(recs[0].Raw))
	}
	if e.GetVersion() != 1 || e.GetStreamId() != string(stream) {
		t.Errorf("the appended envelope was not stamped in place: version %d stream %q", e.GetVersion(), e.GetStreamId())
	}
}

func versionsAndPositions(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	a, aID := newComplaint()
	b, bID := newComplaint()
	var lastPos uint64
	for i := range 3 {
		ra, err := s.Append(ctx, a, uint64(i), response(t, aID, "a"))
		mustNot(t, err)
		rb, err := s.Append(ctx, b, uint64(i), response(t, bID, "b"))
		mustNot(t, err)
		if ra.Version != uint64(i+1) || rb.Version != uint64(i+1) {
			t.Fatalf("round %d: versions %d and %d, want %d", i, ra.Version, rb.Version, i+1)
		}
		if ra.Position <= lastPos || rb.Position <= ra.Position {
			t.Fatalf("round %d: positions %d then %d after %d: not strictly increasing", i, ra.Position, rb.Position, lastPos)
		}
		lastPos = rb.Position
	}
	for _, stream := range []eventlog.StreamID{a, b} {
		for i, r := range readStream(t, s, stream, 1) {
			if r.Event.GetVersion() != uint64(i+1) {
				t.Errorf("%s: event %d has version %d", stream, i, r.Event.GetVersion())
			}
		}
	}
}

// prevPositions: an event's PrevPosition, where the store records one, is
// the position of the event before it in its stream, whose other events
// interleave with another stream's, single and in batches.
func prevPositions(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	a, aID := newComplaint()
	b, bID := newComplaint()
	for i := range 3 {
		_, err := s.Append(ctx, a, uint64(3*i), response(t, aID, "a1"), response(t, aID, "a2"), response(t, aID, "a3"))
		mustNot(t, err)
		_, err = s.Append(ctx, b, uint64(i), response(t, bID, "b"))
		mustNot(t, err)
	}
	recs := readStream(t, s, a, 1)
	for i, r := range recs {
		got := r.Event.GetPrevPosition()
		switch {
		case i == 0 && got != 0:
			t.Errorf("version 1 has prev_position %d, want 0", got)
		case i > 0 && got != 0 && got != recs[i-1].Position:
			t.Errorf("version %d has prev_position %d, want 0 or %d (version %d's position)", i+1, got, recs[i-1].Position, i)
		}
	}
}

// batchRemaining: each stored event says how many events of its append
// follow it, so a reader can tell an append cut short.
func batchRemaining(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 1, response(t, id, "a"), response(t, id, "b"), response(t, id, "c"))
	mustNot(t, err)
	var got []uint32
	for _, r := range readStream(t, s, stream, 1) {
		got = append(got, r.Event.GetBatchRemaining())
	}
	if want := []uint32{0, 2, 1, 0}; !slices.Equal(got, want) {
		t.Errorf("batch_remaining of the stream's events = %v, want %v", got, want)
	}
}

func newStreamExpectsZero(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 1, accepted(t, id))
	mustConflict(t, err, stream)
	_, err = s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 0, accepted(t, id))
	mustConflict(t, err, stream)
	if n := len(readStream(t, s, stream, 1)); n != 1 {
		t.Fatalf("stream has %d events, want 1", n)
	}
}

func staleWriterGetsConflict(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)

	// Both writers read version 1; the first one to append wins.
	winner := response(t, id, "winner")
	_, err = s.Append(ctx, stream, 1, winner)
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 1, response(t, id, "loser"), response(t, id, "loser too"))
	mustConflict(t, err, stream)

	recs := readStream(t, s, stream, 1)
	if len(recs) != 2 || recs[1].Event.GetEventId() != winner.GetEventId() {
		t.Fatalf("stream holds %d events (last %s), want 2 ending with the winner's", len(recs), recs[len(recs)-1].Event.GetEventId())
	}
}

func expectedAheadIsConflict(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 5, response(t, id, "from the future"))
	mustConflict(t, err, stream)
}

func concurrentWritersOneWins(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)

	const writers = 50
	errs := make([]error, writers)
	events := make([]*eventsv1.Envelope, writers)
	for i := range events {
		events[i] = response(t, id, fmt.Sprintf("writer %d", i))
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Append(ctx, stream, 1, events[i])
		})
	}
	close(start)
	wg.Wait()

	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case !errors.Is(err, eventlog.ErrConflict):
			t.Errorf("writer %d: %v, want a conflict", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d writers won, want exactly 1", winners)
	}
	if n := len(readStream(t, s, stream, 1)); n != 2 {
		t.Fatalf("stream has %d events, want 2", n)
	}
}

func retryStoresOnce(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	e := accepted(t, id)
	first, err := s.Append(ctx, stream, 0, e)
	mustNot(t, err)

	// The writer did not see the ack and retries with what it knew then.
	res, err := s.Append(ctx, stream, 0, proto.Clone(e).(*eventsv1.Envelope))
	if err != nil {
		t.Fatalf("retry with the now stale expected version: %v, want a duplicate", err)
	}
	if res.Duplicates != 1 || res.Version != 1 || res.Position != first.Position {
		t.Fatalf("retry result %+v, want 1 duplicate at version 1 position %d", res, first.Position)
	}
	// The same event id at the current version is a duplicate too.
	res, err = s.Append(ctx, stream, 1, proto.Clone(e).(*eventsv1.Envelope))
	mustNot(t, err)
	if res.Duplicates != 1 || res.Version != 1 {
		t.Fatalf("re-append at the current version: %+v, want 1 duplicate, version 1", res)
	}
	if n := len(readStream(t, s, stream, 1)); n != 1 {
		t.Fatalf("stream has %d events, want the event stored once", n)
	}
	if all := readAll(t, s, 1, 100); len(all) != 1 {
		t.Fatalf("log has %d events, want 1", len(all))
	}
}

func retryCompletesPartialBatch(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	a, b := accepted(t, id), response(t, id, "b")
	// As if the writer crashed after the first event of the batch [a, b].
	_, err := s.Append(ctx, stream, 0, proto.Clone(a).(*eventsv1.Envelope))
	mustNot(t, err)

	res, err := s.Append(ctx, stream, 0, a, b)
	mustNot(t, err)
	if res.Duplicates != 1 || res.Version != 2 {
		t.Fatalf("retry result %+v, want 1 duplicate and version 2", res)
	}
	recs := readStream(t, s, stream, 1)
	if len(recs) != 2 || recs[0].Event.GetEventId() != a.GetEventId() || recs[1].Event.GetEventId() != b.GetEventId() {
		t.Fatalf("stream = %v, want [a b]", ids(recs))
	}
	mustVerify(t, s, stream, 2)
}

func retryOfStoredBatch(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	batch := []*eventsv1.Envelope{accepted(t, id), response(t, id, "b"), response(t, id, "c")}
	first, err := s.Append(ctx, stream, 0, cloneAll(batch)...)
	mustNot(t, err)

	// The writer did not see the ack and retries with what it knew then.
	res, err := s.Append(ctx, stream, 0, cloneAll(batch)...)
	if err != nil {
		t.Fatalf("retry of a stored batch: %v, want duplicates", err)
	}
	if res.Duplicates != 3 || res.Version != 3 || res.Position != first.Position {
		t.Fatalf("retry result %+v, want 3 duplicates at version 3 position %d", res, first.Position)
	}
	// The same batch again at the current version is all duplicates too.
	res, err = s.Append(ctx, stream, 3, cloneAll(batch)...)
	mustNot(t, err)
	if res.Duplicates != 3 || res.Version != 3 {
		t.Fatalf("re-append at the current version: %+v, want 3 duplicates, version 3", res)
	}
	if n := len(readStream(t, s, stream, 1)); n != 3 {
		t.Fatalf("stream has %d events, want the batch stored once", n)
	}
	mustVerify(t, s, stream, 3)
}

func batchSkipsStoredIDs(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	a, b := accepted(t, id), response(t, id, "b")
	_, err := s.Append(ctx, stream, 0, a, b)
	mustNot(t, err)
	c := response(t, id, "c")

	// b is stored already (an earlier decision replayed): only c is new.
	res, err := s.Append(ctx, stream, 2, proto.Clone(b).(*eventsv1.Envelope), c)
	mustNot(t, err)
	if res.Duplicates != 1 || res.Version != 3 {
		t.Fatalf("append result %+v, want 1 duplicate and version 3", res)
	}
	if got := ids(readStream(t, s, stream, 1)); len(got) != 3 || got[2] != c.GetEventId() {
		t.Fatalf("stream = %v, want [a b c]", got)
	}
	mustVerify(t, s, stream, 3)
}

// concurrencyRounds is how many races the all-or-nothing scenarios run.
const concurrencyRounds = 25

// A batch of three and a single event race for the same expected version:
// exactly one wins, and the stream then holds exactly the winner's events.
func batchAgainstConcurrentWriter(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	version := uint64(1)
	for round := range concurrencyRounds {
		batch := []*eventsv1.Envelope{response(t, id, "batch 1"), response(t, id, "batch 2"), response(t, id, "batch 3")}
		single := response(t, id, "single")
		batchIDs, singleIDs := idsOf(batch), idsOf([]*eventsv1.Envelope{single})
		var batchErr, singleErr error
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; _, batchErr = s.Append(ctx, stream, version, batch...) })
		wg.Go(func() { <-start; _, singleErr = s.Append(ctx, stream, version, single) })
		close(start)
		wg.Wait()

		var want []string
		switch {
		case batchErr == nil && errors.Is(singleErr, eventlog.ErrConflict):
			want = batchIDs
		case singleErr == nil && errors.Is(batchErr, eventlog.ErrConflict):
			want = singleIDs
		default:
			t.Fatalf("round %d: batch %v, single %v; want exactly one to win and the other to conflict", round, batchErr, singleErr)
		}
		if got := ids(readStream(t, s, stream, version+1)); !slices.Equal(got, want) {
			t.Fatalf("round %d: stream after version %d holds %v, want exactly the winner's %v", round, version, got, want)
		}
		version += uint64(len(want))
	}
	mustVerify(t, s, stream, int(version))
}

// A writer that reads the stream while a batch is being appended appends at
// the version it saw. With atomic batches it never lands inside the batch;
// without, it may cut the batch, but what the batch left stored is a
// contiguous prefix of it, all of it exactly when Append succeeded.
func writerReadingMidBatch(t *testing.T, s eventlog.Store, atomic bool) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	version := uint64(1)
	for round := range concurrencyRounds {
		batch := []*eventsv1.Envelope{response(t, id, "batch 1"), response(t, id, "batch 2"), response(t, id, "batch 3")}
		batchIDs := idsOf(batch)
		var batchErr error
		var wg sync.WaitGroup
		done := make(chan struct{})
		wg.Go(func() { defer close(done); _, batchErr = s.Append(ctx, stream, version, batch...) })
		wg.Go(func() {
			// Read and append at what was read, until the batch is done.
			for i := 0; ; i++ {
				recs, err := s.ReadStream(ctx, stream, 1)
				if err != nil {
					t.Errorf("round %d: read: %v", round, err)
					return
				}
				_, err = s.Append(ctx, stream, uint64(len(recs)), response(t, id, fmt.Sprintf("reader %d", i)))
				if err != nil && !errors.Is(err, eventlog.ErrConflict) {
					t.Errorf("round %d: reader append: %v", round, err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		})
		wg.Wait()
		if batchErr != nil && !errors.Is(batchErr, eventlog.ErrConflict) {
			t.Fatalf("round %d: batch: %v, want success or a conflict", round, batchErr)
		}

		got := ids(readStream(t, s, stream, version+1))
		stored := 0
		for _, bid := range batchIDs {
			if slices.Contains(got, bid) {
				stored++
			}
		}
		switch {
		case batchErr == nil && stored != len(batchIDs):
			t.Fatalf("round %d: batch succeeded but %d of its %d events are stored: %v", round, stored, len(batchIDs), got)
		case batchErr != nil && atomic && stored != 0:
			t.Fatalf("round %d: batch failed (%v) but %d of its events are stored: %v", round, batchErr, stored, got)
		case batchErr != nil && stored == len(batchIDs):
			t.Fatalf("round %d: batch failed (%v) but all of it is stored: %v", round, batchErr, got)
		}
		if at := slices.Index(got, batchIDs[0]); stored > 0 && (at < 0 || at+stored > len(got) || !slices.Equal(got[at:at+stored], batchIDs[:stored])) {
			t.Fatalf("round %d: the batch's stored events %v are not a contiguous prefix of it in %v", round, batchIDs[:stored], got)
		}
		version += uint64(len(got))
	}
	mustVerify(t, s, stream, int(version))
}

func badInputRefused(t *testing.T, s eventlog.Store) {
	stream, id := newComplaint()
	other := uuid.NewString()
	for _, tc := range []struct {
		name   string
		stream eventlog.StreamID
		events func() []*eventsv1.Envelope
		field  string
	}{
		{"nil event", stream, func() []*eventsv1.Envelope { return []*eventsv1.Envelope{nil} }, "nil"},
		{"no events", stream, func() []*eventsv1.Envelope { return nil }, "events"},
		{"missing event id", stream, func() []*eventsv1.Envelope {
			e := accepted(t, id)
			e.EventId = ""
			return []*eventsv1.Envelope{e}
		}, "event_id"},
		{"missing complaint id", stream, func() []*eventsv1.Envelope {
			e := accepted(t, id)
			e.ComplaintId = ""
			return []*eventsv1.Envelope{e}
		}, "complaint_id"},
		{"complaint id of another complaint", stream, func() []*eventsv1.Envelope {
			return []*eventsv1.Envelope{accepted(t, other)}
		}, "complaint_id"},
		{"unknown type, no payload", stream, func() []*eventsv1.Envelope {
			e := accepted(t, id)
			e.Payload, e.Type = nil, "SomethingNew"
			return []*eventsv1.Envelope{e}
		}, "payload"},
		{"type not naming the payload", stream, func() []*eventsv1.Envelope {
			e := accepted(t, id)
			e.Type = "ComplaintResolved"
			return []*eventsv1.Envelope{e}
		}, "type"},
		{"payload over 1 MiB", stream, func() []*eventsv1.Envelope {
			return []*eventsv1.Envelope{response(t, id, strings.Repeat("x", eventlog.MaxEventSize))}
		}, "size"},
		{"stream id that is not <kind>-<id>", "complaint", func() []*eventsv1.Envelope {
			return []*eventsv1.Envelope{accepted(t, id)}
		}, "stream_id"},
		{"stream id with a subject separator", eventlog.ComplaintStream("a.b"), func() []*eventsv1.Envelope {
			e := accepted(t, id)
			e.ComplaintId = "a.b"
			return []*eventsv1.Envelope{e}
		}, "stream_id"},
		{"same event id twice in a batch", stream, func() []*eventsv1.Envelope {
			e := accepted(t, id)
			return []*eventsv1.Envelope{e, proto.Clone(e).(*eventsv1.Envelope)}
		}, "event_id"},
		{"one bad event among good ones", stream, func() []*eventsv1.Envelope {
			bad := response(t, id, "bad")
			bad.EventId = ""
			return []*eventsv1.Envelope{accepted(t, id), response(t, id, "good"), bad}
		}, "events[2]"},
		{"oversized event after good ones", stream, func() []*eventsv1.Envelope {
			return []*eventsv1.Envelope{accepted(t, id), response(t, id, strings.Repeat("x", eventlog.MaxEventSize))}
		}, "events[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			_, err := s.Append(ctx, tc.stream, 0, tc.events()...)
			if !errors.Is(err, eventlog.ErrInvalidEvent) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if all := readAll(t, s, 1, 100); len(all) != 0 {
				t.Fatalf("log holds %d events after a refused append, want none", len(all))
			}
		})
	}
}

func nonComplaintStream(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream := eventlog.Stream(eventlog.KindTechnician, uuid.NewString())
	e := response(t, "", "shift started")
	_, err := s.Append(ctx, stream, 0, e)
	mustNot(t, err)
	if recs := readStream(t, s, stream, 1); len(recs) != 1 {
		t.Fatalf("technician stream has %d events, want 1", len(recs))
	}
}

func hashChainVerifies(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id))
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 1, response(t, id, "2"), response(t, id, "3"))
	mustNot(t, err)
	_, err = s.Append(ctx, stream, 3, response(t, id, "4"), response(t, id, "5"))
	mustNot(t, err)
	mustVerify(t, s, stream, 5)

	// And the chain check is not vacuous: a record altered in memory breaks it.
	recs := readStream(t, s, stream, 1)
	recs[2].Raw = append([]byte(nil), recs[2].Raw...)
	recs[2].Raw[len(recs[2].Raw)-1] ^= 1
	if broken := eventlog.VerifyChain(stream, recs); broken == nil || broken.Version < 3 {
		t.Fatalf("verify of an altered copy = %v, want a broken link at version 3 or 4", broken)
	}
}

func readStreamFromVersion(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id), response(t, id, "2"), response(t, id, "3"))
	mustNot(t, err)
	recs := readStream(t, s, stream, 2)
	if len(recs) != 2 || recs[0].Event.GetVersion() != 2 || recs[1].Event.GetVersion() != 3 {
		t.Fatalf("read from version 2 = versions %v, want [2 3]", versions(recs))
	}
	if recs := readStream(t, s, stream, 4); len(recs) != 0 {
		t.Fatalf("read past the end = %d events, want none", len(recs))
	}
}

// readStreamAfter checks a TailReader (skipped for a store without one):
// from the position of any version at or before fromVersion-1 it reads
// exactly what ReadStream does; from a position past fromVersion it still
// does (the backend falls back to the whole stream); from one past the
// stream's end it reads nothing.
func readStreamAfter(t *testing.T, s eventlog.Store) {
	tr, ok := s.(eventlog.TailReader)
	if !ok {
		t.Skip("not an eventlog.TailReader")
	}
	ctx := testContext(t)
	stream, id := newComplaint()
	other, oid := newComplaint()
	const n = 6
	for i := range n { // interleaved, so that positions are not versions
		_, err := s.Append(ctx, stream, uint64(i), response(t, id, fmt.Sprint(i)))
		mustNot(t, err)
		_, err = s.Append(ctx, other, uint64(i), response(t, oid, fmt.Sprint(i)))
		mustNot(t, err)
	}
	all := readStream(t, s, stream, 1)
	pos := func(version uint64) uint64 { // 0 for version 0
		if version == 0 {
			return 0
		}
		return all[version-1].Position
	}
	after := func(from, position uint64) []eventlog.Record {
		t.Helper()
		recs, err := tr.ReadStreamAfter(ctx, stream, from, position)
		mustNot(t, err)
		return recs
	}
	same := func(what string, got, want []eventlog.Record) {
		t.Helper()
		if !slices.Equal(ids(got), ids(want)) || !slices.Equal(versions(got), versions(want)) || !slices.Equal(positions(got), positions(want)) {
			t.Errorf("%s = versions %v at %v, want %v at %v", what, versions(got), positions(got), versions(want), positions(want))
		}
	}
	for from := uint64(1); from <= n+1; from++ {
		want := readStream(t, s, stream, from)
		same(fmt.Sprintf("from version %d after its predecessor", from), after(from, pos(from-1)), want)
		same(fmt.Sprintf("from version %d after version 1's predecessor", from), after(from, pos(0)), want)
		if from > 2 {
			same(fmt.Sprintf("from version %d after version 1", from), after(from, pos(1)), want)
		}
	}
	// The caller's mistake: a position past the first version wanted.
	same("from version 2 after version 4", after(2, pos(4)), readStream(t, s, stream, 2))
	if recs := after(2, pos(n)+1); len(recs) != 0 {
		t.Errorf("from version 2 after the stream's end = versions %v, want none", versions(recs))
	}
	unknown, _ := newComplaint()
	if recs, err := tr.ReadStreamAfter(ctx, unknown, 1, pos(1)); err != nil || len(recs) != 0 {
		t.Errorf("unknown stream = %d events, %v; want none", len(recs), err)
	}
}

func unknownStreamReadsEmpty(t *testing.T, s eventlog.Store) {
	stream, _ := newComplaint()
	if recs := readStream(t, s, stream, 1); len(recs) != 0 {
		t.Fatalf("unknown stream read %d events, want none", len(recs))
	}
	mustVerify(t, s, stream, 0)
}

func readAllPages(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	var streams []eventlog.StreamID
	var cids []string
	for range 3 {
		st, id := newComplaint()
		streams, cids = append(streams, st), append(cids, id)
	}
	const total = 25
	for i := range total {
		k := i % 3
		_, err := s.Append(ctx, streams[k], uint64(i/3), response(t, cids[k], fmt.Sprint(i)))
		mustNot(t, err)
	}

	var all []eventlog.Record
	from := uint64(1)
	for pages := 0; ; pages++ {
		if pages > total {
			t.Fatal("ReadAll never reports the end of the log")
		}
		page := readAll(t, s, from, 7)
		if len(page) > 7 {
			t.Fatalf("page of %d events, asked for at most 7", len(page))
		}
		if len(page) == 0 {
			break
		}
		all = append(all, page...)
		from = page[len(page)-1].Position + 1
	}
	if len(all) != total {
		t.Fatalf("paged through %d events, want %d", len(all), total)
	}
	for i, r := range all {
		if i > 0 && r.Position <= all[i-1].Position {
			t.Fatalf("position %d after %d", r.Position, all[i-1].Position)
		}
		if want := fmt.Sprint(i); r.Event.GetResponseRecorded().GetSummary() != want {
			t.Fatalf("event %d is %q, want %q (log order)", i, r.Event.GetResponseRecorded().GetSummary(), want)
		}
	}
	if tail := readAll(t, s, all[20].Position, 100); len(tail) != 5 || tail[0].Position != all[20].Position {
		t.Fatalf("read from position %d = %d events, want 5 starting there", all[20].Position, len(tail))
	}
}

func followStoredThenLive(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id), response(t, id, "2"), response(t, id, "3"))
	mustNot(t, err)
	first := readStream(t, s, stream, 1)

	fctx, cancel := context.WithCancel(ctx)
	got := make(chan eventlog.Record, 16)
	done := make(chan error, 1)
	go func() {
		// From the second event: the first must not be delivered.
		done <- s.Follow(fctx, first[1].Position, func(r eventlog.Record) error { got <- r; return nil })
	}()
	for _, want := range []uint64{2, 3} {
		if r := receive(t, got); r.Event.GetVersion() != want {
			t.Fatalf("followed version %d, want %d", r.Event.GetVersion(), want)
		}
	}
	_, err = s.Append(ctx, stream, 3, response(t, id, "4"), response(t, id, "5"))
	mustNot(t, err)
	for _, want := range []uint64{4, 5} {
		if r := receive(t, got); r.Event.GetVersion() != want {
			t.Fatalf("followed live version %d, want %d", r.Event.GetVersion(), want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Follow returned %v after cancel, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Follow did not return after its context was cancelled")
	}
}

func followStopsOnError(t *testing.T, s eventlog.Store) {
	ctx := testContext(t)
	stream, id := newComplaint()
	_, err := s.Append(ctx, stream, 0, accepted(t, id), response(t, id, "2"), response(t, id, "3"))
	mustNot(t, err)
	stop := errors.New("handler gives up")
	calls := 0
	err = s.Follow(ctx, 1, func(r eventlog.Record) error {
		calls++
		if r.Event.GetVersion() == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("Follow = %v after %d calls, want the handler's error after 2", err, calls)
	}
}

func traceFromContext(t *testing.T, s eventlog.Store) {
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(testContext(t), sc)

	stream, id := newComplaint()
	own := response(t, id, "carries its own trace")
	own.Traceparent = "00-11111111111111111111111111111111-2222222222222222-01"
	_, err := s.Append(ctx, stream, 0, accepted(t, id), own)
	mustNot(t, err)
	recs := readStream(t, s, stream, 1)
	if got, want := recs[0].Event.GetTraceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"; got != want {
		t.Errorf("empty traceparent filled with %q, want %q from the context", got, want)
	}
	if got := recs[1].Event.GetTraceparent(); got != own.Traceparent {
		t.Errorf("event's own traceparent replaced by %q", got)
	}
}

// --- helpers ---

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newComplaint() (eventlog.StreamID, string) {
	id := uuid.NewString()
	return eventlog.ComplaintStream(id), id
}

func meta(complaintID string) eventlog.Meta {
	return eventlog.Meta{
		ComplaintID:   complaintID,
		Producer:      "conformance",
		Actor:         "system",
		CorrelationID: uuid.NewString(),
		OccurredAt:    time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC),
	}
}

func accepted(t *testing.T, complaintID string) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(meta(complaintID), &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	mustNot(t, err)
	return e
}

func response(t *testing.T, complaintID, summary string) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(meta(complaintID), &eventsv1.ResponseRecorded{Summary: summary, RespondedBy: "agent-7"})
	mustNot(t, err)
	return e
}

func readStream(t *testing.T, s eventlog.Store, stream eventlog.StreamID, from uint64) []eventlog.Record {
	t.Helper()
	recs, err := s.ReadStream(testContext(t), stream, from)
	mustNot(t, err)
	return recs
}

func readAll(t *testing.T, s eventlog.Store, from uint64, max int) []eventlog.Record {
	t.Helper()
	recs, err := s.ReadAll(testContext(t), from, max)
	mustNot(t, err)
	return recs
}

func receive(t *testing.T, ch <-chan eventlog.Record) eventlog.Record {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no event followed within 10s")
		return eventlog.Record{}
	}
}

func mustNot(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustConflict(t *testing.T, err error, stream eventlog.StreamID) {
	t.Helper()
	if !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("got %v, want an error wrapping ErrConflict", err)
	}
	if !strings.Contains(err.Error(), string(stream)) {
		t.Errorf("conflict %q does not name the stream %s", err, stream)
	}
}

func mustVerify(t *testing.T, s eventlog.Store, stream eventlog.StreamID, want int) {
	t.Helper()
	broken, n, err := eventlog.VerifyStream(testContext(t), s, stream)
	mustNot(t, err)
	if broken != nil {
		t.Fatalf("chain broken: %v", broken)
	}
	if n != want {
		t.Fatalf("verified %d events, want %d", n, want)
	}
}

func cloneAll(es []*eventsv1.Envelope) []*eventsv1.Envelope {
	out := make([]*eventsv1.Envelope, len(es))
	for i, e := range es {
		out[i] = proto.Clone(e).(*eventsv1.Envelope)
	}
	return out
}

func ids(recs []eventlog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Event.GetEventId()
	}
	return out
}

func idsOf(es []*eventsv1.Envelope) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.GetEventId()
	}
	return out
}

func positions(recs []eventlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Position
	}
	return out
}

func versions(recs []eventlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Event.GetVersion()
	}
	return out
}
