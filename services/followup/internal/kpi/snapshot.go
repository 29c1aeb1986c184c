package kpi

import (
	"cmp"
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// modelState is the encoded model: JSON with complaints and cells sorted
// (encoding/json sorts the clocks' map keys), so one state is one string of
// bytes.
type modelState struct {
	LogTime    time.Time    `json:"log_time"`
	Complaints []factsState `json:"complaints"`
	Cells      []cellState  `json:"cells"`
}

type factsState struct {
	ID           string                `json:"id"`
	Version      uint64                `json:"version"`
	Received     time.Time             `json:"received"`
	Accepted     time.Time             `json:"accepted"`
	Responded    time.Time             `json:"responded"`
	Resolved     time.Time             `json:"resolved"`
	FirstContact bool                  `json:"first_contact,omitempty"`
	Withdrawn    bool                  `json:"withdrawn,omitempty"`
	Reopened     bool                  `json:"reopened,omitempty"`
	Repeat       bool                  `json:"repeat,omitempty"`
	Team         string                `json:"team,omitempty"`
	Owner        string                `json:"owner,omitempty"`
	Category     eventsv1.Category     `json:"category,omitempty"`
	Technicians  []string              `json:"technicians,omitempty"`
	Answers      []uint32              `json:"answers,omitempty"`
	Outcome      eventsv1.CloseOutcome `json:"outcome,omitempty"`
	Clocks       map[string]clockState `json:"clocks,omitempty"`
	EndedAt      time.Time             `json:"ended_at"`
	LastPos      uint64                `json:"last_pos"`
}

type clockState struct {
	Target   eventsv1.SlaTarget `json:"target"`
	Met      bool               `json:"met,omitempty"`
	Breached bool               `json:"breached,omitempty"`
}

type cellState struct {
	Team        string            `json:"team,omitempty"`
	Owner       string            `json:"owner,omitempty"`
	Category    eventsv1.Category `json:"category,omitempty"`
	Technicians []string          `json:"technicians,omitempty"`
	Complaints  []summaryState    `json:"complaints"`
}

type summaryState struct {
	Received    int64                 `json:"r"`
	Accept      int64                 `json:"a,omitempty"`
	Respond     int64                 `json:"p,omitempty"`
	Resolve     int64                 `json:"s,omitempty"`
	Flags       uint8                 `json:"f,omitempty"`
	Outcome     eventsv1.CloseOutcome `json:"o,omitempty"`
	Answers     uint32                `json:"n,omitempty"`
	CSISum      uint32                `json:"c,omitempty"`
	CSI         [5]uint16             `json:"d,omitzero"`
	SLAMet      [numTargets]uint8     `json:"m,omitzero"`
	SLABreached [numTargets]uint8     `json:"b,omitzero"`
}

// Snapshot encodes the model (with Position, what checkpoint.View needs).
func (m *Model) Snapshot() ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := modelState{LogTime: m.logTime.UTC(), Complaints: make([]factsState, 0, len(m.complaints)), Cells: make([]cellState, 0, len(m.cells))}
	for id, f := range m.complaints {
		fs := factsState{
			ID: id, Version: f.version, Received: f.received.UTC(), Accepted: f.accepted.UTC(), Responded: f.responded.UTC(), Resolved: f.resolved.UTC(),
			FirstContact: f.firstContact, Withdrawn: f.withdrawn, Reopened: f.reopened, Repeat: f.repeat, Team: f.team, Owner: f.owner,
			Category: f.category, Technicians: f.technicians, Answers: f.answers, Outcome: f.outcome, EndedAt: f.endedAt.UTC(),
			LastPos: f.lastPos,
		}
		if len(f.clocks) > 0 {
			fs.Clocks = make(map[string]clockState, len(f.clocks))
			for id, c := range f.clocks {
				fs.Clocks[id] = clockState{Target: c.target, Met: c.met, Breached: c.breached}
			}
		}
		st.Complaints = append(st.Complaints, fs)
	}
	slices.SortFunc(st.Complaints, func(a, b factsState) int { return strings.Compare(a.ID, b.ID) })
	keys := make([]cellKey, 0, len(m.cells))
	for k := range m.cells {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareCells)
	for _, k := range keys {
		cs := cellState{Team: k.team, Owner: k.owner, Category: k.category, Technicians: k.techs(), Complaints: make([]summaryState, 0, len(m.cells[k].complaints))}
		for _, s := range m.cells[k].complaints {
			cs.Complaints = append(cs.Complaints, summaryState{
				Received: s.received, Accept: s.accept, Respond: s.respond, Resolve: s.resolve, Flags: s.flags, Outcome: s.outcome,
				Answers: s.answers, CSISum: s.csiSum, CSI: s.csi, SLAMet: s.slaMet, SLABreached: s.slaBreached,
			})
		}
		st.Cells = append(st.Cells, cs)
	}
	return json.Marshal(st)
}

