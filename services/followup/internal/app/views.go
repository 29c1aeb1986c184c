package app

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// ViewsName and ViewsFormat name the snapshot of follow-up's views
// (checkpoint.Options): bump ViewsFormat when the encoding changes meaning.
const (
	ViewsName   = "followup-views"
	ViewsFormat = 4
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

// The encoded pair is the tracker's encoding (JSON), preceded by its length
// (uvarint), then the KPI model's (a header and binary summaries): each
// encodes deterministically.

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
	out := make([]byte, 0, binary.MaxVarintLen64+len(tr)+len(k))
	out = binary.AppendUvarint(out, uint64(len(tr)))
	return append(append(out, tr...), k...), nil
}

// Restore implements checkpoint.View: both models or neither.
func (v *Views) Restore(position uint64, data []byte) error {
	size, n := binary.Uvarint(data)
	if n <= 0 || size > uint64(len(data)-n) {
		return errors.New("followup views: decode: the tracker's length is missing or too long")
	}
	var tr trackerState
	if err := json.Unmarshal(data[n:n+int(size)], &tr); err != nil {
		return fmt.Errorf("followup views: decode the tracker: %w", err)
	}
	for _, s := range tr.States {
		if s == nil || s.ComplaintID == "" {
			return fmt.Errorf("followup views: decode the tracker: a state without a complaint id")
		}
	}
	// The KPI model decodes before it replaces anything: on its error
	// neither model has changed.
	if err := v.KPI.Restore(position, data[n+int(size):]); err != nil {
		return fmt.Errorf("followup views: %w", err)
	}
	v.Tracker.restore(position, tr)
	return nil
}
