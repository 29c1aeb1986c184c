package app

import (
	"container/heap"
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// View is this instance's read model of every technician and of the work
// orders still in play, fed by a checkpoint.Follower of the log (and by this
// instance's own appends, so it reads its writes). It may lag other
// instances: decisions that must not race (booking, assigning) re-read the
// owning stream; the view only suggests.
//
// A complaint enters the view with its first WorkOrderOpened and leaves it
// once every order is finished, no technician holds a booking for one, and
// KeepFinished of log time (event times, so a restored view drops what a
// rebuilt one does) has passed: matching, timeouts, Reconcile and the
// technician's job list look at live orders only; the window keeps answers
// about a recent order (GetWorkOrder, a repeated Complete). So the view
// grows with the work in hand, not with history.
type View struct {
	mu          sync.RWMutex
	schedules   Schedules
	logger      *slog.Logger
	techs       map[string]*domain.Technician
	pool        *domain.Pool // every technician with their schedule; rebuilt after a change
	dirtyCands  bool
	complaints  map[string]*domain.Complaint
	orderOwner  map[string]string    // work order id -> complaint id
	correlation map[string]string    // work order id -> correlation id of its WorkOrderOpened
	booked      map[string]int       // work order id -> technicians holding a booking for it
	finished    map[string]time.Time // complaints with nothing in play -> since when
	retiring    retireHeap           // finished complaints by when they leave the view
	logTime     time.Time            // latest occurred_at applied
	keep        time.Duration
	lastApplied uint64        // log position of the last record followed
	changed     chan struct{} // closed and replaced on every change of an order
}

// NewView returns an empty view resolving technicians' calendars with s.
func NewView(s Schedules, logger *slog.Logger) *View {
	return &View{
		schedules: s, logger: logger, techs: map[string]*domain.Technician{}, complaints: map[string]*domain.Complaint{},
		orderOwner: map[string]string{}, correlation: map[string]string{}, booked: map[string]int{}, finished: map[string]time.Time{}, keep: DefaultKeepFinished,
		changed: make(chan struct{}),
	}
}

// DefaultKeepFinished is how long, in log time, a finished complaint's
// orders stay in the view.
const DefaultKeepFinished = 7 * 24 * time.Hour

// KeepFinished sets how long finished orders stay in the view (before the
// view is used).
func (v *View) KeepFinished(d time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keep = d
}

// Apply folds one record of the log in (checkpoint.View). Records a stream
// has already seen (by version) are ignored, so Apply is idempotent.
func (v *View) Apply(_ context.Context, rec eventlog.Record) error {
	e := rec.Event
	stream := eventlog.StreamID(e.GetStreamId())
	payload := eventlog.Payload(e)
	at := e.GetOccurredAt().AsTime()
	v.mu.Lock()
	defer v.mu.Unlock()
	if rec.Position > v.lastApplied {
		v.lastApplied = rec.Position
	}
	defer v.advanceLocked(at)
	switch stream.Kind() {
	case eventlog.KindTechnician:
		old := v.techs[stream.ID()]
		if !v.next(stream, versionOf(old), e.GetVersion()) {
			return nil
		}
		t := old
		if t != nil {
			t = t.Clone() // Match may be reading the old one without the lock
		}
		t = domain.EvolveTechnician(t, at, payload)
		t.Position = rec.Position
		v.putTechnicianLocked(old, t)
	case eventlog.KindComplaint:
		c := v.complaints[stream.ID()]
		if c == nil {
			// Not in the view: a complaint enters it with a work order (its
			// earlier events tell dispatch nothing), and a finished one left
			// it. Orders opened later start it afresh.
			if _, opened := payload.(*eventsv1.WorkOrderOpened); !opened {
				return nil
			}
		} else if !v.next(stream, c.Version, e.GetVersion()) {
			return nil
		}
		before := len(orderIDs(c))
		c = domain.EvolveComplaint(c, stream.ID(), e.GetVersion(), at, payload)
		if opened, ok := payload.(*eventsv1.WorkOrderOpened); ok {
			v.noteCorrelationLocked(opened.GetWorkOrderId(), e.GetCorrelationId())
		}
		v.complaints[stream.ID()] = c
		if len(c.Sequence) != before {
			for _, id := range c.Sequence {
				v.orderOwner[id] = c.ID
			}
		}
		v.retireIfFinishedLocked(c.ID)
		v.notifyLocked()
	}
	return nil
}

// putTechnicianLocked replaces a technician, keeping the count of bookings
// per order, and retires the complaints whose last booking was released.
func (v *View) putTechnicianLocked(old, t *domain.Technician) {
	v.techs[t.ID] = t
	v.dirtyCands = true
	var released []string
	if old != nil {
		for id, b := range old.Open {
			if _, still := t.Open[id]; !still {
				if v.booked[id]--; v.booked[id] <= 0 {
					delete(v.booked, id)
				}
				released = append(released, b.ComplaintID)
			}
		}
	}
	for id := range t.Open {
		if old == nil || !hasBooking(old, id) {
			v.booked[id]++
		}
	}
	for _, complaintID := range released {
		v.retireIfFinishedLocked(complaintID)
	}
}

func hasBooking(t *domain.Technician, workOrderID string) bool {
	_, ok := t.Open[workOrderID]
	return ok
}

// retireIfFinishedLocked notes whether a complaint's orders are all
// finished and hold no booking any more: advanceLocked drops it once
// KeepFinished has passed since its last change.
func (v *View) retireIfFinishedLocked(complaintID string) {
	c := v.complaints[complaintID]
	if c == nil {
		return
	}
	if len(c.Sequence) == 0 { // a fresh fold of a complaint with no order
		delete(v.complaints, complaintID)
		delete(v.finished, complaintID)
		return
	}
	var last time.Time
	for _, id := range c.Sequence {
		o := c.Orders[id]
		if !o.Status.Finished() || v.booked[id] > 0 {
			delete(v.finished, complaintID)
			return
		}
		if o.UpdatedAt.After(last) {
			last = o.UpdatedAt
		}
	}
	if since, ok := v.finished[complaintID]; !ok || !since.Equal(last) {
		v.finished[complaintID] = last
		heap.Push(&v.retiring, retireEntry{at: last.Add(v.keep), id: complaintID, since: last})
	}
}

// advanceLocked moves log time to at, when later, and drops the complaints
// finished KeepFinished ago or more. It looks after every record, not only
// when log time moves: in a log written out of time order (an import, the
// scale harness's) log time reaches its end early, and a complaint finished
// long before it is due at once.
func (v *View) advanceLocked(at time.Time) {
	if at.After(v.logTime) {
		v.logTime = at
	}
	for len(v.retiring) > 0 && !v.retiring[0].at.After(v.logTime) {
		x := heap.Pop(&v.retiring).(retireEntry)
		if since, ok := v.finished[x.id]; !ok || !since.Equal(x.since) {
			continue // changed since it was queued: a newer entry stands for it
		}
		for _, wo := range v.complaints[x.id].Sequence {
			delete(v.orderOwner, wo)
			delete(v.correlation, wo)
		}
		delete(v.complaints, x.id)
		delete(v.finished, x.id)
	}
}

// retireEntry is a finished complaint queued to leave the view at at; it
// goes stale when the complaint changes (its finished time is no longer
// since), and is skipped then.
type retireEntry struct {
	at, since time.Time
	id        string
}

// retireHeap is a min-heap of retireEntry by at.
type retireHeap []retireEntry

func (h retireHeap) Len() int           { return len(h) }
func (h retireHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retireHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retireHeap) Push(x any)        { *h = append(*h, x.(retireEntry)) }
func (h *retireHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func orderIDs(c *domain.Complaint) []string {
	if c == nil {
		return nil
	}
	return c.Sequence
}

func versionOf(t *domain.Technician) uint64 {
	if t == nil {
		return 0
	}
	return t.Version
}

// next reports whether version is the one after cur; a gap is logged (the
// view then waits for the owner to put a fresh fold).
func (v *View) next(stream eventlog.StreamID, cur, version uint64) bool {
	if version <= cur {
		return false
	}
	if version != cur+1 {
		v.logger.Warn("view: gap in stream, ignoring event", "stream", string(stream), "have", cur, "got", version)
		return false
	}
	return true
}

// PutTechnician replaces a technician with a fresher fold read from the log.
func (v *View) PutTechnician(t *domain.Technician) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.techs[t.ID]; t.Version > versionOf(old) {
		v.putTechnicianLocked(old, t)
	}
}

// PutComplaint replaces a complaint with a fresher fold read from the log;
// correlations are its orders' (Correlations of the records folded).
func (v *View) PutComplaint(c *domain.Complaint, correlations map[string]string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.complaints[c.ID]; old != nil && old.Version >= c.Version {
		return
	}
	v.complaints[c.ID] = c
	for _, id := range c.Sequence {
		v.orderOwner[id] = c.ID
		v.noteCorrelationLocked(id, correlations[id])
	}
	v.retireIfFinishedLocked(c.ID)
	v.notifyLocked()
}

func (v *View) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Changed is closed at the next change of a work order.
func (v *View) Changed() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// Position is the log position of the last record followed.
func (v *View) Position() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.lastApplied
}

