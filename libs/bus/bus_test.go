package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

type env struct {
	js  jetstream.JetStream
	ctx context.Context
}

func start(t *testing.T) env {
	t.Helper()
	srv := natstest.Start(t, natsembed.Options{StoreDir: t.TempDir(), NoSync: true})
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		t.Fatal(err)
	}
	return env{js: js, ctx: ctx}
}

// publish appends one event as the event log would and returns its
// subject and stream sequence.
func (e env) publish(t *testing.T, ctx context.Context) (string, uint64) {
	t.Helper()
	id := uuid.NewString()
	ev, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "test", OccurredAt: time.Unix(0, 0)}, &eventsv1.ComplaintAccepted{})
	if err != nil {
		t.Fatal(err)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return e.publishRaw(t, ctx, "events.complaint."+id, data)
}

func (e env) publishRaw(t *testing.T, ctx context.Context, subject string, data []byte) (string, uint64) {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	msg.Header.Set("Test-Header", "kept")
	telemetry.InjectNATS(ctx, msg.Header)
	ack, err := e.js.PublishMsg(e.ctx, msg)
	if err != nil {
		t.Fatal(err)
	}
	return subject, ack.Sequence
}

func subscribe(t *testing.T, e env, o bus.Options, h bus.Handler) *bus.Subscription {
	t.Helper()
	if o.Durable == "" {
		o.Durable = "test"
	}
	o.Subjects = []string{"events.complaint.>"}
	if o.BackOff == nil {
		o.BackOff = []time.Duration{10 * time.Millisecond}
	}
	sub, err := bus.Subscribe(e.ctx, e.js, o, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	return sub
}

// checkFor polls fn until it returns nil or the deadline passes.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	var err error
	for time.Now().Before(deadline) {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(err)
}

// waitAllAcked waits until the consumer has handled and acked every message.
func waitAllAcked(t *testing.T, e env, durable string) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error { return bus.CaughtUp(e.ctx, e.js, "EVENTS", durable) })
}

func TestAckOnSuccess(t *testing.T) {
	e := start(t)
	var got atomic.Value
	sub := subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		got.Store(rec)
		return nil
	})
	_, seq := e.publish(t, context.Background())
	waitAllAcked(t, e, "test")
	rec, _ := got.Load().(eventlog.Record)
	if rec.Event == nil || rec.Position != seq || eventlog.TypeOf(rec.Event) != "ComplaintAccepted" {
		t.Fatalf("handled %+v, want ComplaintAccepted at position %d", rec, seq)
	}
	if lag, err := sub.Lag(e.ctx); err != nil || lag != 0 {
		t.Fatalf("Lag = %d, %v; want 0", lag, err)
	}
	if dl, err := bus.DeadLetters(e.ctx, e.js, ""); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters = %v, %v; want none", dl, err)
	}
}

// A pull request the server loses leaves the consumer idle until the client
// misses two heartbeats (nats.go #1622): pulls must be short and heartbeat
// often, so that a lost one is renewed in seconds, not the defaults' 30 s.
func TestPullsAreShortAndHeartbeatOften(t *testing.T) {
	e := start(t)
	pulls := make(chan *nats.Msg, 16)
	sniff, err := e.js.Conn().ChanSubscribe("$JS.API.CONSUMER.MSG.NEXT."+bus.DefaultStream+".test", pulls)
	if err != nil {
		t.Fatal(err)
	}
	defer sniff.Unsubscribe()
	subscribe(t, e, bus.Options{}, func(context.Context, eventlog.Record) error { return nil })
	var req struct {
		Expires   time.Duration `json:"expires"`
		Heartbeat time.Duration `json:"idle_heartbeat"`
	}
	select {
	case m := <-pulls:
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Fatalf("pull request %s: %v", m.Data, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pull request seen")
	}
	if req.Expires <= 0 || req.Expires > 10*time.Second || req.Heartbeat <= 0 || 2*req.Heartbeat > 5*time.Second {
		t.Fatalf("pulls expire after %s with heartbeats every %s; want at most 10s, and a lost pull noticed within 5s", req.Expires, req.Heartbeat)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	e := start(t)
	var calls atomic.Int32
	subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		if calls.Add(1) < 3 {
			return errors.New("projection store unavailable")
		}
		return nil
	})
	e.publish(t, context.Background())
	waitAllAcked(t, e, "test")
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler called %d times, want 3", n)
	}
	if dl, err := bus.DeadLetters(e.ctx, e.js, "test"); err != nil || len(dl) != 0 {
		t.Fatalf("dead letters = %v, %v; want none", dl, err)
	}
}

