package bus

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// metrics are shared by the subscriptions of one meter provider; each
// measurement carries the consumer name.
type metrics struct {
	handled, failures, redeliveries, deadLetters metric.Int64Counter
	latency                                      metric.Float64Histogram
	pending                                      metric.Int64ObservableGauge

	mu   sync.Mutex
	subs map[*Subscription]bool
	reg  metric.Registration
}

var (
	metricsMu    sync.Mutex
	metricsByMP  = map[metric.MeterProvider]*metrics{}
	lagQueryTime = 2 * time.Second
)

func newMetrics(mp metric.MeterProvider) (*metrics, error) {
	metricsMu.Lock()
	defer metricsMu.Unlock()
	if m, ok := metricsByMP[mp]; ok {
		return m, nil
	}
	meter := mp.Meter(instrumentation)
	m := &metrics{subs: map[*Subscription]bool{}}
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
	m.pending, err = meter.Int64ObservableGauge("bus.consumer.pending",
		metric.WithDescription("Messages matching the consumer not yet delivered (lag)."))
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	m.reg, err = meter.RegisterCallback(m.observe, m.pending)
	if err != nil {
		return nil, fmt.Errorf("bus: metrics: %w", err)
	}
	metricsByMP[mp] = m
	return m, nil
}

func (m *metrics) observeLag(s *Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.subs[s] = true
}

func (m *metrics) unobserve(s *Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.subs, s)
}

// observe reports each live subscription's lag (one instance's view of the
// shared consumer: all instances report the same value).
func (m *metrics) observe(ctx context.Context, o metric.Observer) error {
	m.mu.Lock()
	subs := make([]*Subscription, 0, len(m.subs))
	for s := range m.subs {
		subs = append(subs, s)
	}
	m.mu.Unlock()
	for _, s := range subs {
		qctx, cancel := context.WithTimeout(ctx, lagQueryTime)
		n, err := s.Lag(qctx)
		cancel()
		if err != nil {
			continue
		}
		o.ObserveInt64(m.pending, int64(n), metric.WithAttributes(attribute.String("consumer", s.opts.Durable)))
	}
	return nil
}
