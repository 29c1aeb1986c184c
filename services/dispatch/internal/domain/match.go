package domain

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Rejection reasons of the hard filters, in the order they are applied.
const (
	RejectTerritory = "territory"
	RejectSkill     = "skill"
	RejectStatus    = "status"
	RejectDeclined  = "declined"
	RejectCapacity  = "capacity"
	RejectShift     = "shift"
)

// MatchPolicy holds the work rules and service objectives of matching, in
// the spirit of Salesforce Field Service: hard filters, then weighted scores.
type MatchPolicy struct {
	// TravelTime is added to the shift start to estimate arrival on site.
	TravelTime time.Duration
	// Weights of the service objectives; the score is their weighted sum.
	WeightArrival   float64 // earlier arrival (relative to the due time)
	WeightLoad      float64 // fewer open jobs relative to capacity
	WeightPreferred float64 // the technician the customer asked for
	// MaxExplained caps the candidates listed in an assignment's explanation.
	MaxExplained int
}

// DefaultMatchPolicy is the policy used unless configured otherwise.
func DefaultMatchPolicy() MatchPolicy {
	return MatchPolicy{TravelTime: 2 * time.Hour, WeightArrival: 0.5, WeightLoad: 0.3, WeightPreferred: 0.2, MaxExplained: 10}
}

// Candidate is a technician as matching sees them: their state and schedule.
type Candidate struct {
	Tech     *Technician
	Schedule Schedule
}

// MatchRequest is the order to match, as of now.
type MatchRequest struct {
	Spec *eventsv1.WorkOrderSpec
	// Exclude lists technicians who declined this order.
	Exclude []string
	Now     time.Time
}

// Scored is one technician's outcome: rejected by a filter, or eligible with a score.
type Scored struct {
	TechnicianID string
	Eligible     bool
	Rejected     string
	Score        float64
	Arrival      time.Time
	// Day is the calendar day the job would count against.
	Day        string
	OpenJobs   int
	Outsourced bool
	Preferred  bool
}

// MatchResult ranks the eligible technicians: direct ones first, best score
// first; outsourced ones after every direct one (used only when no direct
// technician can be booked).
type MatchResult struct {
	Ranked []Scored
	// Rejected holds up to MaxExplained in-territory technicians a filter removed.
	Rejected []Scored
	// Counts of rejections by reason, over every technician considered.
	Counts     map[string]int
	Considered int
}

// Match applies the hard filters (territory, skill, status, declined,
// capacity, shift) to every candidate, then scores the survivors. It is pure:
// the same inputs give the same ranking.
func Match(p MatchPolicy, req MatchRequest, candidates []Candidate) MatchResult {
	res := MatchResult{Counts: map[string]int{}, Considered: len(candidates)}
	spec := req.Spec
	onSite := spec.GetMode() == eventsv1.ServiceMode_SERVICE_MODE_ON_SITE
	due := spec.GetRequiredBy().AsTime()
	if spec.GetRequiredBy() == nil {
		due = req.Now.Add(24 * time.Hour)
	}
	horizon := due.Sub(req.Now)
	for _, c := range candidates {
		t := c.Tech
		s := Scored{TechnicianID: t.ID, OpenJobs: t.OpenJobs(), Outsourced: t.Outsourced, Preferred: t.ID == spec.GetPreferredTechnicianId()}
		reject := func(reason string) {
			s.Rejected = reason
			res.Counts[reason]++
			if reason != RejectTerritory && len(res.Rejected) < p.MaxExplained {
				res.Rejected = append(res.Rejected, s)
			}
		}
		// Remote support can be given from anywhere; on-site work only in the territory.
		if onSite && t.Region != spec.GetRegion() {
			reject(RejectTerritory)
			continue
		}
		if !t.Can(spec.GetServiceType(), spec.GetProductLine()) {
			reject(RejectSkill)
			continue
		}
		if t.Status != eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ACTIVE {
			reject(RejectStatus)
			continue
		}
		if slices.Contains(req.Exclude, t.ID) {
			reject(RejectDeclined)
			continue
		}
		arrival, ok := earliestArrival(c.Schedule, req.Now, travel(p, onSite))
		s.Arrival, s.Day = arrival, Day(c.Schedule, arrival)
		if uint32(t.OpenJobs()) >= t.MaxConcurrent || uint32(t.JobsOn(s.Day)) >= t.MaxDaily {
			reject(RejectCapacity)
			continue
		}
		if !ok || arrival.After(due) {
			reject(RejectShift)
			continue
		}
		s.Eligible = true
		s.Score = score(p, s, t, req.Now, horizon)
		res.Ranked = append(res.Ranked, s)
	}
	sort.Slice(res.Ranked, func(i, j int) bool {
		a, b := res.Ranked[i], res.Ranked[j]
		if a.Outsourced != b.Outsourced {
			return !a.Outsourced
		}
		if a.Score != b.Score {
			return a.Score > b.Score
		}
		return a.TechnicianID < b.TechnicianID
	})
	return res
}

