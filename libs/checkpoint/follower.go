package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// View is an in-memory projection of the whole log kept by a Follower. The
// Follower calls these methods from one goroutine, in log order; a view
// guards its state for its own readers.
type View interface {
	// Apply folds one event of the log, each position once and in order.
	// An error stops the Follower: Run returns it.
	Apply(ctx context.Context, r eventlog.Record) error
	// Snapshot encodes the state as of the last event applied. The same
	// state must encode to the same bytes (sort what maps hold), so that
	// tests can hold a restored and caught-up view equal to a rebuilt one.
	Snapshot() ([]byte, error)
	// Restore replaces the state with one Snapshot encoded, as of log
	// position. On an error it leaves the state as it was.
	Restore(position uint64, data []byte) error
}

// Options configure a Follower.
type Options struct {
	// Name is the snapshot's name: the service and the view, and the
	// partition when instances keep different views ("slaclock-timers-0of2").
	Name string
	// Format is the view's encoding version; bump it when Snapshot's bytes
	// change meaning. A snapshot of another format is not restored.
	Format uint32
	// Log is the event log the view follows.
	Log eventlog.Store
	// Verifier checks every event before the view applies it; an event it
	// rejects is quarantined (logged, counted, recorded as a dead letter)
	// and never applied. Nil: no checks (no keyring configured).
	Verifier *eventlog.Verifier
	// Snapshots keeps the snapshots; nil turns them off (every start
	// replays the whole log).
	Snapshots Store
	// Rebuild ignores the saved snapshot (a forced full rebuild); new
	// snapshots are still saved.
	Rebuild bool
	// SaveEvery is how many events are applied between two saves
	// (default 50,000); SaveInterval the longest wait before saving what
	// was applied since the last save (default one minute).
	SaveEvery    int
	SaveInterval time.Duration
	// EncodingShare spaces saves by what they cost: at least this many
	// times the last encoding's duration passes between two, so encoding
	// the view takes at most 1/EncodingShare of the follower's time
	// (default 20). A big view (a million folded complaints) caught up at
	// tens of thousands of events a second would otherwise be encoded
	// whole every SaveEvery events. Negative: no spacing, a save every
	// SaveEvery events exactly (tests that need a save at a given point).
	EncodingShare int
	// Clock times SaveInterval and the catch-up (default clock.Real).
	// Services leave it unset: when to save a cache is an operational
	// matter, not domain time, and a test's stopped clock would never save.
	Clock  clock.Clock
	Logger *slog.Logger
}

// Start says how a Follower started.
type Start struct {
	// Restored is true when the view started from a snapshot.
	Restored bool
	// Position the view started from (0: the beginning of the log).
	Position uint64
	// Reason a snapshot was not used ("" when Restored).
	Reason string
}

// Follower restores a view from its snapshot, catches it up with the log,
// follows the log and saves snapshots along the way. Saving happens beside
// the following: a slow store never holds back what the view applies.
type Follower struct {
	opts     Options
	view     View
	position atomic.Uint64
	caughtUp chan struct{}
	start    atomic.Pointer[Start]

	// Owned by Run's goroutine.
	applied   int           // events applied since the last save
	lastSave  time.Time     // when the last save was handed over
	encoding  time.Duration // how long the view took to encode last time
	lastRaw   []byte        // the stored bytes of the last event applied, hashed when saved
	saves     chan Snapshot
	saverDone chan struct{}
}

