package app

import (
	"container/heap"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// ViewName is the name of the view's snapshot (libs/checkpoint).
const ViewName = "routing-view"

// ViewFormat is the encoding of the view's snapshot (view_snapshot.go);
// bump it when its meaning changes.
const ViewFormat = 2

// pruneGrace is how long, beyond the repeat window, a closed complaint
// stays in the view: the reaction to an acceptance may run behind the log
// the view follows (a bus backlog), and still needs every complaint that
// was within the window of that acceptance.
const pruneGrace = 30 * 24 * time.Hour

// View is routing's own projection of the whole log, kept by every instance
// (it follows the log from the start, so instances sharing the bus's work
// still each see everything): team rosters, who owns what (open load and
// idle time), past complaints by customer_ref for repeat detection, and the
// complaints waiting for an on-shift member. It implements domain.Directory
// and checkpoint.View: a checkpoint.Follower applies the log to it.
//
// Closed and withdrawn complaints leave the view once their acceptance is
// older, in log time, than the repeat window and pruneGrace: nothing it
// answers needs them then, and the view no longer grows with history.
type View struct {
	policy *domain.Policy
	keep   time.Duration // repeat window + pruneGrace

	mu       sync.RWMutex
	position uint64
	advanced chan struct{} // closed and replaced whenever position moves
	stopped  chan struct{} // closed when Run returns
	stopOnce sync.Once
	// logTime is the latest RecordedAt applied: the view's clock, so that
	// pruning depends on the log alone and a restored and caught-up view
	// equals one rebuilt from the start.
	logTime    time.Time
	teams      map[string]*domain.Team
	complaints map[string]*tracked
	byCustomer map[string][]string // ids in order of acceptance
	load       map[string]int      // open owned complaints per member
	lastGiven  map[string]time.Time
	// waiting holds, per severity, the complaints classified with no owner.
	waiting map[eventsv1.Severity]map[string]struct{}
	// ended holds the closed and withdrawn complaints, earliest acceptance
	// first, to be pruned.
	ended endedQueue
}

// tracked is what the view keeps of one complaint (no personal data).
// Its strings are clones: a record's strings share its stored bytes,
// which a string kept for months would keep alive.
type tracked struct {
	id                              string // the key in complaints, shared by the other indexes
	customerRef, fingerprint, model string
	acceptedPos                     uint64
	acceptedAt                      time.Time
	withdrawn                       bool
	closed                          bool
	owner                           string
	open                            bool // owned and not resolved, closed or withdrawn
	severity                        eventsv1.Severity
	waiting                         bool // classified, no owner yet
}

// ended: no event can bring the complaint back to handling. A resolved
// complaint is not ended: a dissatisfied survey reopens it (followup).
func (c *tracked) ended() bool { return c.closed || c.withdrawn }

// NewView returns an empty view.
func NewView(p *domain.Policy) *View {
	v := &View{
		policy: p, keep: time.Duration(p.RepeatWindowDays)*24*time.Hour + pruneGrace,
		advanced: make(chan struct{}), stopped: make(chan struct{}),
	}
	v.reset()
	return v
}

func (v *View) reset() {
	v.logTime = time.Time{}
	v.teams, v.complaints = map[string]*domain.Team{}, map[string]*tracked{}
	v.byCustomer, v.load, v.lastGiven = map[string][]string{}, map[string]int{}, map[string]time.Time{}
	v.waiting = map[eventsv1.Severity]map[string]struct{}{}
	v.ended = nil
}

// Run has f, a checkpoint.Follower of v, restore, catch up and follow the
// log until ctx is done. After it returns, WaitFor fails with
// ErrViewStopped. A view runs once.
func (v *View) Run(ctx context.Context, f *checkpoint.Follower) error {
	defer v.stopOnce.Do(func() { close(v.stopped) })
	return f.Run(ctx)
}

// ErrViewStopped: the view no longer follows the log.
var ErrViewStopped = errors.New("routing view stopped following the log")

// Position is the log position of the last event applied.
func (v *View) Position() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.position
}

