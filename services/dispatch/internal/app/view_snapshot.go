package app

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/checkpoint"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// ViewName and ViewFormat name the view's snapshot (checkpoint.Options):
// bump ViewFormat when the encoding below changes meaning.
const (
	ViewName = "dispatch-view"
	// 3: bookings carry their event's version; 4: and technicians and
	// bookings log positions; 5: technicians keep daily counts of recent
	// days only (a format-4 snapshot holds every day: rebuilt instead).
	ViewFormat = 5
)

var _ checkpoint.View = (*View)(nil)

// viewState is the encoded view: JSON, technicians and complaints sorted by
// id (encoding/json sorts the map keys inside), so one state is one string
// of bytes.
type viewState struct {
	LogTime     time.Time            `json:"log_time"`
	Technicians []*domain.Technician `json:"technicians"`
	Complaints  []complaintState     `json:"complaints"`
}

type complaintState struct {
	ID      string       `json:"id"`
	Version uint64       `json:"version"`
	Orders  []orderState `json:"orders"` // in Sequence order
}

// orderState is a WorkOrder with its work sheet as deterministic protobuf
// bytes: a protobuf message does not go through encoding/json.
type orderState struct {
	ID           string        `json:"id"`
	Spec         []byte        `json:"spec,omitempty"`
	FollowsID    string        `json:"follows_id,omitempty"`
	Status       domain.Status `json:"status"`
	TechnicianID string        `json:"technician_id,omitempty"`
	AcceptBy     time.Time     `json:"accept_by"`
	Declined     []string      `json:"declined,omitempty"`
	OpenedAt     time.Time     `json:"opened_at"`
	ETA          time.Time     `json:"eta"`
	FollowOnID   string        `json:"follow_on_id,omitempty"`
	UpdatedAt    time.Time     `json:"updated_at"`
	// CorrelationID of the event that opened the order (View.CorrelationOf).
	CorrelationID string `json:"correlation_id,omitempty"`
}

// Snapshot implements checkpoint.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	st := viewState{LogTime: v.logTime.UTC(), Technicians: make([]*domain.Technician, 0, len(v.techs)), Complaints: make([]complaintState, 0, len(v.complaints))}
	for _, t := range v.techs {
		st.Technicians = append(st.Technicians, t)
	}
	slices.SortFunc(st.Technicians, func(a, b *domain.Technician) int { return strings.Compare(a.ID, b.ID) })
	for _, c := range v.complaints {
		cs := complaintState{ID: c.ID, Version: c.Version, Orders: make([]orderState, 0, len(c.Sequence))}
		for _, id := range c.Sequence {
			o := c.Orders[id]
			spec, err := proto.MarshalOptions{Deterministic: true}.Marshal(o.Spec)
			if err != nil {
				return nil, fmt.Errorf("work order %s: spec: %w", o.ID, err)
			}
			cs.Orders = append(cs.Orders, orderState{
				ID: o.ID, Spec: spec, FollowsID: o.FollowsID, Status: o.Status, TechnicianID: o.TechnicianID, AcceptBy: o.AcceptBy.UTC(),
				Declined: o.Declined, OpenedAt: o.OpenedAt.UTC(), ETA: o.ETA.UTC(), FollowOnID: o.FollowOnID, UpdatedAt: o.UpdatedAt.UTC(),
				CorrelationID: v.correlation[o.ID],
			})
		}
		st.Complaints = append(st.Complaints, cs)
	}
	slices.SortFunc(st.Complaints, func(a, b complaintState) int { return strings.Compare(a.ID, b.ID) })
	return json.Marshal(st)
}

// Restore implements checkpoint.View.
func (v *View) Restore(position uint64, data []byte) error {
	var st viewState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("dispatch view: decode: %w", err)
	}
	techs, booked := map[string]*domain.Technician{}, map[string]int{}
	for _, t := range st.Technicians {
		if t == nil || t.ID == "" {
			return fmt.Errorf("dispatch view: decode: a technician without an id")
		}
		if t.Open == nil {
			t.Open = map[string]domain.Booking{}
		}
		if t.Daily == nil {
			t.Daily = map[string]map[string]bool{}
		}
		techs[t.ID] = t
		for id := range t.Open {
			booked[id]++
		}
	}
	complaints, owner, correlation := map[string]*domain.Complaint{}, map[string]string{}, map[string]string{}
	for _, cs := range st.Complaints {
		c := &domain.Complaint{ID: cs.ID, Version: cs.Version, Orders: map[string]*domain.WorkOrder{}}
		for _, os := range cs.Orders {
			spec := &eventsv1.WorkOrderSpec{}
			if err := proto.Unmarshal(os.Spec, spec); err != nil {
				return fmt.Errorf("dispatch view: decode work order %s: %w", os.ID, err)
			}
			c.Orders[os.ID] = &domain.WorkOrder{
				ID: os.ID, ComplaintID: cs.ID, Spec: spec, FollowsID: os.FollowsID, Status: os.Status, TechnicianID: os.TechnicianID,
				AcceptBy: os.AcceptBy, Declined: os.Declined, OpenedAt: os.OpenedAt, ETA: os.ETA, FollowOnID: os.FollowOnID, UpdatedAt: os.UpdatedAt,
			}
			c.Sequence = append(c.Sequence, os.ID)
			owner[os.ID] = cs.ID
			if os.CorrelationID != "" {
				correlation[os.ID] = os.CorrelationID
			}
		}
		complaints[cs.ID] = c
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.techs, v.booked, v.complaints, v.orderOwner, v.correlation = techs, booked, complaints, owner, correlation
	v.logTime, v.finished, v.retiring = st.LogTime, map[string]time.Time{}, nil
	for id := range complaints {
		v.retireIfFinishedLocked(id)
	}
	v.pool, v.dirtyCands = nil, true
	v.lastApplied = position
	v.notifyLocked()
	return nil
}
