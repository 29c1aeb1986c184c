// Package view is the console's read model: the open work of the whole
// log, folded from the events into one row per complaint, answering list,
// filter, sort and search. A checkpoint.Follower keeps it (snapshot +
// catch-up). Closed and withdrawn complaints leave it at once, so its cost
// follows the open work, not the history. It keeps no personal data: the
// description and the product serial are kept only as keyed blind-index
// terms (search.go), never as text.
package view

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Name is the snapshot's name (libs/checkpoint).
const Name = "console-queue"

// Format is the snapshot's encoding; bump it when its meaning changes.
const Format = 2 // 2: solutions and reviews, team rosters, warnings passed before a clock started

// Statuses a complaint of the view can have (closed and withdrawn ones
// leave the view).
const (
	StatusReceived         = "received"
	StatusAccepted         = "accepted" // accepted by intake, not yet assigned
	StatusAssigned         = "assigned" // an owner, who has not taken it on
	StatusInProgress       = "in_progress"
	StatusResponded        = "responded"
	StatusSolutionProposed = "solution_proposed"
	StatusDispatched       = "dispatched"
	StatusOnHold           = "on_hold"
	StatusResolved         = "resolved"
	StatusReopened         = "reopened"
	// Only the complaint page, folding a whole stream, sees these: the
	// view drops a complaint that reaches them.
	StatusClosed    = "closed"
	StatusWithdrawn = "withdrawn"
)

// Statuses lists them in the order of the work.
var Statuses = []string{StatusReceived, StatusAccepted, StatusAssigned, StatusInProgress, StatusResponded,
	StatusSolutionProposed, StatusDispatched, StatusOnHold, StatusResolved, StatusReopened}

// Clock is a running SLA clock of a complaint.
type Clock struct {
	ID       string             `json:"id"`
	Target   eventsv1.SlaTarget `json:"target"`
	Deadline time.Time          `json:"deadline"`
	Paused   bool               `json:"paused,omitempty"`
	Warned   uint32             `json:"warned,omitempty"` // highest warning threshold reached, %
	Breached bool               `json:"breached,omitempty"`
}

// Complaint is one row of the view. Rows handed out are copies.
type Complaint struct {
	ID         string                   `json:"id"`
	Version    uint64                   `json:"version"` // the complaint stream's last version
	Status     string                   `json:"status"`
	HeldFrom   string                   `json:"held_from,omitempty"` // status before the hold
	Channel    eventsv1.Channel         `json:"channel"`
	ReceivedAt time.Time                `json:"received_at"`
	Category   eventsv1.Category        `json:"category,omitempty"`
	Severity   eventsv1.Severity        `json:"severity,omitempty"`
	Priority   eventsv1.Priority        `json:"priority,omitempty"`
	Rules      []string                 `json:"rules,omitempty"`
	Team       string                   `json:"team,omitempty"`
	Owner      string                   `json:"owner,omitempty"`
	Escalation eventsv1.EscalationLevel `json:"escalation,omitempty"`
	Repeat     bool                     `json:"repeat,omitempty"`
	Clocks     []Clock                  `json:"clocks,omitempty"` // running, by id
	// Solution is the current proposal since the complaint was (re)opened
	// and the reviews it got (team.go).
	Solution *Solution `json:"solution,omitempty"`
	// Terms are the blind-index terms of the description; Serial the one
	// of the product serial (search.go). Never shown.
	Terms  []uint64 `json:"terms,omitempty"`
	Serial uint64   `json:"serial,omitempty"`
	// due is NextDue in Unix nanoseconds (0: none), kept for queries,
	// which compare it for every complaint.
	due int64
}

// refreshDue recomputes due after the clocks changed.
func (c *Complaint) refreshDue() {
	c.due = 0
	if d, _ := c.NextDue(); !d.IsZero() {
		c.due = d.UnixNano()
	}
}

// NextDue is the nearest deadline of a running, unpaused clock (zero: none).
func (c *Complaint) NextDue() (time.Time, eventsv1.SlaTarget) {
	var due time.Time
	var target eventsv1.SlaTarget
	for _, k := range c.Clocks {
		if k.Paused {
			continue
		}
		if due.IsZero() || k.Deadline.Before(due) {
			due, target = k.Deadline, k.Target
		}
	}
	return due, target
}

