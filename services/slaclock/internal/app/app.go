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
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
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
	w         *kernel.Writer // every write goes through it: one span per decision
	clk       clock.Clock
	log       *slog.Logger
	policies  *policy.Book
	calendars *liveCalendars // the configured calendars with the years published on the log
	part      Partition
	idx       *timers.Index

	stripes [64]sync.Mutex // one decision at a time per complaint
	fired   func(*ev.Envelope)
	rebuilt chan struct{}

	// The view kept by a checkpoint.Follower (view.go).
	base       *policy.Policy   // the configured policy, before any published one
	published  [][]byte         // the documents of the policies learned from the log, in log order
	snaps      checkpoint.Store // nil: no snapshots
	rebuild    bool             // ignore the snapshot at the first start
	saveEvery  int              // events between two snapshots
	exactSaves bool             // saveEvery exactly, not spaced by cost (UseSnapshots)
	started    bool             // a start-up has run (the rebuild switch is spent)
	reset      bool             // the view holds a previous start's state: empty it before applying
	runCtx     context.Context  // the context decisions made by the Follower's goroutine use
	follower   *checkpoint.Follower

	verifier *eventlog.Verifier // checks what the view applies (nil: none)

	mu      sync.Mutex
	pending map[string]trigger // complaint -> its last trigger not yet decided
	lag     uint64             // catch-up: triggers this many events old are decided
	decided int                // complaints decided from pending triggers (drain)
	drainMu sync.Mutex         // one drain at a time
	noted   chan struct{}      // a trigger was noted while following: wake the decider
}