// New checks opts and returns a Follower of v; call Run.
func New(opts Options, v View) (*Follower, error) {
	switch {
	case v == nil:
		return nil, errors.New("checkpoint: view: required")
	case opts.Log == nil:
		return nil, errors.New("checkpoint: options Log: required")
	case opts.Name == "":
		return nil, errors.New("checkpoint: options Name: required")
	case opts.SaveEvery < 0 || opts.SaveInterval < 0:
		return nil, errors.New("checkpoint: options SaveEvery and SaveInterval: must not be negative")
	}
	if opts.SaveEvery == 0 {
		opts.SaveEvery = 50_000
	}
	if opts.SaveInterval == 0 {
		opts.SaveInterval = time.Minute
	}
	switch {
	case opts.EncodingShare == 0:
		opts.EncodingShare = 20
	case opts.EncodingShare < 0:
		opts.EncodingShare = 0
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Follower{opts: opts, view: v, caughtUp: make(chan struct{})}, nil
}

// CaughtUp is closed once the view has applied every event stored when Run
// started: the service may call itself ready.
func (f *Follower) CaughtUp() <-chan struct{} { return f.caughtUp }

// Position is the log position of the last event applied (0: none).
func (f *Follower) Position() uint64 { return f.position.Load() }

// Started says how Run started (nil before it has).
func (f *Follower) Started() *Start { return f.start.Load() }

// How long Run waits before following the log again after it failed.
var followRetry, maxFollowRetry = 500 * time.Millisecond, 15 * time.Second

// catchUpPage is how many events one read of the catch-up asks for.
const catchUpPage = 10_000

// Run restores the view, catches it up, then follows the log until ctx is
// done, when it saves a last snapshot and returns nil. Failures to read
// the log while following are waited out and retried; a failure before the
// view has caught up, or an error from the view, is returned.
func (f *Follower) Run(ctx context.Context) error {
	f.saves, f.saverDone = make(chan Snapshot, 1), make(chan struct{})
	f.lastSave = f.opts.Clock.Now()
	go f.saver()
	defer func() {
		close(f.saves)
		<-f.saverDone
	}()
	if err := f.restore(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	if err := f.catchUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	f.saveNow()
	close(f.caughtUp)
	returnMemory()
	err := f.follow(ctx)
	f.saveNow()
	return err
}

// restore loads the snapshot and hands it to the view when it is of this
// log and this format; otherwise the view starts empty, and why is logged.
func (f *Follower) restore(ctx context.Context) error {
	start := &Start{}
	defer func() { f.start.Store(start) }()
	log := f.opts.Logger.With("view", f.opts.Name)
	if f.opts.Snapshots == nil {
		start.Reason = "snapshots are off"
		return nil
	}
	if f.opts.Rebuild {
		start.Reason = "a rebuild was asked for"
		log.Info("checkpoint: rebuilding the view from the log, as asked")
		return nil
	}
	snap, err := f.opts.Snapshots.Load(ctx, f.opts.Name)
	if err == nil {
		err = f.check(ctx, snap)
	}
	if err == nil {
		err = f.view.Restore(snap.Position, snap.Data)
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		start.Reason = err.Error()
		if errors.Is(err, ErrNoSnapshot) {
			log.Info("checkpoint: no snapshot; building the view from the log")
		} else {
			log.Warn("checkpoint: snapshot not used; rebuilding the view from the log", "reason", err)
		}
		return nil
	}
	f.position.Store(snap.Position)
	f.lastSave = f.opts.Clock.Now()
	start.Restored, start.Position = true, snap.Position
	log.Info("checkpoint: view restored from its snapshot", "position", snap.Position, "bytes", len(snap.Data))
	return nil
}

// check refuses a snapshot of another format, or of another log: the event
// stored at its position must be the one it names.
func (f *Follower) check(ctx context.Context, snap Snapshot) error {
	if snap.Format != f.opts.Format {
		return fmt.Errorf("snapshot of format %d, this build reads format %d", snap.Format, f.opts.Format)
	}
	recs, err := f.opts.Log.ReadAll(ctx, snap.Position, 1)
	if err != nil {
		return fmt.Errorf("read the event at the snapshot's position %d: %w", snap.Position, err)
	}
	if len(recs) == 0 || recs[0].Position != snap.Position || !bytes.Equal(eventlog.Hash(recs[0].Raw), snap.Hash) {
		return fmt.Errorf("snapshot at position %d is not of this log: the event stored there differs or is missing", snap.Position)
	}
	return nil
}

// catchUp applies every event stored after the view's position.
func (f *Follower) catchUp(ctx context.Context) error {
	began, from := f.opts.Clock.Now(), f.Position()
	for {
		recs, err := f.opts.Log.ReadAll(ctx, f.Position()+1, catchUpPage)
		if err != nil {
			return fmt.Errorf("checkpoint: %s: catch up from position %d: %w", f.opts.Name, f.Position()+1, err)
		}
		if len(recs) == 0 {
			f.opts.Logger.Info("checkpoint: view caught up with the log", "view", f.opts.Name,
				"from", from, "position", f.Position(), "took", f.opts.Clock.Now().Sub(began).String())
			return nil
		}
		for _, r := range recs {
			if err := f.apply(ctx, r); err != nil {
				if ve := (viewError{}); errors.As(err, &ve) {
					return ve.err
				}
				return err
			}
		}
	}
}

// viewError marks an error of the view, which stops following.
type viewError struct{ err error }

func (e viewError) Error() string { return e.err.Error() }
func (e viewError) Unwrap() error { return e.err }

// follow applies new events as they come, following the log again when
// reading it fails (NATS restarting, a network cut).
func (f *Follower) follow(ctx context.Context) error {
	wait := followRetry
	for {
		from := f.Position()
		err := f.opts.Log.Follow(ctx, from+1, func(r eventlog.Record) error {
			return f.apply(ctx, r)
		})
		if ctx.Err() != nil {
			return nil
		}
		if ve := (viewError{}); errors.As(err, &ve) {
			return ve.err
		}
		if f.Position() > from {
			wait = followRetry
		}
		f.opts.Logger.Warn("checkpoint: following the log failed; retrying", "view", f.opts.Name, "position", f.Position(), "in", wait.String(), "err", err)
		// A real timer: this waits for the network, not for domain time.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		wait = min(2*wait, maxFollowRetry)
	}
}

// apply hands one event to the view, unless the Verifier quarantines it,
// and saves when it is time to. An error of the view is a viewError; one
// of verifying is not (the event is read and verified again).
func (f *Follower) apply(ctx context.Context, r eventlog.Record) error {
	if r.Position <= f.Position() {
		return nil // already applied: a read overlapping the last one
	}
	quarantined, err := f.verify(ctx, r)
	if err != nil {
		return fmt.Errorf("checkpoint: %s: verify the event at position %d: %w", f.opts.Name, r.Position, err)
	}
	if !quarantined {
		if err := f.view.Apply(ctx, r); err != nil {
			return viewError{fmt.Errorf("checkpoint: %s: apply the event at position %d: %w", f.opts.Name, r.Position, err)}
		}
	}
	f.position.Store(r.Position)
	f.lastRaw = r.Raw
	f.applied++
	since := f.opts.Clock.Now().Sub(f.lastSave)
	if (f.applied >= f.opts.SaveEvery || since >= f.opts.SaveInterval) && since >= time.Duration(f.opts.EncodingShare)*f.encoding {
		f.saveNow()
	}
	return nil
}

// verify checks r with the Verifier: quarantined when it must not be
// applied (and was recorded), an error when that could not be settled now.
func (f *Follower) verify(ctx context.Context, r eventlog.Record) (quarantined bool, err error) {
	v := f.opts.Verifier
	if v == nil {
		return false, nil
	}
	err = v.Check(ctx, f.opts.Name, r)
	var rej *eventlog.Rejected
	if !errors.As(err, &rej) {
		return false, err
	}
	return true, v.Quarantine(ctx, f.opts.Name, r, rej)
}

// saveNow encodes the view, when it changed since the last save, and hands
// the snapshot to the saver, replacing one still waiting.
func (f *Follower) saveNow() {
	if f.opts.Snapshots == nil || f.applied == 0 || f.Position() == 0 {
		return
	}
	began := f.opts.Clock.Now()
	data, err := f.view.Snapshot()
	if err != nil {
		f.opts.Logger.Error("checkpoint: view does not encode; not saved", "view", f.opts.Name, "err", err)
		return
	}
	f.applied, f.lastSave = 0, f.opts.Clock.Now()
	f.encoding = f.lastSave.Sub(began)
	snap := Snapshot{Format: f.opts.Format, Position: f.Position(), Hash: eventlog.Hash(f.lastRaw), Data: data}
	select {
	case f.saves <- snap:
	default:
		select { // the saver is busy with an older one: keep only the newest
		case <-f.saves:
		default:
		}
		f.saves <- snap
	}
}

// returnMemory hands the OS back what a start left behind once the view
// has caught up: the snapshot's bytes and decoded form, every record read,
// the first save's encoding. They are garbage then, but the heap's goal
// (twice the live heap at the last collection, mid-restore) keeps their
// pages, and a quiet service does not collect again: at 30,000 complaints
// follow-up held 50 MB where it needs 30 (services/followup/README.md).
func returnMemory() { debug.FreeOSMemory() }

// caughtUpNow reports whether the view has caught up, without waiting.
func (f *Follower) caughtUpNow() bool {
	select {
	case <-f.caughtUp:
		return true
	default:
		return false
	}
}

// saveTimeout bounds one save.
const saveTimeout = 30 * time.Second

// saver writes snapshots one at a time until saves is closed; it writes the
// last one handed over even when Run is stopping.
func (f *Follower) saver() {
	defer close(f.saverDone)
	returned := false
	for snap := range f.saves {
		ctx, cancel := context.WithTimeout(context.Background(), saveTimeout)
		err := f.opts.Snapshots.Save(ctx, f.opts.Name, snap)
		cancel()
		if !returned && f.caughtUpNow() {
			returned = true
			returnMemory() // the first save after a catch-up encodes the whole view
		}
		if err != nil {
			f.opts.Logger.Warn("checkpoint: snapshot not saved; the next one will be", "view", f.opts.Name, "position", snap.Position, "err", err)
			continue
		}
		f.opts.Logger.Debug("checkpoint: snapshot saved", "view", f.opts.Name, "position", snap.Position, "bytes", len(snap.Data))
	}
}
