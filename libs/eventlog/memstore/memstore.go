// Package memstore is an in-memory eventlog.Store for fast unit tests of
// services' handlers. It passes the same conformance suite as the JetStream
// backend, so what a handler's test sees here is what production does —
// except that nothing survives the process.
package memstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Store keeps the whole log in memory. The zero value is not usable; call New.
type Store struct {
	clock  clock.Clock
	signer *signing.Signer // nil: events stored unsigned

	mu      sync.Mutex
	log     []eventlog.Record           // position p is log[p-1]
	streams map[eventlog.StreamID][]int // indexes into log, by version-1
	ids     map[string]int              // event id -> index into log
	grown   chan struct{}               // closed (and replaced) when log grows
}

var (
	_ eventlog.Store      = (*Store)(nil)
	_ eventlog.TailReader = (*Store)(nil)
)

// New returns an empty store stamping RecordedAt from c (clock.Real when nil).
func New(c clock.Clock) *Store {
	if c == nil {
		c = clock.Real{}
	}
	return &Store{
		clock:   c,
		streams: make(map[eventlog.StreamID][]int),
		ids:     make(map[string]int),
		grown:   make(chan struct{}),
	}
}

// NewSigned is New with every appended event signed by signer, as the
// JetStream store does with Config.Signer: only signer's producer's events.
func NewSigned(c clock.Clock, signer *signing.Signer) *Store {
	s := New(c)
	s.signer = signer
	return s
}

// Append implements eventlog.Store. Event ids are remembered forever (JetStream
// only within its duplicate window).
func (s *Store) Append(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, events ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	return s.append(ctx, stream, expectedVersion, -1, events)
}

// ErrCut is what AppendCut returns.
var ErrCut = errors.New("memstore: append cut short")

// AppendCut stores only the first keep events of the batch, as the JetStream
// log does when its writer crashes after them (it stores a batch one event at
// a time), and returns ErrCut. For tests of what readers make of a cut batch.
func (s *Store) AppendCut(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, keep int, events ...*eventsv1.Envelope) error {
	if _, err := s.append(ctx, stream, expectedVersion, keep, events); err != nil {
		return err
	}
	return ErrCut
}

