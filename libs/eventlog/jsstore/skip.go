package jsstore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// Anyone with publish rights on events.*.* can put a message in the log that
// the store never wrote. Readers must not stop on one: a single bad message
// would stop every service following the log, and the stream denies deletes.
// So readers leave out, count and log (once per store and position):
//
//   - a message that is not an event (ErrNotAnEvent): it does not decode,
//     has no event id or no payload, or is larger than eventlog.MaxEventSize
//     (Append never stores one; the stream takes up to 16 KiB more for
//     headers, so a raw publish can). ReadAll, ReadStream and Follow skip it.
//     If it was an event altered in place, its stream now misses a version:
//     ReadStream refuses the stream as damaged (*eventlog.BrokenLink), and
//     VerifyChain and VerifyLog report the version missing at its own
//     position (the next event's prev_position).
//   - in ReadStream only, an event whose version is not above the last one
//     read (an old event published again after the duplicate window): the
//     services fold a stream without checking versions. ReadAll, Follow and
//     ReadStreamRaw keep it, so VerifyLog and VerifyStream report it.

// ErrNotAnEvent is wrapped by the decode errors of messages that are not
// events of the log.
var ErrNotAnEvent = errors.New("not an event")

// oddMessages counts and logs the messages readers leave out.
type oddMessages struct {
	log         *slog.Logger
	undecodable metric.Int64Counter
	repeated    metric.Int64Counter

	mu   sync.Mutex
	seen map[uint64]struct{} // positions already counted and logged
}

// maxSeen bounds the positions remembered; past it they are counted again.
const maxSeen = 4096

func newOddMessages(log *slog.Logger, mp metric.MeterProvider) (*oddMessages, error) {
	m := mp.Meter("github.com/closeloop/closeloop/libs/eventlog/jsstore")
	o := &oddMessages{log: log, seen: map[uint64]struct{}{}}
	var err error
	if o.undecodable, err = m.Int64Counter("closeloop.eventlog.undecodable",
		metric.WithDescription("messages of the log skipped by readers because they are not events (undecodable, no event id or payload, over the size limit), by stream kind")); err != nil {
		return nil, err
	}
	if o.repeated, err = m.Int64Counter("closeloop.eventlog.repeated_version",
		metric.WithDescription("events left out of a stream read because they repeat a version already read (an old event stored again), by stream kind")); err != nil {
		return nil, err
	}
	return o, nil
}

// first tells whether position is met for the first time (bounded memory).
func (o *oddMessages) first(position uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[position]; ok {
		return false
	}
	if len(o.seen) >= maxSeen {
		clear(o.seen)
	}
	o.seen[position] = struct{}{}
	return true
}

// notAnEvent records a skipped message; err says why, never its bytes.
func (o *oddMessages) notAnEvent(ctx context.Context, subject string, position uint64, err error) {
	if !o.first(position) {
		return
	}
	o.undecodable.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", subjectKind(subject))))
	o.log.WarnContext(ctx, "jsstore: message in the log is not an event; readers skip it",
		"position", position, "subject", subject, "reason", err.Error())
}

// repeat records an event left out of a stream read.
func (o *oddMessages) repeat(ctx context.Context, stream eventlog.StreamID, r eventlog.Record, top uint64) {
	if !o.first(r.Position) {
		return
	}
	o.repeated.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", stream.Kind())))
	o.log.WarnContext(ctx, "jsstore: event repeats a version already in its stream; stream reads skip it",
		"stream", string(stream), "position", r.Position, "version", r.Event.GetVersion(), "after_version", top, "event_id", r.Event.GetEventId())
}

// subjectKind is the <kind> of events.<kind>.<id>, or "unknown".
func subjectKind(subject string) string {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) < 3 || parts[0] != subjectRoot || parts[1] == "" {
		return "unknown"
	}
	return parts[1]
}
