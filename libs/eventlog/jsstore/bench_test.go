package jsstore_test

// Benchmarks, all on an embedded server with the same durability as
// production (SyncAlways: fsync before the ack) unless named NoSync:
//
//	cd /work/main && go test -run '^$' -bench . -benchtime 2s ./libs/eventlog/jsstore/
//
// BaselineRawPublish is what JetStream itself gives for a concurrency-checked
// publish; Append64Writers is the store doing the same through its API
// (validation, sealing, hash chain, tail cache); AppendBatch2 appends two
// events at a time (one atomic batch). Replay benchmarks read a log
// filled once per run (see replayStore), over the in-process pipe and over
// TCP, and report cpu-µs/event (client and embedded server together) besides
// events/s: on a shared machine the wall-clock rate follows the load, the CPU
// per event much less. ReplayAllRawConsumer is the ceiling of the slow way
// of reading (a bare consumer, no decoding). Findings and figures: README.md.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

const writers = 64

var durabilities = []struct {
	name   string
	noSync bool
}{{"SyncAlways", false}, {"NoSync", true}}

// runWriters runs b.N operations spread over 64 goroutines, each given its
// own worker index, and reports the rate.
func runWriters(b *testing.B, op func(worker int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	for w := range writers {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := op(w); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkBaselineRawPublish(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			_, js := startServer(b, natsembed.Options{NoSync: d.noSync})
			newStore(b, js, jsstore.Config{}) // the same stream
			raw, err := proto.Marshal(response(b, uuid.NewString(), "a typical event"))
			must(b, err)
			ctx := testContext(b)
			type subject struct {
				subj string
				seq  uint64
			}
			subjects := make([]subject, writers)
			for i := range subjects {
				stream := eventlog.ComplaintStream(uuid.NewString())
				subjects[i] = subject{subj: jsstore.Subject(stream)}
			}
			runWriters(b, func(w int) error {
				s := &subjects[w]
				ack, err := js.Publish(ctx, s.subj, raw,
					jetstream.WithMsgID(uuid.NewString()),
					jetstream.WithExpectLastSequencePerSubject(s.seq))
				if err != nil {
					return err
				}
				s.seq = ack.Sequence
				return nil
			})
		})
	}
}

func BenchmarkAppend64Writers(b *testing.B) {
	for _, d := range durabilities {
		b.Run(d.name, func(b *testing.B) {
			_, js := startServer(b, natsembed.Options{NoSync: d.noSync})
			s := newStore(b, js, jsstore.Config{})
			ctx := testContext(b)
			type complaint struct {
				stream  eventlog.StreamID
				version uint64
			}
			complaints := make([]complaint, writers)
			for i := range complaints {
				complaints[i].stream = eventlog.ComplaintStream(uuid.NewString())
			}
			runWriters(b, func(w int) error {
				c := &complaints[w]
				res, err := s.Append(ctx, c.stream, c.version, response(b, c.stream.ID(), "a typical event"))
				if err != nil {
					return err
				}
				c.version = res.Version
				return nil
			})
		})
	}
}

