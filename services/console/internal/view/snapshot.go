package view

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// state is the snapshot: JSON of the rows sorted by id, so the same view
// always encodes to the same bytes.
type state struct {
	IndexCheck uint64      `json:"index_check"`
	Closed     uint64      `json:"closed"`
	Complaints []Complaint `json:"complaints"`
	// Teams: team → member → role (maps encode with sorted keys).
	Teams map[string]map[string]string `json:"teams,omitempty"`
}

// Snapshot implements checkpoint.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := state{IndexCheck: v.index.Check(), Closed: v.closed, Complaints: make([]Complaint, 0, len(v.complaints)), Teams: v.teams}
	for _, id := range slices.Sorted(maps.Keys(v.complaints)) {
		st.Complaints = append(st.Complaints, *v.complaints[id])
	}
	return json.Marshal(st)
}

// Restore implements checkpoint.View: a snapshot that does not decode, or
// whose blind index was keyed by another secret, is refused (the Follower
// then rebuilds from the log) and the view is left as it was.
func (v *View) Restore(position uint64, data []byte) error {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("console view snapshot: %w", err)
	}
	if st.IndexCheck != v.index.Check() {
		return ErrForeignIndex
	}
	complaints := make(map[string]*Complaint, len(st.Complaints))
	for i := range st.Complaints {
		c := &st.Complaints[i]
		if c.ID == "" || c.Status == "" {
			return fmt.Errorf("console view snapshot: complaint %d: no id or status", i)
		}
		c.refreshDue()
		complaints[c.ID] = c
	}
	if st.Teams == nil {
		st.Teams = map[string]map[string]string{}
	}
	for team, m := range st.Teams {
		if m == nil {
			st.Teams[team] = map[string]string{}
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.complaints, v.closed, v.position, v.teams = complaints, st.Closed, position, st.Teams
	v.byOwner = map[string]map[*Complaint]struct{}{}
	v.byTeam = map[string]map[*Complaint]struct{}{}
	for _, c := range complaints {
		v.indexOwner(c)
		v.indexTeam(c.Team, c)
	}
	close(v.advanced)
	v.advanced = make(chan struct{})
	return nil
}
