// Package telemetry sets up tracing, metrics and logging for a service, and
// carries trace context through NATS headers.
package telemetry

import (
	"context"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"
)

// NATSCarrier adapts nats.Header for OpenTelemetry propagation. NATS headers
// are case-sensitive and W3C names are lower case: keys are kept exactly as
// the propagator gives them ("traceparent", "tracestate").
type NATSCarrier nats.Header

var _ propagation.TextMapCarrier = NATSCarrier{}

func (c NATSCarrier) Get(key string) string {
	if v := c[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (c NATSCarrier) Set(key, value string) { c[key] = []string{value} }

func (c NATSCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// Propagator is the W3C trace-context (and baggage) propagator every
// service uses, whatever the global one is set to.
var Propagator propagation.TextMapPropagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// InjectNATS writes ctx's trace context into h.
func InjectNATS(ctx context.Context, h nats.Header) { Propagator.Inject(ctx, NATSCarrier(h)) }

// ExtractNATS returns ctx carrying the trace context found in h.
func ExtractNATS(ctx context.Context, h nats.Header) context.Context {
	return Propagator.Extract(ctx, NATSCarrier(h))
}