// Match runs matching against every known technician.
func (v *View) Match(p domain.MatchPolicy, req domain.MatchRequest) domain.MatchResult {
	v.mu.Lock()
	if v.dirtyCands || v.pool == nil {
		cands := make([]domain.Candidate, 0, len(v.techs))
		for _, t := range v.techs {
			if t.Registered() {
				cands = append(cands, domain.Candidate{Tech: t, Schedule: v.schedules.Schedule(t.CalendarID)})
			}
		}
		v.pool, v.dirtyCands = domain.NewPool(cands), false
	}
	pool := v.pool
	v.mu.Unlock()
	// Technicians are replaced, never changed in place, so reading the pool
	// taken under the lock is safe while Apply moves on.
	return pool.Match(p, req)
}

// Technician returns a copy of a technician, or nil.
func (v *View) Technician(id string) *domain.Technician {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if t := v.techs[id]; t != nil {
		return t.Clone()
	}
	return nil
}

// Holding is a booking a technician holds, as the view has it.
type Holding struct {
	TechnicianID string
	Booking      domain.Booking
}

// Holders returns the bookings technicians hold for a work order, by
// technician id. Only the bookings are copied, not the technicians.
func (v *View) Holders(workOrderID string) []Holding {
	v.mu.RLock()
	defer v.mu.RUnlock()
	n := v.booked[workOrderID]
	if n == 0 {
		return nil
	}
	out := make([]Holding, 0, n)
	for id, t := range v.techs {
		if b, ok := t.Open[workOrderID]; ok {
			out = append(out, Holding{TechnicianID: id, Booking: b})
			if len(out) == n {
				break
			}
		}
	}
	sortHoldings(out)
	return out
}

