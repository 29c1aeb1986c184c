// Package app runs the SLA clocks: it rebuilds the schedule of open clocks
// from the event log at start, follows the log for triggers, and fires due
// warnings and breaches. Every decision is taken from the complaint's own
// stream and appended with the version read, so two instances never write
// the same event twice: the loser of a race re-reads and finds nothing left
// to do.
package app

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	"github.com/closeloop/closeloop/services/slaclock/internal/timers"
)

// PolicyStream holds the SlaPolicyPublished events.
const PolicyStream = eventlog.StreamID("policy-sla")

// Partition says which complaints an instance owns: those whose id hashes
// to Index modulo Count.
type Partition struct{ Index, Count int }

// Owns reports whether the complaint belongs to this partition.
func (p Partition) Owns(complaintID string) bool {
	if p.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(complaintID))
	return int(h.Sum32()%uint32(p.Count)) == p.Index
}

// App is one instance of the sla-clock.
type App struct {
	store     eventlog.Store
	clk       clock.Clock
	log       *slog.Logger
	policies  *policy.Book
	calendars *calendar.Set
	part      Partition
	idx       *timers.Index

	stripes [64]sync.Mutex // one decision at a time per complaint
	fired   func(*ev.Envelope)
	rebuilt chan struct{}

	// The view kept by a checkpoint.Follower (view.go).
	base      *policy.Policy   // the configured policy, before any published one
	published [][]byte         // the documents of the policies learned from the log, in log order
	snaps     checkpoint.Store // nil: no snapshots
	rebuild   bool             // ignore the snapshot at the first start
	saveEvery int              // events between two snapshots
	started   bool             // a start-up has run (the rebuild switch is spent)
	reset     bool             // the view holds a previous start's state: empty it before applying
	runCtx    context.Context  // the context decisions made by the Follower's goroutine use
	follower  *checkpoint.Follower

	mu      sync.Mutex
	pending map[string]trigger // complaint -> its last trigger not yet decided (catch-up)
	lag     uint64             // catch-up: triggers this many events old are decided
	decided int                // complaints decided from pending triggers (drain)
	drainMu sync.Mutex         // one drain at a time
}

// New builds an instance; call Run (or Rebuild, then Run).
func New(store eventlog.Store, clk clock.Clock, log *slog.Logger, policies *policy.Book, cals *calendar.Set, part Partition) (*App, error) {
	if store == nil || clk == nil || policies == nil || cals == nil {
		return nil, errors.New("app: store, clock, policies and calendars are required")
	}
	if log == nil {
		log = slog.Default()
	}
	a := &App{store: store, clk: clk, log: log, policies: policies, calendars: cals, part: part, rebuilt: make(chan struct{}),
		base: policies.Current(), pending: map[string]trigger{}, saveEvery: saveEvery, lag: catchUpLag}
	a.idx = timers.New(a.env(time.Time{}).CalendarOf)
	return a, nil
}

// OnAppended registers a hook called with every event this instance appends
// (metrics, tests).
func (a *App) OnAppended(f func(*ev.Envelope)) { a.fired = f }

// Index is the schedule (for queries and measurements).
func (a *App) Index() *timers.Index { return a.idx }

func (a *App) env(now time.Time) domain.Env {
	return domain.Env{Now: now, Policies: a.policies, Calendars: a.calendars}
}

func (a *App) lock(id string) func() {
	h := fnv.New32a()
	h.Write([]byte(id))
	m := &a.stripes[h.Sum32()%uint32(len(a.stripes))]
	m.Lock()
	return m.Unlock
}

// apply folds one record into the schedule; for a trigger on an owned
// complaint it returns the complaint id and true.
func (a *App) apply(e *ev.Envelope) (string, bool) {
	stream := eventlog.StreamID(e.GetStreamId())
	if stream == PolicyStream {
		if p := e.GetSlaPolicyPublished(); p != nil {
			pol, err := policy.Parse(p.GetDocument())
			if err != nil {
				a.log.Error("slaclock: published policy does not parse; ignored", "version", p.GetPolicyVersion(), "err", err)
				return "", false
			}
			a.policies.Publish(pol)
			a.published = append(a.published, p.GetDocument())
		}
		return "", false
	}
	if stream.Kind() != eventlog.KindComplaint || !a.part.Owns(stream.ID()) {
		return "", false
	}
	if e.GetProducer() == domain.Producer {
		a.idx.Apply(e)
		return stream.ID(), false
	}
	return stream.ID(), domain.IsTrigger(e.GetType())
}

func (a *App) fire(ctx context.Context, due []timers.Due) {
	for _, d := range due {
		if err := a.handle(ctx, d.ComplaintID, d.Version); err != nil && ctx.Err() == nil {
			a.log.Error("slaclock: firing failed; retrying in 1s", "complaint", d.ComplaintID, "err", err)
			a.idx.Retry(d.ComplaintID, a.clk.Now().Add(time.Second), d.Version)
		}
	}
}

// Handle decides one complaint from its stream at the current time and
// appends what is missing; on a conflict it re-reads and decides again.
func (a *App) Handle(ctx context.Context, complaintID string) error {
	return a.handle(ctx, complaintID, 0)
}

