package slaclock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/platform"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock"
	"github.com/closeloop/closeloop/services/slaclock/internal/app"
)

// snapName is the snapshot of the single instance these tests run.
var snapName = app.SnapshotName(app.Partition{Index: 0, Count: 1})

// recordingSnapshots passes snapshots to the JetStream store, keeps the last
// one saved, and fails every Save while failing is set (a kill mid-save
// leaves the previous snapshot, which is what a failed Save leaves).
type recordingSnapshots struct {
	checkpoint.Store
	mu      sync.Mutex
	last    checkpoint.Snapshot
	saves   int
	failing bool
}

func (s *recordingSnapshots) Save(ctx context.Context, name string, snap checkpoint.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("snapshot store: killed mid-save")
	}
	if err := s.Store.Save(ctx, name, snap); err != nil {
		return err
	}
	s.last, s.saves = snap, s.saves+1
	return nil
}

func (s *recordingSnapshots) lastSaved() checkpoint.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// countingLog records the complaints read one by one (ReadStream); other
// streams (the calendar years read at each start) are not counted.
type countingLog struct {
	eventlog.Store
	mu    sync.Mutex
	reads []string
}

func (l *countingLog) ReadStream(ctx context.Context, stream eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	if stream.Kind() == eventlog.KindComplaint {
		l.mu.Lock()
		l.reads = append(l.reads, stream.ID())
		l.mu.Unlock()
	}
	return l.Store.ReadStream(ctx, stream, from)
}

func (l *countingLog) read() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reads)
}

type startOpts struct {
	snaps   checkpoint.Store
	rebuild bool
	log     eventlog.Store // default: the rig's store
}

// startWith runs an instance with snapshots; it returns once the instance
// is ready (started up), and stop waits for its last snapshot to be saved.
func (r *rig) startWith(t *testing.T, o startOpts) (*slaclock.Service, func()) {
	t.Helper()
	cfg := slaclock.DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Authenticator = "127.0.0.1:0", "127.0.0.1:0", auth.Allow
	log := o.log
	if log == nil {
		log = r.store
	}
	svc, err := slaclock.New(platform.Deps{JS: r.js, Log: log, Clock: r.clk, Logger: slog.New(slog.DiscardHandler),
		Snapshots: o.snaps, RebuildViews: o.rebuild}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.App().Rebuilt():
	case err := <-done:
		t.Fatalf("Run ended while starting: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the instance never started")
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return svc, stop
}

// head is the position of the last event in the log.
func (r *rig) head(t *testing.T) uint64 {
	t.Helper()
	var last uint64
	for from := uint64(1); ; {
		recs, err := r.store.ReadAll(context.Background(), from, 10_000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return last
		}
		last = recs[len(recs)-1].Position
		from = last + 1
	}
}

// decided waits until the instance has applied the log up to its current
// head and decided every trigger it noted (they are decided beside the
// Follower, so its position alone does not say they were).
func (r *rig) decided(t *testing.T, svc *slaclock.Service) {
	t.Helper()
	h := r.head(t)
	waitFor(t, "the triggers decided", func() bool { return svc.App().Follower().Position() >= h && svc.App().Pending() == 0 })
}

// settle waits until the instance has applied the whole log, decided its
// triggers, and nothing more is being written.
func (r *rig) settle(t *testing.T, svc *slaclock.Service) {
	t.Helper()
	for stable := 0; stable < 3; {
		h := r.head(t)
		r.decided(t, svc)
		time.Sleep(30 * time.Millisecond)
		if r.head(t) == h {
			stable++
		} else {
			stable = 0
		}
	}
}

// complaints writes a mix of histories: open ones, some accepted, some
// resolved, and closed ones whose clocks were all met (the close leaves
// sla-clock nothing to write: a full rebuild decides them again).
func (r *rig) complaints(t *testing.T, n int, at time.Time, svc *slaclock.Service) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := uuid.NewString()
		ids = append(ids, id)
		write := func(after time.Duration, payload proto.Message) {
			r.write(t, id, at.Add(after), payload)
			if svc != nil { // the running instance handles each trigger before the next comes
				r.decided(t, svc)
			}
		}
		write(0, &ev.ComplaintReceived{ReceivedAt: timestamppb.New(at), Customer: &ev.Customer{Tier: ev.CustomerTier_CUSTOMER_TIER_REGULAR}})
		switch i % 4 {
		case 1:
			write(time.Minute, &ev.ComplaintAccepted{})
		case 2:
			write(time.Minute, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
		case 3:
			write(time.Minute, &ev.ComplaintAccepted{})
			write(2*time.Minute, &ev.ResponseRecorded{})
			write(3*time.Minute, &ev.ComplaintResolved{})
			write(4*time.Minute, &ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_FIRST})
			write(5*time.Minute, &ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_SECOND})
			write(6*time.Minute, &ev.ComplaintClosed{})
		}
	}
	return ids
}

