package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/telemetry"
)

func TestSetupServesPrometheusMetricsWithoutACollector(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
	tel, err := telemetry.Setup(context.Background(), "routing")
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	if tel.Exporting {
		t.Fatal("Exporting with no collector configured")
	}
	meter := otel.Meter("test")
	c, _ := meter.Int64Counter("bus.messages.handled", metric.WithDescription("Messages handled."))
	c.Add(context.Background(), 3, metric.WithAttributes(attribute.String("consumer", `rou"ting`)))
	h, _ := meter.Float64Histogram("bus.handle.duration", metric.WithUnit("s"))
	h.Record(context.Background(), 0.003)
	h.Record(context.Background(), 0.2)
	g, _ := meter.Int64UpDownCounter("open.complaints")
	g.Add(context.Background(), -2)

	rr := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
	body := rr.Body.String()
	if ct := rr.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("content type %q", ct)
	}
	for _, want := range []string{
		"# HELP bus_messages_handled_total Messages handled.\n",
		"# TYPE bus_messages_handled_total counter\n",
		`bus_messages_handled_total{consumer="rou\"ting"} 3` + "\n",
		"# TYPE bus_handle_duration_seconds histogram\n",
		`bus_handle_duration_seconds_bucket{le="0.0025"} 0` + "\n",
		`bus_handle_duration_seconds_bucket{le="0.005"} 1` + "\n",
		`bus_handle_duration_seconds_bucket{le="0.25"} 2` + "\n",
		`bus_handle_duration_seconds_bucket{le="+Inf"} 2` + "\n",
		"bus_handle_duration_seconds_sum 0.203\n",
		"bus_handle_duration_seconds_count 2\n",
		"# TYPE open_complaints gauge\n",
		"open_complaints -2\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q\n%s", want, body)
		}
	}
}

func TestSetupStartsWhenTheCollectorIsUnreachable(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
	tel, err := telemetry.Setup(context.Background(), "intake")
	if err != nil {
		t.Fatalf("Setup failed with an unreachable collector: %v", err)
	}
	if !tel.Exporting {
		t.Fatal("Exporting = false with a collector configured")
	}
	_, span := otel.Tracer("test").Start(context.Background(), "x")
	span.End()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = tel.Shutdown(ctx) // the export fails; shutting down must still return
}

func TestSetupNeedsAServiceName(t *testing.T) {
	if _, err := telemetry.Setup(context.Background(), ""); err == nil {
		t.Fatal("Setup with no service name succeeded")
	}
}

func TestLoggerAddsTraceAndSpanIDs(t *testing.T) {
	var buf bytes.Buffer
	log := telemetry.NewLogger("dispatch", &buf)
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	log.With("k", "v").InfoContext(ctx, "technician assigned")
	log.Info("no span")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2", len(lines))
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	sc := span.SpanContext()
	if first["trace_id"] != sc.TraceID().String() || first["span_id"] != sc.SpanID().String() {
		t.Fatalf("log line %v lacks trace %s span %s", first, sc.TraceID(), sc.SpanID())
	}
	if first["service"] != "dispatch" || first["k"] != "v" || first["msg"] != "technician assigned" {
		t.Fatalf("log line %v", first)
	}
	if _, ok := second["trace_id"]; ok {
		t.Fatalf("trace_id on a line without a span: %v", second)
	}
}

func TestNATSCarrierKeepsLowerCaseTraceparent(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "publish")
	defer span.End()
	h := nats.Header{}
	telemetry.InjectNATS(ctx, h)
	if _, ok := h["traceparent"]; !ok {
		t.Fatalf("headers %v lack lower-case traceparent", h)
	}
	got := trace.SpanContextFromContext(telemetry.ExtractNATS(context.Background(), h))
	if got.TraceID() != span.SpanContext().TraceID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want trace %s", got, span.SpanContext().TraceID())
	}
}

// serviceNameOf is the service.name on the resource of a span tp records.
func serviceNameOf(t *testing.T, tp trace.TracerProvider) string {
	t.Helper()
	_, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	ro, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		t.Fatalf("span %T is not recorded by the sdk", span)
	}
	v, _ := ro.Resource().Set().Value("service.name")
	return v.AsString()
}

func TestNewKeepsEachServiceApartAndLeavesTheGlobals(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "from-the-environment")
	global := otel.GetTracerProvider()
	intake, err := telemetry.New(context.Background(), "intake")
	if err != nil {
		t.Fatal(err)
	}
	defer intake.Shutdown(context.Background())
	routing, err := telemetry.New(context.Background(), "routing")
	if err != nil {
		t.Fatal(err)
	}
	defer routing.Shutdown(context.Background())
	if otel.GetTracerProvider() != global {
		t.Fatal("New replaced the global tracer provider")
	}
	for tel, want := range map[*telemetry.Telemetry]string{intake: "intake", routing: "routing"} {
		if got := serviceNameOf(t, tel.TracerProvider); got != want || tel.ServiceName != want {
			t.Errorf("service.name %q (ServiceName %q), want %q", got, tel.ServiceName, want)
		}
	}

	c, _ := intake.MeterProvider.Meter("test").Int64Counter("intake.only")
	c.Add(context.Background(), 1)
	scrape := func(tel *telemetry.Telemetry) string {
		rr := httptest.NewRecorder()
		tel.MetricsHandler().ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
		return rr.Body.String()
	}
	if body := scrape(intake); !strings.Contains(body, "intake_only_total 1\n") {
		t.Errorf("intake's metrics lack its own counter:\n%s", body)
	}
	if body := scrape(routing); strings.Contains(body, "intake_only") {
		t.Errorf("routing's metrics carry intake's counter:\n%s", body)
	}

	intake.SetGlobal()
	if got := serviceNameOf(t, otel.GetTracerProvider()); got != "intake" {
		t.Errorf("after SetGlobal the global tracer says service.name %q, want intake", got)
	}
}
