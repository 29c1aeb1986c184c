package jsstore_test

import (
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
)

// lifecycleTypes are ten event types of a complaint's life: with the old
// layout (a subject per event type) each filler complaint holds ten
// subjects, as in production.
var lifecycleTypes = [10]string{
	"ComplaintReceived", "ComplaintAccepted", "ComplaintClassified", "ComplaintAssigned", "SlaClockStarted",
	"ResponseRecorded", "SolutionProposed", "ComplaintResolved", "SurveySent", "ComplaintClosed",
}

// earlyFillComplaints × 10 events follow the loaded complaint: a log of
// 200,010 events.
const earlyFillComplaints = 20_000

// BenchmarkLoadEarlyComplaint loads one complaint's ten events, written at
// the start of a 200,010-event log: what sla-clock's restart and routing's
// handlers do for old complaints. With a wildcard filter over more than 64Ki
// subjects the server walks every block after the complaint's last event.
func BenchmarkLoadEarlyComplaint(b *testing.B) {
	_, js := startServer(b, natsembed.Options{NoSync: true})
	s := newStore(b, js, jsstore.Config{})
	ctx := testContext(b)
	stream, _ := newComplaint()
	appendN(b, s, stream, shortStreamEvents)
	publishComplaints(b, js, earlyFillComplaints)
	b.ResetTimer()
	cpu := cpuTime()
	for range b.N {
		recs, err := s.ReadStream(ctx, stream, 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(recs) != shortStreamEvents {
			b.Fatalf("read %d events, want %d", len(recs), shortStreamEvents)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "loads/s")
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/load")
}

// publishComplaints stores n complaints of ten events each, in this
// build's layout (layoutMsg), with async publishes: the messages are only
// there to fill the log, so they are not chained.
func publishComplaints(b *testing.B, js jetstream.JetStream, n int) {
	b.Helper()
	publishLayout(b, js, n, true, layoutMsg)
}

// publishLayout stores n complaints of ten events, each message made by
// msgFor, with a message id when withIDs.
func publishLayout(t testing.TB, js jetstream.JetStream, n int, withIDs bool, msgFor func(stream eventlog.StreamID, eventType string) *nats.Msg) {
	t.Helper()
	id := uuid.NewString()
	raw, err := proto.Marshal(response(t, id, "a typical response to a customer, about as long as most"))
	must(t, err)
	for i := range n {
		stream := eventlog.ComplaintStream(uuid.NewString())
		for j, typ := range lifecycleTypes {
			m := msgFor(stream, typ)
			m.Data = raw
			if withIDs {
				m.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i)+"-"+strconv.Itoa(j))
			}
			if _, err := js.PublishMsgAsync(m); err != nil {
				t.Fatal(err)
			}
		}
		// Under the client's 4,000 unacknowledged async publishes.
		if i%300 == 299 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				t.Fatal("async publishes not acknowledged within a minute")
			}
		}
	}
	<-js.PublishAsyncComplete()
}

// TestServerHeapPerComplaint measures the embedded server's heap per
// complaint of ten events in the old layout (a subject per event type) and
// in this one. Run it with JSSTORE_HEAP_COMPLAINTS=N (README.md has the
// figures); it is skipped otherwise.
func TestServerHeapPerComplaint(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("JSSTORE_HEAP_COMPLAINTS"))
	if n <= 0 {
		t.Skip("set JSSTORE_HEAP_COMPLAINTS to the number of complaints to write")
	}
	for _, layout := range []struct {
		name string
		msg  func(eventlog.StreamID, string) *nats.Msg
	}{
		{"old: events.<kind>.<id>.<EventType>", func(s eventlog.StreamID, typ string) *nats.Msg {
			return nats.NewMsg("events." + s.Kind() + "." + s.ID() + "." + typ)
		}},
		{"new: events.<kind>.<id>", func(s eventlog.StreamID, typ string) *nats.Msg {
			m := nats.NewMsg(jsstore.Subject(s))
			m.Header.Set(jsstore.EventTypeHeader, typ)
			return m
		}},
	} {
		t.Run(layout.name, func(t *testing.T) {
			_, js := startServer(t, natsembed.Options{NoSync: true})
			_, err := js.CreateStream(testContext(t), jetstream.StreamConfig{
				Name: "HEAP", Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
			})
			must(t, err)
			before := settledHeap()
			start := time.Now()
			// Without message ids: the server keeps those only for the
			// duplicate window (10 minutes), not for the life of the log.
			publishLayout(t, js, n, false, layout.msg)
			took := time.Since(start)
			after := settledHeap()
			t.Logf("%d complaints (%d messages) in %s: heap %d -> %d bytes, %.0f bytes per complaint",
				n, 10*n, took.Round(time.Second), before, after, float64(int64(after)-int64(before))/float64(n))
		})
	}
}

// settledHeap is the heap in use once the server's block caches have
// expired and garbage is collected.
func settledHeap() uint64 {
	time.Sleep(12 * time.Second) // the filestore drops idle block caches after a few seconds
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}
