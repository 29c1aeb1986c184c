package view

import (
	"cmp"
	"maps"
	"slices"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Sort orders of a query.
const (
	SortDue      = "due"      // nearest deadline first (overdue first), none last
	SortReceived = "received" // newest first
	SortPriority = "priority" // most urgent first, then by due
)

// Query selects and orders complaints; zero fields select everything.
type Query struct {
	Owner, Team, Status string
	Severity            eventsv1.Severity
	Priority            eventsv1.Priority
	Channel             eventsv1.Channel
	Breached            bool // only those with a breached clock
	Escalated           bool // only those escalated beyond the owner
	Unassigned          bool // only those without an owner
	DueBefore           time.Time
	// Text must all be found in the description or the customer's request
	// (blind-index terms); Serial is a product serial, whole.
	Text, Serial string
	Sort         string
	Offset       int
	Limit        int // default 50, at most 500

	// MinWarned: only those with a running clock breached or warned at
	// this percent or more (team.go); 0: any.
	MinWarned uint32
	// AwaitingReview: only those whose current solution waits for a review.
	AwaitingReview bool
	// NoTeam: only those without a team (not assigned yet); with Team set,
	// nothing.
	NoTeam bool
}

// Page is one page of a query's answer.
type Page struct {
	Total      int         `json:"total"`
	Complaints []Complaint `json:"complaints"`
	Position   uint64      `json:"position"` // the log position the view answers as of
}

// MaxLimit bounds one page.
const MaxLimit = 500

// Find answers q. It scans the open work (the view holds nothing else),
// then orders only the matches.
func (v *View) Find(q Query) Page {
	if q.Limit <= 0 {
		q.Limit = 50
	}
	q.Limit = min(q.Limit, MaxLimit)
	var terms []uint64
	if q.Text != "" {
		terms = v.index.QueryTerms(q.Text)
	}
	var serial uint64
	if q.Serial != "" {
		serial = v.index.Serial(q.Serial)
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	order := orderOf(q.Sort)
	var dueBefore int64
	if !q.DueBefore.IsZero() {
		dueBefore = q.DueBefore.UnixNano()
	}
	// Only the first offset+limit are ordered: a page of 50,000 matches
	// keeps 50 in order instead of sorting them all.
	// Deep pages collect every match and sort once (an insertion costs
	// the page's length).
	k := q.Offset + q.Limit
	deep := k > 2048
	top := make([]hit, 0, min(k, 1024))
	total := 0
	scan := maps.Values(v.complaints)
	if q.Owner != "" {
		scan = maps.Keys(v.byOwner[q.Owner])
	} else if q.Team != "" || q.NoTeam {
		scan = maps.Keys(v.byTeam[q.Team]) // NoTeam: those of team ""
	}
	for c := range scan {
		switch {
		case q.Owner != "" && c.Owner != q.Owner,
			q.Team != "" && c.Team != q.Team,
			q.Status != "" && c.Status != q.Status,
			q.Severity != 0 && c.Severity != q.Severity,
			q.Priority != 0 && c.Priority != q.Priority,
			q.Channel != 0 && c.Channel != q.Channel,
			q.Breached && !c.Breached(),
			q.Escalated && !c.Escalated(),
			q.Unassigned && c.Owner != "",
			q.MinWarned != 0 && !c.warnedAtLeast(q.MinWarned),
			q.AwaitingReview && !c.AwaitingReview(),
			q.NoTeam && c.Team != "",
			q.Serial != "" && (serial == 0 || c.Serial != serial),
			q.Text != "" && (len(terms) == 0 || !containsAll(c.Terms, terms)):
			continue
		}
		if dueBefore != 0 && (c.due == 0 || c.due >= dueBefore) {
			continue
		}
		total++
		h := hit{c, c.due}
		if deep {
			top = append(top, h)
			continue
		}
		if len(top) == k && order(h, top[k-1]) >= 0 {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, h, order)
		if len(top) == k {
			top = top[:k-1]
		}
		top = slices.Insert(top, i, h)
	}
	if deep {
		slices.SortFunc(top, order)
	}
	hits := top
	p := Page{Total: total, Position: v.position, Complaints: []Complaint{}}
	for i := q.Offset; i < len(hits) && i < q.Offset+q.Limit; i++ {
		p.Complaints = append(p.Complaints, hits[i].c.clone())
	}
	return p
}

type hit struct {
	c   *Complaint
	due int64 // Unix nanoseconds, 0: none
}

// orderOf compares two hits in the order sort names (ties by id, so pages
// are stable).
func orderOf(sort string) func(a, b hit) int {
	byDue := func(a, b hit) int {
		switch {
		case (a.due == 0) != (b.due == 0):
			if a.due == 0 {
				return 1
			}
			return -1
		case a.due != b.due:
			return cmp.Compare(a.due, b.due)
		}
		return cmp.Compare(a.c.ID, b.c.ID)
	}
	switch sort {
	case SortReceived:
		return func(a, b hit) int {
			if c := b.c.ReceivedAt.Compare(a.c.ReceivedAt); c != 0 {
				return c
			}
			return cmp.Compare(a.c.ID, b.c.ID)
		}
	case SortPriority:
		return func(a, b hit) int {
			if c := cmp.Compare(b.c.Priority, a.c.Priority); c != 0 {
				return c
			}
			return byDue(a, b)
		}
	}
	return byDue
}
