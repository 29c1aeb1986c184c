package bus

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/metric"
)

// metrics of one subscription; every measurement carries the consumer name.
// Instruments of the same name on one meter are shared by the SDK, so each
// subscription can create its own.
type metrics struct {
	handled, failures, redeliveries, deadLetters metric.Int64Counter
	latency                                      metric.Float64Histogram
	lag                                          metric.Registration
}

// lagQueryTimeout bounds the consumer info request made per collection.
const lagQueryTimeout = 2 * time.Second

func newMetrics(s *Subscription) (*metrics, error) {
	meter := s.opts.MeterProvider.Meter(instrumentation)
	m := &metrics{}
	var err error
	counter := func(name, desc string) metric.Int64Counter {
		if err != nil {
			return nil
		}
		var c metric.Int64Counter
		c, err = meter.Int64Counter(name, metric.WithDescription(desc))
		return c
	}
	m.handled = counter("bus.messages.handled", "Messages handled and acked.")
	m.failures = counter("bus.messages.failed", "Handler failures (each failed attempt).")
	m.redeliveries = counter("bus.messages.redelivered", "Deliveries after the first one.")
	m.deadLetters = counter("bus.messages.dead_lettered", "Messages sent to the dead-letter stream.")
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	m.latency, err = meter.Float64Histogram("bus.handle.duration", metric.WithUnit("s"),
		metric.WithDescription("Time spent in the handler per delivery."))
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	pending, err := meter.Int64ObservableGauge("bus.consumer.pending",
		metric.WithDescription("Messages matching the consumer not yet delivered to it (lag)."))
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	// Every instance of a service reports the same shared consumer's lag.
	m.lag, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		qctx, cancel := context.WithTimeout(ctx, lagQueryTimeout)
		defer cancel()
		n, err := s.Lag(qctx)
		if err != nil {
			return nil // no value this round rather than a failed collection
		}
		o.ObserveInt64(pending, int64(n), s.attrs)
		return nil
	}, pending)
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	return m, nil
}