func waitDeadLetters(t *testing.T, e env, durable string, n int) []bus.DeadLetter {
	t.Helper()
	var dl []bus.DeadLetter
	checkFor(t, 10*time.Second, func() error {
		var err error
		dl, err = bus.DeadLetters(e.ctx, e.js, durable)
		if err != nil {
			return err
		}
		if len(dl) != n {
			return fmt.Errorf("%d dead letters, want %d", len(dl), n)
		}
		return nil
	})
	return dl
}

func TestPoisonMessageIsDeadLetteredAfterMaxDeliver(t *testing.T) {
	e := start(t)
	var calls atomic.Int32
	subscribe(t, e, bus.Options{MaxDeliver: 3}, func(ctx context.Context, rec eventlog.Record) error {
		calls.Add(1)
		return errors.New("cannot apply event")
	})
	subject, seq := e.publish(t, context.Background())
	dl := waitDeadLetters(t, e, "test", 1)[0]
	waitAllAcked(t, e, "test")
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler called %d times, want 3", n)
	}
	if dl.Consumer != "test" || dl.Stream != "EVENTS" || dl.Subject != subject || dl.StreamSequence != seq || dl.Deliveries != 3 {
		t.Fatalf("dead letter %+v: want consumer test, EVENTS %s #%d after 3 deliveries", dl, subject, seq)
	}
	if want := "failed 3 deliveries: cannot apply event"; dl.Reason != want {
		t.Fatalf("reason %q, want %q", dl.Reason, want)
	}
	if dl.Time.IsZero() || dl.Header.Get("Test-Header") != "kept" {
		t.Fatalf("dead letter lacks its time or the original headers: %+v", dl)
	}
	orig, err := e.js.Stream(e.ctx, "EVENTS")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := orig.GetMsg(e.ctx, seq)
	if err != nil {
		t.Fatal(err)
	}
	if string(raw.Data) != string(dl.Data) {
		t.Fatal("dead letter does not carry the original payload")
	}
	at, err := bus.DeadLetterAt(e.ctx, e.js, dl.Seq)
	if err != nil || at.StreamSequence != seq {
		t.Fatalf("DeadLetterAt(%d) = %+v, %v", dl.Seq, at, err)
	}
	// The stream keeps dead letters: deleting one is refused.
	st, err := e.js.Stream(e.ctx, bus.DeadLetterStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMsg(e.ctx, dl.Seq); err == nil {
		t.Fatal("deleting a dead letter succeeded, want refused")
	}
}

func TestLastAttemptThatNeverAcksIsDeadLettered(t *testing.T) {
	e := start(t)
	var calls atomic.Int32
	h := func(ctx context.Context, rec eventlog.Record) error { calls.Add(1); return nil }
	o := bus.Options{MaxDeliver: 1, AckWait: 100 * time.Millisecond}
	subscribe(t, e, o, h).Stop() // creates the durable consumer
	_, seq := e.publish(t, context.Background())

	// An instance takes the message on its last allowed delivery and dies
	// without acking it.
	cons, err := e.js.Consumer(e.ctx, "EVENTS", "test")
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if msg := <-batch.Messages(); msg == nil {
		t.Fatalf("fetched nothing: %v", batch.Error())
	}

	subscribe(t, e, o, h)
	dl := waitDeadLetters(t, e, "test", 1)[0]
	if calls.Load() != 0 || dl.StreamSequence != seq || dl.Deliveries != 2 {
		t.Fatalf("calls %d, dead letter %+v: want the message dead-lettered on its extra delivery", calls.Load(), dl)
	}
	waitAllAcked(t, e, "test")
}

func TestPermanentErrorIsDeadLetteredAtOnce(t *testing.T) {
	e := start(t)
	var calls atomic.Int32
	subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		calls.Add(1)
		return bus.Permanent(fmt.Errorf("wrap: %w", errors.New("event refers to unknown team")))
	})
	e.publish(t, context.Background())
	dl := waitDeadLetters(t, e, "test", 1)[0]
	if calls.Load() != 1 || dl.Deliveries != 1 {
		t.Fatalf("calls %d, deliveries %d: want 1 and 1", calls.Load(), dl.Deliveries)
	}
	if want := "permanent: wrap: event refers to unknown team"; dl.Reason != want {
		t.Fatalf("reason %q, want %q", dl.Reason, want)
	}
}

