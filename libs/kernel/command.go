// Package kernel is what every service's writes go through: the command
// loop (read, check, decide, stamp, append at the version read, retry on a
// conflict), the causes and trace context stamped on every event, and the
// kinds of refusal libs/api maps to gRPC and HTTP.
package kernel

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// MaxAttempts bounds the read-decide-append loop when other writers keep
// appending to the same stream. Each attempt re-reads, so contention on
// one stream (a few services reacting to the same event) settles in two
// or three; running out means something appends in a loop.
const MaxAttempts = 10

// Writer runs one service's commands against the log.
type Writer struct {
	log      eventlog.Store
	producer string
	clock    clock.Clock
	tracer   trace.Tracer
}

// NewWriter builds the writer of producer (the service's name, stamped on
// its events). tp is the service's tracer provider: every command is a
// span of it.
func NewWriter(log eventlog.Store, producer string, c clock.Clock, tp trace.TracerProvider) (*Writer, error) {
	switch {
	case log == nil:
		return nil, errors.New("kernel: log: required")
	case producer == "":
		return nil, errors.New("kernel: producer: required")
	case c == nil:
		return nil, errors.New("kernel: clock: required")
	case tp == nil:
		return nil, errors.New("kernel: tracer provider: required")
	}
	return &Writer{log: log, producer: producer, clock: c, tracer: tp.Tracer("github.com/closeloop/closeloop/services/" + producer)}, nil
}

// Tracer is the writer's tracer, for a span around more than one command
// (a submission's index writes and its append).
func (w *Writer) Tracer() trace.Tracer { return w.tracer }

// Producer is the service the writer writes for.
func (w *Writer) Producer() string { return w.producer }

// Command is one decision about one stream.
type Command[S any] struct {
	// Name names the decision in its span ("AcceptComplaint", "fire").
	Name   string
	Stream eventlog.StreamID
	// ComplaintID is stamped on the events (empty for a stream that is
	// not about one complaint).
	ComplaintID string
	// Expected is the version the caller says it decided on (0: none).
	// When set, a stream at another version is ErrStale and a conflict is
	// not retried: the caller's decision is out of date.
	Expected uint64
	Cause    Cause
	// Fold turns the stream's records (all of them, possibly none) into
	// the state Decide sees; it may refuse (ErrNotFound, ErrNotReceived).
	// With Resume it is only the fallback for a tail that does not follow
	// the resumed version (nil: that is an error).
	Fold func(recs []eventlog.Record) (S, error)
	// Resume, if set, spares reading a long stream whole: it returns a
	// state already folded from the stream's first version up to version
	// (0: nothing, the state of an empty stream), typically a copy of a
	// view's. Execute then reads only the records after version and
	// applies them with Evolve, so a command costs what changed since,
	// not the stream's history. The decision is still made on the version
	// the read ends at, appended at that version and re-resumed on a
	// conflict. Resume is called once per attempt and must return a state
	// the command owns: Evolve may change it in place, so never hand out
	// a view's own object.
	//
	// position is the log position of the stream's event at version (0:
	// not known). With it, and a store that is an eventlog.TailReader, the
	// tail is looked for only after it: where a backend finds a stream's
	// events by scanning the log (jsstore), reading from a version alone
	// still costs the whole stream.
	Resume func() (s S, version, position uint64)
	// Evolve applies one record of the tail to a resumed state (required
	// with Resume); it may refuse like Fold.
	Evolve func(s S, rec eventlog.Record) (S, error)
	// Decide returns the events to append; none means nothing to do.
	Decide func(s S, now time.Time) ([]proto.Message, error)
	// Stamp, if set, adds what the service says of every event of the
	// append (its policy version, a cause only the read revealed).
	Stamp func(m *eventlog.Meta)
	// StampEach, if set, sets what differs between the events of one
	// append, after Stamp and before the append: each event's own cause,
	// time or policy version when one decision answers several causes, or
	// a causation on an event appended in the same batch (an answer causes
	// the close appended with it).
	StampEach func(s S, envs []*eventsv1.Envelope)
	// Refused, if set, sees the envelopes of an append a conflict refused,
	// before the next attempt re-reads. A backend may have stored a prefix
	// of them (eventlog.Store.Append).
	Refused func(envs []*eventsv1.Envelope)
}

