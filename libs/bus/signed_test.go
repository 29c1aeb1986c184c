package bus_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// With a Verifier, a correctly chained event that is unsigned, or signed by
// a service that may not write its type, is quarantined: dead-lettered with
// the reason, counted, logged, and never handed to the handler; the signed
// events around it are handled.
func TestForgedEventsAreQuarantinedNotHandled(t *testing.T) {
	srv := natstest.Start(t, natsembed.Options{StoreDir: t.TempDir(), NoSync: true})
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	routing := signingtest.Signer(t, "routing-1", "routing")
	dispatch := signingtest.Signer(t, "dispatch-1", "dispatch")
	store, err := jsstore.New(ctx, js, jsstore.Config{Signer: routing})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reader := metric.NewManualReader()
	logs := &syncBuf{}
	v, err := eventlog.NewVerifier(store, eventlog.VerifierOptions{Keys: signingtest.Keyring(t, routing, dispatch),
		Logger: slog.New(slog.NewJSONHandler(logs, nil)), MeterProvider: metric.NewMeterProvider(metric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var handled []uint64
	sub, err := bus.Subscribe(ctx, js, bus.Options{Durable: "routing", Verifier: v, BackOff: []time.Duration{10 * time.Millisecond}},
		func(_ context.Context, rec eventlog.Record) error {
			mu.Lock()
			defer mu.Unlock()
			handled = append(handled, rec.Position)
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)

	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)
	response := func(producer string) *eventsv1.Envelope {
		return signingtest.Event(t, producer, id, &eventsv1.ResponseRecorded{Summary: "called back"})
	}
	first, err := store.Append(ctx, stream, 0, response("routing"))
	if err != nil {
		t.Fatal(err)
	}
	unsigned := signingtest.Forge(t, ctx, js, store, stream, response("routing"), nil)
	wrongKey := signingtest.Forge(t, ctx, js, store, stream, response("dispatch"), dispatch)
	last, err := store.Append(ctx, stream, 3, response("routing"))
	if err != nil {
		t.Fatal(err)
	}

	checkFor(t, 10*time.Second, func() error { return bus.CaughtUp(ctx, js, "EVENTS", "routing") })
	mu.Lock()
	got := slices.Clone(handled)
	mu.Unlock()
	if want := []uint64{first.Position, last.Position}; !slices.Equal(got, want) {
		t.Fatalf("handled positions %v, want only the signed events %v", got, want)
	}
	dl, err := bus.DeadLetters(ctx, js, "routing")
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[uint64]string{}
	for _, d := range dl {
		reasons[d.StreamSequence] = d.Reason
	}
	for pos, want := range map[uint64]string{unsigned: "unsigned", wrongKey: "dispatch may not write ResponseRecorded"} {
		if r := reasons[pos]; !strings.HasPrefix(r, "quarantined: ") || !strings.Contains(r, want) {
			t.Errorf("dead letter of position %d: reason %q, want it quarantined on %q", pos, r, want)
		}
	}
	if len(dl) != 2 {
		t.Errorf("%d dead letters, want the 2 forgeries", len(dl))
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if n := counterValue(rm, "eventlog.events.quarantined"); n != 2 {
		t.Errorf("eventlog.events.quarantined = %d, want 2", n)
	}
	for _, pos := range []uint64{unsigned, wrongKey} {
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			found = found || (strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "quarantined") && strings.Contains(line, fmt.Sprintf(`"position":%d`, pos)))
		}
		if !found {
			t.Errorf("no error log line for the event quarantined at %d", pos)
		}
	}
	if strings.Contains(logs.String(), "called back") {
		t.Error("a log line carries the event's payload")
	}
}
