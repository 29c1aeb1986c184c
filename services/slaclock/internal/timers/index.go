// Package timers keeps every open clock of the complaints an instance owns
// in a compact index with a min-heap of each complaint's next due instant,
// and fires complaints as they fall due on the injected clock. It is a
// schedule, not the truth: a fired complaint is re-read from its stream and
// decided there, then put back with Set.
package timers

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
)

// sched is one open clock in 48 bytes: no strings, no pointers.
type sched struct {
	deadline int64 // unix ns; the remaining budget (ns) while paused
	budget   int64
	seq      uint16 // the n of "<target>-<n>"
	target   uint8
	flags    uint8 // flagPaused, flagSampled
	warned   uint8 // bit i: warns[warnSet][i] has fired
	warnSet  uint8
	cal      uint16 // cals[cal]; 0 is calendar time
	// The trace of the event that started or last changed the clock
	// (zero: none): its firing continues it.
	traceID [16]byte
	spanID  [8]byte
}

const (
	flagPaused uint8 = 1 << iota
	flagSampled
)

func (c *sched) paused() bool { return c.flags&flagPaused != 0 }

func (c *sched) setPaused(p bool) {
	c.flags &^= flagPaused
	if p {
		c.flags |= flagPaused
	}
}

func (c *sched) trace() Trace {
	return Trace{TraceID: c.traceID, SpanID: c.spanID, Sampled: c.flags&flagSampled != 0}
}

func (c *sched) setTrace(t Trace) {
	c.traceID, c.spanID = t.TraceID, t.SpanID
	c.flags &^= flagSampled
	if t.Sampled {
		c.flags |= flagSampled
	}
}

type key [16]byte

type slot struct {
	id      key
	version uint32 // last stream version applied: older events are ignored
	retry   bool   // a decision failed and is retried at next (Retry); cleared by Set
	next    int64  // unix ns of the next due instant; 0: none armed
	clocks  []sched
}

type item struct {
	due  int64
	slot uint32
}

type dueHeap []item

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(item)) }
func (h *dueHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// CalendarOf resolves a clock's calendar (domain.Env.CalendarOf).
type CalendarOf func(business bool, id string) *calendar.Calendar

// Index is the schedule. Safe for concurrent use.
type Index struct {
	calOf CalendarOf

	mu    sync.Mutex
	slots []slot
	free  []uint32
	byKey map[key]uint32
	odd   map[key]string // complaint ids that are not canonical UUIDs
	due   dueHeap        // may hold stale items: an item counts only if it matches its slot's next
	// retries are the traces of the decisions a pending retry redoes
	// (rare: kept aside rather than in every slot).
	retries map[key]Trace
	open    int
	cals    []string // interned calendar ids; [0] = "" (calendar time)
	warns   [][]uint32
	wake    chan struct{}
}

// New returns an empty index.
func New(calOf CalendarOf) *Index {
	return &Index{calOf: calOf, byKey: map[key]uint32{}, odd: map[key]string{}, retries: map[key]Trace{}, cals: []string{""}, wake: make(chan struct{}, 1)}
}

func keyOf(id string) (key, bool) {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		return key(u), true
	}
	h := sha256.Sum256([]byte(id))
	return key(h[:16]), false
}

func (x *Index) idOf(k key) string {
	if s, ok := x.odd[k]; ok {
		return s
	}
	return uuid.UUID(k).String()
}

func (x *Index) intern(cal string, warn []uint32) (uint16, uint8) {
	ci := slices.Index(x.cals, cal)
	if ci < 0 {
		ci = len(x.cals)
		x.cals = append(x.cals, cal)
	}
	wi := slices.IndexFunc(x.warns, func(w []uint32) bool { return slices.Equal(w, warn) })
	if wi < 0 {
		wi = len(x.warns)
		x.warns = append(x.warns, slices.Clone(warn))
	}
	return uint16(ci), uint8(wi)
}

// Open is the number of open (running or paused) clocks in the index.
func (x *Index) Open() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.open
}

// Complaints is the number of complaints with open clocks.
func (x *Index) Complaints() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byKey)
}

func (x *Index) slotFor(id string, create bool) (uint32, bool) {
	k, canonical := keyOf(id)
	if canonical {
		id = ""
	}
	return x.slotForKey(k, id, create)
}

// slotForKey is slotFor with the key computed; odd is the id when it is
// not a canonical UUID, else "".
func (x *Index) slotForKey(k key, odd string, create bool) (uint32, bool) {
	if i, ok := x.byKey[k]; ok {
		return i, true
	}
	if !create {
		return 0, false
	}
	var i uint32
	if n := len(x.free); n > 0 {
		i, x.free = x.free[n-1], x.free[:n-1]
	} else {
		i = uint32(len(x.slots))
		x.slots = append(x.slots, slot{})
	}
	x.slots[i] = slot{id: k}
	x.byKey[k] = i
	if odd != "" {
		x.odd[k] = odd
	}
	return i, true
}