// Breached: one of its running clocks is past its deadline.
func (c *Complaint) Breached() bool {
	for _, k := range c.Clocks {
		if k.Breached {
			return true
		}
	}
	return false
}

// Escalated: escalated beyond its owner.
func (c *Complaint) Escalated() bool {
	return c.Escalation > eventsv1.EscalationLevel_ESCALATION_LEVEL_OWNER
}

func (c *Complaint) clone() Complaint {
	out := *c
	out.Rules = append([]string(nil), c.Rules...)
	out.Clocks = append([]Clock(nil), c.Clocks...)
	out.Solution = c.Solution.clone()
	out.Terms = nil
	return out
}

// View is the read model. Apply is called by one goroutine (the
// Follower); readers take the read lock.
type View struct {
	index *Index

	mu         sync.RWMutex
	position   uint64
	complaints map[string]*Complaint
	// byOwner indexes complaints by owner: "my queue" reads a person's
	// complaints, not all of them. Derived (not in the snapshot).
	byOwner  map[string]map[*Complaint]struct{}
	closed   uint64 // complaints that left the view (closed or withdrawn)
	advanced chan struct{}
	// teams is each team's roster: member id → role (team.go).
	teams map[string]map[string]string
	// byTeam indexes complaints by team ("": none yet): a team's pages
	// read its complaints, not all of them. Derived (not in the snapshot).
	byTeam map[string]map[*Complaint]struct{}
}

var _ checkpoint.View = (*View)(nil)

// New returns an empty view whose blind index is keyed by index.
func New(index *Index) *View {
	return &View{index: index, complaints: map[string]*Complaint{}, byOwner: map[string]map[*Complaint]struct{}{}, teams: map[string]map[string]string{}, byTeam: map[string]map[*Complaint]struct{}{}, advanced: make(chan struct{})}
}

// Run follows the log through f until ctx is done.
func (v *View) Run(ctx context.Context, f *checkpoint.Follower) error { return f.Run(ctx) }

// Position is the log position of the last event applied.
func (v *View) Position() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.position
}

// WaitFor returns once the view has applied the log up to pos: a page
// shown right after an action shows the action.
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
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Len is the number of complaints in the view (open work), and how many
// left it.
func (v *View) Len() (open int, closed uint64) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.complaints), v.closed
}

// Get returns a copy of one complaint's row.
func (v *View) Get(id string) (Complaint, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	c := v.complaints[id]
	if c == nil {
		return Complaint{}, false
	}
	return c.clone(), true
}

// Apply implements checkpoint.View.
func (v *View) Apply(_ context.Context, r eventlog.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if r.Position <= v.position {
		return nil
	}
	v.position = r.Position
	defer func() { close(v.advanced); v.advanced = make(chan struct{}) }()
	e := r.Event
	switch eventlog.StreamID(e.GetStreamId()).Kind() {
	case eventlog.KindTeam:
		v.applyRoster(e)
		return nil
	case eventlog.KindComplaint:
	default:
		return nil
	}
	c := v.complaints[e.GetComplaintId()]
	if c == nil {
		p, ok := e.GetPayload().(*eventsv1.Envelope_ComplaintReceived)
		if !ok {
			// Never received, or closed and gone: nothing to show.
			return nil
		}
		// Strings are cloned: a record's strings share its stored bytes.
		c = &Complaint{ID: strings.Clone(e.GetComplaintId()), Status: StatusReceived}
		rc := p.ComplaintReceived
		c.Channel = rc.GetChannel()
		c.ReceivedAt = rc.GetReceivedAt().AsTime().UTC()
		c.Terms = v.index.Terms(rc.GetDescription() + " " + rc.GetCustomerRequest())
		if s := rc.GetProduct().GetSerialNumber(); s != "" {
			c.Serial = v.index.Serial(s)
		}
		v.complaints[c.ID] = c
	}
	c.Version = e.GetVersion()
	owner := c.Owner
	team := c.Team
	fold(c, e)
	c.refreshDue()
	if c.Status == StatusClosed || c.Status == StatusWithdrawn {
		v.unindexOwner(owner, c)
		v.unindexTeam(team, c)
		delete(v.complaints, c.ID)
		v.closed++
		return nil
	}
	if c.Owner != owner {
		v.unindexOwner(owner, c)
		v.indexOwner(c)
	}
	v.indexTeam(team, c)
	return nil
}

