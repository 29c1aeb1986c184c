// Package bus runs the durable pull consumers through which services react to
// events of the log: explicit ack, bounded redelivery with backoff, a
// dead-letter stream for what still fails, a span per handled message and
// metrics, and a drain on Stop.
//
// A handler returns nil to ack, an error to have the message redelivered
// after a backoff, or Permanent(err) to send it straight to the dead-letter
// stream. Handlers must be idempotent: a message may be handled more than
// once (redelivery after a crash, a replayed dead letter).
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/telemetry"
)

// DefaultStream is the stream of the event log.
const DefaultStream = "EVENTS"

const instrumentation = "github.com/closeloop/closeloop/libs/bus"

// Handler handles one event. nil acks it; an error has it redelivered after a
// backoff (dead-lettered at the last delivery); Permanent(err) dead-letters
// it at once.
type Handler func(ctx context.Context, rec eventlog.Record) error

// Options configure a subscription. Durable is required; the rest have
// defaults.
type Options struct {
	// Stream to consume (default "EVENTS").
	Stream string
	// Durable names the consumer; every instance of a service uses the same
	// name and they share the work. No dots, spaces or wildcards.
	Durable string
	// Subjects filter the stream (e.g. "events.complaint.>"); empty means all.
	Subjects []string
	// MaxDeliver is how many times a message is handled before it goes to
	// the dead-letter stream (default 5).
	MaxDeliver int
	// BackOff are the delays before the 2nd, 3rd, ... delivery after a
	// handler error; the last one repeats (default 1s, 5s, 15s, 30s).
	BackOff []time.Duration
	// MaxAckPending bounds the messages handed out and not yet acked across
	// all instances (default 256, at most 10000).
	MaxAckPending int
	// AckWait is how long the server waits for an ack before redelivering
	// (default 30s). Long handlers are kept alive with InProgress.
	AckWait time.Duration
	// DeliverPolicy of the consumer (default all). The server refuses to
	// change it on an existing durable.
	DeliverPolicy jetstream.DeliverPolicy
	// Concurrency is the number of messages one instance handles at a time
	// (default 1: in order, per instance).
	Concurrency int
	// Verifier checks every event before the handler sees it (signature,
	// producer's right to the type, chain link); an event it rejects is
	// quarantined: dead-lettered with the reason, never handled. Nil: no
	// checks (no keyring configured).
	Verifier *eventlog.Verifier
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// TracerProvider and MeterProvider default to the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
}

const maxAckPendingLimit = 10000

// pullExpiry is how long one pull request waits on the server; heartbeats
// come every fifth of it, and two missed ones renew the pull.
const pullExpiry = 10 * time.Second