// due lists what an instance would fire up to a day after now.
func due(svc *slaclock.Service, now time.Time) []string {
	var out []string
	for _, u := range svc.App().Index().DueBefore(now.Add(1000*time.Hour), 1_000_000) {
		out = append(out, fmt.Sprintf("%s %s %s", u.ComplaintID, u.ClockID, u.Deadline.Format(time.RFC3339)))
	}
	slices.Sort(out)
	return out
}

func newSnapshots(t *testing.T, r *rig) *recordingSnapshots {
	t.Helper()
	js, err := checkpoint.NewJetStream(context.Background(), r.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &recordingSnapshots{Store: js}
}

// Given complaints handled live and more triggers written while the service
// was stopped (with deadlines passed meanwhile), a start from the snapshot
// ends with the same view, byte for byte, as a forced full rebuild, and
// both would fire the same clocks; the late breaches are written once.
func TestSnapshotAndCatchUpEqualsFullRebuild(t *testing.T) {
	r := newRig(t)
	snaps := newSnapshots(t, r)
	first, stop := r.startWith(t, startOpts{snaps: snaps})
	r.complaints(t, 12, t0, first)
	r.settle(t, first)
	stop()
	if snaps.lastSaved().Position == 0 {
		t.Fatal("no snapshot saved at stop")
	}

	// While stopped: new complaints, new triggers on old ones, and 30 h pass.
	r.complaints(t, 8, t0.Add(time.Hour), nil)
	r.clk.Set(t0.Add(30 * time.Hour))

	restored, stop := r.startWith(t, startOpts{snaps: snaps})
	if st := restored.App().Follower().Started(); !st.Restored {
		t.Fatalf("not restored: %s", st.Reason)
	}
	r.settle(t, restored)
	stop()
	fromSnapshot := snaps.lastSaved()
	breaches := r.head(t)

	rebuilt, stop := r.startWith(t, startOpts{snaps: snaps, rebuild: true})
	if st := rebuilt.App().Follower().Started(); st.Restored {
		t.Fatal("restored although a rebuild was asked for")
	}
	r.settle(t, rebuilt)
	stop()
	fromLog := snaps.lastSaved()

	if r.head(t) != breaches {
		t.Errorf("the rebuilt instance wrote %d more events: the restored one left work undone", r.head(t)-breaches)
	}
	if fromSnapshot.Position != fromLog.Position || !bytes.Equal(fromSnapshot.Data, fromLog.Data) {
		t.Fatalf("restored+caught up view (position %d, %d bytes) differs from the rebuilt one (position %d, %d bytes)",
			fromSnapshot.Position, len(fromSnapshot.Data), fromLog.Position, len(fromLog.Data))
	}
	if a, b := due(restored, r.clk.Now()), due(rebuilt, r.clk.Now()); !slices.Equal(a, b) || len(a) == 0 {
		t.Fatalf("due clocks differ or none:\nrestored %v\nrebuilt  %v", a, b)
	}
}

// A restart from a snapshot reads, one by one, only the complaints with
// triggers after the snapshot's position: not the closed complaints a full
// rebuild decides again at every start.
func TestRestartFromSnapshotRereadsOnlyNewTriggers(t *testing.T) {
	r := newRig(t)
	snaps := newSnapshots(t, r)
	first, stop := r.startWith(t, startOpts{snaps: snaps})
	r.complaints(t, 16, t0, first)
	r.settle(t, first)
	stop()

	touched := r.complaints(t, 2, t0.Add(time.Hour), nil)
	log := &countingLog{Store: r.store}
	svc, stop := r.startWith(t, startOpts{snaps: snaps, log: log})
	read := log.read()
	r.settle(t, svc)
	if got := svc.App().Index().Complaints(); got != 14 {
		t.Errorf("%d complaints in the index, want the 14 not closed", got)
	}
	stop()
	for _, id := range read {
		if !slices.Contains(touched, id) {
			t.Errorf("complaint %s read at start although its triggers were handled before the snapshot", id)
		}
	}
	if len(read) == 0 {
		t.Error("the new complaints were not decided at start")
	}

	log = &countingLog{Store: r.store}
	svc, stop = r.startWith(t, startOpts{snaps: snaps, log: log, rebuild: true})
	rebuildReads := len(log.read())
	if got := svc.App().Index().Complaints(); got != 14 {
		t.Errorf("after a rebuild: %d complaints in the index, want the 14 not closed", got)
	}
	stop()
	if rebuildReads <= len(read) {
		t.Errorf("a full rebuild read %d complaints, the start from the snapshot %d: the snapshot saved nothing", rebuildReads, len(read))
	}
	t.Logf("complaints read at start: %d from the snapshot, %d by a full rebuild", len(read), rebuildReads)
}

// A damaged snapshot, or one of another format, is not used: the service
// rebuilds from the log, starts, and keeps its clocks.
func TestUnusableSnapshotFallsBackToRebuild(t *testing.T) {
	for _, damage := range []string{"garbage", "foreign format"} {
		t.Run(damage, func(t *testing.T) {
			r := newRig(t)
			snaps := newSnapshots(t, r)
			first, stop := r.startWith(t, startOpts{snaps: snaps})
			r.complaints(t, 8, t0, first)
			r.settle(t, first)
			want := due(first, r.clk.Now())
			stop()
			ctx := context.Background()
			switch damage {
			case "garbage":
				obs, err := r.js.ObjectStore(ctx, checkpoint.Bucket)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := obs.PutBytes(ctx, snapName, []byte("CLSN\x00\x00\x00\x01 not a snapshot at all, just bytes")); err != nil {
					t.Fatal(err)
				}
			case "foreign format":
				s := snaps.lastSaved()
				s.Format = app.SnapshotFormat + 41
				if err := snaps.Store.Save(ctx, snapName, s); err != nil {
					t.Fatal(err)
				}
			}
			svc, stop := r.startWith(t, startOpts{snaps: snaps})
			st := svc.App().Follower().Started()
			if st.Restored || st.Reason == "" {
				t.Fatalf("started %+v, want a rebuild with its reason", st)
			}
			r.settle(t, svc)
			if got := due(svc, r.clk.Now()); !slices.Equal(got, want) || len(got) == 0 {
				t.Fatalf("clocks after the fallback:\n%v\nwant\n%v", got, want)
			}
			stop()
		})
	}
}

// An instance killed while saving its snapshots (every Save fails, leaving
// the previous snapshot) loses nothing: the next start restores the older
// snapshot, catches up over what the killed instance did, and ends with the
// same view as a full rebuild.
func TestKillWhileSavingLosesNothing(t *testing.T) {
	r := newRig(t)
	snaps := newSnapshots(t, r)
	first, stop := r.startWith(t, startOpts{snaps: snaps})
	r.complaints(t, 8, t0, first)
	r.settle(t, first)
	stop()
	old := snaps.lastSaved()

	snaps.failing = true
	killed, stop := r.startWith(t, startOpts{snaps: snaps})
	r.complaints(t, 8, t0.Add(time.Hour), killed)
	r.clk.Set(t0.Add(30 * time.Hour)) // breaches fire and are written by the killed instance
	r.settle(t, killed)
	stop()
	snaps.mu.Lock()
	snaps.failing = false
	snaps.mu.Unlock()

	restarted, stop := r.startWith(t, startOpts{snaps: snaps})
	if st := restarted.App().Follower().Started(); !st.Restored || st.Position != old.Position {
		t.Fatalf("started %+v, want restored from the snapshot at %d", st, old.Position)
	}
	r.settle(t, restarted)
	stop()
	fromSnapshot := snaps.lastSaved()
	written := r.head(t)

	rebuilt, stop := r.startWith(t, startOpts{snaps: snaps, rebuild: true})
	r.settle(t, rebuilt)
	stop()
	if r.head(t) != written {
		t.Errorf("the rebuilt instance wrote %d more events", r.head(t)-written)
	}
	if !bytes.Equal(fromSnapshot.Data, snaps.lastSaved().Data) {
		t.Fatal("the view restored from the older snapshot differs from a full rebuild")
	}
	if a, b := due(restarted, r.clk.Now()), due(rebuilt, r.clk.Now()); !slices.Equal(a, b) || len(a) == 0 {
		t.Fatalf("due clocks differ or none:\nrestored %v\nrebuilt  %v", a, b)
	}
}
