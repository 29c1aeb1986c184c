package kpi

import (
	"cmp"
	"slices"
	"strings"
	"time"

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

// foldEvery is how far log time moves between two looks for complaints to
// fold: ended complaints are only scanned when it crosses a whole hour.
const foldEvery = time.Hour

// advance moves log time to at, and folds the complaints ended more than
// FoldAfter ago when it crossed an hour. The caller holds the lock.
func (m *Model) advance(at time.Time) {
	if !at.After(m.logTime) {
		return
	}
	before := m.logTime
	m.logTime = at
	if m.opts.FoldAfter < 0 || before.Truncate(foldEvery).Equal(at.Truncate(foldEvery)) {
		return
	}
	var due []string
	for id, ended := range m.ended {
		if !ended.Add(m.opts.FoldAfter).After(at) {
			due = append(due, id)
		}
	}
	slices.Sort(due) // a cell's order is the same in every model of this log
	for _, id := range due {
		f := m.complaints[id]
		k := keyOf(f)
		c := m.cells[k]
		if c == nil {
			c = &cell{}
			m.cells[k] = c
		}
		c.complaints = append(c.complaints, summaryOf(f))
		delete(m.complaints, id)
		delete(m.ended, id)
	}
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
