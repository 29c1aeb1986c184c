package jsstore_test

// TEMPORARY experiments (to be removed).

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func expConn(b *testing.B, inProc bool) (*nats.Conn, jetstream.JetStream) {
	replayStore(b, true)
	nc, err := replay.srv.Connect("exp", inProc)
	must(b, err)
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	must(b, err)
	return nc, js
}

func parseSeq(reply string) (uint64, error) {
	// $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
	t := strings.Split(reply, ".")
	if len(t) == 9 {
		return strconv.ParseUint(t[5], 10, 64)
	}
	if len(t) >= 12 {
		return strconv.ParseUint(t[7], 10, 64)
	}
	return 0, fmt.Errorf("bad reply %q", reply)
}

// rawPull reads the whole log through an ephemeral AckNone pull consumer.
func rawPull(b *testing.B, nc *nats.Conn, js jetstream.JetStream, batch int, decode bool) int {
	ctx := testContext(b)
	st, err := js.Stream(ctx, "EVENTS")
	must(b, err)
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
		DeliverPolicy: jetstream.DeliverAllPolicy, Replicas: 1,
	})
	must(b, err)
	name := cons.CachedInfo().Name
	defer st.DeleteConsumer(ctx, name)
	inbox := nats.NewInbox()
	type ev struct {
		m   *nats.Msg
		end bool
	}
	ch := make(chan *nats.Msg, batch+16)
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) { ch <- m })
	must(b, err)
	must(b, sub.SetPendingLimits(-1, -1))
	defer sub.Unsubscribe()
	n := 0
	var recs []eventlog.Record
	for {
		req, _ := json.Marshal(map[string]any{"batch": batch, "no_wait": true})
		must(b, nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.EVENTS."+name, inbox, req))
		got := 0
		for got < batch {
			m := <-ch
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				if n == 0 {
					b.Logf("status %s", m.Header.Get("Status"))
				}
				return n
			}
			got++
			n++
			if decode {
				seq, err := parseSeq(m.Reply)
				must(b, err)
				e := &eventsv1.Envelope{}
				must(b, proto.Unmarshal(m.Data, e))
				recs = append(recs, eventlog.Record{Event: e, Raw: m.Data, Position: seq})
			}
		}
		if len(recs) > 0 {
			recs = recs[:0]
		}
	}
}

func BenchmarkExpRawPull(b *testing.B) {
	total := longStreamEvents + shortStreams*shortStreamEvents
	for _, inProc := range []bool{true, false} {
		for _, decode := range []bool{false, true} {
			b.Run(fmt.Sprintf("inproc=%v/decode=%v", inProc, decode), func(b *testing.B) {
				nc, js := expConn(b, inProc)
				b.ResetTimer()
				c0 := cpuNow()
				defer func() { b.ReportMetric(float64((cpuNow()-c0).Microseconds())/float64(b.N*total), "cpu-us/event") }()
				for range b.N {
					if n := rawPull(b, nc, js, 10_000, decode); n != total {
						b.Fatalf("got %d", n)
					}
				}
				b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// rawDirect reads the log by batched direct get, optionally without headers.
func rawDirect(b *testing.B, nc *nats.Conn, noHdr bool) int {
	ch := make(chan *nats.Msg, 1024)
	inbox := nats.NewInbox()
	sub, err := nc.Subscribe(inbox, func(m *nats.Msg) { ch <- m })
	must(b, err)
	defer sub.Unsubscribe()
	n := 0
	seq := uint64(1)
	for {
		req, _ := json.Marshal(map[string]any{"seq": seq, "batch": 512, "no_hdr": noHdr})
		must(b, nc.PublishRequest("$JS.API.DIRECT.GET.EVENTS", inbox, req))
		for {
			m := <-ch
			if len(m.Data) == 0 {
				st := m.Header.Get("Status")
				if st == "404" {
					return n
				}
				if st == "204" {
					if m.Header.Get("Nats-Num-Pending") == "0" {
						return n
					}
					last, _ := strconv.ParseUint(m.Header.Get("Nats-Last-Sequence"), 10, 64)
					seq = last + 1
					break
				}
				b.Fatalf("status %q", st)
			}
			n++
		}
	}
}

func BenchmarkExpRawDirect(b *testing.B) {
	total := longStreamEvents + shortStreams*shortStreamEvents
	for _, noHdr := range []bool{false, true} {
		b.Run(fmt.Sprintf("nohdr=%v", noHdr), func(b *testing.B) {
			nc, _ := expConn(b, true)
			b.ResetTimer()
			c0 := cpuNow()
			defer func() { b.ReportMetric(float64((cpuNow()-c0).Microseconds())/float64(b.N*total), "cpu-us/event") }()
			for range b.N {
				if n := rawDirect(b, nc, noHdr); n != total {
					b.Fatalf("got %d", n)
				}
			}
			b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