func (x *Index) release(i uint32) {
	s := &x.slots[i]
	x.open -= len(s.clocks)
	delete(x.byKey, s.id)
	delete(x.odd, s.id)
	delete(x.retries, s.id)
	*s = slot{}
	x.free = append(x.free, i)
}

func toSched(c *domain.Clock, calIdx uint16, warnIdx uint8, warns []uint32) sched {
	seq, _ := strconv.Atoi(c.ID[strings.LastIndexByte(c.ID, '-')+1:])
	s := sched{budget: int64(c.Budget), seq: uint16(seq), target: uint8(c.Target), cal: calIdx, warnSet: warnIdx}
	s.setTrace(ParseTrace(c.LastChange.Traceparent))
	if c.Status == domain.Paused {
		s.setPaused(true)
		s.deadline = int64(c.Remaining)
	} else {
		s.deadline = c.Deadline.UnixNano()
	}
	for b, p := range warns {
		if slices.Contains(c.Warned, p) {
			s.warned |= 1 << b
		}
	}
	return s
}

// clock rebuilds the domain view of a compact clock (without its id).
func (x *Index) clock(s *sched) domain.Clock {
	c := domain.Clock{
		Target:       ev.SlaTarget(s.target),
		Status:       domain.Running,
		Budget:       time.Duration(s.budget),
		Business:     s.cal != 0,
		CalendarID:   x.cals[s.cal],
		WarnPercents: x.warns[s.warnSet],
		Deadline:     time.Unix(0, s.deadline).UTC(),
	}
	if s.paused() {
		c.Status, c.Deadline, c.Remaining = domain.Paused, time.Time{}, time.Duration(s.deadline)
	}
	for b, p := range c.WarnPercents {
		if s.warned&(1<<b) != 0 {
			c.Warned = append(c.Warned, p)
		}
	}
	return c
}

// rearm recomputes a slot's next due instant and pushes it.
func (x *Index) rearm(i uint32) {
	s := &x.slots[i]
	if len(s.clocks) == 0 && !s.retry {
		x.release(i)
		return
	}
	next := x.nextDue(s)
	if s.retry && s.next != 0 && (next == 0 || s.next < next) {
		return // a pending retry comes first; it must not be pushed back
	}
	if next == s.next {
		return
	}
	s.next = next
	if next == 0 {
		return
	}
	earliest := len(x.due) == 0 || next < x.due[0].due
	heap.Push(&x.due, item{next, i})
	if earliest {
		x.signal()
	}
}

// nextDue is the earliest instant a slot's clocks fall due (0: none).
func (x *Index) nextDue(s *slot) int64 {
	next, _ := x.firstDue(s)
	return next
}

// firstDue is nextDue and the clock that falls due then (-1: none).
func (x *Index) firstDue(s *slot) (int64, int) {
	var next int64
	first := -1
	for j := range s.clocks {
		c := x.clock(&s.clocks[j])
		if due, _, ok := c.NextDue(x.calOf(c.Business, c.CalendarID)); ok && (next == 0 || due.UnixNano() < next) {
			next, first = due.UnixNano(), j
		}
	}
	return next, first
}

// signal wakes the runner: the earliest due instant moved earlier.
func (x *Index) signal() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Set replaces a complaint's clocks with the open ones of a freshly decided state.
func (x *Index) Set(st *domain.State) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, _ := x.slotFor(st.ComplaintID, true)
	s := &x.slots[i]
	x.open -= len(s.clocks)
	s.clocks = s.clocks[:0]
	s.version, s.retry = uint32(st.Version), false
	delete(x.retries, s.id)
	for j := range st.Clocks {
		c := &st.Clocks[j]
		if !c.Open() {
			continue
		}
		ci, wi := x.intern(calKey(c.Business, c.CalendarID), c.WarnPercents)
		s.clocks = append(s.clocks, toSched(c, ci, wi, c.WarnPercents))
	}
	x.open += len(s.clocks)
	s.next = -1 // force a push
	x.rearm(i)
}

// calKey is the interned calendar of a clock: "" is calendar time, so
// business time without a calendar id is "-" (CalendarOf falls back to the
// default calendar for it).
func calKey(business bool, id string) string {
	switch {
	case !business:
		return ""
	case id == "":
		return "-"
	}
	return id
}