func (o *Options) setDefaults() error {
	if o.Durable == "" {
		return errors.New("bus: Durable: required")
	}
	if o.Stream == "" {
		o.Stream = DefaultStream
	}
	if o.MaxDeliver == 0 {
		o.MaxDeliver = 5
	}
	if o.MaxDeliver < 1 {
		return fmt.Errorf("bus: MaxDeliver: must be at least 1, got %d", o.MaxDeliver)
	}
	if len(o.BackOff) == 0 {
		o.BackOff = []time.Duration{time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second}
	}
	if o.MaxAckPending == 0 {
		o.MaxAckPending = 256
	}
	if o.MaxAckPending < 1 || o.MaxAckPending > maxAckPendingLimit {
		return fmt.Errorf("bus: MaxAckPending: must be between 1 and %d, got %d", maxAckPendingLimit, o.MaxAckPending)
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	if o.AckWait < 100*time.Millisecond {
		return fmt.Errorf("bus: AckWait: must be at least 100ms, got %s", o.AckWait)
	}
	if o.Concurrency == 0 {
		o.Concurrency = 1
	}
	if o.Concurrency < 1 || o.Concurrency > o.MaxAckPending {
		return fmt.Errorf("bus: Concurrency: must be between 1 and MaxAckPending (%d), got %d", o.MaxAckPending, o.Concurrency)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	return nil
}

// backoff is the delay before the delivery following the n-th one.
func (o *Options) backoff(delivered uint64) time.Duration {
	i := int(delivered) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(o.BackOff) {
		i = len(o.BackOff) - 1
	}
	return o.BackOff[i]
}

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the message goes to the
// dead-letter stream at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err (or one it wraps) was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Subscription is a running consumer. Stop it to drain.
type Subscription struct {
	opts     Options
	js       jetstream.JetStream
	handler  Handler
	consumer jetstream.Consumer
	replay   jetstream.Consumer
	iters    []jetstream.MessagesContext
	base     context.Context
	tracer   trace.Tracer
	m        *metrics
	attrs    metric.MeasurementOption

	stopOnce sync.Once
	stopped  chan struct{}
	wg       sync.WaitGroup
}

// Subscribe creates (or updates) the durable consumer opts.Durable on
// opts.Stream, ensures the dead-letter stream exists, and handles messages
// until Stop is called or ctx is done (which also drains). Handlers get a
// context carrying ctx's values but not its cancellation, so a drain lets
// them finish.
func Subscribe(ctx context.Context, js jetstream.JetStream, opts Options, h Handler) (*Subscription, error) {
	if h == nil {
		return nil, errors.New("bus: handler: required")
	}
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := EnsureDeadLetterStream(ctx, js); err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{
		Durable:        opts.Durable,
		Description:    "closeloop bus consumer",
		DeliverPolicy:  opts.DeliverPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        opts.AckWait,
		FilterSubjects: opts.Subjects,
		MaxAckPending:  opts.MaxAckPending,
		// One more than ours: if an instance dies during the last attempt
		// the server delivers once more and that delivery is dead-lettered
		// rather than the message being dropped by the server.
		MaxDeliver: opts.MaxDeliver + 1,
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, opts.Stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("bus: consumer %s on %s: %w", opts.Durable, opts.Stream, err)
	}
	replay, err := js.CreateOrUpdateConsumer(ctx, DeadLetterStream, jetstream.ConsumerConfig{
		Durable:       opts.Durable + "_replay",
		Description:   "replayed dead letters of " + opts.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       opts.AckWait,
		FilterSubject: replaySubject(opts.Durable),
		MaxAckPending: opts.MaxAckPending,
		MaxDeliver:    opts.MaxDeliver + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("bus: replay consumer for %s: %w", opts.Durable, err)
	}
	s := &Subscription{
		opts:     opts,
		js:       js,
		handler:  h,
		consumer: cons,
		replay:   replay,
		base:     context.WithoutCancel(ctx),
		tracer:   opts.TracerProvider.Tracer(instrumentation),
		attrs:    metric.WithAttributeSet(attribute.NewSet(attribute.String("consumer", opts.Durable))),
		stopped:  make(chan struct{}),
	}
	if s.m, err = newMetrics(s); err != nil {
		return nil, err
	}
	// A small client buffer: a message waiting there is not kept alive with
	// InProgress and its ack wait could expire before it is handled. Short
	// pulls with frequent heartbeats: a pull the server loses (nats.go issue
	// #1622, seen here as the whole consumer idle for 30 s under load, the
	// defaults' detection time) is noticed and sent again within seconds.
	for _, c := range []jetstream.Consumer{cons, replay} {
		it, err := c.Messages(jetstream.PullMaxMessages(opts.Concurrency+1), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullExpiry/5))
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("bus: consume %s: %w", opts.Durable, err)
		}
		s.iters = append(s.iters, it)
	}
	for _, it := range s.iters {
		for i := 0; i < opts.Concurrency; i++ {
			s.wg.Add(1)
			go s.work(it)
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			s.Stop()
		case <-s.stopped:
		}
	}()
	return s, nil
}

// Stop stops fetching, lets in-flight and already buffered messages finish,
// and returns when no handler is running. Safe to call more than once.
func (s *Subscription) Stop() {
	s.stopOnce.Do(func() {
		for _, it := range s.iters {
			it.Drain()
		}
		close(s.stopped)
	})
	s.wg.Wait()
	_ = s.m.lag.Unregister()
}

// Lag is the number of messages matching the consumer not yet delivered to
// it (its NumPending).
func (s *Subscription) Lag(ctx context.Context) (uint64, error) {
	info, err := s.consumer.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("bus: consumer %s info: %w", s.opts.Durable, err)
	}
	return info.NumPending, nil
}