// Restore replaces the model with what Snapshot encoded, as of position;
// on an error the model is left as it was.
func (m *Model) Restore(position uint64, data []byte) error {
	var st modelState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("kpi: decode: %w", err)
	}
	complaints := make(map[string]*facts, len(st.Complaints))
	var pending []foldEntry
	var due dueHeap
	for _, fs := range st.Complaints {
		if fs.ID == "" {
			return fmt.Errorf("kpi: decode: a complaint without an id")
		}
		f := &facts{
			id: fs.ID, lastPos: fs.LastPos, version: fs.Version, received: fs.Received, accepted: fs.Accepted, responded: fs.Responded, resolved: fs.Resolved,
			firstContact: fs.FirstContact, withdrawn: fs.Withdrawn, reopened: fs.Reopened, repeat: fs.Repeat, team: fs.Team, owner: fs.Owner,
			category: fs.Category, technicians: fs.Technicians, answers: fs.Answers, outcome: fs.Outcome, endedAt: fs.EndedAt,
			clocks: make(map[string]*slaClock, len(fs.Clocks)),
		}
		for id, c := range fs.Clocks {
			f.clocks[id] = &slaClock{target: c.Target, met: c.Met, breached: c.Breached}
		}
		complaints[fs.ID] = f
		// The queues as Apply left them at position (see fold.go): what a
		// lag has passed waits for its window, the rest for its lag.
		switch {
		case f.endedAt.IsZero() || m.opts.FoldAfter < 0:
		case f.lastPos+uint64(m.opts.FoldLag) <= position:
			due = append(due, dueEntry{at: f.endedAt.Add(m.opts.FoldAfter).UnixNano(), id: fs.ID, pos: f.lastPos})
		default:
			pending = append(pending, foldEntry{id: fs.ID, pos: f.lastPos})
		}
	}
	slices.SortFunc(pending, func(a, b foldEntry) int { return cmp.Compare(a.pos, b.pos) })
	heap.Init(&due)
	cells := make(map[cellKey]*cell, len(st.Cells))
	for _, cs := range st.Cells {
		k := cellKey{team: cs.Team, owner: cs.Owner, category: cs.Category, technicians: strings.Join(cs.Technicians, "\x00")}
		c := &cell{complaints: make([]summary, 0, len(cs.Complaints))}
		for _, s := range cs.Complaints {
			c.complaints = append(c.complaints, summary{
				received: s.Received, accept: s.Accept, respond: s.Respond, resolve: s.Resolve, flags: s.Flags, outcome: s.Outcome,
				answers: s.Answers, csiSum: s.CSISum, csi: s.CSI, slaMet: s.SLAMet, slaBreached: s.SLABreached,
			})
		}
		cells[k] = c
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.complaints, m.pending, m.due, m.cells, m.logTime, m.position = complaints, pending, due, cells, st.LogTime, position
	return nil
}
