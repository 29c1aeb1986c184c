package kpi

import (
	"cmp"
	"container/heap"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The encoded model is a header and the folded complaints' summaries: the
// header's length (uvarint), the header (modelState as JSON: the complaints
// whose facts are kept, and the cells' keys and sizes, both sorted;
// encoding/json sorts the clocks' map keys), then every cell's summaries in
// the header's order, in binary (appendSummary). One state is one string of
// bytes. The summaries are binary because they are nearly all of a big
// model (a million closed complaints): about 40 bytes each, written once
// into one buffer, where JSON took 170 and several copies while encoding.
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
	// Complaints is how many summaries of the cell follow the header.
	Complaints int `json:"complaints"`
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
	folded := 0
	for _, k := range keys {
		n := len(m.cells[k].complaints)
		st.Cells = append(st.Cells, cellState{Team: k.team, Owner: k.owner, Category: k.category, Technicians: k.techs(), Complaints: n})
		folded += n
	}
	header, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(header)+folded*typicalSummaryBytes)
	out = binary.AppendUvarint(out, uint64(len(header)))
	out = append(out, header...)
	for _, k := range keys {
		for i := range m.cells[k].complaints {
			out = appendSummary(out, &m.cells[k].complaints[i])
		}
	}
	return out, nil
}

// Restore replaces the model with what Snapshot encoded, as of position;
// on an error the model is left as it was.
func (m *Model) Restore(position uint64, data []byte) error {
	size, n := binary.Uvarint(data)
	if n <= 0 || size > uint64(len(data)-n) {
		return fmt.Errorf("kpi: decode: the header's length is missing or too long")
	}
	var st modelState
	if err := json.Unmarshal(data[n:n+int(size)], &st); err != nil {
		return fmt.Errorf("kpi: decode: %w", err)
	}
	body := data[n+int(size):]
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
		if cs.Complaints < 0 || cs.Complaints > len(body) {
			return fmt.Errorf("kpi: decode: a cell of %d complaints in %d bytes", cs.Complaints, len(body))
		}
		c := &cell{complaints: make([]summary, cs.Complaints)}
		for i := range c.complaints {
			var err error
			if body, err = readSummary(body, &c.complaints[i]); err != nil {
				return fmt.Errorf("kpi: decode: %w", err)
			}
		}
		cells[k] = c
	}
	if len(body) > 0 {
		return fmt.Errorf("kpi: decode: %d bytes after the last summary", len(body))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.complaints, m.pending, m.due, m.cells, m.logTime, m.position = complaints, pending, due, cells, st.LogTime, position
	return nil
}

// typicalSummaryBytes sizes the encoding's buffer: a summary with three
// durations, one answer and a few clocks.
const typicalSummaryBytes = 48

// appendSummary appends s in binary: its flags, then varints, writing a
// duration only when its flag says it is set, the answer histogram only when
// there are answers, and of each SLA count array a bitmask of the targets
// counted and their counts.
func appendSummary(b []byte, s *summary) []byte {
	b = append(b, s.flags)
	b = binary.AppendVarint(b, s.received)
	for _, d := range []struct {
		flag  uint8
		value int64
	}{{hasAccept, s.accept}, {hasRespond, s.respond}, {hasResolve, s.resolve}} {
		if s.flags&d.flag != 0 {
			b = binary.AppendVarint(b, d.value)
		}
	}
	b = binary.AppendUvarint(b, uint64(s.outcome))
	b = binary.AppendUvarint(b, uint64(s.answers))
	if s.answers > 0 {
		b = binary.AppendUvarint(b, uint64(s.csiSum))
		for _, n := range s.csi {
			b = binary.AppendUvarint(b, uint64(n))
		}
	}
	return appendCounts(appendCounts(b, &s.slaMet), &s.slaBreached)
}

func appendCounts(b []byte, counts *[numTargets]uint8) []byte {
	var mask uint64
	for i, n := range counts {
		if n != 0 {
			mask |= 1 << i
		}
	}
	b = binary.AppendUvarint(b, mask)
	for _, n := range counts {
		if n != 0 {
			b = append(b, n)
		}
	}
	return b
}

// summaryReader reads what appendSummary wrote; the first error sticks.
type summaryReader struct {
	b   []byte
	err error
}

func (r *summaryReader) u8() uint8 {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errors.New("a summary is cut short")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *summaryReader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("a summary holds a malformed number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// uvarint reads an unsigned number of at most max.
func (r *summaryReader) uvarint(max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n <= 0:
		r.err = errors.New("a summary holds a malformed number")
	case v > max:
		r.err = fmt.Errorf("a summary holds %d where at most %d fits", v, max)
	default:
		r.b = r.b[n:]
		return v
	}
	return 0
}

func (r *summaryReader) counts(counts *[numTargets]uint8) {
	mask := r.uvarint(1<<numTargets - 1)
	for i := range counts {
		if mask&(1<<i) != 0 {
			counts[i] = r.u8()
		}
	}
}

// readSummary decodes one summary from the start of b into s and returns
// the rest of b.
func readSummary(b []byte, s *summary) ([]byte, error) {
	r := summaryReader{b: b}
	s.flags = r.u8()
	s.received = r.varint()
	for _, d := range []struct {
		flag  uint8
		value *int64
	}{{hasAccept, &s.accept}, {hasRespond, &s.respond}, {hasResolve, &s.resolve}} {
		if s.flags&d.flag != 0 {
			*d.value = r.varint()
		}
	}
	s.outcome = eventsv1.CloseOutcome(r.uvarint(math.MaxInt32))
	s.answers = uint32(r.uvarint(math.MaxUint32))
	if s.answers > 0 {
		s.csiSum = uint32(r.uvarint(math.MaxUint32))
		for i := range s.csi {
			s.csi[i] = uint16(r.uvarint(math.MaxUint16))
		}
	}
	r.counts(&s.slaMet)
	r.counts(&s.slaBreached)
	return r.b, r.err
}
