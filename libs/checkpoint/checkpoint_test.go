package checkpoint_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	in := checkpoint.Snapshot{Format: 3, Position: 42, Hash: eventlog.Hash([]byte("event")), Data: []byte("state")}
	b, err := checkpoint.Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := checkpoint.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if out.Format != 3 || out.Position != 42 || string(out.Hash) != string(in.Hash) || string(out.Data) != "state" {
		t.Fatalf("decoded %+v, want %+v", out, in)
	}
}

func TestDecodeRefusesDamage(t *testing.T) {
	good, err := checkpoint.Encode(checkpoint.Snapshot{Format: 1, Position: 7, Hash: eventlog.Hash(nil), Data: []byte("some state")})
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 0x01; return b }
	cases := map[string][]byte{
		"empty":           nil,
		"truncated":       good[:len(good)-3],
		"header only cut": good[:10],
		"bad magic":       flip(0),
		"layout version":  flip(7),
		"data byte":       flip(len(good) - 1),
		"checksum byte":   flip(60),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := checkpoint.Decode(b); !errors.Is(err, checkpoint.ErrDamaged) {
				t.Fatalf("Decode = %v, want ErrDamaged", err)
			}
		})
	}
}

func TestEncodeRefusesASnapshotOfNothing(t *testing.T) {
	if _, err := checkpoint.Encode(checkpoint.Snapshot{Position: 0, Hash: eventlog.Hash(nil)}); err == nil {
		t.Fatal("Encode accepted position 0")
	}
	if _, err := checkpoint.Encode(checkpoint.Snapshot{Position: 1, Hash: []byte("short")}); err == nil {
		t.Fatal("Encode accepted a hash that is not a SHA-256")
	}
}

// counts is a view: how many events each stream has, and the last position.
type counts struct {
	mu       sync.Mutex
	position uint64
	byStream map[string]int
	failAt   uint64 // Apply fails at this position (0: never)
}

func newCounts() *counts { return &counts{byStream: map[string]int{}} }

func (c *counts) Apply(_ context.Context, r eventlog.Record) error {
	if r.Position == c.failAt {
		return errors.New("the view cannot take this event")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byStream[r.Event.GetStreamId()]++
	c.position = r.Position
	return nil
}

type countsState struct {
	Position uint64
	Streams  [][2]any
}

func (c *counts) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := countsState{Position: c.position}
	for _, k := range slices.Sorted(maps.Keys(c.byStream)) {
		st.Streams = append(st.Streams, [2]any{k, c.byStream[k]})
	}
	return json.Marshal(st)
}

