package app

import (
	"context"
	"errors"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

// newApp builds an App on store and clk with the default policy and
// calendars, owning the partition part.
func newApp(t testing.TB, store eventlog.Store, clk clock.Clock, part Partition) *App {
	t.Helper()
	return newTracedApp(t, store, clk, part, nil)
}

// newTracedApp is newApp reporting its spans to tp (nil: none).
func newTracedApp(t testing.TB, store eventlog.Store, clk clock.Clock, part Partition, tp trace.TracerProvider) *App {
	t.Helper()
	p, err := policy.Parse(policydata.Default)
	if err != nil {
		t.Fatal(err)
	}
	cals, err := calendar.Default()
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(store, clk, slog.New(slog.DiscardHandler), policy.NewBook(p), cals, part, tp)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func startedEvent(id string, version uint64, at, deadline time.Time, warn []uint32) *ev.Envelope {
	e, _ := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "slaclock", OccurredAt: at, PolicyVersion: "sla.v1", CalendarVer: "continuous"},
		&ev.SlaClockStarted{ClockId: "resolution-1", Target: ev.SlaTarget_SLA_TARGET_RESOLUTION, StartedAt: timestamppb.New(at),
			Deadline: timestamppb.New(deadline), Budget: durationpb.New(deadline.Sub(at)), WarnPercents: warn})
	e.StreamId = string(eventlog.ComplaintStream(id))
	e.Version = version
	// As written by a decision: the index keeps the trace its firing continues.
	e.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	return e
}

// rawLog is a recorded log held as stored bytes: ReadAll decodes each event
// as a backend does when reading. It measures the rebuild on the in-memory
// decode path, without writing 1M events to JetStream first.
type rawLog struct {
	eventlog.Store
	raw [][]byte
}

func (l *rawLog) ReadAll(_ context.Context, from uint64, max int) ([]eventlog.Record, error) {
	var out []eventlog.Record
	for p := from; p <= uint64(len(l.raw)) && len(out) < max; p++ {
		var e ev.Envelope
		if err := proto.Unmarshal(l.raw[p-1], &e); err != nil {
			return nil, err
		}
		out = append(out, eventlog.Record{Event: &e, Raw: l.raw[p-1], Position: p})
	}
	return out, nil
}

// Follow: nothing is appended to a recorded log; wait for the stop.
func (l *rawLog) Follow(ctx context.Context, _ uint64, _ func(eventlog.Record) error) error {
	<-ctx.Done()
	return ctx.Err()
}

func (l *rawLog) ReadStream(context.Context, eventlog.StreamID, uint64) ([]eventlog.Record, error) {
	return nil, errors.New("rawLog: no streams")
}

// BenchmarkRebuild1M rebuilds the schedule of 1,000,000 open clocks from a
// recorded log of 1,000,000 SlaClockStarted events (target ≤ 60 s).
func BenchmarkRebuild1M(b *testing.B) {
	const n = 1_000_000
	at := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	log := &rawLog{raw: make([][]byte, n)}
	for i := range n {
		raw, err := proto.Marshal(startedEvent(uuid.NewString(), 1, at, at.Add(48*time.Hour+time.Duration(i)*time.Millisecond), []uint32{50, 75, 90}))
		if err != nil {
			b.Fatal(err)
		}
		log.raw[i] = raw
	}
	for b.Loop() {
		a := newApp(b, log, clock.NewFake(at), Partition{})
		if err := a.Rebuild(context.Background()); err != nil {
			b.Fatal(err)
		}
		if a.Index().Open() != n {
			b.Fatalf("open = %d", a.Index().Open())
		}
	}
}

// BenchmarkSnapshot1M encodes and restores the snapshot of 1,000,000 open
// clocks (one per complaint): what a save costs the Follower's goroutine,
// and what a start from the snapshot costs before its catch-up.
func BenchmarkSnapshot1M(b *testing.B) {
	const n = 1_000_000
	at := time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC)
	x := newApp(b, &rawLog{}, clock.NewFake(at), Partition{}).Index()
	for i := range n {
		x.Apply(startedEvent(uuid.NewString(), 1, at, at.Add(48*time.Hour+time.Duration(i)*time.Millisecond), []uint32{50, 75, 90}))
	}
	var data []byte
	for b.Loop() {
		began := time.Now()
		data = x.Encode()
		b.ReportMetric(float64(time.Since(began).Milliseconds()), "encode-ms")
		began = time.Now()
		if err := x.Restore(data); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(time.Since(began).Milliseconds()), "restore-ms")
	}
	b.ReportMetric(float64(len(data))/n, "bytes/clock")
}

// BenchmarkFiringLag fires 10,000 breaches due within one second (10,000
// deadlines per second) on the real clock, through the whole path (read the
// complaint's stream, decide, append to an in-memory log), and reports the
// lag between each deadline and its append: p50 and p99 (target ≤ 100 ms).
func BenchmarkFiringLag(b *testing.B) {
	const n = 10_000
	for b.Loop() {
		store := memstore.New(nil)
		now := time.Now().UTC()
		first := now.Add(2 * time.Second)
		for i := range n {
			// A complaint intake received (slaclock keeps no clock for
			// one it did not), with a clock due in the second to come.
			id := uuid.NewString()
			rec, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", OccurredAt: now}, received(now))
			if err != nil {
				b.Fatal(err)
			}
			e := startedEvent(id, 0, now, first.Add(time.Duration(i)*time.Second/n), nil)
			e.StreamId, e.Version = "", 0
			if _, err := store.Append(context.Background(), eventlog.ComplaintStream(id), 0, rec, e); err != nil {
				b.Fatal(err)
			}
		}
		a := newApp(b, store, clock.Real{}, Partition{})
		var mu sync.Mutex
		var lags []time.Duration
		done := make(chan struct{})
		a.OnAppended(func(e *ev.Envelope) {
			if br := e.GetSlaBreached(); br != nil {
				mu.Lock()
				lags = append(lags, time.Since(br.GetDeadline().AsTime()))
				if len(lags) == n {
					close(done)
				}
				mu.Unlock()
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		if err := a.Rebuild(ctx); err != nil {
			b.Fatal(err)
		}
		go func() { _ = a.Run(ctx) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			b.Fatalf("only %d of %d breaches fired", len(lags), n)
		}
		cancel()
		slices.Sort(lags)
		b.ReportMetric(float64(lags[n/2].Microseconds())/1000, "p50_ms")
		b.ReportMetric(float64(lags[n*99/100].Microseconds())/1000, "p99_ms")
		b.ReportMetric(float64(lags[n-1].Microseconds())/1000, "max_ms")
	}
}
