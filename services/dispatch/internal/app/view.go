package app

import (
	"log/slog"
	"sort"
	"sync"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// View is this instance's read model of every technician and work order,
// fed by following the whole log (and by this instance's own appends, so it
// reads its writes). It may lag other instances: decisions that must not race
// (booking, assigning) re-read the owning stream; the view only suggests.
type View struct {
	mu          sync.RWMutex
	schedules   Schedules
	logger      *slog.Logger
	techs       map[string]*domain.Technician
	pool        *domain.Pool // every technician with their schedule; rebuilt after a change
	dirtyCands  bool
	complaints  map[string]*domain.Complaint
	orderOwner  map[string]string // work order id -> complaint id
	lastApplied uint64            // log position of the last record followed
	changed     chan struct{}     // closed and replaced on every change of an order
}

// NewView returns an empty view resolving technicians' calendars with s.
func NewView(s Schedules, logger *slog.Logger) *View {
	return &View{
		schedules: s, logger: logger, techs: map[string]*domain.Technician{}, complaints: map[string]*domain.Complaint{},
		orderOwner: map[string]string{}, changed: make(chan struct{}),
	}
}

// Apply folds one record of the log in. Records a stream has already seen
// (by version) are ignored, so Apply is idempotent.
func (v *View) Apply(rec eventlog.Record) {
	e := rec.Event
	stream := eventlog.StreamID(e.GetStreamId())
	payload := eventlog.Payload(e)
	at := e.GetOccurredAt().AsTime()
	v.mu.Lock()
	defer v.mu.Unlock()
	if rec.Position > v.lastApplied {
		v.lastApplied = rec.Position
	}
	switch stream.Kind() {
	case eventlog.KindTechnician:
		t := v.techs[stream.ID()]
		if !v.next(stream, versionOf(t), e.GetVersion()) {
			return
		}
		if t != nil {
			t = t.Clone() // Match may be reading the old one without the lock
		}
		v.techs[stream.ID()] = domain.EvolveTechnician(t, at, payload)
		v.dirtyCands = true
	case eventlog.KindComplaint:
		c := v.complaints[stream.ID()]
		var cur uint64
		if c != nil {
			cur = c.Version
		}
		if !v.next(stream, cur, e.GetVersion()) {
			return
		}
		before := len(orderIDs(c))
		c = domain.EvolveComplaint(c, stream.ID(), e.GetVersion(), at, payload)
		v.complaints[stream.ID()] = c
		if len(c.Sequence) != before {
			for _, id := range c.Sequence {
				v.orderOwner[id] = c.ID
			}
		}
		v.notifyLocked()
	}
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
	if t.Version > versionOf(v.techs[t.ID]) {
		v.techs[t.ID] = t
		v.dirtyCands = true
	}
}

// PutComplaint replaces a complaint with a fresher fold read from the log.
func (v *View) PutComplaint(c *domain.Complaint) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if old := v.complaints[c.ID]; old != nil && old.Version >= c.Version {
		return
	}
	v.complaints[c.ID] = c
	for _, id := range c.Sequence {
		v.orderOwner[id] = c.ID
	}
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
