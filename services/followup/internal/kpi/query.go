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
	add := func(s summary, groups []string) {
		received := time.Unix(0, s.received)
		if (!q.From.IsZero() && received.Before(q.From)) || (!q.To.IsZero() && !received.Before(q.To)) {
			return
		}
		start := periodStart(received, q.Period, loc)
		for _, g := range groups {
			k := rowKey{g, start}
			a := accs[k]
			if a == nil {
				a = &acc{row: Row{GroupKey: g, PeriodStart: start}, slaMet: map[eventsv1.SlaTarget]uint32{}, slaBreached: map[eventsv1.SlaTarget]uint32{}}
				accs[k] = a
			}
			a.add(s)
		}
	}
	for _, f := range m.complaints {
		if f.received.IsZero() {
			continue
		}
		add(summaryOf(f), groupKeys(keyOf(f), q.Group))
	}
	for k, c := range m.cells {
		groups := groupKeys(k, q.Group)
		for _, s := range c.complaints {
			add(s, groups)
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

func groupKeys(k cellKey, g Group) []string {
	switch g {
	case GroupTeam:
		return []string{k.team}
	case GroupOwner:
		return []string{k.owner}
	case GroupTechnician:
		if k.technicians == "" {
			return []string{""}
		}
		return k.techs()
	case GroupCategory:
		return []string{categoryKey(k.category)}
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

func (a *acc) add(s summary) {
	r := &a.row
	r.Received++
	if s.flags&withdrawnUnresolved != 0 {
		r.Withdrawn++
	}
	if s.flags&hasResolve != 0 {
		r.Resolved++
		a.resolve = append(a.resolve, time.Duration(s.resolve))
		if s.flags&firstContact != 0 {
			r.FirstContactResolved++
		}
	}
	if s.flags&hasAccept != 0 {
		a.accept = append(a.accept, time.Duration(s.accept))
	}
	if s.flags&hasRespond != 0 {
		a.respond = append(a.respond, time.Duration(s.respond))
	}
	if s.flags&reopened != 0 {
		r.Reopened++
	}
	if s.flags&repeat != 0 {
		r.Repeats++
	}
	r.SurveysAnswered += s.answers
	a.csiSum += uint64(s.csiSum)
	for i, n := range s.csi {
		r.CSIDistribution[i] += uint32(n)
	}
	for t := range numTargets {
		if n := s.slaBreached[t]; n > 0 {
			a.slaBreached[eventsv1.SlaTarget(t)] += uint32(n)
		}
		if n := s.slaMet[t]; n > 0 {
			a.slaMet[eventsv1.SlaTarget(t)] += uint32(n)
		}
	}
	switch s.outcome {
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
