package kpi

import (
	"cmp"
	"slices"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Group is what rows are grouped by.
type Group int

const (
	GroupAll Group = iota
	GroupTeam
	GroupOwner
	GroupTechnician
	GroupCategory
)

// Period is the length of a row's period.
type Period int

const (
	PeriodAll Period = iota
	PeriodDay
	PeriodWeek // ISO week, Monday first
	PeriodMonth
)

// Query selects and groups complaints by receipt.
type Query struct {
	Group  Group
	Period Period
	// Complaints received in [From, To); a zero bound is open.
	From, To time.Time
	// Location cuts days, weeks and months (UTC when nil).
	Location *time.Location
}

// Durations summarises a set of elapsed times.
type Durations struct {
	Count uint32
	Mean  time.Duration
	// P90 is the nearest-rank 90th percentile: the ceil(0.9·n)-th smallest.
	P90 time.Duration
}

// SLA is one target's compliance: a clock counts as breached if it ever
// breached, as met if it was met and never breached.
type SLA struct {
	Target   eventsv1.SlaTarget
	Met      uint32
	Breached uint32
	Rate     float64 // Met / (Met + Breached)
}

// Row is the KPIs of one group in one period. Rates are 0 when their
// denominator is 0.
type Row struct {
	GroupKey    string
	PeriodStart time.Time // zero for PeriodAll

	Received             uint32
	Withdrawn            uint32 // withdrawn before any resolution
	Resolved             uint32 // resolved at least once
	Reopened             uint32 // reopened at least once
	Repeats              uint32 // flagged as a repeat complaint
	FirstContactResolved uint32
	SurveysAnswered      uint32
	CSIAverage           float64   // mean satisfaction over every answer
	CSIDistribution      [5]uint32 // answers scoring 1..5

	ResolutionRate   float64 // Resolved / (Received − Withdrawn)
	ReopenRate       float64 // Reopened / Resolved
	RepeatRate       float64 // Repeats / Received
	FirstContactRate float64 // FirstContactResolved / Resolved

	SLA []SLA // targets that have at least one met or breached clock, in enum order

	TimeToAccept  Durations // ComplaintAccepted − ComplaintReceived (first of each)
	TimeToRespond Durations // first ResponseRecorded − ComplaintReceived
	TimeToResolve Durations // first ComplaintResolved − ComplaintReceived

	// The complaint's latest close (a reopen clears it).
	ClosedSatisfied  uint32
	ClosedNeutral    uint32
	ClosedNoResponse uint32
}

type rowKey struct {
	group  string
	period time.Time
}

type acc struct {
	row                      Row
	accept, respond, resolve []time.Duration
	csiSum                   uint64
	slaMet, slaBreached      map[eventsv1.SlaTarget]uint32
}

// Query returns one row per group and period that has complaints, ordered by
// period then group key. Complaints whose ComplaintReceived is not in the log
// are left out.
func (m *Model) Query(q Query) []Row {
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	m.mu.RLock()
	accs := map[rowKey]*acc{}
	for _, f := range m.complaints {
		if f.received.IsZero() || (!q.From.IsZero() && f.received.Before(q.From)) || (!q.To.IsZero() && !f.received.Before(q.To)) {
			continue
		}
		start := periodStart(f.received, q.Period, loc)
		for _, g := range groupKeys(f, q.Group) {
			k := rowKey{g, start}
			a := accs[k]
			if a == nil {
				a = &acc{row: Row{GroupKey: g, PeriodStart: start}, slaMet: map[eventsv1.SlaTarget]uint32{}, slaBreached: map[eventsv1.SlaTarget]uint32{}}
				accs[k] = a
			}
			a.add(f)
		}
	}
	m.mu.RUnlock()

	rows := make([]Row, 0, len(accs))
	for _, a := range accs {
		rows = append(rows, a.finish())
	}
	slices.SortFunc(rows, func(x, y Row) int {
		return cmp.Or(x.PeriodStart.Compare(y.PeriodStart), cmp.Compare(x.GroupKey, y.GroupKey))
	})
	return rows
}

func groupKeys(f *facts, g Group) []string {
	switch g {
	case GroupTeam:
		return []string{f.team}
	case GroupOwner:
		return []string{f.owner}
	case GroupTechnician:
		if len(f.technicians) == 0 {
			return []string{""}
		}
		return f.technicians
	case GroupCategory:
		return []string{categoryKey(f.category)}
	default:
		return []string{""}
	}
}

// categoryKey is the category's enum name without its prefix, e.g. "SERVICE";
// "" when the complaint was never classified.
func categoryKey(c eventsv1.Category) string {
	if c == eventsv1.Category_CATEGORY_UNSPECIFIED {
		return ""
	}
	name := c.String()
	const prefix = "CATEGORY_"
	if len(name) > len(prefix) && name[:len(prefix)] == prefix {
		return name[len(prefix):]
	}
	return name
}

func periodStart(t time.Time, p Period, loc *time.Location) time.Time {
	t = t.In(loc)
	y, mo, d := t.Date()
	switch p {
	case PeriodDay:
		return time.Date(y, mo, d, 0, 0, 0, 0, loc)
	case PeriodWeek:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, mo, d-back, 0, 0, 0, 0, loc)
	case PeriodMonth:
		return time.Date(y, mo, 1, 0, 0, 0, 0, loc)
	default:
		return time.Time{}
	}
}