// Apply folds one event this service wrote into the schedule: how the index
// is rebuilt from the log at start without keeping whole complaints.
func (x *Index) Apply(e *ev.Envelope) {
	switch p := eventlog.Payload(e).(type) {
	case *ev.SlaClockStarted:
		x.mu.Lock()
		defer x.mu.Unlock()
		i, _ := x.slotFor(e.GetComplaintId(), true)
		if !x.fresh(i, e) {
			return
		}
		ci, wi := x.intern(calKey(p.GetBusinessTime(), p.GetCalendarId()), p.GetWarnPercents())
		c := domain.Clock{ID: p.GetClockId(), Target: p.GetTarget(), Status: domain.Running, Deadline: p.GetDeadline().AsTime(), Budget: p.GetBudget().AsDuration(),
			Warned: p.GetPastWarnings(), LastChange: domain.Change{Traceparent: e.GetTraceparent()}}
		s := &x.slots[i]
		s.clocks = append(s.clocks, toSched(&c, ci, wi, p.GetWarnPercents()))
		x.open++
		x.rearm(i)
	case *ev.SlaClockRetermed:
		// Only an open clock is in the index; a breached or met one stays out.
		x.update(e, p.GetClockId(), func(s *sched) bool {
			*s = x.termed(p.GetClockId(), p.GetTarget(), p.GetTerms(), e)
			return true
		})
	case *ev.SlaBreachWithdrawn:
		if !p.GetReopened() {
			return // the clock had been met: it stays out
		}
		x.mu.Lock()
		defer x.mu.Unlock()
		i, _ := x.slotFor(e.GetComplaintId(), true)
		if !x.fresh(i, e) {
			return
		}
		s := &x.slots[i]
		s.clocks = append(s.clocks, x.termed(p.GetClockId(), p.GetTarget(), p.GetTerms(), e))
		x.open++
		x.rearm(i)
	case *ev.SlaClockPaused:
		x.update(e, p.GetClockId(), func(s *sched) bool {
			s.setPaused(true)
			s.deadline = int64(p.GetRemaining().AsDuration())
			return true
		})
	case *ev.SlaClockResumed:
		x.update(e, p.GetClockId(), func(s *sched) bool {
			s.setPaused(false)
			s.deadline = p.GetNewDeadline().AsTime().UnixNano()
			return true
		})
	case *ev.SlaWarning:
		x.update(e, p.GetClockId(), func(s *sched) bool {
			if b := slices.Index(x.warns[s.warnSet], p.GetThresholdPercent()); b >= 0 {
				s.warned |= 1 << b
			}
			return true
		})
	case *ev.SlaBreached, *ev.SlaMet, *ev.SlaClockCancelled:
		id := p.(interface{ GetClockId() string }).GetClockId()
		x.update(e, id, func(*sched) bool { return false })
	}
}

// termed is the compact clock that terms describe (x.mu held).
func (x *Index) termed(id string, target ev.SlaTarget, t *ev.SlaClockTerms, e *ev.Envelope) sched {
	ci, wi := x.intern(calKey(t.GetBusinessTime(), t.GetCalendarId()), t.GetWarnPercents())
	c := domain.Clock{ID: id, Target: target, Status: domain.Running, Deadline: t.GetDeadline().AsTime(), Budget: t.GetBudget().AsDuration(),
		Warned: t.GetWarned(), LastChange: domain.Change{Traceparent: e.GetTraceparent()}}
	if t.GetPaused() {
		c.Status, c.Remaining = domain.Paused, t.GetRemaining().AsDuration()
	}
	return toSched(&c, ci, wi, t.GetWarnPercents())
}

// fresh reports whether e is newer than what slot i has applied, and
// records it as applied: the log delivers again what Set already holds.
func (x *Index) fresh(i uint32, e *ev.Envelope) bool {
	s := &x.slots[i]
	if v := uint32(e.GetVersion()); v != 0 {
		if v <= s.version {
			return false
		}
		s.version = v
	}
	return true
}

// update changes one clock; f returns false to drop it.
func (x *Index) update(e *ev.Envelope, clockID string, f func(*sched) bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, ok := x.slotFor(e.GetComplaintId(), false)
	if !ok || !x.fresh(i, e) {
		return
	}
	cut := strings.LastIndexByte(clockID, '-')
	seq, _ := strconv.Atoi(clockID[cut+1:])
	name := clockID[:max(cut, 0)]
	s := &x.slots[i]
	for j := range s.clocks {
		c := &s.clocks[j]
		if int(c.seq) != seq || policy.TargetName(ev.SlaTarget(c.target)) != name {
			continue
		}
		if !f(c) {
			s.clocks = slices.Delete(s.clocks, j, j+1)
			x.open--
		} else {
			c.setTrace(ParseTrace(e.GetTraceparent())) // the clock's last change
		}
		break
	}
	x.rearm(i)
}

