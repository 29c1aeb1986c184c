package slaclock

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// slaMetrics counts the outcomes this instance records, per target: what an
// operator watches to see the service keeping (or missing) its promises.
type slaMetrics struct {
	warnings, breaches, met metric.Int64Counter
}

// newSLAMetrics counts on mp, the service's meter provider.
func newSLAMetrics(mp metric.MeterProvider) (*slaMetrics, error) {
	if mp == nil {
		return nil, errors.New("slaclock: metrics: meter provider required")
	}
	m := mp.Meter("github.com/closeloop/closeloop/services/slaclock")
	var s slaMetrics
	var err error
	if s.warnings, err = m.Int64Counter("closeloop.sla.warnings", metric.WithDescription("SLA warnings recorded, by target and threshold")); err != nil {
		return nil, err
	}
	if s.breaches, err = m.Int64Counter("closeloop.sla.breaches", metric.WithDescription("SLA breaches recorded, by target")); err != nil {
		return nil, err
	}
	if s.met, err = m.Int64Counter("closeloop.sla.met", metric.WithDescription("SLA targets met, by target")); err != nil {
		return nil, err
	}
	return &s, nil
}

// record is the app's OnAppended hook.
func (s *slaMetrics) record(e *ev.Envelope) {
	ctx := context.Background()
	switch p := eventlog.Payload(e).(type) {
	case *ev.SlaWarning:
		s.warnings.Add(ctx, 1, metric.WithAttributes(attribute.String("target", p.GetTarget().String()), attribute.Int("threshold_percent", int(p.GetThresholdPercent()))))
	case *ev.SlaBreached:
		s.breaches.Add(ctx, 1, metric.WithAttributes(attribute.String("target", p.GetTarget().String())))
	case *ev.SlaMet:
		s.met.Add(ctx, 1, metric.WithAttributes(attribute.String("target", p.GetTarget().String())))
	}
}
