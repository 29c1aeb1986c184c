package view

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/viewtest"
)

// BenchmarkCatchUp: a Follower rebuilding the view from a log of 10,000
// complaints (the history helper: 6-9 events each, a third closed or
// withdrawn), reported in events per second. The log is in memory
// (memstore): this is the view's fold rate, the JetStream read comes on
// top (libs/eventlog/jsstore/README.md).
func BenchmarkCatchUp(b *testing.B) {
	log := memstore.New(clock.NewFake(t0))
	history(logWriter{b, log}, 0, 10_000)
	recs, err := log.ReadAll(context.Background(), 1, 1<<30)
	if err != nil {
		b.Fatal(err)
	}
	events := len(recs)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		v := New(NewIndex([]byte("bench-secret-0123456789")))
		f, err := checkpoint.New(checkpoint.Options{Name: Name, Format: Format, Log: log, Rebuild: true}, v)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- v.Run(ctx, f) }()
		<-f.CaughtUp()
		cancel()
		<-done
	}
	b.ReportMetric(float64(events*b.N)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(events), "events")
}

// BenchmarkApply: the fold alone (an SLA warning), on a view holding
// 50,000 open complaints.
func BenchmarkApply(b *testing.B) {
	v := New(NewIndex([]byte("bench-secret-0123456789")))
	pos := uint64(viewtest.FillOpen(v, 50_000, []string{"agent-1", "agent-2"}, t0))
	// Records are made outside the timer, a chunk at a time (memory).
	const chunk = 100_000
	var recs []eventlog.Record
	b.ResetTimer()
	for i := range b.N {
		if i%chunk == 0 {
			b.StopTimer()
			recs = recs[:0]
			for j := range min(chunk, b.N-i) {
				id := fmt.Sprintf("c-%07d", (i+j)%50_000)
				pos++
				recs = append(recs, viewtest.Record(id, 7, pos, t0, &eventsv1.SlaWarning{ClockId: id + "-response", ThresholdPercent: 50}))
			}
			b.StartTimer()
		}
		if err := v.Apply(context.Background(), recs[i%chunk]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
