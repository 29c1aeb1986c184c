package app

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// View is routing's own projection of the whole log, kept by every instance
// (it follows the log from the start, so instances sharing the bus's work
// still each see everything): team rosters, who owns what (open load and
// idle time), past complaints by customer_ref for repeat detection, and the
// complaints waiting for an on-shift member. It implements domain.Directory.
type View struct {
	policy *domain.Policy

	mu         sync.RWMutex
	position   uint64
	advanced   chan struct{} // closed and replaced whenever position moves
	stopped    chan struct{} // closed when Run returns
	stopOnce   sync.Once
	teams      map[string]*domain.Team
	complaints map[string]*tracked
	byCustomer map[string][]string
	load       map[string]int
	lastGiven  map[string]time.Time
}

// tracked is what the view keeps of one complaint (no personal data).
type tracked struct {
	customerRef, fingerprint, model string
	acceptedPos                     uint64
	acceptedAt                      time.Time
	withdrawn                       bool
	owner                           string
	open                            bool // owned and not resolved, closed or withdrawn
	severity                        eventsv1.Severity
	waiting                         bool // classified, no owner yet
}

// NewView returns an empty view.
func NewView(p *domain.Policy) *View {
	return &View{
		policy: p, advanced: make(chan struct{}), stopped: make(chan struct{}),
		teams: map[string]*domain.Team{}, complaints: map[string]*tracked{},
		byCustomer: map[string][]string{}, load: map[string]int{}, lastGiven: map[string]time.Time{},
	}
}

// Run follows the log from the start until ctx is done. A view runs once.
func (v *View) Run(ctx context.Context, store eventlog.Store) error {
	defer v.stopOnce.Do(func() { close(v.stopped) })
	return store.Follow(ctx, v.Position()+1, func(r eventlog.Record) error { v.Apply(r); return nil })
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

// Apply applies one record; records at or before the last position are
// ignored (idempotent).
func (v *View) Apply(r eventlog.Record) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Position <= v.position {
		return
	}
	v.position = r.Position
	defer func() { close(v.advanced); v.advanced = make(chan struct{}) }()
	e := r.Event
	sid := eventlog.StreamID(e.GetStreamId())
	switch sid.Kind() {
	case eventlog.KindTeam:
		t := v.teams[sid.ID()]
		if t == nil {
			t = domain.NewTeam(sid.ID())
			v.teams[sid.ID()] = t
		}
		t.Evolve(e)
		return
	case eventlog.KindComplaint:
	default:
		return
	}
	id := e.GetComplaintId()
	c := v.complaints[id]
	if c == nil {
		if _, received := e.GetPayload().(*eventsv1.Envelope_ComplaintReceived); !received {
			return // a complaint never received: no load, history or waiting list
		}
		c = &tracked{}
		v.complaints[id] = c
	}
	owner, open := c.owner, c.open
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		c.customerRef = p.ComplaintReceived.GetCustomer().GetCustomerRef()
		c.fingerprint = p.ComplaintReceived.GetProblemFingerprint()
		c.model = p.ComplaintReceived.GetProduct().GetModel()
	case *eventsv1.Envelope_ComplaintAccepted:
		if c.acceptedPos == 0 && c.customerRef != "" {
			v.byCustomer[c.customerRef] = append(v.byCustomer[c.customerRef], id)
		}
		c.acceptedPos, c.acceptedAt = r.Position, e.GetOccurredAt().AsTime()
	case *eventsv1.Envelope_ComplaintClassified:
		c.severity = p.ComplaintClassified.GetSeverity()
		c.waiting = c.owner == "" && !c.withdrawn
	case *eventsv1.Envelope_ComplaintAssigned:
		owner, open, c.waiting = p.ComplaintAssigned.GetOwner(), true, false
		v.lastGiven[owner] = e.GetOccurredAt().AsTime()
	case *eventsv1.Envelope_ComplaintWithdrawn:
		c.withdrawn, open, c.waiting = true, false, false
	case *eventsv1.Envelope_ComplaintResolved, *eventsv1.Envelope_ComplaintClosed:
		open = false
	case *eventsv1.Envelope_ComplaintReopened:
		open = owner != ""
	}
	if c.open && c.owner != "" {
		v.load[c.owner]--
	}
	c.owner, c.open = owner, open
	if c.open && c.owner != "" {
		v.load[c.owner]++
	}
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
	var out []string
	for id, c := range v.complaints {
		if c.waiting && c.severity == sev {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}
