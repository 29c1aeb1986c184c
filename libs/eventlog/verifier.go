package eventlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

// Verifier checks each event a reader is about to apply: its signature
// (CheckSignature, against the keyring) and its link to its stream's
// previous event. Readers (libs/bus, libs/checkpoint) call Check on every
// record and never apply one it rejects. Safe for concurrent use.
//
// The link check compares the event's prev_hash with the hash of the
// previous version of its stream: from a bounded cache of the last event
// the same reader verified in recently seen streams (a reader following the
// log meets a stream's events one after the other, at its own pace: a bus
// consumer held back by a backlog must not find the tips a view far ahead
// of it left), else read from the log at the event's prev_position.
type Verifier struct {
	log        Store
	keys       *signing.Keyring
	logger     *slog.Logger
	deadLetter func(ctx context.Context, reader string, r Record, reason string) error
	rejected   metric.Int64Counter

	mu      sync.Mutex
	streams int
	tips    map[string]*tipCache // by reader
}

// VerifierOptions configure a Verifier.
type VerifierOptions struct {
	// Keys is the keyring of every producer's public keys; nil checks the
	// chain links only (unsigned events pass).
	Keys *signing.Keyring
	// DeadLetter records a quarantined event for an operator (bus.Quarantine
	// publishes it to the DEADLETTER stream under the reader's name); nil:
	// only logged and counted.
	DeadLetter func(ctx context.Context, reader string, r Record, reason string) error
	// Streams bounds each reader's cache of stream tips (default 32,768
	// streams).
	Streams int
	// Logger (default slog.Default()) and MeterProvider (default the otel
	// global) report what is quarantined.
	Logger        *slog.Logger
	MeterProvider metric.MeterProvider
}

