// Package kpi is the KPI read model: a fold of the event log into facts per
// complaint (Apply), and aggregates of those facts per team, owner,
// technician, category and period (Query). Live and rebuilt models run the
// same Apply over the same records, so they give the same numbers.
//
// Every KPI of a row is about the complaints *received* in the row's period
// (a cohort): a complaint received on 3 March counts its later resolution,
// reopen and survey answer in March's row.
package kpi

import (
	"slices"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// facts is what the KPIs need to know about one complaint.
type facts struct {
	version      uint64 // last applied version of the complaint's stream
	received     time.Time
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
}

type slaClock struct {
	target   eventsv1.SlaTarget
	met      bool
	breached bool
}

// Model is the KPI read model. Safe for concurrent use.
//
// It keeps the facts of a complaint until the complaint ended (closed or
// withdrawn) and FoldAfter more of log time passed, then folds them into
// the cells of its group (see fold.go): a late event can then no longer
// change them, and the model stops growing with every complaint's facts.
type Model struct {
	mu         sync.RWMutex
	opts       Options
	complaints map[string]*facts
	position   uint64
	// logTime is the latest occurred_at applied: the log's own clock, so a
	// restored and caught-up model folds exactly what a rebuilt one does.
	logTime time.Time
	ended   map[string]time.Time // complaints ended and not folded yet: when they ended
	cells   map[cellKey]*cell    // folded complaints, by group
}

// Options configure a Model.
type Options struct {
	// FoldAfter is how long, in log time, a complaint's facts are kept after
	// it ended before they are folded (default DefaultFoldAfter; negative:
	// never fold). Events of a folded complaint are ignored, so it must
	// outlast every window that can still change a KPI after a close: the
	// second-feedback SLA (72 h after the resolution) above all.
	FoldAfter time.Duration
}

// DefaultFoldAfter keeps an ended complaint's facts for 30 days of log time.
const DefaultFoldAfter = 30 * 24 * time.Hour

// New returns an empty model with the default options.
func New() *Model { return NewWith(Options{}) }

// NewWith returns an empty model.
func NewWith(o Options) *Model {
	if o.FoldAfter == 0 {
		o.FoldAfter = DefaultFoldAfter
	}
	return &Model{opts: o, complaints: map[string]*facts{}, ended: map[string]time.Time{}, cells: map[cellKey]*cell{}}
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
	e := rec.Event
	stream := eventlog.StreamID(e.GetStreamId())
	if stream == "" && e.GetComplaintId() != "" {
		stream = eventlog.ComplaintStream(e.GetComplaintId())
	}
	if stream.Kind() != eventlog.KindComplaint {
		return
	}
	at := e.GetOccurredAt().AsTime()
	f := m.complaints[stream.ID()]
	if f == nil {
		// Only a receipt starts a complaint's facts: Query leaves out a
		// complaint never received, and the events of a folded one come too
		// late to count.
		if e.GetComplaintReceived() == nil {
			m.advance(at)
			return
		}
		f = &facts{clocks: map[string]*slaClock{}}
		m.complaints[stream.ID()] = f
	}
	if e.GetVersion() <= f.version {
		m.advance(at)
		return
	}
	f.version = e.GetVersion()
	evolve(f, e)
	switch {
	case f.endedAt.IsZero():
		delete(m.ended, stream.ID())
	default:
		m.ended[stream.ID()] = f.endedAt
	}
	m.advance(at)
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
		first(&f.received)
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
		f.team, f.owner = p.ComplaintAssigned.GetTeam(), p.ComplaintAssigned.GetOwner()
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

func (f *facts) addTechnician(id string) {
	if id == "" {
		return
	}
	if i, found := slices.BinarySearch(f.technicians, id); !found {
		f.technicians = slices.Insert(f.technicians, i, id)
	}
}

func (f *facts) clock(id string, target eventsv1.SlaTarget) *slaClock {
	c := f.clocks[id]
	if c == nil {
		c = &slaClock{target: target}
		f.clocks[id] = c
	}
	return c
}
