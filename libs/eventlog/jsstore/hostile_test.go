package jsstore_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// observed is a store whose skip log and counters the test reads.
type observed struct {
	*jsstore.Store
	reader *sdkmetric.ManualReader
	logs   *lockedBuf
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newObserved(t *testing.T, js jetstream.JetStream) *observed {
	t.Helper()
	o := &observed{reader: sdkmetric.NewManualReader(), logs: &lockedBuf{}}
	o.Store = newStore(t, js, jsstore.Config{
		Logger:        slog.New(slog.NewTextHandler(o.logs, nil)),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader)),
	})
	return o
}

// counter sums a counter's points whose "kind" attribute is kind.
func (o *observed) counter(t *testing.T, name, kind string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	must(t, o.reader.Collect(context.Background(), &rm))
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == name {
				for _, dp := range s.DataPoints {
					if v, _ := dp.Attributes.Value("kind"); v.AsString() == kind {
						n += dp.Value
					}
				}
			}
		}
	}
	return n
}

func publishRaw(t *testing.T, js jetstream.JetStream, subject string, data []byte, msgID string) *jetstream.PubAck {
	t.Helper()
	msg := nats.NewMsg(subject)
	msg.Data = data
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := js.PublishMsg(testContext(t), msg, opts...)
	must(t, err)
	return ack
}

func versions(recs []eventlog.Record) []uint64 {
	out := make([]uint64, len(recs))
	for i, r := range recs {
		out[i] = r.Event.GetVersion()
	}
	return out
}

// Messages that are not events, published on a complaint's subjects past
// the store, must not stop any reader: ReadStream, ReadAll (direct get and
// consumer paths) and Follow go on past them, count each once and log its
// position and subject, never its bytes; writers still append after them.
func TestReadersSkipMessagesThatAreNotEvents(t *testing.T) {
	jsstore.SetReadBatches(t, 2, 2, 2, 3)
	_, js := startServer(t, natsembed.Options{NoSync: true})
	s := newObserved(t, js)
	ctx := testContext(t)
	stream, id := newComplaint()
	appendN(t, s, stream, 2)

	noID := response(t, id, "no id")
	noID.EventId = ""
	noIDRaw, err := proto.Marshal(noID)
	must(t, err)
	noPayload, err := proto.Marshal(&eventsv1.Envelope{EventId: uuid.NewString(), ComplaintId: id, Version: 3})
	must(t, err)
	big := response(t, id, strings.Repeat("x", eventlog.MaxEventSize)) // stored: the stream allows 16 KiB of headers
	big.StreamId, big.Version = string(stream), 3
	bigRaw, err := proto.Marshal(big)
	must(t, err)
	subject := jsstore.Subject(stream)
	secret := []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 's', 'e', 'c', 'r', 'e', 't'}
	var junk []uint64
	for _, data := range [][]byte{secret, noIDRaw, noPayload, bigRaw} {
		junk = append(junk, publishRaw(t, js, subject, data, "").Sequence)
	}

	// The writer's tail is past the junk: appends expecting 2 and 3 land.
	for v := range uint64(2) {
		_, err := s.Append(ctx, stream, 2+v, response(t, id, "after"))
		must(t, err)
	}
	cold := newStore(t, js, jsstore.Config{Logger: slog.New(slog.NewTextHandler(&lockedBuf{}, nil))})
	_, err = cold.Append(ctx, stream, 4, response(t, id, "cold cache"))
	must(t, err)

	recs, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	if got := versions(recs); len(got) != 5 || got[4] != 5 {
		t.Fatalf("ReadStream versions %v, want 1 to 5", got)
	}
	if broken := eventlog.VerifyChain(stream, recs); broken != nil {
		t.Fatalf("chain around skipped messages: %v", broken)
	}
	// A tail read from version 2's position starts among the junk.
	tail, err := s.ReadStreamAfter(ctx, stream, 3, recs[1].Position)
	must(t, err)
	if got := versions(tail); len(got) != 3 || got[0] != 3 || tail[0].Position != recs[2].Position {
		t.Fatalf("ReadStreamAfter from 3 after version 2: versions %v, want 3 to 5", got)
	}
	all, err := s.ReadAll(ctx, 1, 100)
	must(t, err)
	if len(all) != 5 {
		t.Fatalf("ReadAll read %d events, want 5", len(all))
	}
	for _, r := range all {
		for _, j := range junk {
			if r.Position == j {
				t.Fatalf("ReadAll returned the message at %d", j)
			}
		}
	}
	// Only junk from here: ReadAll must not answer "caught up" early.
	page, err := s.ReadAll(ctx, junk[0], 1)
	must(t, err)
	if len(page) != 1 || page[0].Event.GetVersion() != 3 {
		t.Fatalf("ReadAll from the first skipped message: %v, want the event at version 3", versions(page))
	}

	fctx, cancel := context.WithCancel(ctx)
	got := make(chan eventlog.Record, 16)
	done := make(chan error, 1)
	go func() { done <- s.Follow(fctx, 1, func(r eventlog.Record) error { got <- r; return nil }) }()
	for i := range 5 {
		if r := <-got; r.Event.GetVersion() != uint64(i+1) {
			t.Fatalf("Follow: event %d has version %d", i, r.Event.GetVersion())
		}
	}
	publishRaw(t, js, subject, secret, "") // live, through the ordered consumer
	res, err := s.Append(ctx, stream, 5, response(t, id, "live"))
	must(t, err)
	if r := <-got; r.Position != res.Position {
		t.Fatalf("Follow: live event at %d, want %d", r.Position, res.Position)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Follow ended with %v, want context.Canceled", err)
	}

	if n := s.counter(t, "closeloop.eventlog.undecodable", eventlog.KindComplaint); n != 5 {
		t.Errorf("closeloop.eventlog.undecodable{kind=complaint} = %d, want 5 (each skipped message once)", n)
	}
	logs := s.logs.String()
	for _, want := range []string{"position=" + itoa(junk[0]), subject, "does not decode", "event_id missing", "payload missing", "more than the"} {
		if !strings.Contains(logs, want) {
			t.Errorf("skip log lacks %q:\n%s", want, logs)
		}
	}
	if n := strings.Count(logs, "position="+itoa(junk[0])+" "); n != 1 {
		t.Errorf("message at %d logged %d times, want once", junk[0], n)
	}
	if strings.Contains(logs, "secret") || strings.Contains(logs, "xxxx") {
		t.Errorf("skip log shows message bytes:\n%s", logs)
	}
	rep, err := eventlog.VerifyLog(ctx, s, 0)
	must(t, err)
	if len(rep.Broken) != 0 || rep.Events != 6 {
		t.Fatalf("VerifyLog = %+v, want 6 events and no broken link (junk is no event)", rep)
	}
}

