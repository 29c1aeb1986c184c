package kpi

import (
	"cmp"
	"container/heap"
	"strings"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A folded complaint is what Query reads of it, without its id, stream
// version, clock ids or group strings: its group is its cell's key. Query
// selects complaints by their exact receipt instant (From and To are any
// instants, periods cut in any time zone) and reports a nearest-rank p90 of
// each duration, so a folded complaint keeps its receipt time and its three
// durations; everything else is a handful of counters. Coarser cells (per
// day, per week) would change the answer of a query whose bounds fall
// inside a cell, and a p90 cannot be summed.
type summary struct {
	received                 int64 // Unix nanoseconds
	accept, respond, resolve int64 // durations; valid per the has* flags
	flags                    uint8
	outcome                  eventsv1.CloseOutcome
	answers                  uint32 // survey answers
	csiSum                   uint32
	csi                      [5]uint16 // answers scoring 1..5
	slaMet, slaBreached      [numTargets]uint8
}

const (
	hasAccept uint8 = 1 << iota
	hasRespond
	hasResolve
	withdrawnUnresolved
	firstContact
	reopened
	repeat
)

// numTargets bounds the SLA targets a summary counts (the enum's values).
const numTargets = 16

// cellKey is a group of folded complaints: every group key Query can ask
// for. technicians is the sorted list joined by NUL.
type cellKey struct {
	team, owner string
	category    eventsv1.Category
	technicians string
}

type cell struct {
	complaints []summary
}

func (k cellKey) techs() []string {
	if k.technicians == "" {
		return nil
	}
	return strings.Split(k.technicians, "\x00")
}

// summaryOf is f as Query reads it.
func summaryOf(f *facts) summary {
	s := summary{received: f.received.UnixNano(), outcome: f.outcome}
	if !f.accepted.IsZero() {
		s.flags |= hasAccept
		s.accept = int64(f.accepted.Sub(f.received))
	}
	if !f.responded.IsZero() {
		s.flags |= hasRespond
		s.respond = int64(f.responded.Sub(f.received))
	}
	if !f.resolved.IsZero() {
		s.flags |= hasResolve
		s.resolve = int64(f.resolved.Sub(f.received))
		if f.firstContact {
			s.flags |= firstContact
		}
	}
	if f.withdrawn && f.resolved.IsZero() {
		s.flags |= withdrawnUnresolved
	}
	if f.reopened {
		s.flags |= reopened
	}
	if f.repeat {
		s.flags |= repeat
	}
	for _, a := range f.answers {
		s.answers++
		s.csiSum += a
		if a >= 1 && a <= 5 {
			s.csi[a-1]++
		}
	}
	for _, c := range f.clocks {
		if c.target < 0 || int(c.target) >= numTargets {
			continue
		}
		switch {
		case c.breached:
			s.slaBreached[c.target]++
		case c.met:
			s.slaMet[c.target]++
		}
	}
	return s
}

func keyOf(f *facts) cellKey {
	return cellKey{team: f.team, owner: f.owner, category: f.category, technicians: strings.Join(f.technicians, "\x00")}
}

// An ended complaint folds once two things hold: FoldLag events of the log
// followed its last event (foldEntry, in pending), and log time passed its
// end by FoldAfter (dueEntry, in due). Both are checked after every record,
// each queue in a total order of its own (position; due time, then id), so
// a model restored from a snapshot and caught up folds the same complaints
// in the same order as one rebuilt from the log: the order of a cell's
// complaints is part of the snapshot's bytes.
//
// Entries go stale rather than being removed: an event of a complaint
// already queued (a late SLA end, a reopen) changes its facts' lastPos, and
// the entry of the older position is skipped when it comes out.
type foldEntry struct {
	id  string
	pos uint64 // the complaint's last event when queued
}

type dueEntry struct {
	at  int64 // end + FoldAfter, Unix nanoseconds
	id  string
	pos uint64
}

// dueHeap is a min-heap of dueEntry by (at, id).
type dueHeap []dueEntry

func (h dueHeap) Len() int { return len(h) }
func (h dueHeap) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(h[i].at, h[j].at), cmp.Compare(h[i].id, h[j].id)) < 0
}
func (h dueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)   { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// queued returns the facts an entry stands for while it is current: the
// complaint still kept, still ended, with no event since the entry.
func (m *Model) queued(id string, pos uint64) *facts {
	f := m.complaints[id]
	if f == nil || f.endedAt.IsZero() || f.lastPos != pos {
		return nil
	}
	return f
}

// fold folds the ended complaints whose lag and window have both passed.
// The caller holds the lock.
func (m *Model) fold() {
	if m.opts.FoldAfter < 0 {
		m.pending = m.pending[:0]
		return
	}
	lag := uint64(m.opts.FoldLag)
	for len(m.pending) > 0 && m.pending[0].pos+lag <= m.position {
		x := m.pending[0]
		m.pending[0] = foldEntry{}
		m.pending = m.pending[1:]
		if f := m.queued(x.id, x.pos); f != nil {
			heap.Push(&m.due, dueEntry{at: f.endedAt.Add(m.opts.FoldAfter).UnixNano(), id: x.id, pos: x.pos})
		}
	}
	now := m.logTime.UnixNano()
	for len(m.due) > 0 && m.due[0].at <= now {
		x := heap.Pop(&m.due).(dueEntry)
		if f := m.queued(x.id, x.pos); f != nil {
			m.foldOne(f)
		}
	}
}

// foldOne moves f's facts into its group's cell.
func (m *Model) foldOne(f *facts) {
	k := keyOf(f)
	c := m.cells[k]
	if c == nil {
		c = &cell{}
		m.cells[k] = c
	}
	c.complaints = append(c.complaints, summaryOf(f))
	delete(m.complaints, f.id)
}

// Folded is how many complaints were folded into cells; Live how many keep
// their facts.
func (m *Model) Folded() (folded, live int) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, c := range m.cells {
		folded += len(c.complaints)
	}
	return folded, len(m.complaints)
}

func compareCells(a, b cellKey) int {
	return cmp.Or(cmp.Compare(a.team, b.team), cmp.Compare(a.owner, b.owner), cmp.Compare(a.category, b.category), cmp.Compare(a.technicians, b.technicians))
}