// New builds an instance; call Run (or Rebuild, then Run). Its decisions
// are spans of tp (nil: none recorded).
func New(store eventlog.Store, clk clock.Clock, log *slog.Logger, policies *policy.Book, cals *calendar.Set, part Partition, tp trace.TracerProvider) (*App, error) {
	if store == nil || clk == nil || policies == nil || cals == nil {
		return nil, errors.New("app: store, clock, policies and calendars are required")
	}
	if log == nil {
		log = slog.Default()
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	w, err := kernel.NewWriter(store, domain.Producer, clk, tp)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	a := &App{store: store, w: w, clk: clk, log: log, policies: policies, calendars: newLiveCalendars(cals), part: part, rebuilt: make(chan struct{}),
		base: policies.Current(), pending: map[string]trigger{}, saveEvery: saveEvery, lag: catchUpLag, noted: make(chan struct{}, 1)}
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
	if p := e.GetCalendarYearPublished(); p != nil && stream.Kind() == eventlog.KindPolicy {
		a.applyCalendarYear(p)
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
		name := "FireDueClocks"
		if d.Retry {
			name = "RetryDecision"
		}
		err := a.handle(traced(ctx, d.Trace), name, d.ComplaintID, kernel.Cause{Version: d.Version})
		if err != nil && ctx.Err() == nil {
			a.log.Error("slaclock: firing failed; retrying in 1s", "complaint", d.ComplaintID, "err", err)
			a.idx.Retry(d.ComplaintID, a.clk.Now().Add(time.Second), d.Version, d.Trace)
		}
	}
}

// traced is ctx continuing the trace tr (kernel.Traced): a decision the
// index or the catch-up starts by itself is in the trace of its cause.
func traced(ctx context.Context, tr timers.Trace) context.Context {
	return kernel.Traced(ctx, &ev.Envelope{Traceparent: tr.Traceparent()})
}

// Handle decides one complaint from its stream at the current time and
// appends what is missing.
func (a *App) Handle(ctx context.Context, complaintID string) error {
	return a.handle(ctx, "DecideClocks", complaintID, kernel.Cause{})
}

// handle decides a complaint's clocks for cause: what its triggers not
// yet handled call for, and what fell due.
func (a *App) handle(ctx context.Context, name, complaintID string, cause kernel.Cause) error {
	err := a.decide(ctx, name, complaintID, cause, func(st domain.State, env domain.Env) []*ev.Envelope {
		return domain.Decide(st, env)
	})
	if errors.Is(err, kernel.ErrNotReceived) {
		// Events published past intake: no clock to keep, nothing to retry.
		a.log.Warn("slaclock: complaint never received; no clocks", "complaint", complaintID, "err", err)
		return nil
	}
	return err
}

// reapplyOps is the namespace of reapply operation ids.
var reapplyOps = uuid.MustParse("6f1d0c52-7c1e-4f43-9d55-2d8f0b7a1e10")

// Reapply moves a complaint's open clocks to the current policy version;
// by is who asks (empty: the service).
func (a *App) Reapply(ctx context.Context, complaintID, reason, by string) ([]string, error) {
	// The same request under the same policy version is the same operation:
	// a retry completes a reapply cut short by a crash and does nothing more.
	op := uuid.NewSHA1(reapplyOps, []byte(complaintID+"\x00"+a.policies.Current().Version+"\x00"+reason))
	var replaced []string
	err := a.decide(ctx, "ReapplyPolicy", complaintID, kernel.Cause{Actor: by}, func(st domain.State, env domain.Env) []*ev.Envelope {
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

// decide runs one decision on a complaint's stream through the kernel
// (read, check the read reached the cause, decide, append at the version
// read, and on a conflict read and decide again: a cut append leaves its
// triggers pending, and the decision redoes only what its stored part left
// out), then puts the complaint's clocks back in the schedule.
func (a *App) decide(ctx context.Context, name, complaintID string, cause kernel.Cause, decide func(domain.State, domain.Env) []*ev.Envelope) error {
	defer a.lock(complaintID)()
	// One append of sla-clock holds the events of several causes (the
	// triggers handled, the clocks that fell due), each with its own
	// cause, correlation, time and the policy and calendar versions its
	// clock started under; the redo of an append cut short depends on
	// them (domain.State.RedoFrom, Clock.StartedBy).
	var decided []*ev.Envelope
	res, err := kernel.Execute(ctx, a.w, kernel.Command[domain.State]{
		Name: name, Stream: eventlog.ComplaintStream(complaintID), ComplaintID: complaintID, Cause: cause,
		Fold: func(recs []eventlog.Record) (domain.State, error) { return fold(complaintID, recs, time.Time{}) },
		Decide: func(st domain.State, now time.Time) ([]proto.Message, error) {
			decided = decide(st, a.env(now))
			msgs := make([]proto.Message, len(decided))
			for i, e := range decided {
				msgs[i] = eventlog.Payload(e)
			}
			return msgs, nil
		},
		StampEach: func(_ domain.State, envs []*ev.Envelope) {
			for i, e := range envs {
				d := decided[i]
				e.OccurredAt, e.PolicyVersion, e.CalendarVersion = d.GetOccurredAt(), d.GetPolicyVersion(), d.GetCalendarVersion()
				if d.GetCausationId() != "" {
					e.CausationId = d.GetCausationId()
				}
				if d.GetCorrelationId() != "" {
					e.CorrelationId = d.GetCorrelationId()
				}
			}
		},
	})
	if err != nil {
		return fmt.Errorf("app: %s: %w", name, err)
	}
	st := res.State
	for _, e := range res.Events {
		st = domain.Evolve(st, e)
		if a.fired != nil {
			a.fired(e)
		}
	}
	st.Version = res.Version
	if a.part.Owns(complaintID) {
		a.idx.Set(&st)
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
	return fold(complaintID, recs, asOf)
}

// fold folds a complaint's records up to asOf (zero: all of them). A
// stream that does not start with ComplaintReceived is refused
// (kernel.ErrNotReceived); an empty one is a complaint with no clocks.
func fold(complaintID string, recs []eventlog.Record, asOf time.Time) (domain.State, error) {
	if len(recs) > 0 {
		if err := kernel.Received(recs); err != nil {
			return domain.State{}, fmt.Errorf("complaint %s: %w: its stream starts with %s", complaintID, err, recs[0].Event.GetType())
		}
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
