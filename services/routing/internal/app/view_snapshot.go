package app

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// viewState is the view's snapshot (ViewFormat 2): JSON of sorted slices,
// so the same state always encodes to the same bytes. The waiting sets and
// the queue of ended complaints are not stored: Restore derives them.
type viewState struct {
	// KeepHours is how long ended complaints were kept: a snapshot pruned
	// with a shorter repeat window than the policy now has lacks
	// complaints, and is refused.
	KeepHours  int64
	LogTime    time.Time
	Teams      []teamState
	Complaints []complaintState
	ByCustomer []customerState
	Load       []memberLoad
	LastGiven  []memberGiven
}

type teamState struct {
	ID      string
	Version uint64
	Members []domain.Member
}

type complaintState struct {
	ID, CustomerRef, Fingerprint, Model string
	AcceptedPos                         uint64            `json:",omitempty"`
	AcceptedAt                          time.Time         `json:",omitzero"`
	Withdrawn, Closed, Open, Waiting    bool              `json:",omitempty"`
	Owner                               string            `json:",omitempty"`
	Severity                            eventsv1.Severity `json:",omitempty"`
}

type customerState struct {
	Ref string
	IDs []string
}

type memberLoad struct {
	Member string
	Open   int
}

type memberGiven struct {
	Member string
	At     time.Time
}

// Snapshot implements checkpoint.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := viewState{KeepHours: int64(v.keep / time.Hour), LogTime: v.logTime}
	for _, id := range slices.Sorted(maps.Keys(v.teams)) {
		t := v.teams[id]
		ts := teamState{ID: t.ID, Version: t.Version}
		for _, m := range slices.Sorted(maps.Keys(t.Members)) {
			ts.Members = append(ts.Members, t.Members[m])
		}
		st.Teams = append(st.Teams, ts)
	}
	for _, id := range slices.Sorted(maps.Keys(v.complaints)) {
		c := v.complaints[id]
		st.Complaints = append(st.Complaints, complaintState{
			ID: id, CustomerRef: c.customerRef, Fingerprint: c.fingerprint, Model: c.model,
			AcceptedPos: c.acceptedPos, AcceptedAt: c.acceptedAt,
			Withdrawn: c.withdrawn, Closed: c.closed, Open: c.open, Waiting: c.waiting,
			Owner: c.owner, Severity: c.severity,
		})
	}
	for _, ref := range slices.Sorted(maps.Keys(v.byCustomer)) {
		st.ByCustomer = append(st.ByCustomer, customerState{Ref: ref, IDs: v.byCustomer[ref]})
	}
	for _, m := range slices.Sorted(maps.Keys(v.load)) {
		st.Load = append(st.Load, memberLoad{Member: m, Open: v.load[m]})
	}
	for _, m := range slices.Sorted(maps.Keys(v.lastGiven)) {
		st.LastGiven = append(st.LastGiven, memberGiven{Member: m, At: v.lastGiven[m]})
	}
	return json.Marshal(st)
}

// Restore implements checkpoint.View. It refuses a snapshot that does not
// hang together (a customer's complaint it does not hold) or that kept
// ended complaints for less time than this view would.
func (v *View) Restore(position uint64, data []byte) error {
	var st viewState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("routing view snapshot: %w", err)
	}
	if keep := int64(v.keep / time.Hour); st.KeepHours < keep {
		return fmt.Errorf("routing view snapshot: kept ended complaints %dh, the policy's repeat window needs %dh", st.KeepHours, keep)
	}
	teams := make(map[string]*domain.Team, len(st.Teams))
	for _, ts := range st.Teams {
		t := domain.NewTeam(ts.ID)
		t.Version = ts.Version
		for _, m := range ts.Members {
			t.Members[m.ID] = m
		}
		teams[ts.ID] = t
	}
	complaints := make(map[string]*tracked, len(st.Complaints))
	for _, cs := range st.Complaints {
		complaints[cs.ID] = &tracked{
			id: cs.ID, customerRef: cs.CustomerRef, fingerprint: cs.Fingerprint, model: cs.Model,
			acceptedPos: cs.AcceptedPos, acceptedAt: cs.AcceptedAt,
			withdrawn: cs.Withdrawn, closed: cs.Closed, open: cs.Open,
			owner: cs.Owner, severity: cs.Severity,
		}
	}
	byCustomer := make(map[string][]string, len(st.ByCustomer))
	for _, cs := range st.ByCustomer {
		for _, id := range cs.IDs {
			if complaints[id] == nil {
				return fmt.Errorf("routing view snapshot: customer's complaint %s is not in the snapshot", id)
			}
		}
		byCustomer[cs.Ref] = cs.IDs
	}
	load := make(map[string]int, len(st.Load))
	for _, ml := range st.Load {
		load[ml.Member] = ml.Open
	}
	lastGiven := make(map[string]time.Time, len(st.LastGiven))
	for _, mg := range st.LastGiven {
		lastGiven[mg.Member] = mg.At
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	v.reset()
	v.logTime, v.teams, v.complaints = st.LogTime, teams, complaints
	v.byCustomer, v.load, v.lastGiven = byCustomer, load, lastGiven
	for _, cs := range st.Complaints {
		c := complaints[cs.ID]
		if cs.Waiting {
			v.setWaiting(cs.ID, c, true, c.severity)
		}
		if c.ended() {
			v.ended = append(v.ended, endedEntry{id: cs.ID, acceptedAt: c.acceptedAt})
		}
	}
	heap.Init(&v.ended)
	v.advance(position)
	return nil
}