// Drop forgets a complaint (it left this instance's partition).
func (x *Index) Drop(complaintID string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if i, ok := x.slotFor(complaintID, false); ok {
		x.release(i)
	}
}

// Next is the earliest armed due instant.
func (x *Index) Next() (time.Time, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropStale()
	if len(x.due) == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, x.due[0].due).UTC(), true
}

func (x *Index) dropStale() {
	for len(x.due) > 0 {
		top := x.due[0]
		if int(top.slot) < len(x.slots) && x.slots[top.slot].next == top.due && top.due != 0 {
			return
		}
		heap.Pop(&x.due)
	}
}

// TakeDue removes and returns the complaints due at or before now, disarming
// them until the caller decides and calls Set (or Retry).
func (x *Index) TakeDue(now time.Time) []Due {
	x.mu.Lock()
	defer x.mu.Unlock()
	var out []Due
	n := now.UnixNano()
	for {
		x.dropStale()
		if len(x.due) == 0 || x.due[0].due > n {
			return out
		}
		it := heap.Pop(&x.due).(item)
		s := &x.slots[it.slot]
		s.next = 0
		d := Due{ComplaintID: x.idOf(s.id), At: time.Unix(0, it.due).UTC(), Version: uint64(s.version), Retry: s.retry}
		if s.retry {
			d.Trace = x.retries[s.id]
		} else if _, j := x.firstDue(s); j >= 0 {
			d.Trace = s.clocks[j].trace()
		}
		out = append(out, d)
	}
}

// Due is a complaint whose next warning or breach fell due.
type Due struct {
	ComplaintID string
	At          time.Time
	// Version is the stream version known for the complaint: a decision
	// must read at least that far.
	Version uint64
	// Retry: a failed decision is redone (Retry), not a clock fired.
	Retry bool
	// Trace is the trace the decision continues: that of the event that
	// started or last changed the clock falling due, or the retried
	// decision's.
	Trace Trace
}

// Retry arms a complaint at an instant (after a failed decision), also one
// with no clock yet (its first trigger failed). version is the stream
// version the decision must see at least (the trigger's); tr is the trace
// the failed decision continued, which the retry continues too.
func (x *Index) Retry(complaintID string, at time.Time, version uint64, tr Trace) {
	x.mu.Lock()
	defer x.mu.Unlock()
	i, _ := x.slotFor(complaintID, true)
	x.slots[i].version = max(x.slots[i].version, uint32(version))
	x.slots[i].next, x.slots[i].retry = at.UnixNano(), true
	if tr.IsZero() {
		delete(x.retries, x.slots[i].id)
	} else {
		x.retries[x.slots[i].id] = tr
	}
	heap.Push(&x.due, item{at.UnixNano(), i})
	x.signal()
}

// Upcoming is an open running clock with its deadline.
type Upcoming struct {
	ComplaintID string
	ClockID     string
	Target      ev.SlaTarget
	Deadline    time.Time
}

// DueBefore lists running clocks with a deadline before until, soonest
// first, at most limit. It scans the index: a query, not a hot path.
func (x *Index) DueBefore(until time.Time, limit int) []Upcoming {
	x.mu.Lock()
	defer x.mu.Unlock()
	u := until.UnixNano()
	var out []Upcoming
	for i := range x.slots {
		s := &x.slots[i]
		for j := range s.clocks {
			c := &s.clocks[j]
			if !c.paused() && c.deadline < u {
				out = append(out, Upcoming{x.idOf(s.id), domain.ClockID(ev.SlaTarget(c.target), int(c.seq)), ev.SlaTarget(c.target), time.Unix(0, c.deadline).UTC()})
			}
		}
	}
	slices.SortFunc(out, func(a, b Upcoming) int { return a.Deadline.Compare(b.Deadline) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// Run fires due complaints on clk until ctx is done: it sleeps on one timer
// until the earliest due instant (or until an earlier one is armed), then
// hands every complaint due by then to fire.
func (x *Index) Run(ctx context.Context, clk clock.Clock, fire func(context.Context, []Due)) {
	timer := clk.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if due := x.TakeDue(clk.Now()); len(due) > 0 {
			fire(ctx, due)
			continue
		}
		wait := time.Hour
		if next, ok := x.Next(); ok {
			wait = next.Sub(clk.Now())
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-x.wake:
			timer.Stop()
		case <-timer.C():
		}
	}
}
