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
}

type slaClock struct {
	target   eventsv1.SlaTarget
	met      bool
	breached bool
}

// Model is the KPI read model. Safe for concurrent use.
type Model struct {
	mu         sync.RWMutex
	complaints map[string]*facts
	position   uint64
}

// New returns an empty model.
func New() *Model { return &Model{complaints: map[string]*facts{}} }

// Position is the log position of the last record applied.
func (m *Model) Position() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.position
}

// Apply folds one record in. A record of a version already applied (a
// redelivery, a replay) changes nothing.
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
	f := m.complaints[stream.ID()]
	if f == nil {
		f = &facts{clocks: map[string]*slaClock{}}
		m.complaints[stream.ID()] = f
	}
	if e.GetVersion() <= f.version {
		return
	}
	f.version = e.GetVersion()
	evolve(f, e)
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
	case *eventsv1.Envelope_ComplaintClosed:
		f.outcome = p.ComplaintClosed.GetOutcome()
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
