package app

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
)

// Tracker is the in-memory view of the follow-ups in progress, folded from
// the log (restored from a snapshot and caught up at start, then followed),
// so the no-response timers and the due-task list survive a restart. It only
// reads; decisions are always re-made from the complaint's stream.
//
// It keeps a complaint only while it has something pending: an open survey
// (its no-response deadline), an undelivered feedback task or a return
// visit not made, or a resolution whose follow-up is not scheduled yet. A
// complaint at rest (in handling, closed or withdrawn with nothing pending)
// is dropped: what follows it (a resolution, a return visit) starts a state
// of its own that lists the same tasks as the whole fold would.
type Tracker struct {
	mu        sync.Mutex
	states    map[string]*domain.State
	deadlines map[string]time.Time // open surveys: when they close unanswered
	position  uint64
	changed   chan struct{}
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{states: map[string]*domain.State{}, deadlines: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

// Apply folds one record in; records of a version already seen are ignored.
// Records come once each, in log order (checkpoint.Follower): an old event
// of a complaint dropped at rest would start a state of its own.
func (t *Tracker) Apply(rec eventlog.Record) {
	e := rec.Event
	id := e.GetComplaintId()
	if id == "" || eventlog.StreamID(e.GetStreamId()).Kind() != eventlog.KindComplaint {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if rec.Position > t.position {
		t.position = rec.Position
	}
	s := t.states[id]
	if s == nil {
		s = &domain.State{ComplaintID: id}
	}
	if e.GetVersion() <= s.Version {
		return
	}
	domain.Evolve(s, e)
	if atRest(s) {
		delete(t.states, id)
	} else {
		t.states[id] = s
	}
	old, had := t.deadlines[id]
	at, ok := s.NoResponseDeadline()
	switch {
	case ok && (!had || !old.Equal(at)):
		t.deadlines[id] = at
		t.signal()
	case !ok && had:
		delete(t.deadlines, id)
		t.signal()
	}
}

// atRest reports whether a complaint has nothing pending for follow-up.
func atRest(s *domain.State) bool {
	switch s.Status {
	case domain.StatusInHandling, domain.StatusClosed, domain.StatusWithdrawn:
	default:
		return false
	}
	_, open := s.NoResponseDeadline()
	return !open && len(s.OpenTasks()) == 0 && len(s.OpenVisits()) == 0
}

func (t *Tracker) signal() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// Changed is signalled when a deadline is added, moved or removed.
func (t *Tracker) Changed() <-chan struct{} { return t.changed }

// Position is the log position of the last record applied.
func (t *Tracker) Position() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.position
}

// Earliest is the earliest no-response deadline, if any.
func (t *Tracker) Earliest() (time.Time, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var min time.Time
	for _, at := range t.deadlines {
		if min.IsZero() || at.Before(min) {
			min = at
		}
	}
	return min, !min.IsZero()
}

// Due lists the complaints whose deadline is at or before now.
func (t *Tracker) Due(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for id, at := range t.deadlines {
		if !at.After(now) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Postpone moves a complaint's deadline to at: after it was handled (until
// the log confirms the close) or after a failure (to retry later).
func (t *Tracker) Postpone(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.deadlines[id]; ok {
		t.deadlines[id] = at
	}
}

// DueTask is an agent's task with a due time.
type DueTask struct {
	ComplaintID string
	TaskID      string
	// Round is set for feedback tasks; unspecified for a return visit.
	Round   eventsv1.FeedbackRound
	Visit   bool
	DueAt   time.Time
	Overdue bool
}

// DueTasks lists open feedback tasks and return visits due at or before
// dueBy, earliest first; overdue means due before now.
func (t *Tracker) DueTasks(dueBy, now time.Time, limit int) []DueTask {
	t.mu.Lock()
	var out []DueTask
	for id, s := range t.states {
		for _, task := range s.OpenTasks() {
			if !task.DueAt.After(dueBy) {
				out = append(out, DueTask{ComplaintID: id, TaskID: task.ID, Round: task.Round, DueAt: task.DueAt, Overdue: task.DueAt.Before(now)})
			}
		}
		for _, v := range s.OpenVisits() {
			if !v.DueAt.After(dueBy) {
				out = append(out, DueTask{ComplaintID: id, TaskID: v.ID, Visit: true, DueAt: v.DueAt, Overdue: v.DueAt.Before(now)})
			}
		}
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b DueTask) int {
		return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.ComplaintID, b.ComplaintID), cmp.Compare(a.TaskID, b.TaskID))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// trackerState is the encoded tracker: the states sorted by complaint. The
// deadlines are not encoded: they follow from the states (a Postpone is
// this process's own and is redone when the timer fires again).
type trackerState struct {
	States []*domain.State `json:"states"`
}

// snapshot encodes the states; see trackerState.
func (t *Tracker) snapshot() ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := trackerState{States: make([]*domain.State, 0, len(t.states))}
	for _, s := range t.states {
		st.States = append(st.States, s)
	}
	slices.SortFunc(st.States, func(a, b *domain.State) int { return cmp.Compare(a.ComplaintID, b.ComplaintID) })
	return json.Marshal(st)
}

// restore replaces the tracker's states with st's, as of position.
func (t *Tracker) restore(position uint64, st trackerState) {
	states, deadlines := map[string]*domain.State{}, map[string]time.Time{}
	for _, s := range st.States {
		states[s.ComplaintID] = s
		if at, ok := s.NoResponseDeadline(); ok {
			deadlines[s.ComplaintID] = at
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.states, t.deadlines, t.position = states, deadlines, position
	t.signal()
}