// CaughtUp returns nil when the durable consumer on stream has been handed
// every message matching its filter that the stream holds now and has acked
// them all, and otherwise an error saying what is left. NumPending alone
// cannot tell: the server counts a new message for its consumers
// asynchronously, so right after a publish it can still read 0.
func CaughtUp(ctx context.Context, js jetstream.JetStream, stream, durable string) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("bus: stream %s: %w", stream, err)
	}
	c, err := s.Consumer(ctx, durable)
	if err != nil {
		return fmt.Errorf("bus: consumer %s: %w", durable, err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return fmt.Errorf("bus: consumer %s info: %w", durable, err)
	}
	filters := ci.Config.FilterSubjects
	if ci.Config.FilterSubject != "" {
		filters = append(filters, ci.Config.FilterSubject)
	}
	if len(filters) == 0 {
		filters = []string{">"}
	}
	var last uint64
	for _, f := range filters {
		m, err := s.GetLastMsgForSubject(ctx, f)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("bus: last message on %s: %w", f, err)
		}
		last = max(last, m.Sequence)
	}
	if ci.Delivered.Stream < last || ci.NumPending != 0 || ci.NumAckPending != 0 {
		return fmt.Errorf("bus: consumer %s not caught up: delivered up to %d of %d, %d pending, %d unacknowledged",
			durable, ci.Delivered.Stream, last, ci.NumPending, ci.NumAckPending)
	}
	return nil
}

func (s *Subscription) work(it jetstream.MessagesContext) {
	defer s.wg.Done()
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			s.opts.Logger.Warn("bus: fetch", "consumer", s.opts.Durable, "err", err)
			continue
		}
		s.handle(msg)
	}
}

// origin says where a message's event came from: the event stream itself,
// or, for a replayed dead letter, the headers that recorded it.
type origin struct {
	stream, subject string
	seq             uint64
	replayOf        uint64
}

func (s *Subscription) originOf(msg jetstream.Msg, meta *jetstream.MsgMetadata) origin {
	h := msg.Headers()
	if rp := h.Get(HdrReplayOf); rp != "" {
		seq, _ := strconv.ParseUint(h.Get(HdrSequence), 10, 64)
		rpSeq, _ := strconv.ParseUint(rp, 10, 64)
		return origin{stream: h.Get(HdrStream), subject: h.Get(HdrSubject), seq: seq, replayOf: rpSeq}
	}
	return origin{stream: meta.Stream, subject: msg.Subject(), seq: meta.Sequence.Stream}
}

func decode(data []byte, pos uint64) (eventlog.Record, error) {
	// The event log never stores one this large; the stream's limit leaves
	// room for headers, so a raw publish could.
	if len(data) > eventlog.MaxEventSize {
		return eventlog.Record{}, fmt.Errorf("not an event: %d bytes, over the %d-byte limit", len(data), eventlog.MaxEventSize)
	}
	env, err := eventlog.DecodeStored(data)
	if err != nil {
		return eventlog.Record{}, fmt.Errorf("undecodable event envelope: %w", err)
	}
	if env.GetEventId() == "" {
		return eventlog.Record{}, errors.New("not an event envelope: event_id missing")
	}
	// Other messages decode as an envelope too (their field 1 reads as the
	// event id); without a payload it is no event any handler can use.
	if env.GetPayload() == nil {
		return eventlog.Record{}, errors.New("not an event envelope: payload missing")
	}
	return eventlog.Record{Event: env, Raw: data, Position: pos}, nil
}