func (v *View) indexOwner(c *Complaint) {
	if c.Owner == "" {
		return
	}
	set := v.byOwner[c.Owner]
	if set == nil {
		set = map[*Complaint]struct{}{}
		v.byOwner[c.Owner] = set
	}
	set[c] = struct{}{}
}

func (v *View) unindexOwner(owner string, c *Complaint) {
	if set := v.byOwner[owner]; set != nil {
		delete(set, c)
		if len(set) == 0 {
			delete(v.byOwner, owner)
		}
	}
}

// Fold folds a complaint's whole stream into its row as the view would
// (without search terms), closed and withdrawn ones included: the
// complaint page reads the log, so it shows an action at once.
func Fold(recs []eventlog.Record) (Complaint, bool) {
	var c Complaint
	for _, r := range recs {
		e := r.Event
		if p, ok := e.GetPayload().(*eventsv1.Envelope_ComplaintReceived); ok {
			c.ID, c.Status = e.GetComplaintId(), StatusReceived
			c.Channel, c.ReceivedAt = p.ComplaintReceived.GetChannel(), p.ComplaintReceived.GetReceivedAt().AsTime().UTC()
		}
		if c.ID == "" {
			continue
		}
		c.Version = e.GetVersion()
		fold(&c, e)
	}
	return c, c.ID != ""
}

