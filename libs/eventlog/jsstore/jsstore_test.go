package jsstore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/conformance"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/telemetry"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) eventlog.Store {
		_, js := startServer(t, natsembed.Options{})
		return newStore(t, js, jsstore.Config{})
	})
}

func TestConformanceWithAtomicBatches(t *testing.T) {
	conformance.Run(t, func(t *testing.T) eventlog.Store {
		_, js := startServer(t, natsembed.Options{})
		return newStore(t, js, jsstore.Config{AtomicBatches: true})
	}, conformance.AtomicBatches())
}

func TestNewCreatesTheEventsStreamAppendOnly(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	newStore(t, js, jsstore.Config{})
	newStore(t, js, jsstore.Config{}) // idempotent

	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	cfg := st.CachedInfo().Config
	if !cfg.DenyDelete || !cfg.DenyPurge || !cfg.AllowDirect || !cfg.AllowAtomicPublish || cfg.Storage != jetstream.FileStorage {
		t.Errorf("deny delete %v, deny purge %v, allow direct %v, allow atomic %v, storage %s; want true, true, true, true, file", cfg.DenyDelete, cfg.DenyPurge, cfg.AllowDirect, cfg.AllowAtomicPublish, cfg.Storage)
	}
	if cfg.MaxAge != jsstore.DefaultMaxAge || cfg.Duplicates != 10*time.Minute || cfg.Replicas != 1 {
		t.Errorf("max age %s, duplicate window %s, replicas %d; want 3 years, 10m, 1", cfg.MaxAge, cfg.Duplicates, cfg.Replicas)
	}
	if len(cfg.Subjects) != 1 || cfg.Subjects[0] != "events.*.*" {
		t.Errorf("subjects %v, want [events.*.*]", cfg.Subjects)
	}
	if cfg.Metadata[jsstore.LayoutMetadataKey] != jsstore.LayoutV2 {
		t.Errorf("metadata %v, want %s=%s", cfg.Metadata, jsstore.LayoutMetadataKey, jsstore.LayoutV2)
	}

	// The log cannot be rewritten through the API.
	s := newStore(t, js, jsstore.Config{})
	stream, _ := newComplaint()
	recs := appendN(t, s, stream, 1)
	if err := st.DeleteMsg(ctx, recs[0].Position); err == nil {
		t.Error("deleting an event succeeded, want it denied")
	}
	if err := st.Purge(ctx); err == nil {
		t.Error("purging the log succeeded, want it denied")
	}
}

func TestNewRefusesRetentionUnderTwoYears(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	_, err := jsstore.New(testContext(t), js, jsstore.Config{MaxAge: 365 * 24 * time.Hour})
	if err == nil || !strings.Contains(err.Error(), "MaxAge") {
		t.Fatalf("got %v, want an error naming MaxAge", err)
	}
	s := newStore(t, js, jsstore.Config{MaxAge: jsstore.KeepForever})
	_ = s
	st, err := js.Stream(testContext(t), jsstore.StreamName)
	must(t, err)
	if st.CachedInfo().Config.MaxAge != 0 {
		t.Fatalf("KeepForever stored max age %s, want 0 (no limit)", st.CachedInfo().Config.MaxAge)
	}
}

func TestNewUpdatesWhatItCanOfAnExistingStream(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
		Duplicates: time.Minute, Metadata: map[string]string{"owner": "ops"},
	})
	must(t, err)
	newStore(t, js, jsstore.Config{DuplicateWindow: 30 * time.Minute})
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	cfg := st.CachedInfo().Config
	if cfg.Duplicates != 30*time.Minute || !cfg.DenyDelete || !cfg.DenyPurge || !cfg.AllowDirect || !cfg.AllowAtomicPublish {
		t.Fatalf("stream not brought to the log's config: %+v", cfg)
	}
	if cfg.Metadata["owner"] != "ops" {
		t.Errorf("metadata the store does not manage was dropped: %v", cfg.Metadata)
	}
	if cfg.Metadata[jsstore.LayoutMetadataKey] != jsstore.LayoutV2 || !slices.Equal(cfg.Subjects, []string{"events.*.*"}) {
		t.Errorf("an empty stream was not taken over with the new layout: subjects %v, metadata %v", cfg.Subjects, cfg.Metadata)
	}
}

// Given a log written with the old layout (one subject per event type),
// when a store opens it, then it refuses and names the migration, rather
// than splitting every entity's stream over two layouts.
func TestNewRefusesALogOfTheOldLayout(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage})
	must(t, err)
	_, err = js.Publish(ctx, "events.complaint.x.ComplaintReceived", []byte("old"))
	must(t, err)
	_, err = jsstore.New(ctx, js, jsstore.Config{})
	if !errors.Is(err, jsstore.ErrOldSubjectLayout) || !strings.Contains(err.Error(), "migrate-subjects") {
		t.Fatalf("got %v, want ErrOldSubjectLayout naming migrate-subjects", err)
	}
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	if got := st.CachedInfo().Config.Subjects; !slices.Equal(got, []string{"events.>"}) {
		t.Errorf("the refused stream was changed: subjects %v", got)
	}
}

