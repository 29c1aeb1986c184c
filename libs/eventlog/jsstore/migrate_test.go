package jsstore_test

import (
	"errors"
	"slices"
	"testing"
	"time"

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

// Given a migration stopped after the old log was deleted (its copy holds
// the log), when it runs again, then it finishes from the copy.
func TestMigrateSubjectsResumesFromTheCopy(t *testing.T) {
	ctx := testContext(t)
	_, js := startServer(t, natsembed.Options{NoSync: true})
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage})
	must(t, err)
	_, scratchJS := startServer(t, natsembed.Options{NoSync: true})
	a, _ := newComplaint()
	written := appendN(t, newStore(t, scratchJS, jsstore.Config{}), a, 3)
	for _, r := range written {
		_, err := js.Publish(ctx, "events."+a.Kind()+"."+a.ID()+".ResponseRecorded", r.Raw)
		must(t, err)
	}
	// The first steps by hand: the copy, promoted, and the old log deleted.
	copyCfg := jetstream.StreamConfig{Name: "EVENTS_SUBJECTS_V2", Storage: jetstream.FileStorage, Mirror: &jetstream.StreamSource{
		Name: jsstore.StreamName, SubjectTransforms: []jetstream.SubjectTransformConfig{{Source: "events.*.*.*", Destination: "events.{{wildcard(1)}}.{{wildcard(2)}}"}},
	}}
	_, err = js.CreateStream(ctx, copyCfg)
	must(t, err)
	for {
		st, err := js.Stream(ctx, "EVENTS_SUBJECTS_V2")
		must(t, err)
		if st.CachedInfo().State.Msgs == 3 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	copyCfg.Mirror = nil
	_, err = js.UpdateStream(ctx, copyCfg)
	must(t, err)
	must(t, js.DeleteStream(ctx, jsstore.StreamName))

	must(t, jsstore.MigrateSubjects(ctx, js, jsstore.Config{}, func(s string) { t.Log(s) }))
	recs, err := newStore(t, js, jsstore.Config{}).ReadStream(ctx, a, 1)
	must(t, err)
	if len(recs) != 3 || recs[2].Position != written[2].Position || string(recs[2].Raw) != string(written[2].Raw) {
		t.Fatalf("after the resumed migration: %d events, want the 3 written at the same positions", len(recs))
	}
	if _, err := js.Stream(ctx, "EVENTS_SUBJECTS_V2"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("the copy is left: %v", err)
	}
}
