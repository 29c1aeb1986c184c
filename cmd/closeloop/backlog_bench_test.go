package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/slaclock"
)

// BenchmarkRoutingBacklog measures routing's assignment rate while it
// drains a backlog: routing's consumer is paused, the backlog's complaints
// are submitted (and classified by nothing yet), then the consumer resumes
// and the time until every one is assigned gives the rate. Routing must
// not slow down as the backlog grows (the 30,000 rate at least the 2,000
// one). Run with -benchtime=1x: each size is one drain.
// BACKLOG_DRAIN_CPUPROFILE=<prefix> writes a CPU profile of each drain
// alone (<prefix>-<waiting>.pprof), without the submissions before it.
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
				stopProfile := drainProfile(b, waiting)
				b.ResetTimer()
				start := time.Now()
				if _, err := s.js.ResumeConsumer(s.ctx, "EVENTS", "routing"); err != nil {
					b.Fatalf("resume routing's consumer: %v", err)
				}
				s.waitAssigned(b, waiting, time.Minute+time.Duration(waiting)*50*time.Millisecond)
				elapsed := time.Since(start)
				b.StopTimer()
				stopProfile()
				b.ReportMetric(float64(waiting)/elapsed.Seconds(), "assigned/s")
			}
		})
	}
}

// drainProfile starts the CPU profile BACKLOG_DRAIN_CPUPROFILE asks for.
func drainProfile(b *testing.B, waiting int) (stop func()) {
	prefix := os.Getenv("BACKLOG_DRAIN_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s-%d.pprof", prefix, waiting))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
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

// BenchmarkRestartAfterLoad is the restart of `make run` on a log that
// took a load through the API: complaints submitted to intake until
// routing has assigned every one, then the services and the embedded NATS
// stopped and started again on the same store. It reports the time from
// the start until every service, the console too, is ready (/readyz 200):
// with their snapshots, they do not rebuild what the log already held.
func BenchmarkRestartAfterLoad(b *testing.B) {
	const complaints = 30000
	for range b.N {
		dir := b.TempDir()
		s := startLoadIn(b, dir)
		submitAll(b, s, complaints)
		s.waitAssigned(b, complaints, time.Minute+complaints*50*time.Millisecond)
		b.Logf("assigned; sla-clock at position %d", s.slaPosition())
		s.waitQuiet(b, 30*time.Minute)
		s.stop()

		b.ResetTimer()
		start := time.Now()
		ns, err := startBus(context.Background(), dir, natsembed.Options{StoreDir: filepath.Join(dir, "nats")})
		if err != nil {
			b.Fatal(err)
		}
		sys, err := startServices(context.Background(), ns, clock.Real{}, io.Discard)
		if err != nil {
			ns.Shutdown()
			b.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- runAll(ctx, sys.services, slog.New(slog.DiscardHandler)) }()
		for _, svc := range sys.services {
			waitReadyz(b, svc, done)
			b.Logf("%s ready %.1fs after the start", svc.Name(), time.Since(start).Seconds())
		}
		elapsed := time.Since(start)
		b.StopTimer()
		stop()
		if err := <-done; err != nil {
			b.Errorf("services stopped with: %v", err)
		}
		sys.close()
		ns.Shutdown()
		b.ReportMetric(elapsed.Seconds(), "s-to-all-ready")
	}
}

// slaPosition is the log position sla-clock's view has applied.
func (s *loadSystem) slaPosition() uint64 {
	for _, svc := range s.services {
		if sc, ok := svc.(*slaclock.Service); ok && sc.App().Follower() != nil {
			return sc.App().Follower().Position()
		}
	}
	return 0
}

// waitQuiet waits until the log stops growing and sla-clock, which
// follows it by itself, has applied it to its end: the restart is then of
// a quiet system, as after the load.
func (s *loadSystem) waitQuiet(b *testing.B, timeout time.Duration) {
	b.Helper()
	began := time.Now()
	deadline := began.Add(timeout)
	for {
		stream, err := s.js.Stream(s.ctx, "EVENTS")
		if err != nil {
			b.Fatal(err)
		}
		last := stream.CachedInfo().State.LastSeq
		if pos := s.slaPosition(); pos >= last {
			time.Sleep(time.Second)
			if info, err := stream.Info(s.ctx); err == nil && info.State.LastSeq == last {
				b.Logf("quiet after %s more: the log ends at %d", time.Since(began).Round(time.Second), last)
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("sla-clock at position %d of %d after %s", s.slaPosition(), last, timeout)
		}
		time.Sleep(pollEvery)
	}
}

// waitReadyz polls a service's GET /readyz until it answers 200.
func waitReadyz(b *testing.B, svc platform.Service, done <-chan error) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Minute)
	for {
		var addr string
		switch a := svc.(type) {
		case interface{ HTTPAddr() string }:
			addr = a.HTTPAddr()
		case interface{ API() *api.Server }:
			addr = a.API().HTTPAddr()
		}
		if addr != "" {
			if resp, err := http.Get("http://" + addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return
				}
			}
		}
		select {
		case err := <-done:
			b.Fatalf("services stopped before %s was ready: %v", svc.Name(), err)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not ready after 10 minutes", svc.Name())
		}
		time.Sleep(pollEvery)
	}
}
