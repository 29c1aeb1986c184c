package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var errCrash = errors.New("stand-in: subscription crashed")

// quiet keeps the relay's progress lines out of the test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// standIn is an in-process stand-in for the KurrentDB subscription: a log
// of events with positions that can grow, crash mid-stream, and replay from
// the start whatever position it is asked to start after (as a sloppy
// server might).
type standIn struct {
	mu         sync.Mutex
	events     []Event
	grown      chan struct{}
	crashAfter []int // per Subscribe call: fail after delivering this many (0: never)
	ignoreFrom bool
	froms      []*Position // the from of each Subscribe call
}

func newStandIn(events []Event) *standIn {
	return &standIn{events: events, grown: make(chan struct{})}
}

func (s *standIn) add(evs ...Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	close(s.grown)
	s.grown = make(chan struct{})
}

func (s *standIn) subscribeCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.froms)
}

func (s *standIn) Subscribe(ctx context.Context, from *Position, fn func(Event) error) error {
	s.mu.Lock()
	s.froms = append(s.froms, from)
	crashAfter := 0
	if len(s.crashAfter) > 0 {
		crashAfter, s.crashAfter = s.crashAfter[0], s.crashAfter[1:]
	}
	s.mu.Unlock()
	delivered, i := 0, 0
	for {
		s.mu.Lock()
		evs, grown := s.events, s.grown
		s.mu.Unlock()
		for ; i < len(evs); i++ {
			ev := evs[i]
			if from != nil && !s.ignoreFrom && !from.Less(ev.Position) {
				continue
			}
			if crashAfter > 0 && delivered == crashAfter {
				return errCrash
			}
			if err := fn(ev); err != nil {
				return err
			}
			delivered++
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-grown:
		}
	}
}