// append stores the batch, or its first keep fresh events when keep >= 0.
func (s *Store) append(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, keep int, events []*eventsv1.Envelope) (eventlog.AppendResult, error) {
	if err := eventlog.ValidateBatch(stream, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	idx := s.streams[stream]
	var res eventlog.AppendResult
	if current := uint64(len(idx)); current != expectedVersion {
		if current < expectedVersion {
			return res, conflict(stream, expectedVersion, current)
		}
		after := make([]string, 0, current-expectedVersion)
		for _, i := range idx[expectedVersion:] {
			after = append(after, s.log[i].Event.GetEventId())
		}
		stored, ok := eventlog.RetriedPrefix(after, events)
		if !ok {
			return res, conflict(stream, expectedVersion, current)
		}
		last := s.log[idx[expectedVersion+uint64(stored)-1]]
		res = eventlog.AppendResult{Version: last.Event.GetVersion(), Position: last.Position, Duplicates: stored}
		events = events[stored:]
	}

	// Events stored earlier under the same id (in any stream) are not stored again.
	fresh := events[:0:0]
	for _, e := range events {
		if i, dup := s.ids[e.GetEventId()]; dup {
			res.Duplicates++
			res.Position = s.log[i].Position
			continue
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		if res.Version == 0 {
			res.Version = uint64(len(idx))
		}
		return res, nil
	}

	end := eventlog.StreamEnd{Version: uint64(len(idx))}
	if len(idx) > 0 {
		last := s.log[idx[len(idx)-1]]
		end.Hash, end.Position = eventlog.Hash(last.Raw), last.Position
	}
	raws, err := eventlog.Seal(ctx, stream, end, s.clock.Now(), fresh)
	if err != nil {
		return eventlog.AppendResult{}, err
	}
	for i, e := range fresh {
		if err := eventlog.MaySign(s.signer, e); err != nil {
			return eventlog.AppendResult{}, fmt.Errorf("events[%d]: %w", i, err)
		}
	}
	if keep >= 0 && keep < len(fresh) {
		fresh = fresh[:keep]
	}
	for i, e := range fresh {
		if i > 0 { // the log is ours: the event before is at the end
			if raws[i], err = eventlog.Restamp(e, uint64(len(s.log)), eventlog.Hash(raws[i-1])); err != nil {
				return eventlog.AppendResult{}, err
			}
		}
		if raws[i], err = eventlog.Sign(s.signer, e, raws[i]); err != nil {
			return eventlog.AppendResult{}, err
		}
		stored, err := eventlog.DecodeEnvelope(raws[i])
		if err != nil {
			return eventlog.AppendResult{}, fmt.Errorf("memstore: re-read of a sealed event: %w", err)
		}
		pos := uint64(len(s.log)) + 1
		s.log = append(s.log, eventlog.Record{Event: stored, Raw: raws[i], Position: pos})
		idx = append(idx, len(s.log)-1)
		s.ids[e.GetEventId()] = len(s.log) - 1
		res.Version, res.Position = stored.GetVersion(), pos
	}
	s.streams[stream] = idx
	close(s.grown)
	s.grown = make(chan struct{})
	return res, nil
}

func conflict(stream eventlog.StreamID, expected, current uint64) error {
	return fmt.Errorf("memstore: append to %s expecting version %d, stream is at version %d: %w", stream, expected, current, eventlog.ErrConflict)
}

// ReadStream implements eventlog.Store.
func (s *Store) ReadStream(_ context.Context, stream eventlog.StreamID, fromVersion uint64) ([]eventlog.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx := s.streams[stream]
	if fromVersion < 1 {
		fromVersion = 1
	}
	if fromVersion > uint64(len(idx)) {
		return []eventlog.Record{}, nil
	}
	out := make([]eventlog.Record, 0, uint64(len(idx))-fromVersion+1)
	for _, i := range idx[fromVersion-1:] {
		out = append(out, clone(s.log[i]))
	}
	return out, nil
}

// ReadStreamAfter implements eventlog.TailReader as jsstore does: the
// events of stream with version >= fromVersion among those after
// afterPosition; when the first of them is past fromVersion (a position
// after the one wanted), the whole ReadStream.
func (s *Store) ReadStreamAfter(ctx context.Context, stream eventlog.StreamID, fromVersion, afterPosition uint64) ([]eventlog.Record, error) {
	fromVersion = max(fromVersion, 1)
	s.mu.Lock()
	idx := s.streams[stream]
	// Positions rise with versions: the first event after afterPosition.
	first, _ := slices.BinarySearchFunc(idx, afterPosition, func(i int, p uint64) int { return cmp.Compare(s.log[i].Position, p+1) })
	if uint64(first) > fromVersion-1 && first < len(idx) {
		s.mu.Unlock()
		return s.ReadStream(ctx, stream, fromVersion)
	}
	defer s.mu.Unlock()
	from := max(uint64(first), fromVersion-1)
	if from >= uint64(len(idx)) {
		return []eventlog.Record{}, nil
	}
	out := make([]eventlog.Record, 0, uint64(len(idx))-from)
	for _, i := range idx[from:] {
		out = append(out, clone(s.log[i]))
	}
	return out, nil
}

// ReadAll implements eventlog.Store.
func (s *Store) ReadAll(_ context.Context, fromPosition uint64, max int) ([]eventlog.Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("memstore: read all: max %d: must be positive", max)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	recs, _ := s.fromLocked(fromPosition, max)
	return recs, nil
}

// fromLocked returns up to max records from fromPosition and the channel
// closed on the next append.
func (s *Store) fromLocked(fromPosition uint64, max int) ([]eventlog.Record, <-chan struct{}) {
	if fromPosition < 1 {
		fromPosition = 1
	}
	var out []eventlog.Record
	for p := fromPosition; p <= uint64(len(s.log)) && len(out) < max; p++ {
		out = append(out, clone(s.log[p-1]))
	}
	return out, s.grown
}

// Follow implements eventlog.Store.
func (s *Store) Follow(ctx context.Context, fromPosition uint64, fn func(eventlog.Record) error) error {
	next := max(fromPosition, 1)
	for {
		s.mu.Lock()
		recs, grown := s.fromLocked(next, 1024)
		s.mu.Unlock()
		for _, r := range recs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(r); err != nil {
				return err
			}
			next = r.Position + 1
		}
		if len(recs) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-grown:
		}
	}
}

// Close implements eventlog.Store; the events stay readable.
func (s *Store) Close() error { return nil }

// clone gives a reader its own Event, so changing it cannot change the log.
func clone(r eventlog.Record) eventlog.Record {
	r.Event = proto.Clone(r.Event).(*eventsv1.Envelope)
	return r
}
