package eventlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestInstrumentCountsAppendsDuplicatesAndConflicts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	s, err := eventlog.Instrument(memstore.New(clock.NewFake(time.Unix(0, 0))), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := eventlog.ComplaintStream("c1")
	event := func() *eventsv1.Envelope {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "test"}, &eventsv1.ComplaintAccepted{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := event(), event()
	if _, err := s.Append(ctx, stream, 0, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, 0, a, b); err != nil { // the same batch again: duplicates
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, 0, event()); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("stale append: %v", err)
	}
	if _, err := s.Append(ctx, stream, 2, &eventsv1.Envelope{}); !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("invalid append: %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				key := m.Name
				if r, ok := dp.Attributes.Value("reason"); ok {
					key += "/" + r.AsString()
				}
				got[key] += dp.Value
			}
		}
	}
	want := map[string]int64{
		"closeloop.eventlog.appended":                 2,
		"closeloop.eventlog.duplicates":               2,
		"closeloop.eventlog.append_failures/conflict": 1,
		"closeloop.eventlog.append_failures/invalid":  1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
