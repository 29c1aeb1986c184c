package slaclock

import (
	"context"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestMetricsCountWarningsBreachesAndMet(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	m, err := newSLAMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	res := ev.SlaTarget_SLA_TARGET_RESOLUTION
	for _, p := range []*ev.Envelope{
		{Payload: &ev.Envelope_SlaWarning{SlaWarning: &ev.SlaWarning{Target: res, ThresholdPercent: 50}}},
		{Payload: &ev.Envelope_SlaWarning{SlaWarning: &ev.SlaWarning{Target: res, ThresholdPercent: 75}}},
		{Payload: &ev.Envelope_SlaBreached{SlaBreached: &ev.SlaBreached{Target: res}}},
		{Payload: &ev.Envelope_SlaMet{SlaMet: &ev.SlaMet{Target: ev.SlaTarget_SLA_TARGET_ACCEPTANCE}}},
		{Payload: &ev.Envelope_SlaClockStarted{SlaClockStarted: &ev.SlaClockStarted{Target: res}}},
	} {
		m.record(p)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			for _, dp := range mt.Data.(metricdata.Sum[int64]).DataPoints {
				got[mt.Name] += dp.Value
			}
		}
	}
	want := map[string]int64{"closeloop.sla.warnings": 2, "closeloop.sla.breaches": 1, "closeloop.sla.met": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}