// An old event published again under a fresh message id (past the
// duplicate window) is stored at the end of its stream. Writers must still
// append at the real version, stream reads must not return it, and
// verification must report it.
func TestAnOldEventStoredAgainDoesNotBlockWriters(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	s := newObserved(t, js)
	ctx := testContext(t)
	stream, id := newComplaint()
	stored := appendN(t, s, stream, 8)
	replay := publishRaw(t, js, jsstore.Subject(stream), stored[1].Raw, uuid.NewString())

	// This store's cached tail is stale (wrong sequence), a new one has none.
	res, err := s.Append(ctx, stream, 8, response(t, id, "ninth"))
	must(t, err)
	if res.Version != 9 {
		t.Fatalf("append expecting 8 gave version %d, want 9", res.Version)
	}
	cold := newStore(t, js, jsstore.Config{Logger: slog.New(slog.NewTextHandler(&lockedBuf{}, nil))})
	if _, err := cold.Append(ctx, stream, 9, response(t, id, "tenth")); err != nil {
		t.Fatalf("cold store appending expecting 9: %v", err)
	}
	if _, err := cold.Append(ctx, stream, 2, response(t, id, "stale")); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("append expecting the replayed version 2: %v, want a conflict", err)
	}

	recs, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	if got := versions(recs); len(got) != 10 || got[9] != 10 {
		t.Fatalf("ReadStream versions %v, want 1 to 10 without the replay", got)
	}
	if broken := eventlog.VerifyChain(stream, recs); broken != nil {
		t.Fatalf("events after the replay do not chain on version 8: %v", broken)
	}
	if from, err := s.ReadStream(ctx, stream, 9); err != nil || len(from) != 2 || from[0].Event.GetVersion() != 9 {
		t.Fatalf("ReadStream from 9: %v %v, want versions 9 and 10", versions(from), err)
	}
	// A tail read from version 8's position meets the replay too.
	if tail, err := s.ReadStreamAfter(ctx, stream, 9, stored[7].Position); err != nil || len(tail) != 2 || tail[0].Event.GetVersion() != 9 || tail[1].Event.GetVersion() != 10 {
		t.Fatalf("ReadStreamAfter from 9 after version 8: %v %v, want versions 9 and 10", versions(tail), err)
	}
	if n := s.counter(t, "closeloop.eventlog.repeated_version", eventlog.KindComplaint); n != 1 {
		t.Errorf("closeloop.eventlog.repeated_version = %d, want 1", n)
	}
	if !strings.Contains(s.logs.String(), "position="+itoa(replay.Sequence)) {
		t.Errorf("no log line names the replay's position %d:\n%s", replay.Sequence, s.logs)
	}

	broken, n, err := eventlog.VerifyStream(ctx, s, stream)
	must(t, err)
	if n != 11 || broken == nil || broken.Version != 9 || broken.Position != replay.Sequence || !strings.Contains(broken.Reason, "version 2 where 9") {
		t.Fatalf("VerifyStream = %v over %d events, want the replay at %d reported as version 2 where 9 was expected", broken, n, replay.Sequence)
	}
	rep, err := eventlog.VerifyLog(ctx, s, 0)
	must(t, err)
	if len(rep.Broken) != 1 || rep.Broken[0].Position != replay.Sequence {
		t.Fatalf("VerifyLog = %+v, want one broken link at %d", rep, replay.Sequence)
	}
}