// A writer still on the old layout gets no stream: the log only captures
// events.<kind>.<id>.
func TestOldLayoutSubjectIsNotStored(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	newStore(t, js, jsstore.Config{})
	if _, err := js.Publish(ctx, "events.complaint.x.ComplaintReceived", []byte("old")); !errors.Is(err, jetstream.ErrNoStreamResponse) {
		t.Fatalf("publish on the old layout: %v, want no stream response", err)
	}
}

func TestNewFailsClearlyOnAStreamItCannotFix(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.MemoryStorage})
	must(t, err)
	_, err = jsstore.New(ctx, js, jsstore.Config{})
	if err == nil || !strings.Contains(err.Error(), "storage is Memory") {
		t.Fatalf("got %v, want an error naming the storage", err)
	}
}

func TestSubjects(t *testing.T) {
	stream := eventlog.ComplaintStream("0190-ab")
	for got, want := range map[string]string{
		jsstore.Subject(stream):           "events.complaint.0190-ab",
		jsstore.KindSubjects("complaint"): "events.complaint.>",
	} {
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// The mapping version -> sequence rests on asking the server for the last
// message of a stream's subject; this pins that it works (through the
// direct get API, as AllowDirect is on) on the server version we ship.
func TestServerFindsLastMessageOfAStreamSubject(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	newStore(t, js, jsstore.Config{})
	for _, subj := range []string{"events.complaint.x", "events.complaint.x", "events.complaint.y", "events.complaint.x"} {
		_, err := js.Publish(ctx, subj, []byte(subj))
		must(t, err)
	}
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	m, err := st.GetLastMsgForSubject(ctx, "events.complaint.x")
	must(t, err)
	if m.Sequence != 4 || m.Subject != "events.complaint.x" {
		t.Fatalf("last of events.complaint.x = seq %d %s, want 4", m.Sequence, m.Subject)
	}
	if _, err := st.GetLastMsgForSubject(ctx, "events.complaint.none"); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("last of an unknown stream: %v, want ErrMsgNotFound", err)
	}
}

// A retry whose expected sequence went stale because its own first attempt
// was stored: on a single node the server checks the expectation before the
// message id, so it answers "wrong last sequence", not "duplicate". The store
// must (and the conformance suite checks it does) turn that into duplicates.
func TestServerAnswersStaleDuplicateWithWrongSequence(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	newStore(t, js, jsstore.Config{})
	opts := []jetstream.PublishOpt{jetstream.WithMsgID("event-1"), jetstream.WithExpectLastSequencePerSubject(0)}
	ack, err := js.Publish(ctx, "events.complaint.x", []byte("1"), opts...)
	must(t, err)
	if ack.Duplicate {
		t.Fatal("first publish reported as duplicate")
	}
	_, err = js.Publish(ctx, "events.complaint.x", []byte("1"), opts...)
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("stale duplicate: %v, want wrong last sequence (10071)", err)
	}
	// With the expectation met, the id is caught as a duplicate.
	ack, err = js.Publish(ctx, "events.complaint.x", []byte("1"), jetstream.WithMsgID("event-1"), jetstream.WithExpectLastSequencePerSubject(1))
	must(t, err)
	if !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("ack %+v, want a duplicate of sequence 1", ack)
	}
}

// What the store's retry handling rests on: an atomic batch holding a stored
// message id is refused whole with "contains duplicate message id" (10201),
// even when its expected sequence is stale too (the ids are checked first),
// and nothing of it is stored.
func TestServerRefusesABatchHoldingAStoredIDWhole(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	newStore(t, js, jsstore.Config{})
	ack, err := js.Publish(ctx, "events.complaint.x", []byte("1"), jetstream.WithMsgID("event-1"))
	must(t, err)

	batch := func(id string, expect uint64, msgIDs ...string) error {
		for i, msgID := range msgIDs {
			m := nats.NewMsg("events.complaint.x")
			m.Header.Set(jetstream.MsgIDHeader, msgID)
			m.Header.Set("Nats-Batch-Id", id)
			m.Header.Set("Nats-Batch-Sequence", fmt.Sprint(i+1))
			if i == 0 {
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(expect))
			}
			if i < len(msgIDs)-1 {
				must(t, js.Conn().PublishMsg(m))
				continue
			}
			m.Header.Set("Nats-Batch-Commit", "1")
			_, err := js.PublishMsg(ctx, m)
			return err
		}
		return nil
	}
	var apiErr *jetstream.APIError
	for _, tc := range []struct {
		name   string
		expect uint64
		ids    []string
		code   jetstream.ErrorCode
	}{
		{"stored id first, stale expectation", 0, []string{"event-1", "event-2"}, 10201},
		{"stored id last, expectation met", ack.Sequence, []string{"event-2", "event-1"}, 10201},
		{"new ids, stale expectation", 0, []string{"event-2", "event-3"}, jetstream.JSErrCodeStreamWrongLastSequence},
	} {
		err := batch(tc.name, tc.expect, tc.ids...)
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != tc.code {
			t.Errorf("%s: %v, want error code %d", tc.name, err, tc.code)
		}
	}
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	info, err := st.Info(ctx)
	must(t, err)
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages after refused batches, want 1", info.State.Msgs)
	}
}

