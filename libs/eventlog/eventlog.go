// Package eventlog is the append-only log every service rebuilds its view
// from: one stream per entity (a complaint, a technician, a team, a policy),
// optimistic appends, idempotent by event id, and a hash chain per stream that
// makes tampering evident. Backends live in sub-packages and all pass the
// conformance suite in eventlog/conformance.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// MaxEventSize is the largest stored event accepted by Append.
const MaxEventSize = 1 << 20

// ErrConflict is returned by Append when the stream's last version is not the
// one the writer expected: re-read, re-decide, retry.
var ErrConflict = errors.New("eventlog: concurrency conflict")

// ErrInvalidEvent is returned (wrapped, with the field and the rule) for an
// event that must not be stored. Nothing of the batch is stored.
var ErrInvalidEvent = errors.New("eventlog: invalid event")

// ErrNotFound is returned when a stream has no events.
var ErrNotFound = errors.New("eventlog: stream not found")

// ErrShortRead is returned by Reached for a read of a stream that ends
// before a version already seen on it: a replica answering while behind its
// leader (direct gets are served by any replica), or a server just
// restarted. Deciding on such a read may find nothing to do and lose the
// effect of the event that was seen: retry instead.
var ErrShortRead = errors.New("eventlog: read ended before a version already seen")

// LastVersion is the version of the last record read (0 for none).
func LastVersion(recs []Record) uint64 {
	if len(recs) == 0 {
		return 0
	}
	return recs[len(recs)-1].Event.GetVersion()
}

// Reached checks that a read of stream, which ended at version got, reached
// version atLeast (0: no expectation); else it returns ErrShortRead.
func Reached(stream StreamID, got, atLeast uint64) error {
	if got < atLeast {
		return fmt.Errorf("%w: %s read up to version %d, version %d was seen", ErrShortRead, stream, got, atLeast)
	}
	return nil
}

// StreamID names one entity's stream as "<kind>-<id>".
type StreamID string

// Stream kinds.
const (
	KindComplaint  = "complaint"
	KindTechnician = "technician"
	KindTeam       = "team"
	KindPolicy     = "policy"
)

// Stream returns the stream id of an entity of the given kind.
func Stream(kind, id string) StreamID { return StreamID(kind + "-" + id) }

// ComplaintStream returns the stream id of a complaint.
func ComplaintStream(complaintID string) StreamID { return Stream(KindComplaint, complaintID) }

// Kind is the part before the first '-'.
func (s StreamID) Kind() string { k, _, _ := strings.Cut(string(s), "-"); return k }

// ID is the part after the first '-'.
func (s StreamID) ID() string { _, id, _ := strings.Cut(string(s), "-"); return id }

// Record is one stored event as read back from the log.
type Record struct {
	// Event is the decoded envelope, with Version and RecordedAt as stored.
	Event *eventsv1.Envelope
	// Raw is the exact stored bytes; the next event's PrevHash is their
	// SHA-256. Never change them (change a copy): Event's string fields may
	// share their memory (DecodeStored).
	Raw []byte
	// Position is the event's place in the whole log (strictly increasing).
	Position uint64
}

// AppendResult tells where the last appended event landed.
type AppendResult struct {
	// Version of the stream after the append.
	Version uint64
	// Position of the last event in the whole log.
	Position uint64
	// Duplicates counts events of the batch already stored under the same
	// event id (idempotent retries); they are not stored again. When the
	// whole batch was already stored, Version and Position are those of its
	// last event.
	Duplicates int
}

