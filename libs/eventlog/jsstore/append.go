package jsstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Append implements eventlog.Store.
//
// A single event is one publish expecting the stream's last sequence. A
// batch of several events is, by default, one such publish per event (a
// concurrent writer may cut it: a prefix is stored and Append reports a
// conflict); with Config.AtomicBatches it is one JetStream atomic batch,
// stored whole or not at all (see publishBatch).
func (s *Store) Append(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, events ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	if err := eventlog.ValidateBatch(stream, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()

	t, known := s.tails.get(stream)
	if !known && expectedVersion == 0 {
		// Most likely a new stream: let the server check it is empty.
		t, known = tail{}, true
	}
	if !known || t.version != expectedVersion {
		return s.settle(ctx, stream, expectedVersion, events)
	}
	res, err := s.publish(ctx, stream, t, events)
	if errors.Is(err, errWrongSequence) || errors.Is(err, errDuplicateInBatch) {
		// The stream moved on without this store seeing it (another writer,
		// or an earlier attempt of this very batch), or an event of the
		// batch is stored already. Nothing of this attempt was stored.
		return s.settle(ctx, stream, expectedVersion, events)
	}
	return res, err
}

// settle appends when the cached tail cannot be trusted or the batch met a
// stored event id: it asks the server where the stream ends and, when it is
// past expectedVersion, whether what follows is this batch (an idempotent
// retry, maybe of a prefix stored by an older, non-atomic store) or someone
// else's events (a conflict). Event ids of the batch stored earlier in the
// stream count as duplicates and are left out, as a single event's would be.
func (s *Store) settle(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, events []*eventsv1.Envelope) (eventlog.AppendResult, error) {
	var storedEarlier map[string]uint64 // event id -> position, read when needed
	for round := 0; ; round++ {
		t, err := s.lastTail(ctx, stream)
		if err != nil {
			return eventlog.AppendResult{}, err
		}
		res := eventlog.AppendResult{Version: t.version}
		rest := events
		if t.version < expectedVersion {
			return eventlog.AppendResult{}, conflictError(stream, expectedVersion, t.version)
		}
		if t.version > expectedVersion {
			after, err := s.ReadStream(ctx, stream, expectedVersion+1)
			if err != nil {
				return eventlog.AppendResult{}, err
			}
			ids := make([]string, len(after))
			for i, r := range after {
				ids[i] = r.Event.GetEventId()
			}
			stored, ok := eventlog.RetriedPrefix(ids, events)
			if !ok || len(after) == 0 {
				return eventlog.AppendResult{}, conflictError(stream, expectedVersion, t.version)
			}
			last := after[stored-1]
			res = eventlog.AppendResult{Version: last.Event.GetVersion(), Position: last.Position, Duplicates: stored}
			if stored == len(events) {
				return res, nil
			}
			rest = events[stored:]
			// The stream's last message may be one ReadStream leaves out:
			// keep its sequence for the server's check.
			end := after[len(after)-1]
			t = tail{version: end.Event.GetVersion(), seq: max(t.seq, end.Position), hash: eventlog.Hash(end.Raw)}
		}
		fresh := rest
		if storedEarlier != nil {
			fresh = make([]*eventsv1.Envelope, 0, len(rest))
			for _, e := range rest {
				if pos, dup := storedEarlier[e.GetEventId()]; dup {
					res.Duplicates++
					res.Position = max(res.Position, pos)
					continue
				}
				fresh = append(fresh, e)
			}
			if len(fresh) == 0 {
				return res, nil
			}
		}
		more, err := s.publish(ctx, stream, t, fresh)
		switch {
		case err == nil:
			more.Duplicates += res.Duplicates
			if more.Position == 0 {
				more.Position = res.Position
			}
			return more, nil
		case errors.Is(err, errWrongSequence):
			return eventlog.AppendResult{}, conflictError(stream, expectedVersion, t.version)
		case errors.Is(err, errDuplicateInBatch) && round < 2:
			// Either the stream moved on meanwhile (the next round sees it)
			// or an event id of the batch is stored before expectedVersion.
			all, err := s.ReadStream(ctx, stream, 1)
			if err != nil {
				return eventlog.AppendResult{}, err
			}
			storedEarlier = make(map[string]uint64, len(all))
			for _, r := range all {
				storedEarlier[r.Event.GetEventId()] = r.Position
			}
		case errors.Is(err, errDuplicateInBatch):
			// Event ids are unique across the whole log.
			return eventlog.AppendResult{}, fmt.Errorf("jsstore: append to %s: %w: event_id: one of the batch is already stored in another stream", stream, eventlog.ErrInvalidEvent)
		default:
			return eventlog.AppendResult{}, err
		}
	}
}

// JetStream answers a publish refused for a stale expectation with
// errWrongSequence (codes 10071, and 10164 on replicated streams), and an
// atomic batch holding an event id already stored with errDuplicateInBatch.
// Neither stores anything.
var (
	errWrongSequence    = errors.New("wrong last sequence")
	errDuplicateInBatch = errors.New("batch holds a stored event id")
)

// Atomic batch publish error codes (nats-server 2.12+) the jetstream package
// has no constants for.
const (
	errCodeBatchDuplicate  jetstream.ErrorCode = 10201 // a message id of the batch is stored
	errCodeBatchIncomplete jetstream.ErrorCode = 10176 // a message of the batch was refused or lost
	errCodeBatchInflight   jetstream.ErrorCode = 10210 // too many batches being staged on the stream
)

// Atomic batch headers.
const (
	batchIDHeader     = "Nats-Batch-Id"
	batchSeqHeader    = "Nats-Batch-Sequence"
	batchCommitHeader = "Nats-Batch-Commit"
)

func conflictError(stream eventlog.StreamID, expected, current uint64) error {
	return fmt.Errorf("jsstore: append to %s expecting version %d, stream is at version %d: %w", stream, expected, current, eventlog.ErrConflict)
}

// publish appends events after t, whole or not at all, and caches the new
// tail. A single event that is a duplicate stores nothing and reports
// Duplicates 1 with the stored event's position.
func (s *Store) publish(ctx context.Context, stream eventlog.StreamID, t tail, events []*eventsv1.Envelope) (eventlog.AppendResult, error) {
	raws, err := eventlog.Seal(ctx, stream, eventlog.StreamEnd{Version: t.version, Hash: t.hash, Position: t.seq}, s.cfg.Clock.Now(), events)
	if err != nil {
		return eventlog.AppendResult{}, err
	}
	// Check every event's producer before storing any; sign what is sent
	// as sealed (publishEach signs the later events once restamped).
	each := len(events) > 1 && !s.cfg.AtomicBatches
	for i, e := range events {
		if err := eventlog.MaySign(s.cfg.Signer, e); err != nil {
			return eventlog.AppendResult{}, fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	for i, e := range events {
		if i > 0 && each {
			break
		}
		if raws[i], err = eventlog.Sign(s.cfg.Signer, e, raws[i]); err != nil {
			return eventlog.AppendResult{}, err
		}
	}
	var ack *jetstream.PubAck
	switch {
	case len(events) == 1:
		ack, err = s.publishOne(ctx, stream, t, events[0], raws[0])
	case s.cfg.AtomicBatches:
		ack, err = s.publishBatch(ctx, stream, t, events, raws)
	default:
		return s.publishEach(ctx, stream, t, events, raws)
	}
	if err != nil {
		s.tails.drop(stream)
		return eventlog.AppendResult{}, err
	}
	if ack.Duplicate {
		return eventlog.AppendResult{Version: t.version, Position: ack.Sequence, Duplicates: 1}, nil
	}
	t = tail{version: t.version + uint64(len(events)), seq: ack.Sequence, hash: eventlog.Hash(raws[len(raws)-1])}
	s.tails.put(stream, t)
	return eventlog.AppendResult{Version: t.version, Position: t.seq}, nil
}

// publishOne is one synchronous publish expecting t's sequence.
func (s *Store) publishOne(ctx context.Context, stream eventlog.StreamID, t tail, e *eventsv1.Envelope, raw []byte) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(Subject(stream))
	msg.Data = raw
	msg.Header.Set(EventTypeHeader, e.GetType())
	traceHeaders(ctx, msg.Header, e)
	ack, err := s.js.PublishMsg(ctx, msg,
		jetstream.WithMsgID(e.GetEventId()),
		jetstream.WithExpectLastSequencePerSubject(t.seq))
	if err != nil {
		return nil, publishError(stream, e, err)
	}
	return ack, nil
}

// publishEach stores events after t one publish at a time, each expecting
// the one before it, so what is stored is always a contiguous prefix of the
// batch: a writer that slips in between makes the rest fail with a conflict,
// and the writer re-reads and re-decides (the services' handlers do). This
// is the default: an atomic batch costs a staging store per batch on a
// single node (see README.md). Each event after the first is restamped with
// the position the one before it got, which is also what it expects.
func (s *Store) publishEach(ctx context.Context, stream eventlog.StreamID, t tail, events []*eventsv1.Envelope, raws [][]byte) (eventlog.AppendResult, error) {
	for i, e := range events {
		if i > 0 {
			raw, err := eventlog.Restamp(e, t.seq, t.hash)
			if err == nil {
				raw, err = eventlog.Sign(s.cfg.Signer, e, raw)
			}
			if err != nil {
				s.tails.drop(stream)
				return eventlog.AppendResult{}, err
			}
			raws[i] = raw
		}
		ack, err := s.publishOne(ctx, stream, t, e, raws[i])
		if err == nil && ack.Duplicate {
			// Stored by an earlier attempt, with other bytes than these:
			// only a read tells where the stream really ends.
			err = errDuplicateInBatch
		}
		if err != nil {
			s.tails.drop(stream)
			return eventlog.AppendResult{}, err
		}
		t = tail{version: t.version + 1, seq: ack.Sequence, hash: eventlog.Hash(raws[i])}
		s.tails.put(stream, t)
	}
	return eventlog.AppendResult{Version: t.version, Position: t.seq}, nil
}

// batchRetries bounds how often a batch the server dropped before its commit
// (too many batches staged at once) is sent again.
const batchRetries = 8

// publishBatch stores events after t as one atomic batch. The server stages
// the messages and, on the commit (the last message, the only one sent as a
// request), checks the first message's expected sequence and every message
// id, then stores the whole batch with a single sync; any failure stores
// nothing. A batch refused before its commit (staging limits) is sent again
// under a new batch id.
func (s *Store) publishBatch(ctx context.Context, stream eventlog.StreamID, t tail, events []*eventsv1.Envelope, raws [][]byte) (*jetstream.PubAck, error) {
	backoff := time.Millisecond
	for attempt := 1; ; attempt++ {
		ack, err := s.sendBatch(ctx, stream, t, events, raws)
		var apiErr *jetstream.APIError
		if attempt == batchRetries || !errors.As(err, &apiErr) ||
			(apiErr.ErrorCode != errCodeBatchIncomplete && apiErr.ErrorCode != errCodeBatchInflight) {
			return ack, err
		}
		// A transport retry, not domain time: a real timer is right here.
		timer := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, fmt.Errorf("jsstore: append to %s: %w (after %w)", stream, ctx.Err(), err)
		case <-timer.C:
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}

// sendBatch sends one attempt of an atomic batch.
func (s *Store) sendBatch(ctx context.Context, stream eventlog.StreamID, t tail, events []*eventsv1.Envelope, raws [][]byte) (*jetstream.PubAck, error) {
	id := s.batchID()
	last := len(events) - 1
	for i, e := range events {
		msg := nats.NewMsg(Subject(stream))
		msg.Data = raws[i]
		msg.Header.Set(EventTypeHeader, e.GetType())
		traceHeaders(ctx, msg.Header, e)
		msg.Header.Set(jetstream.MsgIDHeader, e.GetEventId())
		msg.Header.Set(batchIDHeader, id)
		msg.Header.Set(batchSeqHeader, strconv.Itoa(i+1))
		if i == 0 {
			// Checked at commit, for the whole batch.
			msg.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(t.seq, 10))
		}
		if i < last {
			// Staged without a reply: an error here fails the commit.
			if err := s.js.Conn().PublishMsg(msg); err != nil {
				return nil, fmt.Errorf("jsstore: append to %s, event %s at version %d: %w", stream, e.GetEventId(), e.GetVersion(), err)
			}
			continue
		}
		msg.Header.Set(batchCommitHeader, "1")
		ack, err := s.js.PublishMsg(ctx, msg)
		if err != nil {
			return nil, publishError(stream, e, err)
		}
		return ack, nil
	}
	panic("unreachable: empty batch")
}

// publishError classifies a refused publish. Anything else than a refusal
// may or may not have stored the events: a retry settles it.
func publishError(stream eventlog.StreamID, e *eventsv1.Envelope, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			return fmt.Errorf("%w: %w", errWrongSequence, err)
		case errCodeBatchDuplicate:
			return fmt.Errorf("%w: %w", errDuplicateInBatch, err)
		}
	}
	return fmt.Errorf("jsstore: append to %s, event %s at version %d: %w", stream, e.GetEventId(), e.GetVersion(), err)
}

