package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	"github.com/closeloop/closeloop/services/slaclock/internal/timers"
)

// SnapshotFormat is the encoding version of the timers view's snapshot:
// bump it when Snapshot's bytes change meaning. 2: every clock and retry
// keeps the trace its firing continues; a format-1 snapshot is rebuilt.
const SnapshotFormat = 2

// saveEvery is how many events are applied between two snapshots. A
// snapshot is encoded on the Follower's goroutine at a cost per open clock,
// so frequent saves during the catch-up of a long log cost O(events × open
// clocks) (figures in the README). Live, the Follower's one-minute
// interval sets the pace anyway.
const saveEvery = 250_000

// catchUpLag: during the catch-up, every catchUpLag/2 events, the
// complaints whose last trigger is catchUpLag events old with no whole
// sla-clock append since are decided. Their own append would have come
// by then (it follows its trigger closely), so they are the ones with
// nothing to append (a close after every clock was met); and their stream
// was just read by the catch-up, which the server still holds in its
// cache (README: deciding them along the way is 2-3x faster than at the end).
const catchUpLag = 10_000

// decideWorkers is how many complaints with pending triggers are decided
// at once, in the catch-up and while following.
const decideWorkers = 8

// SnapshotName is the name of an instance's snapshot: instances of other
// partitions keep other views.
func SnapshotName(p Partition) string {
	return fmt.Sprintf("slaclock-timers-%dof%d", p.Index, max(p.Count, 1))
}

// UseSnapshots makes the instance start from its last snapshot in store
// (nil: none, every start reads the whole log) and save new ones;
// rebuild ignores the saved one at the first start. every is how many
// events are applied between two saves: 0, the service's default, is
// 250,000 spaced by what a save costs (checkpoint.Options.EncodingShare);
// another number saves exactly that often, for tests that need a save at
// a given point. Call before Run or Rebuild.
func (a *App) UseSnapshots(store checkpoint.Store, rebuild bool, every int) {
	a.exactSaves = every != 0
	if every == 0 {
		every = saveEvery
	}
	a.snaps, a.rebuild, a.saveEvery = store, rebuild, every
}

// Verify makes the view check every event with v before applying it (nil:
// no checks).
func (a *App) Verify(v *eventlog.Verifier) { a.verifier = v }

// encodingShare is the Follower's: exact saves when a test asked for them.
func (a *App) encodingShare() int {
	if a.exactSaves {
		return -1
	}
	return 0
}

// Follower is the checkpoint.Follower of the running instance (nil before
// Run or Rebuild): how it started, where it is.
func (a *App) Follower() *checkpoint.Follower { return a.follower }

// Rebuilt is closed once the first start-up has finished: the view is
// restored, caught up with the log, and every trigger found on the way is
// decided.
func (a *App) Rebuilt() <-chan struct{} { return a.rebuilt }

// Run restores the schedule from its snapshot (or rebuilds it from the whole
// log), catches it up, decides the triggers found on the way, then fires
// due clocks and follows the log until ctx is done. Failures of the log
// after the start-up are logged and retried; one during it is returned.
func (a *App) Run(ctx context.Context) error {
	return a.run(ctx, true)
}

// Rebuild runs the start-up of Run alone: the schedule is restored or
// rebuilt, caught up, and the triggers found are decided; nothing is
// followed or fired. Warnings and breaches that fell due meanwhile fire as
// soon as Run starts, marked late. A Run after it starts from where it
// ended (from a snapshot kept in memory when there is no store).
func (a *App) Rebuild(ctx context.Context) error {
	if a.snaps == nil {
		a.snaps = &memSnapshots{}
	}
	return a.run(ctx, false)
}

func (a *App) run(ctx context.Context, follow bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := a.loadCalendars(ctx); err != nil {
		return err
	}
	f, err := checkpoint.New(checkpoint.Options{
		Name: SnapshotName(a.part), Format: SnapshotFormat, Log: a.store, Snapshots: a.snaps, Verifier: a.verifier,
		Rebuild: a.rebuild && !a.started, SaveEvery: a.saveEvery, EncodingShare: a.encodingShare(), Logger: a.log,
	}, (*timersView)(a))
	if err != nil {
		return fmt.Errorf("app: %w", err)
	}
	a.reset = a.started // a Follower that does not restore starts from an empty view
	a.started = true
	a.runCtx, a.follower = ctx, f
	began := time.Now()
	follower := func(ctx context.Context) error {
		err := f.Run(ctx)
		cancel() // the schedule stops with the view it reads
		if err == nil || ctx.Err() != nil {
			return nil // stopped (while starting, too)
		}
		select {
		case <-f.CaughtUp():
			return err
		default:
			return fmt.Errorf("app: start: %w", err)
		}
	}
	decider := func(ctx context.Context) error {
		a.decideNoted(ctx)
		return nil
	}
	schedule := func(ctx context.Context) error {
		select {
		case <-f.CaughtUp():
		case <-ctx.Done():
			return nil
		}
		// Without snapshots the catch-up's triggers are still waiting (with
		// them, encoding the snapshot at the end of the catch-up decided them).
		if err := a.drainAll(ctx); err != nil {
			return nil // only a stop cuts a drain short
		}
		a.startedUp(f, began)
		if !follow {
			cancel()
			return nil
		}
		a.idx.Run(ctx, a.clk, a.fire)
		return nil
	}
	return platform.RunGroup(ctx, follower, decider, schedule)
}