// Store is the event log. Implementations are safe for concurrent use.
type Store interface {
	// Append stores events at the end of stream, provided its last version
	// is expectedVersion (0: the stream must be empty). What a batch leaves
	// stored is always a contiguous prefix of it, and all of it when Append
	// succeeds; whether a concurrent writer can cut a batch (storing a
	// prefix and returning ErrConflict) depends on the backend (jsstore:
	// unless Config.AtomicBatches), so a writer that gets ErrConflict
	// re-reads the stream and re-decides from what is there. The store sets
	// each event's StreamID, Version, RecordedAt and PrevHash. A stale
	// expectedVersion returns an error wrapping ErrConflict; an event that
	// is not well formed returns one wrapping ErrInvalidEvent and nothing is
	// stored. Events whose id is already stored (a retry) are counted in
	// Duplicates and not stored again.
	Append(ctx context.Context, stream StreamID, expectedVersion uint64, events ...*eventsv1.Envelope) (AppendResult, error)
	// ReadStream returns the stream's events with version >= fromVersion, in
	// order. A stream with no events returns an empty slice and no error.
	ReadStream(ctx context.Context, stream StreamID, fromVersion uint64) ([]Record, error)
	// ReadAll returns up to max events of the whole log with position >=
	// fromPosition, in order. An empty result means the reader is caught up.
	ReadAll(ctx context.Context, fromPosition uint64, max int) ([]Record, error)
	// Follow calls fn for every event with position >= fromPosition, in order,
	// first the stored ones then new ones as they are appended, until ctx is
	// done (Follow returns ctx.Err()) or fn returns an error (which Follow
	// returns).
	Follow(ctx context.Context, fromPosition uint64, fn func(Record) error) error
	// Close releases the store's resources (not the connection it was given).
	Close() error
}

// Validate checks what every backend refuses before storing anything: a
// missing event id or complaint id (on a complaint stream), no payload or a
// type that does not name the payload, and a size over MaxEventSize.
func Validate(stream StreamID, e *eventsv1.Envelope) error {
	if e == nil {
		return fmt.Errorf("%w: event is nil", ErrInvalidEvent)
	}
	if e.GetEventId() == "" {
		return fmt.Errorf("%w: event_id: required", ErrInvalidEvent)
	}
	if err := stream.Validate(); err != nil {
		return err
	}
	if stream.Kind() == KindComplaint {
		if e.GetComplaintId() == "" {
			return fmt.Errorf("%w: complaint_id: required on a complaint stream", ErrInvalidEvent)
		}
		if e.GetComplaintId() != stream.ID() {
			return fmt.Errorf("%w: complaint_id: does not match stream %q", ErrInvalidEvent, stream)
		}
	}
	name := TypeOf(e)
	if name == "" {
		return fmt.Errorf("%w: payload: required (unknown or missing event type)", ErrInvalidEvent)
	}
	if e.GetType() != "" && e.GetType() != name {
		return fmt.Errorf("%w: type: %q does not name the payload %s", ErrInvalidEvent, e.GetType(), name)
	}
	return nil
}

// Validate checks a stream id is "<kind>-<id>" with both parts made of
// characters that are safe in every backend's naming (a NATS subject token,
// an EventStoreDB stream name): no '.', '*', '>' or whitespace. The error
// wraps ErrInvalidEvent.
func (stream StreamID) Validate() error {
	if stream.Kind() == "" || stream.ID() == "" {
		return fmt.Errorf("%w: stream_id %q: must be <kind>-<id>", ErrInvalidEvent, stream)
	}
	if i := strings.IndexFunc(string(stream), func(r rune) bool {
		return r == '.' || r == '*' || r == '>' || unicode.IsSpace(r) || !unicode.IsPrint(r)
	}); i >= 0 {
		return fmt.Errorf("%w: stream_id %q: must not contain '.', '*', '>', spaces or control characters", ErrInvalidEvent, stream)
	}
	return nil
}

// ValidateBatch validates every event of a batch (see Validate) and refuses
// an event id given twice, naming the event's index in the batch.
func ValidateBatch(stream StreamID, events []*eventsv1.Envelope) error {
	if len(events) == 0 {
		return fmt.Errorf("%w: events: at least one event is required", ErrInvalidEvent)
	}
	seen := make(map[string]int, len(events))
	for i, e := range events {
		if err := Validate(stream, e); err != nil {
			return fmt.Errorf("events[%d]: %w", i, err)
		}
		if j, dup := seen[e.GetEventId()]; dup {
			return fmt.Errorf("events[%d]: %w: event_id: repeats events[%d] of the same batch", i, ErrInvalidEvent, j)
		}
		seen[e.GetEventId()] = i
	}
	return nil
}

