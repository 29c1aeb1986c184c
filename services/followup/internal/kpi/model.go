// Package kpi is the KPI read model: a fold of the event log into facts per
// complaint (Apply), and aggregates of those facts per team, owner,
// technician, category and period (Query). Live and rebuilt models run the
// same Apply over the same records, so they give the same numbers.
//
// Every KPI of a row is about the complaints *received* in the row's period
// (a cohort): a complaint received on 3 March counts its later resolution,
// reopen and survey answer in March's row. Received is when the channel says
// the customer reported it (ComplaintReceived.received_at), as for the SLA
// clocks; durations count from it too.
package kpi

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// facts is what the KPIs need to know about one complaint.
type facts struct {
	id           string    // the complaint's (a clone: see Apply)
	version      uint64    // last applied version of the complaint's stream
	received     time.Time // when the customer reported it (receivedAt)
	accepted     time.Time // first ComplaintAccepted
	responded    time.Time // first ResponseRecorded
	resolved     time.Time // first ComplaintResolved
	firstContact bool      // the first resolution was at first contact
	withdrawn    bool
	reopened     bool
	repeat       bool
	team, owner  string
	category     eventsv1.Category
	technicians  []string // accepted or completed one of its work orders, sorted
	answers      []uint32 // every survey answer's satisfaction
	outcome      eventsv1.CloseOutcome
	clocks       map[string]*slaClock
	endedAt      time.Time // the close or withdrawal not followed by a reopen
	lastPos      uint64    // log position of the last event applied
}

type slaClock struct {
	target   eventsv1.SlaTarget
	met      bool
	breached bool
}

// Model is the KPI read model. Safe for concurrent use.
//
// It keeps the facts of a complaint until the complaint ended (closed or
// withdrawn), FoldAfter more of log time passed and FoldLag more events
// were logged, then folds them into the cells of its group (see fold.go):
// a late event can then no longer change them, and the model stops growing
// with every complaint's facts.
type Model struct {
	mu         sync.RWMutex
	opts       Options
	complaints map[string]*facts
	position   uint64
	// logTime is the latest occurred_at applied: the log's own clock, so a
	// restored and caught-up model folds exactly what a rebuilt one does.
	logTime time.Time
	// Ended complaints on their way to a cell (fold.go): pending in the
	// order of their last event, then due by the end of their fold window.
	pending []foldEntry
	due     dueHeap
	cells   map[cellKey]*cell // folded complaints, by group
}

// Options configure a Model.
type Options struct {
	// FoldAfter is how long, in log time, a complaint's facts are kept after
	// it ended before they are folded (default DefaultFoldAfter; negative:
	// never fold). Events of a folded complaint are ignored, so it must
	// outlast every window that can still change a KPI after a close: the
	// second-feedback SLA (72 h after the resolution) above all.
	FoldAfter time.Duration
	// FoldLag is how many events of the log must follow a complaint's last
	// event before it folds (default DefaultFoldLag; negative: none). Log
	// time is the latest occurred_at of the whole log: in a log written out
	// of time order (imported history, the scale harness) it runs far ahead
	// of a complaint's own events, and the complaint's late events (an SLA
	// clock ending after the close) come right after its close in the log,
	// with no log time between them.
	FoldLag int
}

// DefaultFoldAfter keeps an ended complaint's facts for 30 days of log time.
const DefaultFoldAfter = 30 * 24 * time.Hour

// DefaultFoldLag keeps an ended complaint's facts for at least 10,000
// events after its last one: a few hours of a busy log, far more than the
// span of one complaint's events in an imported one (the scale harness's
// log: at most a few hundred events between a close and the complaint's
// last event).
const DefaultFoldLag = 10_000

// New returns an empty model with the default options.
func New() *Model { return NewWith(Options{}) }

// NewWith returns an empty model.
func NewWith(o Options) *Model {
	if o.FoldAfter == 0 {
		o.FoldAfter = DefaultFoldAfter
	}
	switch {
	case o.FoldLag == 0:
		o.FoldLag = DefaultFoldLag
	case o.FoldLag < 0:
		o.FoldLag = 0
	}
	return &Model{opts: o, complaints: map[string]*facts{}, cells: map[cellKey]*cell{}}
}

// Position is the log position of the last record applied.
func (m *Model) Position() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.position
}

