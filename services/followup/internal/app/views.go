package app

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// ViewsName and ViewsFormat name the snapshot of follow-up's views
// (checkpoint.Options): bump ViewsFormat when the encoding changes meaning.
const (
	ViewsName   = "followup-views"
	ViewsFormat = 2
)

// Views is follow-up's two read models, the Tracker and the KPI model, as
// one checkpoint.View: they follow the same log in the same loop, so one
// snapshot and one position keep them in step.
type Views struct {
	Tracker *Tracker
	KPI     *kpi.Model
}

var _ checkpoint.View = (*Views)(nil)

// Apply implements checkpoint.View.
func (v *Views) Apply(_ context.Context, rec eventlog.Record) error {
	v.Tracker.Apply(rec)
	v.KPI.Apply(rec)
	return nil
}

// viewsState is the encoded pair; each encodes deterministically.
type viewsState struct {
	Tracker json.RawMessage `json:"tracker"`
	KPI     json.RawMessage `json:"kpi"`
}

// Snapshot implements checkpoint.View.
func (v *Views) Snapshot() ([]byte, error) {
	tr, err := v.Tracker.snapshot()
	if err != nil {
		return nil, fmt.Errorf("tracker: %w", err)
	}
	k, err := v.KPI.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("kpi: %w", err)
	}
	return json.Marshal(viewsState{Tracker: tr, KPI: k})
}

// Restore implements checkpoint.View: both models or neither.
func (v *Views) Restore(position uint64, data []byte) error {
	var st viewsState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("followup views: decode: %w", err)
	}
	var tr trackerState
	if err := json.Unmarshal(st.Tracker, &tr); err != nil {
		return fmt.Errorf("followup views: decode the tracker: %w", err)
	}
	for _, s := range tr.States {
		if s == nil || s.ComplaintID == "" {
			return fmt.Errorf("followup views: decode the tracker: a state without a complaint id")
		}
	}
	// The KPI model decodes before it replaces anything: on its error
	// neither model has changed.
	if err := v.KPI.Restore(position, st.KPI); err != nil {
		return fmt.Errorf("followup views: %w", err)
	}
	v.Tracker.restore(position, tr)
	return nil
}