func (a *acc) add(f *facts) {
	r := &a.row
	r.Received++
	if f.withdrawn && f.resolved.IsZero() {
		r.Withdrawn++
	}
	if !f.resolved.IsZero() {
		r.Resolved++
		a.resolve = append(a.resolve, f.resolved.Sub(f.received))
		if f.firstContact {
			r.FirstContactResolved++
		}
	}
	if !f.accepted.IsZero() {
		a.accept = append(a.accept, f.accepted.Sub(f.received))
	}
	if !f.responded.IsZero() {
		a.respond = append(a.respond, f.responded.Sub(f.received))
	}
	if f.reopened {
		r.Reopened++
	}
	if f.repeat {
		r.Repeats++
	}
	for _, s := range f.answers {
		r.SurveysAnswered++
		a.csiSum += uint64(s)
		if s >= 1 && s <= 5 {
			r.CSIDistribution[s-1]++
		}
	}
	for _, c := range f.clocks {
		switch {
		case c.breached:
			a.slaBreached[c.target]++
		case c.met:
			a.slaMet[c.target]++
		}
	}
	switch f.outcome {
	case eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED:
		r.ClosedSatisfied++
	case eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL:
		r.ClosedNeutral++
	case eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE:
		r.ClosedNoResponse++
	}
}

func (a *acc) finish() Row {
	r := a.row
	r.CSIAverage = ratio(float64(a.csiSum), r.SurveysAnswered)
	r.ResolutionRate = ratio(float64(r.Resolved), r.Received-r.Withdrawn)
	r.ReopenRate = ratio(float64(r.Reopened), r.Resolved)
	r.RepeatRate = ratio(float64(r.Repeats), r.Received)
	r.FirstContactRate = ratio(float64(r.FirstContactResolved), r.Resolved)
	for t := range eventsv1.SlaTarget_name {
		target := eventsv1.SlaTarget(t)
		met, breached := a.slaMet[target], a.slaBreached[target]
		if met+breached > 0 {
			r.SLA = append(r.SLA, SLA{Target: target, Met: met, Breached: breached, Rate: ratio(float64(met), met+breached)})
		}
	}
	slices.SortFunc(r.SLA, func(x, y SLA) int { return cmp.Compare(x.Target, y.Target) })
	r.TimeToAccept = summarise(a.accept)
	r.TimeToRespond = summarise(a.respond)
	r.TimeToResolve = summarise(a.resolve)
	return r
}

func ratio(num float64, den uint32) float64 {
	if den == 0 {
		return 0
	}
	return num / float64(den)
}

func summarise(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	slices.Sort(ds)
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	rank := (len(ds)*9 + 9) / 10 // ceil(0.9·n)
	return Durations{Count: uint32(len(ds)), Mean: sum / time.Duration(len(ds)), P90: ds[rank-1]}
}