// BenchmarkAppendBatch2 is Append64Writers with two events per append, one
// publish per event (the default) and as one atomic batch; events/s counts
// events, not appends.
func BenchmarkAppendBatch2(b *testing.B) {
	for _, d := range durabilities {
		for _, atomic := range []bool{false, true} {
			name := d.name + "/OnePublishPerEvent"
			if atomic {
				name = d.name + "/AtomicBatch"
			}
			b.Run(name, func(b *testing.B) {
				_, js := startServer(b, natsembed.Options{NoSync: d.noSync})
				s := newStore(b, js, jsstore.Config{AtomicBatches: atomic})
				ctx := testContext(b)
				type complaint struct {
					stream  eventlog.StreamID
					version uint64
				}
				complaints := make([]complaint, writers)
				for i := range complaints {
					complaints[i].stream = eventlog.ComplaintStream(uuid.NewString())
				}
				runWriters(b, func(w int) error {
					c := &complaints[w]
					id := c.stream.ID()
					res, err := s.Append(ctx, c.stream, c.version, response(b, id, "a typical event"), response(b, id, "and its follow-up"))
					if err != nil {
						return err
					}
					c.version = res.Version
					return nil
				})
				b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// conns are the two ways a store reaches the server: the embedded server's
// in-process pipe (make run, tests) and TCP on loopback (the services in
// production connect to NATS_URL). The replay benchmarks run on both.
var conns = []struct {
	name      string
	inProcess bool
}{{"InProcess", true}, {"TCP", false}}

// forConns runs bench on a store of the replay log over each connection.
func forConns(b *testing.B, bench func(b *testing.B, s *jsstore.Store)) {
	for _, c := range conns {
		b.Run(c.name, func(b *testing.B) { bench(b, replayStore(b, c.inProcess)) })
	}
}

func BenchmarkReplayOneStream(b *testing.B) {
	forConns(b, func(b *testing.B, s *jsstore.Store) {
		ctx := testContext(b)
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			recs, err := s.ReadStream(ctx, replay.long, 1)
			if err != nil {
				b.Fatal(err)
			}
			if len(recs) != longStreamEvents {
				b.Fatalf("read %d events, want %d", len(recs), longStreamEvents)
			}
		}
		reportEvents(b, cpu, b.N*longStreamEvents)
	})
}

// BenchmarkLoadComplaint is a handler loading one complaint's ten events.
func BenchmarkLoadComplaint(b *testing.B) {
	s := replayStore(b, true)
	ctx := testContext(b)
	b.ResetTimer()
	for i := range b.N {
		recs, err := s.ReadStream(ctx, replay.short[i%len(replay.short)], 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) != shortStreamEvents {
			b.Fatalf("read %d events, want %d", len(recs), shortStreamEvents)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "loads/s")
}

func BenchmarkReplayAll(b *testing.B) {
	forConns(b, func(b *testing.B, s *jsstore.Store) {
		ctx := testContext(b)
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			n, from := 0, uint64(1)
			for {
				recs, err := s.ReadAll(ctx, from, 10_000)
				if err != nil {
					b.Fatal(err)
				}
				if len(recs) == 0 {
					break
				}
				n += len(recs)
				from = recs[len(recs)-1].Position + 1
			}
			if n != replayEvents {
				b.Fatalf("replayed %d events, want %d", n, replayEvents)
			}
		}
		reportEvents(b, cpu, b.N*replayEvents)
	})
}

// BenchmarkReplayAllFollow replays the same log through Follow.
func BenchmarkReplayAllFollow(b *testing.B) {
	errDone := errors.New("replayed")
	forConns(b, func(b *testing.B, s *jsstore.Store) {
		b.ResetTimer()
		cpu := cpuTime()
		for range b.N {
			n := 0
			err := s.Follow(testContext(b), 1, func(eventlog.Record) error {
				if n++; n == replayEvents {
					return errDone
				}
				return nil
			})
			if !errors.Is(err, errDone) {
				b.Fatal(err)
			}
		}
		reportEvents(b, cpu, b.N*replayEvents)
	})
}

// reportEvents reports the rate of events read since the timer started, and
// the process's CPU time per event (client and embedded server together)
// since cpu: on a shared machine, the steadier figure of the two.
func reportEvents(b *testing.B, cpu time.Duration, events int) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(events), "cpu-µs/event")
}

const (
	longStreamEvents  = 20_000
	shortStreams      = 10_000
	shortStreamEvents = 10
	replayEvents      = longStreamEvents + shortStreams*shortStreamEvents
)

var replay struct {
	once  sync.Once
	err   error
	srv   *natsembed.Server
	dir   string
	store map[bool]*jsstore.Store // by inProcess
	long  eventlog.StreamID
	short []eventlog.StreamID
}

// replayStore returns a store, connected in process or by TCP, on a log of
// one 20,000-event stream (replay.long) and 10,000 ten-event complaints
// (replay.short): 120,000 events, built once per test binary run. It is
// filled on a NoSync server for speed, then served by a SyncAlways server on
// the same directory, like every other benchmark.
func replayStore(b *testing.B, inProcess bool) *jsstore.Store {
	replay.once.Do(func() { replay.err = fillReplayLog() })
	if replay.err != nil {
		b.Fatal(replay.err)
	}
	return replay.store[inProcess]
}

func fillReplayLog() error {
	dir, err := os.MkdirTemp("", "jsstore-bench-*")
	if err != nil {
		return err
	}
	replay.dir = dir
	fill, err := natsembed.Start(natsembed.Options{StoreDir: dir, NoSync: true})
	if err != nil {
		return err
	}
	s, err := storeOn(fill, true)
	if err != nil {
		fill.Shutdown()
		return err
	}
	replay.long = eventlog.ComplaintStream(uuid.NewString())
	for i := range shortStreams {
		replay.short = append(replay.short, eventlog.ComplaintStream(fmt.Sprintf("bench-%05d", i)))
	}
	err = fillStreams(s, replay.long, replay.short)
	fill.Shutdown()
	if err != nil {
		return err
	}
	if replay.srv, err = natsembed.Start(natsembed.Options{StoreDir: dir}); err != nil {
		return err
	}
	replay.store = map[bool]*jsstore.Store{}
	for _, c := range conns {
		if replay.store[c.inProcess], err = storeOn(replay.srv, c.inProcess); err != nil {
			return err
		}
	}
	return nil
}

func storeOn(srv *natsembed.Server, inProcess bool) (*jsstore.Store, error) {
	nc, err := srv.Connect("bench", inProcess)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return jsstore.New(bg(), js, jsstore.Config{})
}

// fillStreams appends in batches of up to 100 events, from 64 writers.
func fillStreams(s *jsstore.Store, long eventlog.StreamID, short []eventlog.StreamID) error {
	batch := func(stream eventlog.StreamID, n int) []*eventsv1.Envelope {
		out := make([]*eventsv1.Envelope, n)
		for i := range out {
			e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: stream.ID(), Producer: "bench", Actor: "system"}, &eventsv1.ResponseRecorded{Summary: "a typical event", RespondedBy: "agent-7"})
			if err != nil {
				panic(err)
			}
			out[i] = e
		}
		return out
	}
	for v := 0; v < longStreamEvents; v += 100 {
		if _, err := s.Append(bg(), long, uint64(v), batch(long, 100)...); err != nil {
			return err
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < len(short); i += writers {
				if _, err := s.Append(bg(), short[i], 0, batch(short[i], shortStreamEvents)...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func bg() context.Context { return context.Background() }

// closeReplayLog stops the replay server and removes its files; TestMain
// calls it after the run.
func closeReplayLog() {
	if replay.srv != nil {
		replay.srv.Shutdown()
	}
	if replay.dir != "" {
		_ = os.RemoveAll(replay.dir)
	}
}

// BenchmarkReplayAllRawConsumer is the ceiling of the slow way's consumer: the
// whole log through one acknowledgement-free pull consumer, counting the
// messages nats.go hands over without decoding them or building records.
func BenchmarkReplayAllRawConsumer(b *testing.B) {
	for _, c := range conns {
		b.Run(c.name, func(b *testing.B) {
			replayStore(b, c.inProcess)
			nc, err := replay.srv.Connect("bench-raw", c.inProcess)
			must(b, err)
			b.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			must(b, err)
			stream, err := js.Stream(testContext(b), jsstore.StreamName)
			must(b, err)
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				if n := rawConsume(b, nc, stream); n != replayEvents {
					b.Fatalf("consumed %d events, want %d", n, replayEvents)
				}
			}
			reportEvents(b, cpu, b.N*replayEvents)
		})
	}
}

// rawConsume counts the stream's messages through a new pull consumer.
func rawConsume(b *testing.B, nc *nats.Conn, stream jetstream.Stream) int {
	ctx := testContext(b)
	cons, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true})
	must(b, err)
	name := cons.CachedInfo().Name
	defer func() { must(b, stream.DeleteConsumer(ctx, name)) }()
	const batch = 4096
	msgs := make(chan *nats.Msg, batch+1)
	inbox := nc.NewInbox()
	sub, err := nc.ChanSubscribe(inbox, msgs)
	must(b, err)
	defer func() { must(b, sub.Unsubscribe()) }()
	n := 0
	for {
		must(b, nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+jsstore.StreamName+"."+name, inbox, fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, batch)))
		for range batch {
			if m := <-msgs; len(m.Data) == 0 {
				return n // 404: no more messages
			}
			n++
		}
	}
}