func (c *counts) Restore(position uint64, data []byte) error {
	var st countsState
	if err := json.Unmarshal(data, &st); err != nil {
		return err
	}
	m := map[string]int{}
	for _, kv := range st.Streams {
		k, ok1 := kv[0].(string)
		n, ok2 := kv[1].(float64)
		if !ok1 || !ok2 {
			return fmt.Errorf("stream entry %v: not a name and a count", kv)
		}
		m[k] = int(n)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byStream, c.position = m, position
	return nil
}

type rig struct {
	js    jetstream.JetStream
	log   *jsstore.Store
	snaps *checkpoint.JetStream
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect(t.Name(), false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	log, err := jsstore.New(t.Context(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	snaps, err := checkpoint.NewJetStream(t.Context(), js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{js: js, log: log, snaps: snaps}
}

// write appends n events spread over a few complaints.
func (r *rig) write(t *testing.T, n int) {
	t.Helper()
	ids := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	for i := range n {
		id := ids[i%len(ids)]
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "checkpoint-test", OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
			&eventsv1.ResponseRecorded{Summary: "called back"})
		if err != nil {
			t.Fatal(err)
		}
		stream := eventlog.ComplaintStream(id)
		recs, err := r.log.ReadStream(t.Context(), stream, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.log.Append(t.Context(), stream, eventlog.LastVersion(recs), e); err != nil {
			t.Fatal(err)
		}
	}
}

// run follows the log into v until the returned stop is called (which
// waits for the last save) and returns once v has caught up.
func (r *rig) run(t *testing.T, opts checkpoint.Options, v checkpoint.View) (*checkpoint.Follower, func()) {
	t.Helper()
	opts.Log = r.log
	if opts.Name == "" {
		opts.Name = "test-counts"
	}
	if opts.Snapshots == nil {
		opts.Snapshots = r.snaps
	}
	f, err := checkpoint.New(opts, v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-f.CaughtUp():
	case err := <-done:
		cancel()
		t.Fatalf("Run stopped before catching up: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("not caught up after 30s")
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	t.Cleanup(stop)
	return f, stop
}

func snapshotOf(t *testing.T, v checkpoint.View) string {
	t.Helper()
	b, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rebuilt is the view built from the whole log with no snapshot.
func (r *rig) rebuilt(t *testing.T) *counts {
	t.Helper()
	v := newCounts()
	_, stop := r.run(t, checkpoint.Options{Name: "test-rebuilt", Rebuild: true}, v)
	stop()
	return v
}

func TestRestoredAndCaughtUpEqualsRebuilt(t *testing.T) {
	r := newRig(t)
	r.write(t, 30)
	first := newCounts()
	f, stop := r.run(t, checkpoint.Options{}, first)
	if f.Started().Restored {
		t.Fatal("first start restored a snapshot that was never saved")
	}
	stop() // saves at position 30

	r.write(t, 12)
	second := newCounts()
	f, stop = r.run(t, checkpoint.Options{}, second)
	stop()
	if s := f.Started(); !s.Restored || s.Position != 30 {
		t.Fatalf("second start = %+v, want restored at position 30", s)
	}
	if f.Position() != 42 {
		t.Fatalf("position %d after catching up, want 42", f.Position())
	}
	if got, want := snapshotOf(t, second), snapshotOf(t, r.rebuilt(t)); got != want {
		t.Fatalf("restored and caught up:\n%s\nrebuilt:\n%s", got, want)
	}
}

func TestFollowingAppliesNewEventsAndSavesOnTheWay(t *testing.T) {
	r := newRig(t)
	r.write(t, 3)
	v := newCounts()
	f, stop := r.run(t, checkpoint.Options{SaveEvery: 5}, v)
	r.write(t, 10)
	deadline := time.Now().Add(30 * time.Second)
	for f.Position() < 13 {
		if time.Now().After(deadline) {
			t.Fatalf("position %d, want 13", f.Position())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Saved while following, before any stop: at 3 (caught up), then every 5.
	for {
		snap, err := r.snaps.Load(t.Context(), "test-counts")
		if err == nil && snap.Position >= 8 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot at position 8 or later while following: %+v, %v", snap, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	if got, want := snapshotOf(t, v), snapshotOf(t, r.rebuilt(t)); got != want {
		t.Fatalf("followed:\n%s\nrebuilt:\n%s", got, want)
	}
}

// A snapshot that cannot be used is rebuilt from the log, and why is told.
func TestUnusableSnapshotsAreRebuilt(t *testing.T) {
	cases := []struct {
		name   string
		spoil  func(t *testing.T, r *rig)
		format uint32
		reason string
	}{
		{name: "damaged bytes", spoil: func(t *testing.T, r *rig) {
			obs, err := r.js.ObjectStore(t.Context(), checkpoint.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := obs.PutBytes(t.Context(), "test-counts", []byte("CLSN not really a snapshot")); err != nil {
				t.Fatal(err)
			}
		}, reason: "damaged"},
		{name: "other format", format: 2, reason: "format 1, this build reads format 2"},
		{name: "other log", spoil: func(t *testing.T, r *rig) {
			snap, err := r.snaps.Load(t.Context(), "test-counts")
			if err != nil {
				t.Fatal(err)
			}
			snap.Hash = eventlog.Hash([]byte("an event of another log"))
			if err := r.snaps.Save(t.Context(), "test-counts", snap); err != nil {
				t.Fatal(err)
			}
		}, reason: "not of this log"},
		{name: "past the end of the log", spoil: func(t *testing.T, r *rig) {
			snap, err := r.snaps.Load(t.Context(), "test-counts")
			if err != nil {
				t.Fatal(err)
			}
			snap.Position += 1000
			if err := r.snaps.Save(t.Context(), "test-counts", snap); err != nil {
				t.Fatal(err)
			}
		}, reason: "not of this log"},
		{name: "view refuses the data", spoil: func(t *testing.T, r *rig) {
			snap, err := r.snaps.Load(t.Context(), "test-counts")
			if err != nil {
				t.Fatal(err)
			}
			snap.Data = []byte("{not json")
			if err := r.snaps.Save(t.Context(), "test-counts", snap); err != nil {
				t.Fatal(err)
			}
		}, reason: "invalid character"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.write(t, 9)
			_, stop := r.run(t, checkpoint.Options{Format: 1}, newCounts())
			stop()
			if c.spoil != nil {
				c.spoil(t, r)
			}
			v := newCounts()
			f, stop := r.run(t, checkpoint.Options{Format: max(c.format, 1)}, v)
			stop()
			s := f.Started()
			if s.Restored || !strings.Contains(s.Reason, c.reason) {
				t.Fatalf("start = %+v, want a rebuild because %q", s, c.reason)
			}
			if got, want := snapshotOf(t, v), snapshotOf(t, r.rebuilt(t)); got != want {
				t.Fatalf("after the fallback:\n%s\nrebuilt:\n%s", got, want)
			}
		})
	}
}

func TestNoSnapshotStartsFromTheBeginning(t *testing.T) {
	r := newRig(t)
	r.write(t, 4)
	f, stop := r.run(t, checkpoint.Options{}, newCounts())
	stop()
	if s := f.Started(); s.Restored || !strings.Contains(s.Reason, "no snapshot") || f.Position() != 4 {
		t.Fatalf("start = %+v at position %d, want a build from the log to position 4", s, f.Position())
	}
}

func TestAViewErrorStopsTheFollower(t *testing.T) {
	r := newRig(t)
	r.write(t, 5)
	v := newCounts()
	v.failAt = 3
	f, err := checkpoint.New(checkpoint.Options{Name: "failing", Log: r.log, Snapshots: r.snaps}, v)
	if err != nil {
		t.Fatal(err)
	}
	err = f.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "position 3") || !strings.Contains(err.Error(), "cannot take this event") {
		t.Fatalf("Run = %v, want the view's error at position 3", err)
	}
	if f.Position() != 2 {
		t.Fatalf("position %d, want 2: nothing after the refused event is applied", f.Position())
	}
}

func TestNewRefusesMissingParts(t *testing.T) {
	r := newRig(t)
	for name, c := range map[string]struct {
		opts checkpoint.Options
		v    checkpoint.View
	}{
		"no view": {checkpoint.Options{Name: "x", Log: r.log}, nil},
		"no log":  {checkpoint.Options{Name: "x"}, newCounts()},
		"no name": {checkpoint.Options{Log: r.log}, newCounts()},
	} {
		if _, err := checkpoint.New(c.opts, c.v); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

func TestLoadOfANameNeverSaved(t *testing.T) {
	r := newRig(t)
	if _, err := r.snaps.Load(t.Context(), "nobody"); !errors.Is(err, checkpoint.ErrNoSnapshot) {
		t.Fatalf("Load = %v, want ErrNoSnapshot", err)
	}
}

// costly is a view whose every event takes a second to apply and whose
// encoding takes ten, on a fake clock: what a big view caught up looks
// like to the follower.
type costly struct {
	*counts
	clk     *clock.Fake
	encodes int
}

func (c *costly) Apply(ctx context.Context, r eventlog.Record) error {
	c.clk.Advance(time.Second)
	return c.counts.Apply(ctx, r)
}

func (c *costly) Snapshot() ([]byte, error) {
	c.encodes++
	c.clk.Advance(10 * time.Second)
	return c.counts.Snapshot()
}

// Saves are spaced by what encoding costs: with SaveEvery 1, a view that
// takes ten seconds to encode is encoded at most once per 200 seconds of
// applying, not after every event.
func TestSavesAreSpacedByTheirCost(t *testing.T) {
	r := newRig(t)
	r.write(t, 1000)
	v := &costly{counts: newCounts(), clk: clock.NewFake(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))}
	f, stop := r.run(t, checkpoint.Options{SaveEvery: 1, Clock: v.clk}, v)
	stop()
	if f.Position() != 1000 {
		t.Fatalf("position %d, want 1000", f.Position())
	}
	// The first save comes after the first event (no cost known yet), then
	// one per 200 s of applying (1,000 s in all), one when caught up and
	// one at the stop.
	if v.encodes < 3 || v.encodes > 9 {
		t.Fatalf("%d encodings for 1,000 events, want about 1,000/200 + 3", v.encodes)
	}
	if got, want := snapshotOf(t, v.counts), snapshotOf(t, r.rebuilt(t)); got != want {
		t.Fatalf("followed:\n%s\nrebuilt:\n%s", got, want)
	}
}

// With EncodingShare negative, saves come every SaveEvery events exactly,
// whatever they cost: what a test that needs a save at a point asks for.
func TestExactSavesAreNotSpaced(t *testing.T) {
	r := newRig(t)
	r.write(t, 50)
	v := &costly{counts: newCounts(), clk: clock.NewFake(time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))}
	_, stop := r.run(t, checkpoint.Options{SaveEvery: 10, EncodingShare: -1, Clock: v.clk}, v)
	stop()
	if v.encodes != 5 {
		t.Fatalf("%d encodings for 50 events saved every 10, want 5", v.encodes)
	}
}