// Apply folds one record in. A record of a version already applied (a
// redelivery, a replay) changes nothing while the complaint's facts are
// kept; once they are folded its events are ignored, but for a
// ComplaintReceived delivered again, which would count it twice: feed the
// model each position once (checkpoint.Follower) where it folds.
func (m *Model) Apply(rec eventlog.Record) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec.Position > m.position {
		m.position = rec.Position
	}
	defer m.fold()
	e := rec.Event
	stream := eventlog.StreamID(e.GetStreamId())
	if stream == "" && e.GetComplaintId() != "" {
		stream = eventlog.ComplaintStream(e.GetComplaintId())
	}
	if stream.Kind() != eventlog.KindComplaint {
		return
	}
	m.advance(e.GetOccurredAt().AsTime())
	f := m.complaints[stream.ID()]
	if f == nil {
		// Only a receipt starts a complaint's facts: Query leaves out a
		// complaint never received, and the events of a folded one come too
		// late to count.
		if e.GetComplaintReceived() == nil {
			return
		}
		// A clone: the record's strings share its stored bytes, which an
		// id kept for months would keep alive (and so for every string the
		// facts keep).
		f = &facts{id: strings.Clone(stream.ID()), clocks: map[string]*slaClock{}}
		m.complaints[f.id] = f
	}
	if e.GetVersion() <= f.version {
		return
	}
	f.version, f.lastPos = e.GetVersion(), rec.Position
	evolve(f, e)
	if !f.endedAt.IsZero() {
		m.pending = append(m.pending, foldEntry{id: f.id, pos: rec.Position})
	}
}

// advance moves log time to at when it is later.
func (m *Model) advance(at time.Time) {
	if at.After(m.logTime) {
		m.logTime = at
	}
}

func evolve(f *facts, e *eventsv1.Envelope) {
	at := e.GetOccurredAt().AsTime()
	first := func(t *time.Time) {
		if t.IsZero() {
			*t = at
		}
	}
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		if f.received.IsZero() {
			f.received = receivedAt(at, p.ComplaintReceived)
		}
	case *eventsv1.Envelope_ComplaintAccepted:
		first(&f.accepted)
	case *eventsv1.Envelope_ComplaintWithdrawn:
		f.withdrawn = true
		f.endedAt = at
	case *eventsv1.Envelope_ComplaintClassified:
		f.category = p.ComplaintClassified.GetCategory()
	case *eventsv1.Envelope_RepeatComplaintFlagged:
		f.repeat = true
	case *eventsv1.Envelope_ComplaintAssigned:
		f.team, f.owner = strings.Clone(p.ComplaintAssigned.GetTeam()), strings.Clone(p.ComplaintAssigned.GetOwner())
	case *eventsv1.Envelope_ResponseRecorded:
		first(&f.responded)
	case *eventsv1.Envelope_ComplaintResolved:
		if f.resolved.IsZero() {
			f.resolved = at
			f.firstContact = p.ComplaintResolved.GetFirstContact()
		}
	case *eventsv1.Envelope_TechnicianAccepted:
		f.addTechnician(p.TechnicianAccepted.GetTechnicianId())
	case *eventsv1.Envelope_WorkCompleted:
		f.addTechnician(p.WorkCompleted.GetTechnicianId())
	case *eventsv1.Envelope_RemoteResolved:
		f.addTechnician(p.RemoteResolved.GetTechnicianId())
	case *eventsv1.Envelope_SlaMet:
		f.clock(p.SlaMet.GetClockId(), p.SlaMet.GetTarget()).met = true
	case *eventsv1.Envelope_SlaBreached:
		f.clock(p.SlaBreached.GetClockId(), p.SlaBreached.GetTarget()).breached = true
	case *eventsv1.Envelope_SlaBreachWithdrawn: // the facts did not support the breach
		f.clock(p.SlaBreachWithdrawn.GetClockId(), p.SlaBreachWithdrawn.GetTarget()).breached = false
	case *eventsv1.Envelope_SurveyAnswered:
		f.answers = append(f.answers, p.SurveyAnswered.GetSatisfaction())
	case *eventsv1.Envelope_ComplaintReopened:
		f.reopened = true
		f.outcome = eventsv1.CloseOutcome_CLOSE_OUTCOME_UNSPECIFIED
		f.endedAt = time.Time{}
	case *eventsv1.Envelope_ComplaintClosed:
		f.outcome = p.ComplaintClosed.GetOutcome()
		f.endedAt = at
	}
}

// receivedAt is when the customer reported the complaint: the channel's
// received_at when it is earlier than the event (a complaint entered late),
// else the event's occurred_at. The SLA clocks start from the same instant
// (slaclock's triggerTime), so the KPIs and the clocks agree on a late entry.
func receivedAt(occurred time.Time, r *eventsv1.ComplaintReceived) time.Time {
	if r.GetReceivedAt() != nil && r.GetReceivedAt().AsTime().Before(occurred) {
		return r.GetReceivedAt().AsTime()
	}
	return occurred
}

func (f *facts) addTechnician(id string) {
	if id == "" {
		return
	}
	if i, found := slices.BinarySearch(f.technicians, id); !found {
		f.technicians = slices.Insert(f.technicians, i, strings.Clone(id))
	}
}

func (f *facts) clock(id string, target eventsv1.SlaTarget) *slaClock {
	c := f.clocks[id]
	if c == nil {
		c = &slaClock{target: target}
		f.clocks[strings.Clone(id)] = c
	}
	return c
}
