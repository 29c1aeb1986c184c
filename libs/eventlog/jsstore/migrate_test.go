package jsstore_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
)

// Given a log written with the old layout (a subject per event type, appends
// expecting the stream's wildcard), when it is migrated, then every event
// keeps its position and bytes, chains verify, the store opens it and
// appends continue where each stream ended.
func TestMigrateSubjectsKeepsPositionsAndChains(t *testing.T) {
	ctx := testContext(t)

	// Events as the store makes them, interleaved across two complaints.
	_, scratchJS := startServer(t, natsembed.Options{NoSync: true})
	scratch := newStore(t, scratchJS, jsstore.Config{})
	a, _ := newComplaint()
	b, _ := newComplaint()
	appendN(t, scratch, a, 3)
	appendN(t, scratch, b, 2)
	_, err := scratch.Append(ctx, a, 3, response(t, a.ID(), "four"), response(t, a.ID(), "five"))
	must(t, err)
	written, err := scratch.ReadAll(ctx, 1, 1000)
	must(t, err)

	// The same events in the old layout, at the same positions.
	_, js := startServer(t, natsembed.Options{NoSync: true})
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage,
		DenyDelete: true, DenyPurge: true, AllowDirect: true,
	})
	must(t, err)
	last := map[eventlog.StreamID]uint64{}
	for _, r := range written {
		stream := eventlog.StreamID(r.Event.GetStreamId())
		prefix := "events." + stream.Kind() + "." + stream.ID()
		m := nats.NewMsg(prefix + "." + r.Event.GetType())
		m.Data = r.Raw
		ack, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(r.Event.GetEventId()),
			jetstream.WithExpectLastSequenceForSubject(last[stream], prefix+".*"))
		must(t, err)
		if ack.Sequence != r.Position {
			t.Fatalf("old log: event at %d, want %d", ack.Sequence, r.Position)
		}
		last[stream] = ack.Sequence
	}
	if _, err := jsstore.New(ctx, js, jsstore.Config{}); !errors.Is(err, jsstore.ErrOldSubjectLayout) {
		t.Fatalf("opening the old log: %v, want ErrOldSubjectLayout", err)
	}

	must(t, jsstore.MigrateSubjects(ctx, js, jsstore.Config{}, func(s string) { t.Log(s) }))

	s := newStore(t, js, jsstore.Config{})
	all, err := s.ReadAll(ctx, 1, 1000)
	must(t, err)
	if len(all) != len(written) {
		t.Fatalf("migrated log holds %d events, want %d", len(all), len(written))
	}
	for i, r := range all {
		if r.Position != written[i].Position || string(r.Raw) != string(written[i].Raw) {
			t.Errorf("event %d: at %d, want %d with the same bytes", i, r.Position, written[i].Position)
		}
	}
	for _, stream := range []eventlog.StreamID{a, b} {
		broken, n, err := eventlog.VerifyStream(ctx, s, stream)
		must(t, err)
		if broken != nil || n == 0 {
			t.Errorf("%s: %d events, broken link %+v", stream, n, broken)
		}
	}
	raw, err := mustStream(t, js).GetMsg(ctx, written[0].Position)
	must(t, err)
	if raw.Subject != jsstore.Subject(a) {
		t.Errorf("migrated event on %s, want %s", raw.Subject, jsstore.Subject(a))
	}

	// Appends continue each stream's chain, on the new subject.
	res, err := s.Append(ctx, a, 5, response(t, a.ID(), "six"))
	must(t, err)
	if res.Position != written[len(written)-1].Position+1 || res.Version != 6 {
		t.Errorf("append after migration: %+v", res)
	}
	if _, err := s.Append(ctx, b, 1, response(t, b.ID(), "stale")); !errors.Is(err, eventlog.ErrConflict) {
		t.Errorf("stale append after migration: %v, want a conflict", err)
	}
	broken, n, err := eventlog.VerifyStream(ctx, s, a)
	must(t, err)
	if broken != nil || n != 6 {
		t.Errorf("%s after an append: %d events, broken link %+v", a, n, broken)
	}

	cfg := mustStream(t, js).CachedInfo().Config
	if cfg.Mirror != nil || !slices.Equal(cfg.Subjects, []string{"events.*.*"}) || cfg.Metadata[jsstore.LayoutMetadataKey] != jsstore.LayoutV2 ||
		!cfg.DenyDelete || !cfg.DenyPurge || !cfg.AllowDirect {
		t.Errorf("migrated stream config: %+v", cfg)
	}
	names := js.StreamNames(ctx)
	var streams []string
	for n := range names.Name() {
		streams = append(streams, n)
	}
	if !slices.Equal(streams, []string{jsstore.StreamName}) {
		t.Errorf("streams after migration: %v, want only %s", streams, jsstore.StreamName)
	}
	// A second run finds nothing to do.
	must(t, jsstore.MigrateSubjects(ctx, js, jsstore.Config{}, nil))
}

func mustStream(t *testing.T, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	st, err := js.Stream(testContext(t), jsstore.StreamName)
	must(t, err)
	return st
}