// BookingsMadeBy returns every booking made at or before t, by technician
// id then work order id. Only those bookings are copied.
func (v *View) BookingsMadeBy(t time.Time) []Holding {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Holding
	for id, tech := range v.techs {
		for _, b := range tech.Open {
			if !b.At.After(t) {
				out = append(out, Holding{TechnicianID: id, Booking: b})
			}
		}
	}
	sortHoldings(out)
	return out
}

func sortHoldings(hs []Holding) {
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].TechnicianID != hs[j].TechnicianID {
			return hs[i].TechnicianID < hs[j].TechnicianID
		}
		return hs[i].Booking.WorkOrderID < hs[j].Booking.WorkOrderID
	})
}

// Technicians returns copies of every technician, by id.
func (v *View) Technicians() []*domain.Technician {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]*domain.Technician, 0, len(v.techs))
	for _, t := range v.techs {
		out = append(out, t.Clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// ComplaintOf returns the complaint a work order belongs to, or "".
func (v *View) ComplaintOf(workOrderID string) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.orderOwner[workOrderID]
}

// CorrelationOf returns the correlation id of the event that opened a work
// order (what its technician's commands continue), or "" when unknown.
func (v *View) CorrelationOf(workOrderID string) string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.correlation[workOrderID]
}

// noteCorrelationLocked keeps the first correlation seen for an order: the
// one of the event that opened it.
func (v *View) noteCorrelationLocked(workOrderID, correlationID string) {
	if _, known := v.correlation[workOrderID]; !known && correlationID != "" {
		v.correlation[workOrderID] = correlationID
	}
}

// Correlations maps the work orders opened in recs to the correlation ids
// of the events that opened them.
func Correlations(recs []eventlog.Record) map[string]string {
	out := map[string]string{}
	for _, r := range recs {
		if opened := r.Event.GetWorkOrderOpened(); opened != nil {
			if _, known := out[opened.GetWorkOrderId()]; !known {
				out[opened.GetWorkOrderId()] = r.Event.GetCorrelationId()
			}
		}
	}
	return out
}

// Order returns a copy of a work order, or nil.
func (v *View) Order(workOrderID string) *domain.WorkOrder {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if o := v.complaints[v.orderOwner[workOrderID]].Order(workOrderID); o != nil {
		cp := *o
		return &cp
	}
	return nil
}

// Orders returns copies of the work orders keep selects, oldest first.
func (v *View) Orders(keep func(*domain.WorkOrder) bool) []*domain.WorkOrder {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []*domain.WorkOrder
	for _, c := range v.complaints {
		for _, id := range c.Sequence {
			if o := c.Orders[id]; keep(o) {
				cp := *o
				out = append(out, &cp)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].OpenedAt.Equal(out[j].OpenedAt) {
			return out[i].OpenedAt.Before(out[j].OpenedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out
}