func TestUndecodableMessageIsDeadLetteredAtOnce(t *testing.T) {
	e := start(t)
	var calls atomic.Int32
	subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		calls.Add(1)
		return nil
	})
	_, seq := e.publishRaw(t, context.Background(), "events.complaint.x", []byte{0xff, 0xff, 0xff})
	dl := waitDeadLetters(t, e, "test", 1)[0]
	waitAllAcked(t, e, "test")
	if calls.Load() != 0 {
		t.Fatal("handler was called for an undecodable message")
	}
	if dl.StreamSequence != seq || dl.Deliveries != 1 || dl.Reason == "" {
		t.Fatalf("dead letter %+v: want seq %d, 1 delivery, a reason", dl, seq)
	}
}

func TestReplayDeadLetterRehandlesOriginal(t *testing.T) {
	e := start(t)
	var fixed atomic.Bool
	var got atomic.Value
	subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		if !fixed.Load() {
			return bus.Permanent(errors.New("bug"))
		}
		got.Store(rec)
		return nil
	})
	subject, seq := e.publish(t, context.Background())
	dl := waitDeadLetters(t, e, "test", 1)[0]

	// Replayed while still broken: dead-lettered again, still pointing at
	// the original event.
	if _, err := bus.Replay(e.ctx, e.js, dl.Seq); err != nil {
		t.Fatal(err)
	}
	again := waitDeadLetters(t, e, "test", 2)[1]
	if again.Stream != "EVENTS" || again.Subject != subject || again.StreamSequence != seq || again.Reason != "permanent: bug" {
		t.Fatalf("second dead letter %+v: want EVENTS %s #%d", again, subject, seq)
	}

	fixed.Store(true)
	if _, err := bus.Replay(e.ctx, e.js, again.Seq); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		if rec, _ := got.Load().(eventlog.Record); rec.Position != seq {
			return fmt.Errorf("replayed record not handled yet")
		}
		return nil
	})
	// Replay requests are not themselves listed as dead letters.
	if dls, err := bus.DeadLetters(e.ctx, e.js, ""); err != nil || len(dls) != 2 {
		t.Fatalf("dead letters = %d, %v; want 2", len(dls), err)
	}
}

func TestStopDrainsInFlightHandlers(t *testing.T) {
	e := start(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	sub := subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		close(entered)
		<-release
		finished.Store(true)
		return nil
	})
	e.publish(t, context.Background())
	<-entered
	stopped := make(chan struct{})
	go func() { sub.Stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-stopped
	if !finished.Load() {
		t.Fatal("handler did not finish")
	}
	waitAllAcked(t, e, "test")
}

func TestCaughtUpWaitsForEveryMessageToBeAcked(t *testing.T) {
	e := start(t)
	release := make(chan struct{})
	subscribe(t, e, bus.Options{}, func(ctx context.Context, _ eventlog.Record) error {
		<-release
		return nil
	})
	if err := bus.CaughtUp(e.ctx, e.js, "EVENTS", "test"); err != nil {
		t.Fatalf("empty stream: CaughtUp = %v, want nil", err)
	}
	e.publish(t, context.Background())
	if err := bus.CaughtUp(e.ctx, e.js, "EVENTS", "test"); err == nil {
		t.Fatal("CaughtUp = nil while the handler still holds the message")
	}
	close(release)
	waitAllAcked(t, e, "test")
	if err := bus.CaughtUp(e.ctx, e.js, "EVENTS", "absent"); err == nil {
		t.Fatal("CaughtUp of a consumer that does not exist = nil")
	}
}

func TestInstancesShareTheWork(t *testing.T) {
	e := start(t)
	const n = 40
	var mu sync.Mutex
	seen := map[uint64]int{}
	perInstance := make([]atomic.Int32, 2)
	for i := range 2 {
		subscribe(t, e, bus.Options{Durable: "shared", Concurrency: 2}, func(ctx context.Context, rec eventlog.Record) error {
			mu.Lock()
			seen[rec.Position]++
			mu.Unlock()
			perInstance[i].Add(1)
			time.Sleep(time.Millisecond) // let the other instance pull too
			return nil
		})
	}
	for range n {
		e.publish(t, context.Background())
	}
	waitAllAcked(t, e, "shared")
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("%d distinct messages handled, want %d", len(seen), n)
	}
	for pos, c := range seen {
		if c != 1 {
			t.Fatalf("message %d handled %d times", pos, c)
		}
	}
	if perInstance[0].Load() == 0 || perInstance[1].Load() == 0 {
		t.Fatalf("work not shared: %d / %d", perInstance[0].Load(), perInstance[1].Load())
	}
}