func (s *Subscription) handle(msg jetstream.Msg) {
	log := s.opts.Logger.With("consumer", s.opts.Durable, "subject", msg.Subject())
	meta, err := msg.Metadata()
	if err != nil {
		// Not a JetStream message: nothing to ack or dead-letter.
		log.Error("bus: message without metadata", "err", err)
		return
	}
	org := s.originOf(msg, meta)
	ctx := telemetry.ExtractNATS(s.base, msg.Headers())
	ctx, span := s.tracer.Start(ctx, s.opts.Durable+" process",
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("messaging.destination.name", org.subject),
			attribute.String("messaging.consumer.group.name", s.opts.Durable),
			attribute.Int64("messaging.nats.stream_sequence", int64(org.seq)),
			attribute.Int64("messaging.nats.delivered", int64(meta.NumDelivered)),
		))
	defer span.End()
	log = log.With("stream_seq", org.seq, "delivered", meta.NumDelivered)
	if meta.NumDelivered > 1 {
		s.m.redeliveries.Add(ctx, 1, s.attrs)
	}

	if meta.NumDelivered > uint64(s.opts.MaxDeliver) {
		// The previous (last) attempt never acked: its instance died or
		// its ack wait expired.
		s.deadLetter(ctx, log, msg, meta, org, "max deliveries reached: last attempt not acknowledged within ack wait")
		return
	}
	rec, err := decode(msg.Data(), org.seq)
	if err != nil {
		span.SetStatus(codes.Error, "undecodable")
		s.deadLetter(ctx, log, msg, meta, org, err.Error())
		return
	}
	span.SetAttributes(attribute.String("closeloop.event_type", eventlog.TypeOf(rec.Event)),
		attribute.String("closeloop.event_id", rec.Event.GetEventId()))

	start := time.Now()
	err = s.verify(ctx, rec)
	if rej := (*eventlog.Rejected)(nil); errors.As(err, &rej) {
		span.SetStatus(codes.Error, "quarantined")
		s.deadLetter(ctx, log, msg, meta, org, "quarantined: "+rej.Reason)
		return
	}
	if err == nil {
		err = s.run(ctx, msg, rec)
	}
	s.m.latency.Record(ctx, time.Since(start).Seconds(), s.attrs)
	if err == nil {
		if ackErr := msg.Ack(); ackErr != nil {
			log.Warn("bus: ack", "err", ackErr)
		}
		s.m.handled.Add(ctx, 1, s.attrs)
		return
	}
	s.m.failures.Add(ctx, 1, s.attrs)
	span.RecordError(err)
	span.SetStatus(codes.Error, "handler failed")
	switch {
	case IsPermanent(err):
		s.deadLetter(ctx, log, msg, meta, org, "permanent: "+err.Error())
	case meta.NumDelivered >= uint64(s.opts.MaxDeliver):
		s.deadLetter(ctx, log, msg, meta, org, fmt.Sprintf("failed %d deliveries: %s", meta.NumDelivered, err.Error()))
	default:
		delay := s.opts.backoff(meta.NumDelivered)
		log.Warn("bus: handler failed, will retry", "err", err, "retry_in", delay)
		if nakErr := msg.NakWithDelay(delay); nakErr != nil {
			log.Warn("bus: nak", "err", nakErr)
		}
	}
}

// verify checks rec with the subscription's Verifier, if any: nil, an
// *eventlog.Rejected, or an error to retry like a handler's.
func (s *Subscription) verify(ctx context.Context, rec eventlog.Record) error {
	if s.opts.Verifier == nil {
		return nil
	}
	return s.opts.Verifier.Check(ctx, s.opts.Durable, rec)
}

// run calls the handler, telling the server the message is in progress
// while it works so that its ack wait does not expire. A panic is a failure
// like any other (it would otherwise kill the service on one bad event).
func (s *Subscription) run(ctx context.Context, msg jetstream.Msg, rec eventlog.Record) (err error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(s.opts.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				_ = msg.InProgress()
			}
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return s.handler(ctx, rec)
}