// startedUp logs the end of the start-up and turns the instance ready.
func (a *App) startedUp(f *checkpoint.Follower, began time.Time) {
	st := f.Started()
	a.mu.Lock()
	decided := a.decided
	a.mu.Unlock()
	a.log.Info("slaclock: started", "decided", decided, "restored", st.Restored, "from", st.Position, "why_not_restored", st.Reason,
		"position", f.Position(), "open_clocks", a.idx.Open(), "complaints", a.idx.Complaints(), "took", time.Since(began).String())
	select {
	case <-a.rebuilt:
	default:
		close(a.rebuilt)
	}
}

// resetView empties the view before a Follower restores or rebuilds it.
func (a *App) resetView() {
	a.idx.Reset()
	a.policies.Reset(a.base)
	a.published = nil
	a.mu.Lock()
	clear(a.pending)
	a.mu.Unlock()
}

// timersView is the App seen by its checkpoint.Follower: the schedule, the
// policies learned from the log and the triggers not yet decided.
type timersView App

// Apply implements checkpoint.View. A trigger is only noted (the last one
// per complaint), which keeps the Follower as fast as the log: the
// complaints noted are decided beside it, decideWorkers at a time (drain).
// During the catch-up a later whole append of this service shows a noted
// trigger was handled before the stop, so it is decided only once it is
// catchUpLag events old, and the rest at the end, as the full rebuild
// always did. Once following, the decider is woken at once. Either way,
// everything up to a snapshot's position has been decided, or is recorded
// as a retry, before the snapshot is taken: Snapshot drains first.
func (v *timersView) Apply(ctx context.Context, r eventlog.Record) error {
	a := (*App)(v)
	if a.reset {
		a.resetView()
		a.reset = false
	}
	id, isTrigger := a.apply(r.Event)
	caughtUp := false
	select {
	case <-a.follower.CaughtUp():
		caughtUp = true
	default:
	}
	switch {
	case isTrigger:
		a.mu.Lock()
		a.pending[id] = trigger{cause: kernel.CauseOf(r.Event, true), trace: timers.ParseTrace(r.Event.GetTraceparent()), position: r.Position, live: caughtUp}
		a.mu.Unlock()
		if caughtUp {
			select {
			case a.noted <- struct{}{}:
			default: // the decider is already woken: its next drain takes this one too
			}
		}
	case id != "" && r.Event.GetProducer() == domain.Producer && r.Event.GetBatchRemaining() == 0:
		// Whoever made a whole append had seen everything before it; an
		// append cut short leaves its triggers to redo.
		a.mu.Lock()
		delete(a.pending, id)
		a.mu.Unlock()
	}
	if !caughtUp && r.Position%(a.lag/2+1) == 0 && r.Position > a.lag {
		return a.drain(ctx, r.Position-a.lag)
	}
	return nil
}

// decideNoted decides, once the start-up's catch-up is done, the triggers
// noted while following, as they come: each wake-up drains everything
// pending, and what is noted during a drain waits for the next one. Under
// a burst the drains grow, and decideWorkers complaints are decided at once.
func (a *App) decideNoted(ctx context.Context) {
	select {
	case <-a.follower.CaughtUp():
	case <-ctx.Done():
		return
	}
	for {
		select {
		case <-a.noted:
		case <-ctx.Done():
			return
		}
		if a.drainAll(ctx) != nil {
			return // stopped: the last snapshot decides what is left, or the next start does
		}
	}
}

// Pending is how many complaints have a trigger not yet decided: the
// backlog the decider has to work off.
func (a *App) Pending() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.pending)
}

// trigger is the last trigger of a complaint not yet decided: the cause
// of its decision, the trace it continues, and whether it came while
// following (its decision is then a DecideOnTrigger span, else CatchUp).
type trigger struct {
	cause    kernel.Cause
	trace    timers.Trace
	position uint64
	live     bool
}

// drainAll decides every pending trigger.
func (a *App) drainAll(ctx context.Context) error { return a.drain(ctx, ^uint64(0)) }