// NewVerifier returns a verifier reading predecessors from log.
func NewVerifier(log Store, o VerifierOptions) (*Verifier, error) {
	if log == nil {
		return nil, errors.New("eventlog: verifier: log: required")
	}
	if o.Streams <= 0 {
		o.Streams = 32_768
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	c, err := o.MeterProvider.Meter("github.com/closeloop/closeloop/libs/eventlog").Int64Counter("eventlog.events.quarantined",
		metric.WithDescription("Events a reader refused to apply: unsigned, a bad or unknown signature, a producer writing another's type, a broken chain."))
	if err != nil {
		return nil, fmt.Errorf("eventlog: verifier metrics: %w", err)
	}
	return &Verifier{log: log, keys: o.Keys, logger: o.Logger, deadLetter: o.DeadLetter, rejected: c, streams: o.Streams, tips: map[string]*tipCache{}}, nil
}

// Rejected is Check's error for an event that must not be applied.
type Rejected struct {
	Stream   StreamID
	Version  uint64
	Position uint64
	Reason   string
}

func (r *Rejected) Error() string {
	return fmt.Sprintf("event of stream %s at version %d (log position %d) quarantined: %s", r.Stream, r.Version, r.Position, r.Reason)
}

// Check verifies r for reader (a consumer's or a view's name). It returns
// nil when r may be applied; a *Rejected when it must not be, after
// logging it at error level and counting it (the reader then records it:
// Quarantine, or the bus's own dead letter); or another error when the
// predecessor could not be read (try again later).
func (v *Verifier) Check(ctx context.Context, reader string, r Record) error {
	reason, err := v.check(ctx, reader, r)
	if err != nil || reason == "" {
		return err
	}
	e := r.Event
	rej := &Rejected{Stream: StreamID(e.GetStreamId()), Version: e.GetVersion(), Position: r.Position, Reason: reason}
	// Ids, positions, types and producers only: never the payload.
	v.logger.ErrorContext(ctx, "eventlog: event quarantined, not applied", "reader", reader, "stream", string(rej.Stream),
		"version", rej.Version, "position", r.Position, "event_id", e.GetEventId(), "type", e.GetType(), "producer", e.GetProducer(), "reason", reason)
	v.rejected.Add(ctx, 1, metric.WithAttributes(attribute.String("reader", reader)))
	return rej
}

// Quarantine records an event Check rejected through
// VerifierOptions.DeadLetter, for an operator to see; an error when that
// failed (the reader tries again rather than drop it unrecorded).
func (v *Verifier) Quarantine(ctx context.Context, reader string, r Record, rej *Rejected) error {
	if v.deadLetter == nil {
		return nil
	}
	if err := v.deadLetter(ctx, reader, r, rej.Error()); err != nil {
		return fmt.Errorf("eventlog: record the quarantined event at position %d: %w", r.Position, err)
	}
	return nil
}

// check returns why r must not be applied ("" when it may).
func (v *Verifier) check(ctx context.Context, reader string, r Record) (string, error) {
	e := r.Event
	if e == nil {
		var err error
		if e, err = DecodeStored(r.Raw); err != nil {
			return "stored bytes do not decode: " + err.Error(), nil
		}
		r.Event = e
	}
	if v.keys != nil {
		if err := CheckSignature(v.keys, r); err != nil {
			return err.Error(), nil
		}
	}
	stream, version := StreamID(e.GetStreamId()), e.GetVersion()
	if version == 0 {
		return "no version", nil
	}
	var prev tip // version 1 follows nothing
	if version > 1 {
		var ok bool
		v.mu.Lock()
		prev, ok = v.tipsOf(reader).get(stream)
		if !ok || prev.version != version-1 {
			// Another reader may stand right there (a command's read
			// reaching past the tip its bus consumer verified).
			ok = false
			for _, tips := range v.tips {
				if t, found := tips.get(stream); found && t.version == version-1 {
					prev, ok = t, true
					break
				}
			}
		}
		v.mu.Unlock()
		if !ok {
			var err error
			if prev, ok, err = v.predecessor(ctx, stream, version, r.Position, e.GetPrevPosition()); err != nil || !ok {
				if err == nil {
					return fmt.Sprintf("version %d of the stream, which this event follows, is not in the log", version-1), nil
				}
				return "", err
			}
		}
	}
	if !bytes.Equal(e.GetPrevHash(), prev.hash) {
		if version == 1 {
			return "first event carries a prev_hash", nil
		}
		return "prev_hash does not match the hash of the previous event: the previous event was altered, or this one was forged", nil
	}
	if reason := prevPositionBreak(e.GetPrevPosition(), prev.position, r.Position); reason != "" {
		return reason, nil
	}
	v.mu.Lock()
	tips := v.tipsOf(reader)
	if t, ok := tips.get(stream); !ok || t.version < version {
		tips.put(stream, tip{version: version, hash: Hash(r.Raw), position: r.Position})
	}
	v.mu.Unlock()
	return "", nil
}

// tipsOf is reader's cache of stream tips; v.mu held.
func (v *Verifier) tipsOf(reader string) *tipCache {
	t := v.tips[reader]
	if t == nil {
		t = newTipCache(v.streams)
		v.tips[reader] = t
	}
	return t
}

// predecessor reads version-1 of stream, starting at prevPosition when the
// event recorded one. ok is false when the log holds the event at position
// at but not its predecessor; an error when the read did not reach at (a
// replica behind: try again).
func (v *Verifier) predecessor(ctx context.Context, stream StreamID, version, at, prevPosition uint64) (tip, bool, error) {
	// Where the log reads by position, the one message at prevPosition is
	// all it takes; anything unexpected there is left to the stream's read.
	if hr, ok := v.log.(HeadReader); ok && prevPosition > 0 {
		if raw, err := hr.StoredAt(ctx, prevPosition); err == nil {
			if e, err := DecodeStored(raw); err == nil && StreamID(e.GetStreamId()) == stream && e.GetVersion() == version-1 {
				return tip{version: version - 1, hash: Hash(raw), position: prevPosition}, true, nil
			}
		}
	}
	after := uint64(0)
	if prevPosition > 0 {
		after = prevPosition - 1
	}
	recs, err := ReadTail(ctx, v.log, stream, version-1, after)
	if err != nil {
		return tip{}, false, fmt.Errorf("eventlog: read the event before version %d of %s: %w", version, stream, err)
	}
	var found *Record
	reached := false
	for i := range recs {
		if recs[i].Event.GetVersion() == version-1 && found == nil {
			found = &recs[i]
		}
		reached = reached || recs[i].Position >= at
	}
	if found != nil {
		return tip{version: version - 1, hash: Hash(found.Raw), position: found.Position}, true, nil
	}
	if !reached {
		return tip{}, false, fmt.Errorf("eventlog: read of %s ended before log position %d: %w", stream, at, ErrShortRead)
	}
	return tip{}, false, nil
}

// tip is the last verified event of a stream.
type tip struct {
	version  uint64
	hash     []byte
	position uint64
}

// tipCache keeps the tips of about max recently used streams in two
// generations: when the current one is full it becomes the old one, and a
// tip found in the old one moves back to the current one.
type tipCache struct {
	max      int
	cur, old map[StreamID]tip
}

func newTipCache(max int) *tipCache {
	return &tipCache{max: max, cur: map[StreamID]tip{}, old: map[StreamID]tip{}}
}

func (c *tipCache) get(s StreamID) (tip, bool) {
	if t, ok := c.cur[s]; ok {
		return t, true
	}
	t, ok := c.old[s]
	if ok {
		c.put(s, t)
	}
	return t, ok
}

func (c *tipCache) put(s StreamID, t tip) {
	if _, ok := c.cur[s]; !ok && len(c.cur) >= c.max/2 {
		c.old, c.cur = c.cur, make(map[StreamID]tip, c.max/2)
	}
	c.cur[s] = t
}