// WaitFor returns once the view has applied the log up to pos, so a
// decision on an event sees everything logged before it.
func (v *View) WaitFor(ctx context.Context, pos uint64) error {
	for {
		v.mu.RLock()
		at, ch := v.position, v.advanced
		v.mu.RUnlock()
		if at >= pos {
			return nil
		}
		select {
		case <-ch:
		case <-v.stopped:
			return ErrViewStopped
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// advance moves the position and wakes WaitFor; v.mu is held.
func (v *View) advance(pos uint64) {
	v.position = pos
	close(v.advanced)
	v.advanced = make(chan struct{})
}

// Apply implements checkpoint.View: it applies one record; records at or
// before the last position are ignored (idempotent).
func (v *View) Apply(_ context.Context, r eventlog.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Position <= v.position {
		return nil
	}
	defer v.advance(r.Position)
	e := r.Event
	if at := e.GetRecordedAt().AsTime(); e.GetRecordedAt() != nil && at.After(v.logTime) {
		v.logTime = at
	}
	// After every record, not only when log time moves: in a log written
	// out of time order (imported history, the scale harness) log time is
	// at its end early on, and complaints that end later are already past
	// the window when they end.
	defer v.prune()
	sid := eventlog.StreamID(e.GetStreamId())
	switch sid.Kind() {
	case eventlog.KindTeam:
		t := v.teams[sid.ID()]
		if t == nil {
			t = domain.NewTeam(sid.ID())
			v.teams[sid.ID()] = t
		}
		t.Evolve(e)
		return nil
	case eventlog.KindComplaint:
	default:
		return nil
	}
	c := v.complaints[e.GetComplaintId()]
	if c == nil {
		if _, received := e.GetPayload().(*eventsv1.Envelope_ComplaintReceived); !received {
			// A complaint never received, or one pruned: neither has load,
			// history or a place on a waiting list any more.
			return nil
		}
		c = &tracked{id: strings.Clone(e.GetComplaintId())}
		v.complaints[c.id] = c
	}
	id := c.id
	owner, open, ended := c.owner, c.open, c.ended()
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		c.customerRef = strings.Clone(p.ComplaintReceived.GetCustomer().GetCustomerRef())
		c.fingerprint = strings.Clone(p.ComplaintReceived.GetProblemFingerprint())
		c.model = strings.Clone(p.ComplaintReceived.GetProduct().GetModel())
	case *eventsv1.Envelope_ComplaintAccepted:
		if c.acceptedPos == 0 && c.customerRef != "" {
			v.byCustomer[c.customerRef] = append(v.byCustomer[c.customerRef], id)
		}
		c.acceptedPos, c.acceptedAt = r.Position, e.GetOccurredAt().AsTime()
	case *eventsv1.Envelope_ComplaintClassified:
		v.setWaiting(id, c, c.owner == "" && !c.withdrawn, p.ComplaintClassified.GetSeverity())
	case *eventsv1.Envelope_ComplaintAssigned:
		owner, open = strings.Clone(p.ComplaintAssigned.GetOwner()), true
		v.setWaiting(id, c, false, c.severity)
		v.lastGiven[owner] = e.GetOccurredAt().AsTime()
	case *eventsv1.Envelope_ComplaintWithdrawn:
		c.withdrawn, open = true, false
		v.setWaiting(id, c, false, c.severity)
	case *eventsv1.Envelope_ComplaintResolved:
		open = false
	case *eventsv1.Envelope_ComplaintClosed:
		c.closed, open = true, false
	case *eventsv1.Envelope_ComplaintReopened:
		// Follows a resolution; routing refuses every command on a closed
		// complaint, and followup reopens only before closing.
		c.closed, open = false, owner != ""
	}
	if c.open && c.owner != "" {
		v.addLoad(c.owner, -1)
	}
	c.owner, c.open = owner, open
	if c.open && c.owner != "" {
		v.addLoad(c.owner, 1)
	}
	if c.ended() && !ended {
		heap.Push(&v.ended, endedEntry{id: id, acceptedAt: c.acceptedAt})
	}
	return nil
}

func (v *View) addLoad(member string, n int) {
	if v.load[member] += n; v.load[member] == 0 {
		delete(v.load, member)
	}
}

// setWaiting keeps c.waiting, c.severity and the waiting sets in step.
func (v *View) setWaiting(id string, c *tracked, waiting bool, sev eventsv1.Severity) {
	if c.waiting {
		delete(v.waiting[c.severity], id)
	}
	c.waiting, c.severity = waiting, sev
	if waiting {
		if v.waiting[sev] == nil {
			v.waiting[sev] = map[string]struct{}{}
		}
		v.waiting[sev][id] = struct{}{}
	}
}

// prune drops the ended complaints accepted longer than the repeat window
// and pruneGrace before the log time; v.mu is held.
func (v *View) prune() {
	before := v.keptSince()
	for len(v.ended) > 0 && v.ended[0].acceptedAt.Before(before) {
		x := heap.Pop(&v.ended).(endedEntry)
		c := v.complaints[x.id]
		if c == nil || !c.ended() {
			continue // reopened since, or queued twice
		}
		v.forget(x.id, c)
	}
}

// forget removes a complaint from every index of the view.
func (v *View) forget(id string, c *tracked) {
	if c.open && c.owner != "" {
		v.addLoad(c.owner, -1) // not reached while only ended complaints are pruned
	}
	v.setWaiting(id, c, false, c.severity)
	if ids := v.byCustomer[c.customerRef]; c.acceptedPos != 0 && ids != nil {
		if ids = slices.DeleteFunc(ids, func(x string) bool { return x == id }); len(ids) == 0 {
			delete(v.byCustomer, c.customerRef)
		} else {
			v.byCustomer[c.customerRef] = ids
		}
	}
	delete(v.complaints, id)
}

// keptSince: closed and withdrawn complaints accepted before it may have
// been pruned; v.mu is held.
func (v *View) keptSince() time.Time {
	if v.logTime.IsZero() {
		return time.Time{}
	}
	return v.logTime.Add(-v.keep)
}

// Complete tells whether Earlier still holds every complaint within window
// before acceptedAt: false when the reaction runs more than pruneGrace
// behind the log the view follows.
func (v *View) Complete(acceptedAt time.Time, window time.Duration) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return !acceptedAt.Add(-window).Before(v.keptSince())
}

// Team implements domain.Directory: a copy of the roster, or nil.
func (v *View) Team(id string) *domain.Team {
	v.mu.RLock()
	defer v.mu.RUnlock()
	t := v.teams[id]
	if t == nil {
		return nil
	}
	return &domain.Team{ID: t.ID, Version: t.Version, Members: maps.Clone(t.Members)}
}

// WithRole implements domain.Directory.
func (v *View) WithRole(r domain.Role) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for _, t := range v.teams {
		out = append(out, t.WithRole(r)...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Load reports a member's open load and when they were last given a complaint.
func (v *View) Load(member string) domain.Workload {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return domain.Workload{Open: v.load[member], LastAssigned: v.lastGiven[member]}
}

// Earlier lists the customer's complaints about the same product or problem
// accepted before the one accepted at position pos (and no earlier than the
// window before acceptedAt), oldest first. Withdrawn complaints do not count.
func (v *View) Earlier(c *domain.Complaint, acceptedPos uint64, window time.Duration) []string {
	if c.CustomerRef == "" {
		return nil
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for _, id := range v.byCustomer[c.CustomerRef] {
		t := v.complaints[id]
		if id == c.ID || t.withdrawn || t.acceptedPos == 0 || t.acceptedPos >= acceptedPos {
			continue
		}
		sameFingerprint := c.Fingerprint != "" && t.fingerprint == c.Fingerprint
		sameModel := c.ProductModel != "" && t.model == c.ProductModel
		if (sameFingerprint || sameModel) && c.AcceptedAt.Sub(t.acceptedAt) <= window {
			out = append(out, id)
		}
	}
	return out
}

// Waiting lists the complaints of a severity still waiting for an owner.
func (v *View) Waiting(sev eventsv1.Severity) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.Sorted(maps.Keys(v.waiting[sev]))
}

// endedQueue is a min-heap of ended complaints by acceptance time (then
// id, so that the order does not depend on how the heap was built).
type endedQueue []endedEntry

type endedEntry struct {
	id         string
	acceptedAt time.Time
}

func (q endedQueue) Len() int { return len(q) }
func (q endedQueue) Less(i, j int) bool {
	if !q[i].acceptedAt.Equal(q[j].acceptedAt) {
		return q[i].acceptedAt.Before(q[j].acceptedAt)
	}
	return q[i].id < q[j].id
}
func (q endedQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *endedQueue) Push(x any)   { *q = append(*q, x.(endedEntry)) }
func (q *endedQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