// handle is Handle for a complaint whose stream is known to have reached
// version atLeast: a read that ends before it is refused, not decided on.
func (a *App) handle(ctx context.Context, complaintID string, atLeast uint64) error {
	err := a.decideAndAppend(ctx, complaintID, atLeast, func(st domain.State, env domain.Env) []*ev.Envelope {
		return domain.Decide(st, env)
	})
	if errors.Is(err, ErrNotReceived) {
		// Events published past intake: no clock to keep, nothing to retry.
		a.log.Warn("slaclock: complaint never received; no clocks", "complaint", complaintID, "err", err)
		return nil
	}
	return err
}

// ErrNotReceived: the complaint's stream does not start with
// ComplaintReceived (its events were published past intake).
var ErrNotReceived = errors.New("complaint never received")

// reapplyOps is the namespace of reapply operation ids.
var reapplyOps = uuid.MustParse("6f1d0c52-7c1e-4f43-9d55-2d8f0b7a1e10")

// Reapply moves a complaint's open clocks to the current policy version.
func (a *App) Reapply(ctx context.Context, complaintID, reason string) ([]string, error) {
	// The same request under the same policy version is the same operation:
	// a retry completes a reapply cut short by a crash and does nothing more.
	op := uuid.NewSHA1(reapplyOps, []byte(complaintID+"\x00"+a.policies.Current().Version+"\x00"+reason))
	var replaced []string
	err := a.decideAndAppend(ctx, complaintID, 0, func(st domain.State, env domain.Env) []*ev.Envelope {
		replaced = replaced[:0]
		out := domain.DecideReapply(st, env, reason, op.String())
		for _, e := range out {
			if c := e.GetSlaClockCancelled(); c != nil {
				replaced = append(replaced, c.GetClockId())
			}
		}
		return out
	})
	return replaced, err
}

// decideAndAppend decides from the complaint's stream and appends the
// result at the version read. On a conflict (another writer got in first,
// maybe cutting this append short: the log may store a batch one event at a
// time) it reads again and decides again: a cut append leaves its triggers
// pending, and the decision redoes only what its stored part left out.
func (a *App) decideAndAppend(ctx context.Context, complaintID string, atLeast uint64, decide func(domain.State, domain.Env) []*ev.Envelope) error {
	defer a.lock(complaintID)()
	stream := eventlog.ComplaintStream(complaintID)
	for attempt := 0; ; attempt++ {
		st, err := a.load(ctx, complaintID, time.Time{})
		if err != nil {
			return err
		}
		if err := eventlog.Reached(stream, st.Version, atLeast); err != nil {
			return fmt.Errorf("app: %w", err) // the caller retries
		}
		out := decide(st, a.env(a.clk.Now()))
		if len(out) == 0 {
			if a.part.Owns(complaintID) {
				a.idx.Set(&st)
			}
			return nil
		}
		if err := a.stamp(out, st); err != nil {
			return err
		}
		_, err = a.store.Append(ctx, stream, st.Version, out...)
		if errors.Is(err, eventlog.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("app: append to %s: %w", stream, err)
		}
		for _, e := range out {
			st = domain.Evolve(st, e)
			if a.fired != nil {
				a.fired(e)
			}
		}
		if a.part.Owns(complaintID) {
			a.idx.Set(&st)
		}
		return nil
	}
}

// stamp gives decided events their ids, and the correlation id of the
// trigger that caused them (a timer's event starts its own correlation).
func (a *App) stamp(out []*ev.Envelope, st domain.State) error {
	corr := map[string]string{}
	for _, p := range st.Pending {
		corr[p.GetEventId()] = p.GetCorrelationId()
	}
	for _, e := range out {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("app: event id: %w", err)
		}
		e.EventId = id.String()
		e.CorrelationId = corr[e.GetCausationId()]
		if e.CorrelationId == "" {
			e.CorrelationId = e.EventId
		}
	}
	return nil
}

// load folds a complaint's stream; a non-zero asOf stops at the events
// recorded after it.
func (a *App) load(ctx context.Context, complaintID string, asOf time.Time) (domain.State, error) {
	recs, err := a.store.ReadStream(ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		return domain.State{}, fmt.Errorf("app: read complaint %s: %w", complaintID, err)
	}
	if len(recs) > 0 && recs[0].Event.GetComplaintReceived() == nil {
		return domain.State{}, fmt.Errorf("app: complaint %s: %w: its stream starts with %s", complaintID, ErrNotReceived, recs[0].Event.GetType())
	}
	st := domain.State{ComplaintID: complaintID}
	for _, r := range recs {
		if !asOf.IsZero() && recordedAt(r.Event).After(asOf) {
			break
		}
		st = domain.Evolve(st, r.Event)
	}
	return st, nil
}

func recordedAt(e *ev.Envelope) time.Time {
	if e.GetRecordedAt() != nil {
		return e.GetRecordedAt().AsTime()
	}
	return e.GetOccurredAt().AsTime()
}