func TestTraceContextSurvivesThePublishConsumeHop(t *testing.T) {
	e := start(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	handlerSpan := make(chan trace.SpanContext, 1)
	subscribe(t, e, bus.Options{TracerProvider: tp, MeterProvider: mp}, func(ctx context.Context, _ eventlog.Record) error {
		handlerSpan <- trace.SpanContextFromContext(ctx)
		return nil
	})
	pubCtx, pubSpan := tp.Tracer("test").Start(context.Background(), "submit complaint")
	e.publish(t, pubCtx)
	pubSpan.End()
	got := <-handlerSpan
	if got.TraceID() != pubSpan.SpanContext().TraceID() {
		t.Fatalf("handler trace id %s, want %s", got.TraceID(), pubSpan.SpanContext().TraceID())
	}
	waitAllAcked(t, e, "test")
	// The consumer span ends just after the ack: wait for it.
	checkFor(t, 10*time.Second, func() error {
		for _, s := range rec.Ended() {
			if s.SpanKind() == trace.SpanKindConsumer && s.Parent().SpanID() == pubSpan.SpanContext().SpanID() {
				return nil
			}
		}
		return errors.New("no consumer span child of the publishing span")
	})
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	if v := counterValue(rm, "bus.messages.handled"); v != 1 {
		t.Fatalf("bus.messages.handled = %d, want 1", v)
	}
}

func TestMetricsCountFailuresAndDeadLetters(t *testing.T) {
	e := start(t)
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	subscribe(t, e, bus.Options{MaxDeliver: 2, MeterProvider: mp}, func(ctx context.Context, _ eventlog.Record) error {
		return errors.New("no")
	})
	e.publish(t, context.Background())
	waitDeadLetters(t, e, "test", 1)
	var rm metricdata.ResourceMetrics
	checkFor(t, 5*time.Second, func() error {
		if err := reader.Collect(context.Background(), &rm); err != nil {
			return err
		}
		for name, want := range map[string]int64{"bus.messages.failed": 2, "bus.messages.redelivered": 1, "bus.messages.dead_lettered": 1} {
			if v := counterValue(rm, name); v != want {
				return fmt.Errorf("%s = %d, want %d", name, v, want)
			}
		}
		if lag, ok := gaugeValue(rm, "bus.consumer.pending"); !ok || lag != 0 {
			return fmt.Errorf("bus.consumer.pending = %d (reported %v), want 0", lag, ok)
		}
		return nil
	})
}

func counterValue(rm metricdata.ResourceMetrics, name string) int64 {
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if s, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range s.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	return total
}

func gaugeValue(rm metricdata.ResourceMetrics, name string) (int64, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(g.DataPoints) > 0 {
				return g.DataPoints[0].Value, true
			}
		}
	}
	return 0, false
}

func TestLagCountsUndeliveredMessages(t *testing.T) {
	e := start(t)
	release := make(chan struct{})
	sub := subscribe(t, e, bus.Options{}, func(ctx context.Context, rec eventlog.Record) error {
		<-release
		return nil
	})
	for range 6 {
		e.publish(t, context.Background())
	}
	// One message in the handler, at most Concurrency+1 = 2 in the client
	// buffer: at least 3 are still pending on the server.
	checkFor(t, 5*time.Second, func() error {
		lag, err := sub.Lag(e.ctx)
		if err != nil {
			return err
		}
		if lag < 3 {
			return fmt.Errorf("lag %d, want at least 3", lag)
		}
		return nil
	})
	close(release)
	waitAllAcked(t, e, "test")
}

func TestOptionsAreValidated(t *testing.T) {
	e := start(t)
	h := func(context.Context, eventlog.Record) error { return nil }
	for _, o := range []bus.Options{{}, {Durable: "x", MaxAckPending: 1 << 20}, {Durable: "x", MaxDeliver: -1}} {
		if _, err := bus.Subscribe(e.ctx, e.js, o, h); err == nil {
			t.Fatalf("Subscribe(%+v) succeeded, want an error", o)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: b.TempDir(), NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect("bench", true)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVENTS", Subjects: []string{"events.>"}}); err != nil {
		b.Fatal(err)
	}
	ev, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c", OccurredAt: time.Unix(0, 0)}, &eventsv1.ComplaintAccepted{})
	if err != nil {
		b.Fatal(err)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if _, err := js.PublishAsync("events.complaint.c", data); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	var done atomic.Int64
	all := make(chan struct{})
	b.ResetTimer()
	sub, err := bus.Subscribe(ctx, js, bus.Options{Durable: "bench", Concurrency: 4}, func(context.Context, eventlog.Record) error {
		if done.Add(1) == int64(b.N) {
			close(all)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	<-all
	b.StopTimer()
	sub.Stop()
}
