// Package relay copies the KurrentDB event log to the JetStream bus, for
// deployments where KurrentDB is the system of record: a catch-up
// subscription to $all, filtered to the closeloop streams, publishes each
// event to the EVENTS stream at the subject the JetStream backend uses
// (jsstore.Subject), with Nats-Msg-Id = event id, so the services' bus
// consumers see every event exactly once.
//
// The core (Relay) knows two small interfaces: a Source of events with
// positions, and a Sink that publishes and remembers how far it got. The
// KurrentDB source (KurrentSource) and the JetStream sink (JetStreamSink)
// are thin adapters; tests drive the core with an in-process source and a
// real embedded NATS.
//
// The checkpoint is the last relayed message itself: each message carries
// its KurrentDB position in a header, and a restarted relay resumes after the
// position of the last message in EVENTS. Publishing an event and recording
// the checkpoint are then one atomic act, so a crash at any point leaves no
// gap and, since events at or before the checkpoint are skipped, no
// duplicate either (Nats-Msg-Id dedup is a second guard within the stream's
// duplicate window, not the one this relies on).
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// Position is an event's place in the KurrentDB log ($all): commit then
// prepare position, ordered as KurrentDB orders $all.
type Position struct {
	Commit, Prepare uint64
}

// Less tells whether p comes before q in the log.
func (p Position) Less(q Position) bool {
	return p.Commit < q.Commit || (p.Commit == q.Commit && p.Prepare < q.Prepare)
}

// String is the header form, "<commit>/<prepare>".
func (p Position) String() string {
	return strconv.FormatUint(p.Commit, 10) + "/" + strconv.FormatUint(p.Prepare, 10)
}

// ParsePosition reads the header form written by String.
func ParsePosition(s string) (Position, error) {
	c, p, ok := strings.Cut(s, "/")
	commit, err1 := strconv.ParseUint(c, 10, 64)
	prepare, err2 := strconv.ParseUint(p, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return Position{}, fmt.Errorf("relay: position %q: want <commit>/<prepare>, two unsigned integers", s)
	}
	return Position{Commit: commit, Prepare: prepare}, nil
}

// Event is one stored event as the relay moves it.
type Event struct {
	Position Position
	Stream   eventlog.StreamID
	EventID  string
	Type     string
	// Raw is the stored envelope, published byte for byte (the hash chain
	// covers these bytes).
	Raw                     []byte
	Traceparent, Tracestate string
	// CommittedAt is when the log accepted the event: the relay's lag is
	// measured from it.
	CommittedAt time.Time
}

// Source delivers the events of the log in order.
type Source interface {
	// Subscribe calls fn for every event after from (from the start of the
	// log when from is nil), in log order, first the stored ones then new
	// ones, until ctx is done or fn or the subscription fails; it returns
	// that error. Delivering events at or before from again is allowed (the
	// relay skips them).
	Subscribe(ctx context.Context, from *Position, fn func(Event) error) error
}

// Sink publishes events and knows the position of the last one published.
type Sink interface {
	// Checkpoint returns the position of the last event published; ok is
	// false when none was.
	Checkpoint(ctx context.Context) (pos Position, ok bool, err error)
	// Publish publishes one event; when it returns nil the event is durable
	// and Checkpoint returns its position.
	Publish(ctx context.Context, ev Event) error
}

// DefaultBackoff is how long Serve waits before restarting a failed run.
const DefaultBackoff = 2 * time.Second

// Options tune a Relay.
type Options struct {
	// Clock measures lag and backoff (default clock.Real).
	Clock clock.Clock
	// Meter records the relay's metrics (default the global otel meter
	// provider's "github.com/closeloop/closeloop/libs/esdb/relay").
	Meter metric.Meter
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Backoff between Serve's restarts (default DefaultBackoff).
	Backoff time.Duration
}

// Relay moves events from a Source to a Sink. One relay runs per log: a
// second one is fenced off by the JetStream sink.
type Relay struct {
	src     Source
	sink    Sink
	clock   clock.Clock
	log     *slog.Logger
	backoff time.Duration

	lag      metric.Float64Gauge
	relayed  metric.Int64Counter
	restarts metric.Int64Counter
}

// New returns a relay; src and sink are required.
func New(src Source, sink Sink, o Options) (*Relay, error) {
	if src == nil || sink == nil {
		return nil, errors.New("relay: source and sink: both required")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Meter == nil {
		o.Meter = otel.GetMeterProvider().Meter("github.com/closeloop/closeloop/libs/esdb/relay")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	r := &Relay{src: src, sink: sink, clock: o.Clock, log: o.Logger, backoff: o.Backoff}
	var err error
	if r.lag, err = o.Meter.Float64Gauge("closeloop.relay.lag",
		metric.WithUnit("s"),
		metric.WithDescription("Time from KurrentDB accepting an event to its publication on JetStream, for the last event relayed")); err != nil {
		return nil, fmt.Errorf("relay: lag metric: %w", err)
	}
	if r.relayed, err = o.Meter.Int64Counter("closeloop.relay.events",
		metric.WithDescription("Events published to JetStream by the relay")); err != nil {
		return nil, fmt.Errorf("relay: events metric: %w", err)
	}
	if r.restarts, err = o.Meter.Int64Counter("closeloop.relay.restarts",
		metric.WithDescription("Runs of the relay that failed and were restarted from the checkpoint")); err != nil {
		return nil, fmt.Errorf("relay: restarts metric: %w", err)
	}
	return r, nil
}

// Run relays from the sink's checkpoint on until ctx is done (it returns
// ctx.Err()) or the source or the sink fails (it returns that error; run it
// again to resume from the checkpoint).
func (r *Relay) Run(ctx context.Context) error {
	cp, ok, err := r.sink.Checkpoint(ctx)
	if err != nil {
		return fmt.Errorf("relay: checkpoint: %w", err)
	}
	var from *Position
	if ok {
		start := cp // a copy: cp moves on as events are published
		from = &start
		r.log.InfoContext(ctx, "relay: resuming after the last relayed event", "position", cp.String())
	} else {
		r.log.InfoContext(ctx, "relay: nothing relayed yet, starting from the beginning of the log")
	}
	err = r.src.Subscribe(ctx, from, func(ev Event) error {
		if ok && !cp.Less(ev.Position) {
			return nil // at or before the checkpoint: published already
		}
		if err := r.sink.Publish(ctx, ev); err != nil {
			return fmt.Errorf("relay: publish event %s of %s at %s: %w", ev.EventID, ev.Stream, ev.Position, err)
		}
		cp, ok = ev.Position, true
		r.relayed.Add(ctx, 1)
		r.lag.Record(ctx, max(r.clock.Now().Sub(ev.CommittedAt), 0).Seconds())
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Serve runs the relay until ctx is done, restarting a failed run from the
// checkpoint after the backoff. It returns ctx.Err().
func (r *Relay) Serve(ctx context.Context) error {
	for {
		err := r.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.restarts.Add(ctx, 1)
		r.log.ErrorContext(ctx, "relay: stopped, restarting from the checkpoint", "err", err, "backoff", r.backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.clock.After(r.backoff):
		}
	}
}