// StreamEnd is where a stream ends, for Seal: the version of its last event,
// the hash of that event's stored bytes (nil for an empty stream) and the log
// position of the stream's last message (0: none, or not known).
type StreamEnd struct {
	Version  uint64
	Hash     []byte
	Position uint64
}

// prevPositionRoom is the most bytes Restamp can add to an event Seal left
// without a PrevPosition: the field's tag and its largest varint.
const prevPositionRoom = 2 + 10

// signatureRoom is the most bytes a store's signer appends to what Seal
// returns (signing.MaxTrailerSize).
const signatureRoom = signing.MaxTrailerSize

// Seal stamps events for storage at the end of a stream: it sets StreamId,
// Version, RecordedAt, PrevHash (chaining the events of the batch to one
// another) and PrevPosition (end.Position for the first event; 0 for the
// others, whose predecessors have no position yet: see Restamp) and
// BatchRemaining (how many events of the batch follow), fills an
// empty Traceparent and Tracestate from ctx, and returns the bytes to store
// for each event, unsigned (a store with a signer signs them). An event
// whose bytes exceed MaxEventSize (with room left for a signature and, after
// the first, for Restamp) fails the whole batch with ErrInvalidEvent.
// The events must have passed ValidateBatch.
func Seal(ctx context.Context, stream StreamID, end StreamEnd, recordedAt time.Time, events []*eventsv1.Envelope) ([][]byte, error) {
	trace := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, trace)
	at := timestamppb.New(recordedAt.UTC())
	raws := make([][]byte, len(events))
	prev := end.Hash
	for i, e := range events {
		e.StreamId = string(stream)
		e.Version = end.Version + uint64(i) + 1
		e.RecordedAt = at
		e.PrevHash = prev
		e.PrevPosition = 0
		e.BatchRemaining = uint32(len(events) - i - 1)
		e.Signature = nil // the store's signer appends it to these bytes
		if i == 0 {
			e.PrevPosition = end.Position
		}
		if e.Type == "" {
			e.Type = TypeOf(e)
		}
		if e.Traceparent == "" && trace["traceparent"] != "" {
			e.Traceparent, e.Tracestate = trace["traceparent"], trace["tracestate"]
		}
		raw, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("events[%d]: %w: does not marshal: %v", i, ErrInvalidEvent, err)
		}
		size := len(raw) + signatureRoom
		if i > 0 {
			size += prevPositionRoom
		}
		if size > MaxEventSize {
			return nil, fmt.Errorf("events[%d]: %w: size: %d bytes stored, more than the limit of %d", i, ErrInvalidEvent, size, MaxEventSize)
		}
		raws[i] = raw
		prev = Hash(raw)
	}
	return raws, nil
}

// Restamp re-seals an event of a batch once the event before it is stored:
// it sets PrevPosition to that event's log position and PrevHash to the hash
// of its stored bytes, and returns the bytes to store. Seal left room for it.
func Restamp(e *eventsv1.Envelope, prevPosition uint64, prevHash []byte) ([]byte, error) {
	e.PrevPosition, e.PrevHash = prevPosition, prevHash
	raw, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("%w: event %s does not marshal: %v", ErrInvalidEvent, e.GetEventId(), err)
	}
	return raw, nil
}

// RetriedPrefix tells an idempotent retry from a conflict when a stream has
// moved past the writer's expected version. A retry may find its batch
// whole or a prefix of it (a crash or a lost reply mid-batch), which is
// then completed. storedAfter are the event ids
// stored after that version, in order. It returns how many leading events of
// the batch are among them; ok is false when the stream holds an event that is
// not part of this batch before the batch is complete (a real conflict). With
// ok true, batch[stored:] is what remains to append, after the stream's last
// event.
func RetriedPrefix(storedAfter []string, batch []*eventsv1.Envelope) (stored int, ok bool) {
	for stored < len(storedAfter) && stored < len(batch) && storedAfter[stored] == batch[stored].GetEventId() {
		stored++
	}
	return stored, stored == len(batch) || stored == len(storedAfter)
}