func travel(p MatchPolicy, onSite bool) time.Duration {
	if onSite {
		return p.TravelTime
	}
	return 0
}

// earliestArrival is when the technician can be at work on the order: the
// start of their shift (now, if on shift) plus travel, landing in working time.
func earliestArrival(s Schedule, now time.Time, travel time.Duration) (time.Time, bool) {
	if s == nil {
		s = AlwaysOn{}
	}
	start := s.NextShiftStart(now)
	for range 2 { // travel may cross the end of a shift: try the next one once
		if start.IsZero() {
			return time.Time{}, false
		}
		arrival := start.Add(travel)
		if s.OnShift(arrival) {
			return arrival, true
		}
		start = s.NextShiftStart(arrival)
	}
	return time.Time{}, false
}

func score(p MatchPolicy, s Scored, t *Technician, now time.Time, horizon time.Duration) float64 {
	arrival := 1.0
	if horizon > 0 {
		arrival = 1 - float64(s.Arrival.Sub(now))/float64(horizon)
	}
	load := 1 - float64(t.OpenJobs())/float64(t.MaxConcurrent)
	pref := 0.0
	if s.Preferred {
		pref = 1
	}
	return p.WeightArrival*clamp01(arrival) + p.WeightLoad*clamp01(load) + p.WeightPreferred*pref
}

func clamp01(f float64) float64 { return max(0, min(1, f)) }

// Explain lists the candidates for an assignment's or an unassignable
// order's event: the ranked ones (up to MaxExplained), then rejected ones.
func (r MatchResult) Explain(max int) []*eventsv1.CandidateScore {
	out := make([]*eventsv1.CandidateScore, 0, min(max, len(r.Ranked))+len(r.Rejected))
	for i, s := range r.Ranked {
		if i == max {
			break
		}
		out = append(out, s.proto())
	}
	for _, s := range r.Rejected {
		out = append(out, s.proto())
	}
	return out
}

func (s Scored) proto() *eventsv1.CandidateScore {
	c := &eventsv1.CandidateScore{
		TechnicianId: s.TechnicianID, Eligible: s.Eligible, RejectedBecause: s.Rejected, Score: s.Score,
		OpenJobs: uint32(s.OpenJobs), Outsourced: s.Outsourced,
	}
	if !s.Arrival.IsZero() {
		c.EarliestArrival = timestamppb.New(s.Arrival)
	}
	return c
}

// WhyChosen explains the winner for TechnicianAssigned.reason.
func (r MatchResult) WhyChosen(w Scored) string {
	var b strings.Builder
	fmt.Fprintf(&b, "best of %d eligible (of %d considered): score %.3f, arrival %s, %d open jobs",
		len(r.Ranked), r.Considered, w.Score, w.Arrival.UTC().Format(time.RFC3339), w.OpenJobs)
	if w.Preferred {
		b.WriteString(", preferred technician")
	}
	if w.Outsourced {
		b.WriteString(", outsourced: no direct technician could take it")
	}
	if s := r.countsText(); s != "" {
		b.WriteString("; filtered out: " + s)
	}
	return b.String()
}

// WhyNone explains an unassignable order.
func (r MatchResult) WhyNone() string {
	if r.Considered == 0 {
		return "no technicians registered"
	}
	if len(r.Ranked) > 0 {
		return fmt.Sprintf("all %d eligible technicians were fully booked when booking was tried", len(r.Ranked))
	}
	return fmt.Sprintf("no technician fits (of %d considered): %s", r.Considered, r.countsText())
}

func (r MatchResult) countsText() string {
	var parts []string
	for _, k := range []string{RejectTerritory, RejectSkill, RejectStatus, RejectDeclined, RejectCapacity, RejectShift} {
		if n := r.Counts[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, n))
		}
	}
	return strings.Join(parts, ", ")
}

// Pool is the technicians matching draws from, indexed by region so an
// on-site order scans only its territory (the territory filter, applied in
// bulk). Build a new Pool when a technician changes; it is read-only after.
type Pool struct {
	all      []Candidate
	byRegion map[string][]Candidate
}

// NewPool indexes candidates.
func NewPool(cands []Candidate) *Pool {
	p := &Pool{all: cands, byRegion: map[string][]Candidate{}}
	for _, c := range cands {
		p.byRegion[c.Tech.Region] = append(p.byRegion[c.Tech.Region], c)
	}
	return p
}

// Len is the number of technicians in the pool.
func (p *Pool) Len() int { return len(p.all) }

// Match is Match over the pool: the same result as over every candidate.
func (p *Pool) Match(policy MatchPolicy, req MatchRequest) MatchResult {
	if req.Spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_ON_SITE {
		return Match(policy, req, p.all)
	}
	local := p.byRegion[req.Spec.GetRegion()]
	res := Match(policy, req, local)
	if outside := len(p.all) - len(local); outside > 0 {
		res.Counts[RejectTerritory] += outside
	}
	res.Considered = len(p.all)
	return res
}
