package routing

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// maxRate is what the "max" run sustained, for the "half" run to pace at.
var maxRate float64

// BenchmarkAcceptedToAssigned measures ComplaintAccepted appended →
// ComplaintAssigned stored, through one routing instance on an embedded
// NATS (JetStream event log, durable bus consumer). "max" writes complaints
// from 8 writers as fast as they go and reports the sustained rate; "half"
// paces writes at half that rate. Both report p50 and p99 latency.
//
//	go test -run '^$' -bench AcceptedToAssigned -benchtime 2000x ./services/routing/
func BenchmarkAcceptedToAssigned(b *testing.B) {
	b.Run("max", func(b *testing.B) { maxRate = benchAssign(b, 0) })
	b.Run("half", func(b *testing.B) {
		if maxRate == 0 {
			b.Skip("needs the max run first")
		}
		benchAssign(b, maxRate/2)
	})
}

func benchAssign(b *testing.B, rate float64) float64 {
	e := newEnv(b)
	svc := e.start(b, "routing")
	roster(b, e.ctx, client(b, svc))

	// Observe assignments as they are stored.
	nc, err := nats.Connect(e.natsURL)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	var (
		mu       sync.Mutex
		started  = map[string]time.Time{}
		lat      []time.Duration
		assigned atomic.Int64
		all      = make(chan struct{})
	)
	sub, err := nc.Subscribe(jsstore.Subject(eventlog.ComplaintStream("*")), func(m *nats.Msg) {
		if m.Header.Get(jsstore.EventTypeHeader) != "ComplaintAssigned" {
			return
		}
		id := eventlog.StreamID("complaint-" + tokenAt(m.Subject, 2)).ID()
		// A publish the log refused reaches this subscriber too: count
		// each complaint once, and check the log itself at the end.
		mu.Lock()
		t, first := started[id]
		if first {
			lat = append(lat, time.Since(t))
			delete(started, id)
		}
		mu.Unlock()
		if first && assigned.Add(1) == int64(b.N) {
			close(all)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		b.Fatal(err)
	}

	texts := texts[:2] // L1 and L2: no escalation on arrival, just assignment
	b.ResetTimer()
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	writers := 8
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if rate > 0 {
					if d := time.Until(begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
						time.Sleep(d)
					}
				}
				id := fmt.Sprintf("b%07d", i)
				mu.Lock()
				started[id] = time.Now()
				mu.Unlock()
				e.write(b, id, &eventsv1.ComplaintReceived{
					Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: id, Description: texts[i%2], FirstReceiver: "hotline-7",
					Customer: &eventsv1.Customer{CustomerRef: id, Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
				}, &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
			}
		}()
	}
	wg.Wait()
	timedOut := false
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		timedOut = true
	}
	elapsed := time.Since(begin)
	b.StopTimer()
	if missing := e.unassigned(b, b.N); len(missing) > 0 || timedOut {
		dropped, _ := sub.Dropped()
		b.Fatalf("%d of %d complaints have no ComplaintAssigned in the log (the observer saw %d, dropped %d); %s",
			len(missing), b.N, assigned.Load(), dropped, e.stuck(b, missing))
	}
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	got := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(got, "complaints/s")
	if rate > 0 {
		b.ReportMetric(rate, "target/s")
	}
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
	return got
}

// unassigned returns the benchmark's complaints whose streams hold no
// ComplaintAssigned.
func (e *env) unassigned(b *testing.B, n int) []string {
	var ids []string
	for i := range n {
		id := fmt.Sprintf("b%07d", i)
		recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			b.Fatal(err)
		}
		if !slices.ContainsFunc(recs, func(r eventlog.Record) bool { return r.Event.GetComplaintAssigned() != nil }) {
			ids = append(ids, id)
		}
	}
	return ids
}

// stuck describes what became of complaints never assigned: a few of their
// streams, routing's consumer and the dead letters.
func (e *env) stuck(b *testing.B, ids []string) string {
	out := fmt.Sprintf("%d never assigned", len(ids))
	for _, id := range ids[:min(3, len(ids))] {
		recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
		var types []string
		for _, r := range recs {
			types = append(types, r.Event.GetType())
		}
		out += fmt.Sprintf("; %s: %v %v", id, types, err)
	}
	if c, err := e.js.Consumer(e.ctx, "EVENTS", "routing"); err == nil {
		if info, err := c.Info(e.ctx); err == nil {
			out += fmt.Sprintf("; routing consumer: pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
	}
	if st, err := e.js.Stream(e.ctx, bus.DeadLetterStream); err == nil {
		out += fmt.Sprintf("; dead letters %d", st.CachedInfo().State.Msgs)
	}
	return out
}

// tokenAt returns the i-th dot-separated token of a subject.
func tokenAt(subject string, i int) string {
	for n := 0; n < i; n++ {
		for j := 0; j < len(subject); j++ {
			if subject[j] == '.' {
				subject = subject[j+1:]
				break
			}
		}
	}
	for j := 0; j < len(subject); j++ {
		if subject[j] == '.' {
			return subject[:j]
		}
	}
	return subject
}