// drain decides the complaints with pending triggers older than position
// before, decideWorkers at a time; each complaint appears once in a drain,
// and drains run one at a time, so no two workers decide one complaint
// together (a timer firing waits for the complaint's lock in decide). A failed
// decision becomes a retry in the index. A complaint leaves the pending set
// only once decided (or retried), so a snapshot never misses it. It returns
// an error only when ctx is done.
func (a *App) drain(ctx context.Context, before uint64) error {
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	a.mu.Lock()
	work := map[string]trigger{}
	for id, tr := range a.pending {
		if tr.position < before {
			work[id] = tr
		}
	}
	a.mu.Unlock()
	if len(work) == 0 {
		return nil
	}
	began := time.Now()
	ids := make(chan string)
	feed := func(ctx context.Context) error {
		defer close(ids)
		for id := range work {
			select {
			case ids <- id:
			case <-ctx.Done():
				return nil
			}
		}
		return nil
	}
	decide := func(ctx context.Context) error {
		for id := range ids {
			tr := work[id]
			name := "CatchUp"
			if tr.live {
				name = "DecideOnTrigger"
			}
			if err := a.handle(traced(ctx, tr.trace), name, id, tr.cause); err != nil {
				if ctx.Err() != nil {
					continue
				}
				a.log.Error("slaclock: trigger not handled; retrying in 1s", "complaint", id, "err", err)
				a.idx.Retry(id, a.clk.Now().Add(time.Second), tr.cause.Version, tr.trace)
			}
			a.mu.Lock()
			if a.pending[id] == tr {
				delete(a.pending, id)
			}
			a.mu.Unlock()
		}
		return nil
	}
	parts := []func(context.Context) error{feed}
	for range min(decideWorkers, len(work)) {
		parts = append(parts, decide)
	}
	_ = platform.RunGroup(ctx, parts...) // the parts return no error: a failed decision is retried
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	a.decided += len(work)
	a.mu.Unlock()
	a.log.Debug("slaclock: decided the pending triggers", "complaints", len(work), "took", time.Since(began).String())
	return nil
}

// Snapshot implements checkpoint.View: the policies learned from the log,
// then the index (timers.Index.Encode). Pending triggers are decided first,
// so that the snapshot holds none.
func (v *timersView) Snapshot() ([]byte, error) {
	a := (*App)(v)
	ctx := a.runCtx
	if ctx.Err() != nil {
		// The last save, on a stop: without it the next start would decide
		// again every trigger since the last periodic save. The log is
		// still there; the decisions are bounded in time.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), lastDrainTimeout)
		defer cancel()
	}
	if err := a.drainAll(ctx); err != nil {
		return nil, fmt.Errorf("app: snapshot: triggers left undecided: %w", err)
	}
	b := binary.AppendUvarint(nil, uint64(len(a.published)))
	for _, doc := range a.published {
		b = binary.AppendUvarint(b, uint64(len(doc)))
		b = append(b, doc...)
	}
	return append(b, a.idx.Encode()...), nil
}

// lastDrainTimeout bounds the decisions of the last save on a stop.
const lastDrainTimeout = 20 * time.Second

// Restore implements checkpoint.View; on an error nothing is changed.
func (v *timersView) Restore(_ uint64, data []byte) error {
	a := (*App)(v)
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)) {
		return errors.New("app: snapshot: bad policy count")
	}
	data = data[k:]
	docs := make([][]byte, 0, n)
	pols := make([]*policy.Policy, 0, n)
	for range n {
		l, k := binary.Uvarint(data)
		if k <= 0 || l > uint64(len(data)-k) {
			return errors.New("app: snapshot: truncated policy document")
		}
		doc := data[k : k+int(l)]
		data = data[k+int(l):]
		pol, err := policy.Parse(doc)
		if err != nil {
			return fmt.Errorf("app: snapshot: published policy: %w", err)
		}
		docs, pols = append(docs, doc), append(pols, pol)
	}
	if err := a.idx.Restore(data); err != nil {
		return err
	}
	a.policies.Reset(a.base)
	for _, p := range pols {
		a.policies.Publish(p)
	}
	a.published = docs
	a.mu.Lock()
	clear(a.pending)
	a.mu.Unlock()
	a.reset = false
	return nil
}

// memSnapshots keeps snapshots in memory: how a Run after a Rebuild starts
// from where the Rebuild ended when there is no snapshot store.
type memSnapshots struct {
	mu    sync.Mutex
	snaps map[string]checkpoint.Snapshot
}

func (m *memSnapshots) Save(_ context.Context, name string, s checkpoint.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.snaps == nil {
		m.snaps = map[string]checkpoint.Snapshot{}
	}
	s.Data = append([]byte(nil), s.Data...)
	m.snaps[name] = s
	return nil
}

func (m *memSnapshots) Load(_ context.Context, name string) (checkpoint.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.snaps[name]
	if !ok {
		return checkpoint.Snapshot{}, checkpoint.ErrNoSnapshot
	}
	return s, nil
}

var (
	_ checkpoint.View  = (*timersView)(nil)
	_ checkpoint.Store = (*memSnapshots)(nil)
)