// fold applies one event to a complaint's row.
func fold(c *Complaint, e *eventsv1.Envelope) {
	setStatus := func(s string) {
		if c.Status == StatusOnHold {
			c.HeldFrom = s
			return
		}
		c.Status = s
	}
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintAccepted:
		if c.Status == StatusReceived {
			c.Status = StatusAccepted
		}
	case *eventsv1.Envelope_ComplaintClassified:
		x := p.ComplaintClassified
		c.Category, c.Severity, c.Priority = x.GetCategory(), x.GetSeverity(), x.GetPriority()
		c.Rules = cloneAll(x.GetRulesFired())
	case *eventsv1.Envelope_RepeatComplaintFlagged:
		c.Repeat = true
		if p.RepeatComplaintFlagged.GetRaisedPriority() > c.Priority {
			c.Priority = p.RepeatComplaintFlagged.GetRaisedPriority()
		}
	case *eventsv1.Envelope_ComplaintAssigned:
		c.Team, c.Owner = strings.Clone(p.ComplaintAssigned.GetTeam()), strings.Clone(p.ComplaintAssigned.GetOwner())
		setStatus(StatusAssigned)
	case *eventsv1.Envelope_AssignmentAccepted:
		setStatus(StatusInProgress)
	case *eventsv1.Envelope_ComplaintEscalated:
		c.Escalation = p.ComplaintEscalated.GetToLevel()
	case *eventsv1.Envelope_ResponseRecorded:
		setStatus(StatusResponded)
	case *eventsv1.Envelope_SolutionProposed:
		setStatus(StatusSolutionProposed)
		x := p.SolutionProposed
		c.Solution = &Solution{ID: strings.Clone(x.GetSolutionId()), ProposedBy: strings.Clone(x.GetProposedBy()),
			Required: append([]eventsv1.ReviewLevel(nil), x.GetRequiredReviews()...)}
	case *eventsv1.Envelope_SolutionReviewed:
		x := p.SolutionReviewed
		if c.Solution != nil && c.Solution.ID == x.GetSolutionId() {
			c.Solution.Reviews = append(c.Solution.Reviews, Review{Level: x.GetLevel(), Approved: x.GetApproved(), By: strings.Clone(x.GetReviewedBy())})
		}
	case *eventsv1.Envelope_DispatchRequested:
		setStatus(StatusDispatched)
	case *eventsv1.Envelope_ComplaintPutOnHold:
		if c.Status != StatusOnHold {
			c.HeldFrom, c.Status = c.Status, StatusOnHold
		}
	case *eventsv1.Envelope_ComplaintTakenOffHold:
		if c.Status == StatusOnHold {
			c.Status, c.HeldFrom = c.HeldFrom, ""
		}
	case *eventsv1.Envelope_ComplaintResolved:
		c.Status, c.HeldFrom = StatusResolved, ""
	case *eventsv1.Envelope_ComplaintReopened:
		c.Status, c.HeldFrom = StatusReopened, ""
		c.Solution = nil // handling starts again: the old solution no longer counts
	case *eventsv1.Envelope_ComplaintClosed:
		c.Status, c.HeldFrom = StatusClosed, ""
	case *eventsv1.Envelope_ComplaintWithdrawn:
		c.Status, c.HeldFrom = StatusWithdrawn, ""
	case *eventsv1.Envelope_SlaClockStarted:
		x := p.SlaClockStarted
		k := Clock{ID: strings.Clone(x.GetClockId()), Target: x.GetTarget(), Deadline: x.GetDeadline().AsTime().UTC()}
		for _, pct := range x.GetPastWarnings() { // passed before it started: never emitted
			k.Warned = max(k.Warned, pct)
		}
		c.setClock(k)
	case *eventsv1.Envelope_SlaClockPaused:
		c.updateClock(p.SlaClockPaused.GetClockId(), func(k *Clock) { k.Paused = true })
	case *eventsv1.Envelope_SlaClockResumed:
		c.updateClock(p.SlaClockResumed.GetClockId(), func(k *Clock) {
			k.Paused, k.Deadline = false, p.SlaClockResumed.GetNewDeadline().AsTime().UTC()
		})
	case *eventsv1.Envelope_SlaWarning:
		c.updateClock(p.SlaWarning.GetClockId(), func(k *Clock) { k.Warned = max(k.Warned, p.SlaWarning.GetThresholdPercent()) })
	case *eventsv1.Envelope_SlaBreached:
		c.updateClock(p.SlaBreached.GetClockId(), func(k *Clock) { k.Breached = true })
	case *eventsv1.Envelope_SlaClockRetermed:
		t := p.SlaClockRetermed.GetTerms()
		c.updateClock(p.SlaClockRetermed.GetClockId(), func(k *Clock) { k.Deadline, k.Paused = t.GetDeadline().AsTime().UTC(), t.GetPaused() })
	case *eventsv1.Envelope_SlaBreachWithdrawn:
		t := p.SlaBreachWithdrawn.GetTerms()
		c.updateClock(p.SlaBreachWithdrawn.GetClockId(), func(k *Clock) {
			k.Breached, k.Deadline, k.Paused = false, t.GetDeadline().AsTime().UTC(), t.GetPaused()
		})
	case *eventsv1.Envelope_SlaMet:
		c.dropClock(p.SlaMet.GetClockId())
	case *eventsv1.Envelope_SlaClockCancelled:
		c.dropClock(p.SlaClockCancelled.GetClockId())
	}
}

func cloneAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.Clone(s)
	}
	return out
}

// Clocks are kept sorted by id: the snapshot is deterministic.
func (c *Complaint) setClock(k Clock) {
	for i := range c.Clocks {
		if c.Clocks[i].ID == k.ID {
			c.Clocks[i] = k
			return
		}
	}
	i := 0
	for i < len(c.Clocks) && c.Clocks[i].ID < k.ID {
		i++
	}
	c.Clocks = append(c.Clocks, Clock{})
	copy(c.Clocks[i+1:], c.Clocks[i:])
	c.Clocks[i] = k
}

func (c *Complaint) updateClock(id string, fn func(*Clock)) {
	for i := range c.Clocks {
		if c.Clocks[i].ID == id {
			fn(&c.Clocks[i])
			return
		}
	}
}

func (c *Complaint) dropClock(id string) {
	for i := range c.Clocks {
		if c.Clocks[i].ID == id {
			c.Clocks = append(c.Clocks[:i], c.Clocks[i+1:]...)
			return
		}
	}
}

// ErrForeignIndex: a snapshot whose blind index was keyed by another
// secret (its terms would match nothing).
var ErrForeignIndex = errors.New("console view snapshot: blind index keyed by another secret")
