package jsstore

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Append implements eventlog.Store.
//
// The events of a batch are published one after another, each expecting the
// previous one's sequence: JetStream has no multi-message transaction with a
// per-subject expectation. A crash mid-batch therefore leaves a prefix of the
// batch stored. That is safe: handlers re-decide from the stream, and a retry
// of the same batch (same event ids, same expected version) is recognised and
// completes it (see eventlog.RetriedPrefix).
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
		return s.settle(ctx, stream, expectedVersion, events, eventlog.AppendResult{})
	}
	res, done, err := s.publish(ctx, stream, t, events)
	if errors.Is(err, errWrongSequence) {
		// The stream moved on without this store seeing it: another writer,
		// or an earlier attempt of this very batch.
		return s.settle(ctx, stream, res.Version, events[done:], res)
	}
	return res, err
}

// settle appends when the cached tail cannot be trusted: it asks the server
// where the stream ends and, when it is past expectedVersion, whether what
// follows is this batch (an idempotent retry) or someone else's events (a
// conflict). prior carries what an earlier part of the call achieved.
func (s *Store) settle(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, events []*eventsv1.Envelope, prior eventlog.AppendResult) (eventlog.AppendResult, error) {
	t, err := s.lastTail(ctx, stream)
	if err != nil {
		return prior, err
	}
	res := prior
	if t.version > expectedVersion {
		after, err := s.ReadStream(ctx, stream, expectedVersion+1)
		if err != nil {
			return prior, err
		}
		ids := make([]string, len(after))
		for i, r := range after {
			ids[i] = r.Event.GetEventId()
		}
		stored, ok := eventlog.RetriedPrefix(ids, events)
		if !ok || len(after) == 0 {
			return prior, conflictError(stream, expectedVersion, t.version)
		}
		last := after[stored-1]
		res.Version, res.Position = last.Event.GetVersion(), last.Position
		res.Duplicates += stored
		if stored == len(events) {
			return res, nil
		}
		events = events[stored:]
		t = tail{version: uint64(len(after)) + expectedVersion, seq: after[len(after)-1].Position, hash: eventlog.Hash(after[len(after)-1].Raw)}
	} else if t.version < expectedVersion {
		return prior, conflictError(stream, expectedVersion, t.version)
	}
	more, _, err := s.publish(ctx, stream, t, events)
	res.Duplicates += more.Duplicates
	if more.Position != 0 {
		res.Version, res.Position = more.Version, more.Position
	}
	if errors.Is(err, errWrongSequence) {
		return res, conflictError(stream, expectedVersion, t.version)
	}
	return res, err
}

// errWrongSequence is JetStream refusing a publish whose expected last
// sequence is not the stream's (codes 10071, and 10164 on replicated streams).
var errWrongSequence = errors.New("wrong last sequence")

func conflictError(stream eventlog.StreamID, expected, current uint64) error {
	return fmt.Errorf("jsstore: append to %s expecting version %d, stream is at version %d: %w", stream, expected, current, eventlog.ErrConflict)
}

// publish appends events after t, one synchronous publish each. It returns
// how many events it got through (stored or found duplicate) and, in the
// result, the tail reached. A duplicate stores nothing, so the events after
// it are sealed again against the same tail.
func (s *Store) publish(ctx context.Context, stream eventlog.StreamID, t tail, events []*eventsv1.Envelope) (eventlog.AppendResult, int, error) {
	res := eventlog.AppendResult{Version: t.version}
	raws, err := eventlog.Seal(ctx, stream, t.version, t.hash, s.cfg.Clock.Now(), events)
	if err != nil {
		return res, 0, err
	}
	filter := StreamSubjects(stream)
	for i, e := range events {
		msg := nats.NewMsg(Subject(stream, e.GetType()))
		msg.Data = raws[i]
		traceHeaders(ctx, msg.Header, e)
		ack, err := s.js.PublishMsg(ctx, msg,
			jetstream.WithMsgID(e.GetEventId()),
			jetstream.WithExpectLastSequenceForSubject(t.seq, filter))
		if err != nil {
			s.tails.drop(stream)
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
				apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
				return res, i, fmt.Errorf("%w: %w", errWrongSequence, err)
			}
			// The event may or may not be stored: a retry settles it.
			return res, i, fmt.Errorf("jsstore: append to %s, event %s at version %d: %w", stream, e.GetEventId(), e.GetVersion(), err)
		}
		res.Position = ack.Sequence
		if ack.Duplicate {
			res.Duplicates++
			if rest := events[i+1:]; len(rest) > 0 {
				again, err := eventlog.Seal(ctx, stream, t.version, t.hash, s.cfg.Clock.Now(), rest)
				if err != nil {
					return res, i + 1, err
				}
				copy(raws[i+1:], again)
			}
			continue
		}
		t = tail{version: t.version + 1, seq: ack.Sequence, hash: eventlog.Hash(raws[i])}
		res.Version = t.version
		s.tails.put(stream, t)
	}
	return res, len(events), nil
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

// lastTail asks the server where a stream ends.
func (s *Store) lastTail(ctx context.Context, stream eventlog.StreamID) (tail, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, StreamSubjects(stream))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return tail{}, nil
	}
	if err != nil {
		return tail{}, fmt.Errorf("jsstore: last event of %s: %w", stream, err)
	}
	rec, err := DecodeRawMsg(m)
	if err != nil {
		return tail{}, err
	}
	t := tail{version: rec.Event.GetVersion(), seq: rec.Position, hash: eventlog.Hash(rec.Raw)}
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