// Result is what a command did.
type Result[S any] struct {
	// State is what the last decision was made on.
	State S
	// Events are the envelopes appended (none when nothing was decided).
	Events []*eventsv1.Envelope
	// Version is the stream's version afterwards.
	Version uint64
	// Position is the last appended event's place in the log (0: none).
	Position uint64
}

// Execute reads the stream, checks that the read reached the cause, folds
// it, checks that the caller's expected version holds, decides, stamps the
// envelopes and appends them at the version read. On a conflict it starts over from
// a fresh read, up to MaxAttempts times. With Command.Resume the read is
// only the stream's tail after the resumed state, evolved onto it.
func Execute[S any](ctx context.Context, w *Writer, c Command[S]) (res Result[S], err error) {
	ctx, span := w.tracer.Start(ctx, c.Name, trace.WithAttributes(
		attribute.String("closeloop.stream", string(c.Stream)),
		attribute.String("closeloop.cause", c.Cause.EventID),
	))
	defer func() {
		span.SetAttributes(attribute.Int("closeloop.events", len(res.Events)))
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
	}()
	if c.Resume != nil && c.Evolve == nil {
		return res, fmt.Errorf("%s: %s: Resume without Evolve", c.Name, c.Stream)
	}
	var stuck uint64 // a resumed version an append conflicted at with nothing after it
	for attempt := 1; ; attempt++ {
		s, read, resumed, err := load(ctx, w.log, c, stuck)
		if err != nil {
			return res, err
		}
		if c.Expected != 0 && c.Expected != read {
			return res, fmt.Errorf("expected_version %d: %w: %s is at version %d", c.Expected, ErrStale, c.Stream, read)
		}
		res = Result[S]{State: s, Version: read}
		now := w.clock.Now()
		msgs, err := c.Decide(s, now)
		if err != nil || len(msgs) == 0 {
			return res, err
		}
		envs, err := w.Envelopes(ctx, c.ComplaintID, c.Cause, c.Stamp, now, msgs...)
		if err != nil {
			return res, err
		}
		if c.StampEach != nil {
			c.StampEach(s, envs)
		}
		out, err := w.log.Append(ctx, c.Stream, read, envs...)
		if err == nil {
			res.Events, res.Version, res.Position = envs, out.Version, out.Position
			span.SetAttributes(attribute.Int("closeloop.attempts", attempt))
			return res, nil
		}
		if !errors.Is(err, eventlog.ErrConflict) {
			return res, fmt.Errorf("append to %s: %w", c.Stream, err)
		}
		if c.Refused != nil {
			c.Refused(envs)
		}
		stuck = resumed
		if c.Expected != 0 {
			return res, fmt.Errorf("expected_version %d: %w: %s changed meanwhile", c.Expected, ErrStale, c.Stream)
		}
		if attempt == MaxAttempts {
			return res, fmt.Errorf("%s: %w: gave up after %d conflicting appends", c.Stream, ErrStale, attempt)
		}
	}
}