var committed = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// someEvents writes n events spread over three complaints into a memory
// log (so they are properly sealed and chained) and returns them as the
// relay sees them, in log order. Pairs of events share a commit position, as
// the events of one KurrentDB append do.
func someEvents(t testing.TB, n int) []Event {
	t.Helper()
	ctx := context.Background()
	log := memstore.New(clock.NewFake(committed))
	ids := []string{"0190a0b1-0000-7000-8000-000000000001", "0190a0b1-0000-7000-8000-000000000002", "0190a0b1-0000-7000-8000-000000000003"}
	versions := map[string]uint64{}
	for i := range n {
		id := ids[i%len(ids)]
		e, err := eventlog.NewEvent(eventlog.Meta{
			ComplaintID: id, Producer: "intake", Actor: "system", OccurredAt: committed,
			Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		}, &eventsv1.ComplaintReceived{ChannelRef: fmt.Sprintf("T-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := log.Append(ctx, eventlog.ComplaintStream(id), versions[id], e); err != nil {
			t.Fatal(err)
		}
		versions[id]++
	}
	recs, err := log.ReadAll(ctx, 1, n)
	if err != nil || len(recs) != n {
		t.Fatalf("memory log holds %d events (%v), want %d", len(recs), err, n)
	}
	out := make([]Event, n)
	for i, r := range recs {
		out[i] = Event{
			Position:    Position{Commit: (r.Position + 1) / 2 * 1000, Prepare: r.Position * 100},
			Stream:      eventlog.StreamID(r.Event.GetStreamId()),
			EventID:     r.Event.GetEventId(),
			Type:        r.Event.GetType(),
			Raw:         r.Raw,
			Traceparent: r.Event.GetTraceparent(),
			CommittedAt: committed,
		}
	}
	return out
}

// startNATS starts an embedded server storing in dir and returns a
// JetStream client on it.
func startNATS(t testing.TB, dir string) (*natsembed.Server, jetstream.JetStream) {
	t.Helper()
	s, err := natsembed.Start(natsembed.Options{StoreDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := s.Connect("relay-test", true)
	if err != nil {
		s.Shutdown()
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close(); s.Shutdown() })
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func newSink(t testing.TB, js jetstream.JetStream) *JetStreamSink {
	t.Helper()
	sink, err := NewJetStreamSink(context.Background(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return sink
}

// relayedMsg is one message of EVENTS as a consumer sees it.
type relayedMsg struct {
	rec     eventlog.Record
	subject string
	header  nats.Header
}

// relayed reads every message of EVENTS in order.
func relayed(t *testing.T, js jetstream.JetStream) []relayedMsg {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []relayedMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		rec, err := jsstore.DecodeRawMsg(m)
		if err != nil {
			t.Fatalf("message %d: %v", seq, err)
		}
		out = append(out, relayedMsg{rec: rec, subject: m.Subject, header: m.Header})
	}
	return out
}

// checkFor polls cond until it holds or the deadline passes.
func checkFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitRelayed(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	checkFor(t, 10*time.Second, func() error {
		if got := len(relayed(t, js)); got != n {
			return fmt.Errorf("EVENTS holds %d messages, want %d", got, n)
		}
		return nil
	})
}

// assertExactlyOnceInOrder checks EVENTS holds want, each event once, in
// log order, byte for byte, at the JetStream backend's subject, with its
// position header, and that every stream's chain holds on the copy.
func assertExactlyOnceInOrder(t *testing.T, js jetstream.JetStream, want []Event) {
	t.Helper()
	got := relayed(t, js)
	if len(got) != len(want) {
		t.Fatalf("EVENTS holds %d messages, want %d", len(got), len(want))
	}
	seen := map[string]bool{}
	byStream := map[eventlog.StreamID][]eventlog.Record{}
	for i, m := range got {
		w := want[i]
		id := m.rec.Event.GetEventId()
		if seen[id] {
			t.Errorf("message %d: event %s relayed twice", i+1, id)
		}
		seen[id] = true
		if id != w.EventID || string(m.rec.Raw) != string(w.Raw) {
			t.Errorf("message %d: event %s, want %s byte for byte", i+1, id, w.EventID)
		}
		if m.subject != jsstore.Subject(w.Stream) {
			t.Errorf("message %d: subject %s, want %s", i+1, m.subject, jsstore.Subject(w.Stream))
		}
		if h := m.header.Get(PositionHeader); h != w.Position.String() {
			t.Errorf("message %d: %s = %q, want %q", i+1, PositionHeader, h, w.Position)
		}
		if h := m.header.Get(jetstream.MsgIDHeader); h != w.EventID {
			t.Errorf("message %d: Nats-Msg-Id = %q, want the event id %s", i+1, h, w.EventID)
		}
		if h := m.header.Get("traceparent"); h != w.Traceparent {
			t.Errorf("message %d: traceparent = %q, want %q", i+1, h, w.Traceparent)
		}
		byStream[w.Stream] = append(byStream[w.Stream], m.rec)
	}
	for stream, recs := range byStream {
		if broken := eventlog.VerifyChain(stream, recs); broken != nil {
			t.Errorf("relayed copy: %v", broken)
		}
	}
}

// countingSink counts the events handed to a sink.
type countingSink struct {
	Sink
	mu sync.Mutex
	n  int
}

func (c *countingSink) Publish(ctx context.Context, ev Event) error {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.Sink.Publish(ctx, ev)
}

func (c *countingSink) published() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func runInBackground(t *testing.T, r *Relay) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() error { cancel(); return <-done }
}

func TestRelayPublishesEveryEventOnceInLogOrder(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	events := someEvents(t, 9)
	src := newStandIn(events[:6])
	r, err := New(src, newSink(t, js), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, r)
	waitRelayed(t, js, 6)
	src.add(events[6:]...) // new events while following
	waitRelayed(t, js, 9)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
	assertExactlyOnceInOrder(t, js, events)
}

func TestRelayResumesAfterACrashWithNoGapAndNoDuplicate(t *testing.T) {
	dir := t.TempDir()
	ns, js := startNATS(t, dir)
	events := someEvents(t, 10)
	src := newStandIn(events)
	src.crashAfter = []int{4}
	r, err := New(src, newSink(t, js), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(context.Background()); !errors.Is(err, errCrash) {
		t.Fatalf("Run = %v, want the subscription's crash", err)
	}
	assertExactlyOnceInOrder(t, js, events[:4])

	// The next event was published but the relay died before hearing the
	// ack: the message (and so the checkpoint) is there.
	sink := newSink(t, js)
	if _, _, err := sink.Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sink.Publish(context.Background(), events[4]); err != nil {
		t.Fatal(err)
	}

	// The whole process goes down, NATS with it, and comes back.
	ns.Shutdown()
	_, js = startNATS(t, dir)
	src.ignoreFrom = true // and the source replays from the start
	counted := &countingSink{Sink: newSink(t, js)}
	r, err = New(src, counted, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, r)
	waitRelayed(t, js, 10)
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel = %v, want context.Canceled", err)
	}
	assertExactlyOnceInOrder(t, js, events)
	if counted.published() != 5 {
		t.Errorf("the resumed relay published %d events, want 5: those up to the checkpoint are skipped, not left to dedup", counted.published())
	}
	src.mu.Lock()
	defer src.mu.Unlock()
	if last := src.froms[len(src.froms)-1]; last == nil || *last != events[4].Position {
		t.Errorf("resumed after %v, want after the last published event %s", last, events[4].Position)
	}
}

func TestServeRestartsFromTheCheckpointAfterTheBackoff(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	events := someEvents(t, 7)
	src := newStandIn(events)
	src.crashAfter = []int{3}
	fake := clock.NewFake(committed)
	r, err := New(src, newSink(t, js), Options{Clock: fake, Backoff: 5 * time.Second, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Serve(ctx) }()

	waitRelayed(t, js, 3)
	checkFor(t, 10*time.Second, func() error {
		if fake.Pending() != 1 {
			return fmt.Errorf("%d timers pending, want the backoff", fake.Pending())
		}
		return nil
	})
	if n := src.subscribeCalls(); n != 1 {
		t.Fatalf("subscribed %d times before the backoff elapsed, want 1", n)
	}
	fake.Advance(5 * time.Second)
	waitRelayed(t, js, 7)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v, want context.Canceled", err)
	}
	assertExactlyOnceInOrder(t, js, events)
}

func TestASecondRelayIsFencedOff(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	events := someEvents(t, 3)
	ctx := context.Background()
	a, b := newSink(t, js), newSink(t, js)
	for _, s := range []*JetStreamSink{a, b} {
		if _, _, err := s.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Publish(ctx, events[0]); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, events[1]); !errors.Is(err, ErrFenced) {
		t.Fatalf("second sink's publish = %v, want ErrFenced", err)
	}
	if err := b.Publish(ctx, events[1]); err == nil {
		t.Fatal("a fenced sink published without reloading its checkpoint")
	}
	// Reloaded, it carries on from the first sink's last event.
	if p, ok, err := b.Checkpoint(ctx); err != nil || !ok || p != events[0].Position {
		t.Fatalf("Checkpoint = %s %v %v, want %s", p, ok, err, events[0].Position)
	}
	if err := b.Publish(ctx, events[1]); err != nil {
		t.Fatal(err)
	}
	assertExactlyOnceInOrder(t, js, events[:2])
}

func TestARepeatedEventIsDroppedByItsMessageID(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	events := someEvents(t, 2)
	ctx := context.Background()
	sink := newSink(t, js)
	if _, _, err := sink.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []Event{events[0], events[1], events[0]} {
		if err := sink.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	assertExactlyOnceInOrder(t, js, events)
	if p, _, _ := sink.Checkpoint(ctx); p != events[1].Position {
		t.Errorf("checkpoint after a dropped repeat = %s, want %s", p, events[1].Position)
	}
}

func TestCheckpointRefusesAStreamWrittenByAnotherWriter(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	ctx := context.Background()
	log, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	id := "0190a0b1-0000-7000-8000-000000000009"
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, OccurredAt: committed}, &eventsv1.ComplaintReceived{ChannelRef: "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := log.Append(ctx, eventlog.ComplaintStream(id), 0, e); err != nil {
		t.Fatal(err)
	}
	r, err := New(newStandIn(nil), newSink(t, js), Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Run(ctx); !errors.Is(err, ErrForeignTail) {
		t.Fatalf("Run = %v, want ErrForeignTail", err)
	}
}

func TestRelayRecordsItsLag(t *testing.T) {
	_, js := startNATS(t, t.TempDir())
	events := someEvents(t, 3)
	events[2].CommittedAt = committed.Add(500 * time.Millisecond)
	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	fake := clock.NewFake(committed.Add(2 * time.Second))
	r, err := New(newStandIn(events), newSink(t, js), Options{Clock: fake, Meter: meter, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	stop := runInBackground(t, r)
	waitRelayed(t, js, 3)
	_ = stop()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var lag float64
	var count int64
	var sawLag, sawCount bool
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				if m.Name == "closeloop.relay.lag" && len(d.DataPoints) == 1 {
					lag, sawLag = d.DataPoints[0].Value, true
				}
			case metricdata.Sum[int64]:
				if m.Name == "closeloop.relay.events" && len(d.DataPoints) == 1 {
					count, sawCount = d.DataPoints[0].Value, true
				}
			}
		}
	}
	if !sawLag || lag != 1.5 {
		t.Errorf("closeloop.relay.lag = %v (recorded %v), want 1.5 s for the last event", lag, sawLag)
	}
	if !sawCount || count != 3 {
		t.Errorf("closeloop.relay.events = %d (recorded %v), want 3", count, sawCount)
	}
}

func TestPositionOrderAndHeaderForm(t *testing.T) {
	a, b, c := Position{1000, 100}, Position{1000, 200}, Position{2000, 50}
	if !a.Less(b) || !b.Less(c) || b.Less(a) || a.Less(a) {
		t.Error("positions must order by commit, then prepare")
	}
	p, err := ParsePosition(b.String())
	if err != nil || p != b {
		t.Errorf("ParsePosition(%q) = %v, %v; want %v", b.String(), p, err, b)
	}
	for _, bad := range []string{"", "12", "1/", "/2", "a/b", "-1/2", "1/2/3"} {
		if _, err := ParsePosition(bad); err == nil || !strings.Contains(err.Error(), "<commit>/<prepare>") {
			t.Errorf("ParsePosition(%q) = %v, want an error naming the form", bad, err)
		}
	}
}

func TestNewRefusesAMissingSourceOrSink(t *testing.T) {
	if _, err := New(nil, &JetStreamSink{}, Options{Logger: quiet}); err == nil {
		t.Error("New(nil source) accepted")
	}
	if _, err := New(newStandIn(nil), nil, Options{Logger: quiet}); err == nil {
		t.Error("New(nil sink) accepted")
	}
}