// An event altered on disk so that it no longer decodes is skipped by
// readers: its stream misses that version, which verification reports.
func TestVerifyReportsAnEventAlteredIntoGarbage(t *testing.T) {
	dir := t.TempDir()
	srv, err := natsembed.Start(natsembed.Options{StoreDir: dir})
	must(t, err)
	s := newStore(t, connect(t, srv), jsstore.Config{})
	ctx := testContext(t)
	stream, id := newComplaint()
	for v, summary := range []string{"diagnosis: pump", "refund: 100 EUR", "visit booked"} {
		_, err := s.Append(ctx, stream, uint64(v), response(t, id, summary))
		must(t, err)
	}
	before, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	srv.Shutdown()

	// Invalid UTF-8 in a string field: the envelope no longer decodes.
	patchBlocks(t, dir, []byte("refund: 100 EUR"), []byte("refund: \xff\xfe\xfd EUR"), true)

	srv, err = natsembed.Start(natsembed.Options{StoreDir: dir})
	must(t, err)
	t.Cleanup(srv.Shutdown)
	s = newStore(t, connect(t, srv), jsstore.Config{Logger: slog.New(slog.NewTextHandler(&lockedBuf{}, nil))})
	// Reported at the altered event's own position (version 3's
	// prev_position), not as a break at version 3.
	broken, n, err := eventlog.VerifyStream(ctx, s, stream)
	must(t, err)
	if n != 2 || broken == nil || broken.Version != 2 || broken.Position != before[1].Position || !strings.Contains(broken.Reason, "version 2 is missing") {
		t.Fatalf("VerifyStream = %v over %d events, want version 2 missing at its position %d", broken, n, before[1].Position)
	}
	rep, err := eventlog.VerifyLog(ctx, s, 0)
	must(t, err)
	if len(rep.Broken) != 1 || rep.Broken[0].Stream != stream || rep.Broken[0].Version != 2 || rep.Broken[0].Position != before[1].Position {
		t.Fatalf("VerifyLog = %+v, want version 2 of %s missing at %d", rep, stream, before[1].Position)
	}
	// A service reading the stream gets the damage, not a shorter history.
	var link *eventlog.BrokenLink
	if recs, err := s.ReadStream(ctx, stream, 1); !errors.Is(err, eventlog.ErrDamaged) || !errors.As(err, &link) || link.Position != before[1].Position {
		t.Fatalf("ReadStream = %v, %v; want the stream damaged at %d", versions(recs), err, before[1].Position)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