// load reads the stream (whole, or from the resumed version on) and folds
// it, first checking that the read reached the cause: a shorter read could
// look like nothing to do, and the bus retries. A missing stream is
// refused before the caller's expected version is looked at. resumed is
// the version a read with nothing after it resumed at (0: none), which
// the caller passes back as stuck after a conflict: a resumed version the
// append conflicted at while nothing follows it twice is one the stream
// does not hold, so the whole stream is folded instead. The same goes for
// a resumed position past the stream's end (a tail read finds nothing).
func load[S any](ctx context.Context, log eventlog.Store, c Command[S], stuck uint64) (s S, read, resumed uint64, err error) {
	if c.Resume != nil {
		s, from, at := c.Resume()
		tail, err := eventlog.ReadTail(ctx, log, c.Stream, from+1, at)
		if err != nil {
			return s, 0, 0, fmt.Errorf("read %s from version %d: %w", c.Stream, from+1, err)
		}
		switch {
		case len(tail) == 0 && from != 0 && from == stuck:
			// Not there: fold the whole stream below.
		case follows(tail, from):
			read = max(from, eventlog.LastVersion(tail))
			if err := eventlog.Reached(c.Stream, read, c.Cause.Version); err != nil {
				return s, read, 0, err
			}
			for _, r := range tail {
				if s, err = c.Evolve(s, r); err != nil {
					return s, read, 0, err
				}
			}
			if len(tail) == 0 {
				resumed = from
			}
			return s, read, resumed, nil
		case c.Fold == nil:
			return s, 0, 0, fmt.Errorf("read %s from version %d: the read starts at version %d", c.Stream, from+1, tail[0].Event.GetVersion())
		}
		// The tail does not follow what was resumed: fold the whole stream.
	}
	if c.Fold == nil {
		return s, 0, 0, fmt.Errorf("read %s: no Fold to fold the whole stream with", c.Stream)
	}
	recs, err := log.ReadStream(ctx, c.Stream, 1)
	if err != nil {
		return s, 0, 0, fmt.Errorf("read %s: %w", c.Stream, err)
	}
	read = eventlog.LastVersion(recs)
	if err := eventlog.Reached(c.Stream, read, c.Cause.Version); err != nil {
		return s, read, 0, err
	}
	s, err = c.Fold(recs)
	return s, read, 0, err
}

// follows reports whether tail is the versions right after from, one by
// one. An empty tail follows anything: if the stream has not reached from,
// the append conflicts (see load's stuck).
func follows(tail []eventlog.Record, from uint64) bool {
	for i, r := range tail {
		if r.Event.GetVersion() != from+uint64(i)+1 {
			return false
		}
	}
	return true
}

// Envelopes wraps events decided outside Execute (a batch across streams,
// the first event of a new stream) exactly as Execute does: producer,
// actor, correlation, causation, the trace context of ctx, the time and
// the service's stamp (nil: none).
func (w *Writer) Envelopes(ctx context.Context, complaintID string, cause Cause, stamp func(*eventlog.Meta), now time.Time, msgs ...proto.Message) ([]*eventsv1.Envelope, error) {
	carrier := propagation.MapCarrier{}
	telemetry.Propagator.Inject(ctx, carrier)
	m := eventlog.Meta{
		ComplaintID:   complaintID,
		Producer:      w.producer,
		Actor:         cause.Actor,
		CorrelationID: cause.CorrelationID,
		CausationID:   cause.EventID,
		Traceparent:   carrier.Get("traceparent"),
		Tracestate:    carrier.Get("tracestate"),
		OccurredAt:    now,
	}
	if m.Actor == "" {
		m.Actor = w.producer
	}
	if m.CorrelationID == "" {
		m.CorrelationID = uuid.Must(uuid.NewV7()).String()
	}
	if stamp != nil {
		stamp(&m)
	}
	envs := make([]*eventsv1.Envelope, 0, len(msgs))
	for _, msg := range msgs {
		e, err := eventlog.NewEvent(m, msg)
		if err != nil {
			return nil, err
		}
		envs = append(envs, e)
	}
	return envs, nil
}

// Received checks that a complaint's records start with ComplaintReceived:
// ErrNotFound when there are none, ErrNotReceived when the stream starts
// with anything else.
func Received(recs []eventlog.Record) error {
	if len(recs) == 0 {
		return ErrNotFound
	}
	if _, ok := recs[0].Event.GetPayload().(*eventsv1.Envelope_ComplaintReceived); !ok {
		return ErrNotReceived
	}
	return nil
}
