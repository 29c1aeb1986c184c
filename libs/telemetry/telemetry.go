package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Telemetry holds a service's tracer and meter providers. Setup also makes
// them the otel globals, so libraries that use otel.Tracer/otel.Meter report
// through them; New does not, for a process that runs several services
// (the standalone runner), each of which must report under its own name.
type Telemetry struct {
	// ServiceName is the service.name of every span and metric.
	ServiceName    string
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	// Exporting says whether an OTLP collector was configured.
	Exporting bool

	prom *sdkmetric.ManualReader
}

// durationBuckets suit latencies measured in seconds (the otel defaults
// are meant for milliseconds).
var durationBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// otlpConfigured reports whether the standard OTLP environment names a
// collector.
func otlpConfigured(signal string) bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// Setup builds the providers for serviceName (see New) and makes them the
// otel globals (SetGlobal): what a binary that runs one service calls.
func Setup(ctx context.Context, serviceName string) (*Telemetry, error) {
	t, err := New(ctx, serviceName)
	if err != nil {
		return nil, err
	}
	t.SetGlobal()
	return t, nil
}

// New builds the providers for serviceName and leaves the otel globals
// alone. Spans and metrics go to an OTLP/gRPC collector when
// OTEL_EXPORTER_OTLP_ENDPOINT (or the per-signal variable) is set;
// otherwise spans are still created (their ids appear in logs) and metrics
// are served by MetricsHandler only. A missing or unreachable collector
// never stops the service from starting: the exporters connect lazily and
// drop what they cannot send.
func New(ctx context.Context, serviceName string) (*Telemetry, error) {
	if serviceName == "" {
		return nil, errors.New("telemetry: service name: required")
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", serviceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	t := &Telemetry{ServiceName: serviceName, prom: sdkmetric.NewManualReader()}

	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if otlpConfigured("TRACES") {
		exp, err := otlptracegrpc.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
		}
		topts = append(topts, sdktrace.WithBatcher(exp))
		t.Exporting = true
	}
	t.TracerProvider = sdktrace.NewTracerProvider(topts...)

	mopts := []sdkmetric.Option{
		sdkmetric.WithResource(res),
		sdkmetric.WithReader(t.prom),
		sdkmetric.WithView(sdkmetric.NewView(
			sdkmetric.Instrument{Kind: sdkmetric.InstrumentKindHistogram, Unit: "s"},
			sdkmetric.Stream{Aggregation: sdkmetric.AggregationExplicitBucketHistogram{Boundaries: durationBuckets}},
		)),
	}
	if otlpConfigured("METRICS") {
		exp, err := otlpmetricgrpc.New(ctx)
		if err != nil {
			_ = t.TracerProvider.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		mopts = append(mopts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		t.Exporting = true
	}
	t.MeterProvider = sdkmetric.NewMeterProvider(mopts...)
	return t, nil
}

// SetGlobal makes t's providers the otel globals, and Propagator the
// global propagator, for the libraries that are not handed providers.
func (t *Telemetry) SetGlobal() {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(Propagator)
}

// MetricsHandler serves the current metrics in the Prometheus text format
// (mount it at /metrics).
func (t *Telemetry) MetricsHandler() http.Handler { return PrometheusHandler(t.prom) }

// ForceFlush exports every span ended and every metric recorded so far
// (to the collector, when one is configured) without stopping anything.
func (t *Telemetry) ForceFlush(ctx context.Context) error {
	return errors.Join(t.TracerProvider.ForceFlush(ctx), t.MeterProvider.ForceFlush(ctx))
}

// Shutdown flushes and stops both providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	return errors.Join(t.TracerProvider.Shutdown(ctx), t.MeterProvider.Shutdown(ctx))
}
