package main

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRoutingBacklog measures routing's assignment rate while it
// drains a backlog: routing's consumer is paused, the backlog's complaints
// are submitted (and classified by nothing yet), then the consumer resumes
// and the time until every one is assigned gives the rate. Routing must
// not slow down as the backlog grows (the 30,000 rate at least the 2,000
// one). Run with -benchtime=1x: each size is one drain.
func BenchmarkRoutingBacklog(b *testing.B) {
	for _, waiting := range []int{2000, 30000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			for range b.N {
				s := startLoad(b)
				if _, err := s.js.PauseConsumer(s.ctx, "EVENTS", "routing", time.Now().Add(time.Hour)); err != nil {
					b.Fatalf("pause routing's consumer: %v", err)
				}
				submitAll(b, s, waiting)
				if n := s.assignedCount(); n != 0 {
					b.Fatalf("%d complaints assigned while routing's consumer was paused", n)
				}
				b.ResetTimer()
				start := time.Now()
				if _, err := s.js.ResumeConsumer(s.ctx, "EVENTS", "routing"); err != nil {
					b.Fatalf("resume routing's consumer: %v", err)
				}
				s.waitAssigned(b, waiting, time.Minute+time.Duration(waiting)*50*time.Millisecond)
				elapsed := time.Since(start)
				b.StopTimer()
				b.ReportMetric(float64(waiting)/elapsed.Seconds(), "assigned/s")
			}
		})
	}
}

// submitAll submits n complaints from 32 concurrent clients.
func submitAll(b *testing.B, s *loadSystem, n int) {
	b.Helper()
	const workers = 32
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Pointer[error]
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if err := s.submit(w); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
}