// Many writers appending batches at once exceed what the server stages at a
// time (50 batches per stream); the store sends a refused batch again, so
// every append lands.
func TestManyConcurrentBatchesAllLand(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	s := newStore(t, js, jsstore.Config{})
	ctx := testContext(t)
	const writers, rounds = 100, 5
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			stream, id := newComplaint()
			for v := uint64(0); v < 2*rounds; v += 2 {
				if _, err := s.Append(ctx, stream, v, response(t, id, "a"), response(t, id, "b")); err != nil {
					t.Errorf("append at version %d: %v", v, err)
					return
				}
			}
		})
	}
	wg.Wait()
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	info, err := st.Info(ctx)
	must(t, err)
	if info.State.Msgs != writers*rounds*2 {
		t.Fatalf("stream holds %d events, want %d", info.State.Msgs, writers*rounds*2)
	}
}

func TestStoresWithColdOrStaleCachesStayCorrect(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	a := newStore(t, js, jsstore.Config{})
	b := newStore(t, js, jsstore.Config{})
	stream, id := newComplaint()
	appendN(t, a, stream, 2)

	// b never saw the stream: it learns the tail from the server.
	res, err := b.Append(ctx, stream, 2, response(t, id, "by b"))
	must(t, err)
	if res.Version != 3 {
		t.Fatalf("b appended at version %d, want 3", res.Version)
	}
	// a's cache says version 2: its writer read version 3 elsewhere.
	res, err = a.Append(ctx, stream, 3, response(t, id, "by a"))
	must(t, err)
	if res.Version != 4 {
		t.Fatalf("a appended at version %d, want 4", res.Version)
	}
	// b's cache says 3, and so does a stale writer: the server refuses.
	_, err = b.Append(ctx, stream, 3, response(t, id, "stale"))
	if !errors.Is(err, eventlog.ErrConflict) || !strings.Contains(err.Error(), "expecting version 3") {
		t.Fatalf("stale append through a stale cache: %v, want a conflict naming version 3", err)
	}
	broken, n, err := eventlog.VerifyStream(ctx, a, stream)
	must(t, err)
	if broken != nil || n != 4 {
		t.Fatalf("chain %v over %d events, want intact over 4", broken, n)
	}
}

func TestAppendStampsTheStoreClockAndTraceHeaders(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	at := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	s := newStore(t, js, jsstore.Config{Clock: clock.NewFake(at)})
	traceID, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	spanID, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(testContext(t), trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: trace.FlagsSampled}))

	stream, id := newComplaint()
	res, err := s.Append(ctx, stream, 0, response(t, id, "traced"))
	must(t, err)
	st, err := js.Stream(ctx, jsstore.StreamName)
	must(t, err)
	raw, err := st.GetMsg(ctx, res.Position)
	must(t, err)
	if got := raw.Header.Get("traceparent"); got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("traceparent header %q", got)
	}
	if span := trace.SpanContextFromContext(telemetry.ExtractNATS(ctx, raw.Header)); span.TraceID() != traceID {
		t.Errorf("trace extracted from the headers = %s, want %s", span.TraceID(), traceID)
	}
	if raw.Header.Get(jetstream.MsgIDHeader) == "" {
		t.Error("no Nats-Msg-Id header")
	}
	if raw.Subject != jsstore.Subject(stream) {
		t.Errorf("stored on %s", raw.Subject)
	}
	if got := raw.Header.Get(jsstore.EventTypeHeader); got != "ResponseRecorded" {
		t.Errorf("%s header %q, want ResponseRecorded", jsstore.EventTypeHeader, got)
	}
	if got := raw.Header.Get(jetstream.ExpectedLastSubjSeqSubjHeader); got != "" {
		t.Errorf("%s header %q: appends expect on the literal subject, without it", jetstream.ExpectedLastSubjSeqSubjHeader, got)
	}
	rec, err := jsstore.DecodeRawMsg(raw)
	must(t, err)
	if got := rec.Event.GetRecordedAt().AsTime(); !got.Equal(at) {
		t.Errorf("recorded_at %s, want the store clock's %s", got, at)
	}
}

func TestDecodeMsgOfAConsumedEvent(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	s := newStore(t, js, jsstore.Config{})
	stream, _ := newComplaint()
	recs := appendN(t, s, stream, 2)

	cons, err := js.OrderedConsumer(ctx, jsstore.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{jsstore.KindSubjects("complaint")}})
	must(t, err)
	batch, err := cons.Fetch(2)
	must(t, err)
	i := 0
	for m := range batch.Messages() {
		rec, err := jsstore.DecodeMsg(m)
		must(t, err)
		if rec.Position != recs[i].Position || !proto.Equal(rec.Event, recs[i].Event) || string(rec.Raw) != string(recs[i].Raw) {
			t.Errorf("consumed %d: %v at %d, want %v at %d", i, rec.Event, rec.Position, recs[i].Event, recs[i].Position)
		}
		i++
	}
	if i != 2 {
		t.Fatalf("consumed %d events, want 2", i)
	}
}