// batchID names an atomic batch: unique among the batches in flight on the
// server (at most 64 characters).
func (s *Store) batchID() string {
	return s.batchPrefix + strconv.FormatUint(s.batches.Add(1), 36)
}

// traceHeaders puts the trace context in the message headers, for consumers
// to continue the trace: ctx's span when there is one, else the event's own.
func traceHeaders(ctx context.Context, h nats.Header, e *eventsv1.Envelope) {
	telemetry.InjectNATS(ctx, h)
	if h.Get("traceparent") == "" && e.GetTraceparent() != "" {
		h.Set("traceparent", e.GetTraceparent())
		if e.GetTracestate() != "" {
			h.Set("tracestate", e.GetTracestate())
		}
	}
}

// lastTail asks the server where a stream ends. Usually that is its last
// message: an event whose version is the count of messages on the stream.
// When it is not (a message that is not an event, or an old event published
// again after the duplicate window), the tail is the last event ReadStream
// returns, with the last message's sequence for the server's check: writers
// expecting the real version are not blocked by what someone slipped in.
func (s *Store) lastTail(ctx context.Context, stream eventlog.StreamID) (tail, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, Subject(stream))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{}, nil
	}
	if err != nil {
		return tail{}, fmt.Errorf("jsstore: last event of %s: %w", stream, err)
	}
	rec, err := DecodeRawMsg(m)
	if err != nil && !errors.Is(err, ErrNotAnEvent) {
		return tail{}, err
	}
	if err == nil && eventlog.StreamID(rec.Event.GetStreamId()) == stream {
		n, err := s.count(ctx, Subject(stream))
		if err != nil {
			return tail{}, fmt.Errorf("jsstore: count events of %s: %w", stream, err)
		}
		if rec.Event.GetVersion() == n {
			t := tail{version: n, seq: rec.Position, hash: eventlog.Hash(rec.Raw)}
			s.tails.put(stream, t)
			return t, nil
		}
	}
	recs, err := s.ReadStream(ctx, stream, 1)
	if err != nil {
		return tail{}, err
	}
	t := tail{seq: m.Sequence}
	if len(recs) > 0 {
		end := recs[len(recs)-1]
		t.version, t.hash, t.seq = end.Event.GetVersion(), eventlog.Hash(end.Raw), max(t.seq, end.Position)
	}
	if t.seq == m.Sequence && (len(recs) == 0 || recs[len(recs)-1].Position != m.Sequence) {
		// Not a concurrent append: the last message is one ReadStream skips.
		s.cfg.Logger.WarnContext(ctx, "jsstore: last message of a stream does not continue its chain; appending after the chain's last event",
			"stream", string(stream), "last_position", m.Sequence, "version", t.version)
	}
	s.tails.put(stream, t)
	return t, nil
}

// tail is where a stream ends: what the next append must expect and chain to.
type tail struct {
	version uint64 // events in the stream
	seq     uint64 // stream sequence of its last message (0: none)
	hash    []byte // eventlog.Hash of its last message's bytes
}

// tails remembers the tail of recently written streams. It is only a hint:
// the server's expected-sequence check is what guarantees correctness.
type tails struct {
	mu  sync.Mutex
	max int
	m   map[eventlog.StreamID]tail
}

func newTails(max int) *tails { return &tails{max: max, m: make(map[eventlog.StreamID]tail)} }

func (c *tails) get(s eventlog.StreamID) (tail, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[s]
	return t, ok
}

// put records t unless a later tail is known already.
func (c *tails) put(s eventlog.StreamID, t tail) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[s]
	if ok && old.seq >= t.seq {
		return
	}
	if !ok && len(c.m) >= c.max {
		for k := range c.m { // map order is random enough for eviction
			delete(c.m, k)
			break
		}
	}
	c.m[s] = t
}

func (c *tails) drop(s eventlog.StreamID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, s)
}
