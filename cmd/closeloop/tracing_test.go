package main

// The tracing test: the services export to an OTLP/gRPC collector
// running in this test process, one complaint is driven from submission
// to close, and the collector's spans are held against the complaint's
// stream: every service that writes events reports under its own name,
// every event was written inside a trace (by a span of the service that
// wrote it) and carries a correlation id, and the close names the survey
// answer that caused it.

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	resourcev1 "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/libs/telemetry"
	"github.com/closeloop/closeloop/services/console"
)

// serviceNames are the services' service.name, as the runner's builders
// name them.
func serviceNames() []string {
	var names []string
	for _, b := range builders {
		names = append(names, b.name)
	}
	return names
}

// eventWriters are the services that handle a complaint by writing events
// (each in a span of its own); the console only reads the log.
func eventWriters() []string {
	return slices.DeleteFunc(serviceNames(), func(n string) bool { return n == console.Name })
}

// receivedSpan is what the test keeps of an exported span.
type receivedSpan struct {
	service, scope, name string
	traceID, spanID      string
}

func (s receivedSpan) String() string {
	return fmt.Sprintf("%s span %q (scope %s)", s.service, s.name, s.scope)
}

// otlpReceiver is an OTLP/gRPC collector of traces and metrics that keeps
// what it receives.
type otlpReceiver struct {
	addr string

	mu      sync.Mutex
	spans   []receivedSpan
	metrics map[string]map[string]bool // service.name -> metric names
}

type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	r *otlpReceiver
}

type metricsService struct {
	collectormetrics.UnimplementedMetricsServiceServer
	r *otlpReceiver
}

func serviceNameOf(res *resourcev1.Resource) string {
	for _, kv := range res.GetAttributes() {
		if kv.GetKey() == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

func (s traceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		svc := serviceNameOf(rs.GetResource())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				s.r.spans = append(s.r.spans, receivedSpan{
					service: svc, scope: ss.GetScope().GetName(), name: sp.GetName(),
					traceID: hex.EncodeToString(sp.GetTraceId()), spanID: hex.EncodeToString(sp.GetSpanId()),
				})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (s metricsService) Export(_ context.Context, req *collectormetrics.ExportMetricsServiceRequest) (*collectormetrics.ExportMetricsServiceResponse, error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	for _, rm := range req.GetResourceMetrics() {
		svc := serviceNameOf(rm.GetResource())
		if s.r.metrics[svc] == nil {
			s.r.metrics[svc] = map[string]bool{}
		}
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				s.r.metrics[svc][m.GetName()] = true
			}
		}
	}
	return &collectormetrics.ExportMetricsServiceResponse{}, nil
}

// startOTLPReceiver serves a collector on a free loopback port and points
// the standard OTLP environment at it: every telemetry.New after this
// exports there. Call it before starting the services, so that it stops
// after them (and receives their last flush).
func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: lis.Addr().String(), metrics: map[string]map[string]bool{}}
	srv := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(srv, traceService{r: r})
	collectormetrics.RegisterMetricsServiceServer(srv, metricsService{r: r})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+r.addr)
	t.Setenv("OTEL_EXPORTER_OTLP_INSECURE", "true")
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"} {
		t.Setenv(v, "")
	}
	return r
}

// received returns the spans so far, indexed by trace id and by span id.
func (r *otlpReceiver) received() (spans []receivedSpan, traces map[string]bool, byID map[string]receivedSpan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	spans = slices.Clone(r.spans)
	traces, byID = map[string]bool{}, map[string]receivedSpan{}
	for _, s := range spans {
		traces[s.traceID] = true
		byID[s.spanID] = s
	}
	return spans, traces, byID
}

func (r *otlpReceiver) metricsOf(service string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n := range r.metrics[service] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// eventName names an event in a failure: type, version, producer.
func eventName(r eventlog.Record) string {
	e := r.Event
	return fmt.Sprintf("%s v%d by %s", e.GetType(), e.GetVersion(), e.GetProducer())
}

// traceContextOf is the span context an event was stamped with (invalid
// when it carries none or a malformed one).
func traceContextOf(r eventlog.Record) trace.SpanContext {
	ctx := telemetry.Propagator.Extract(context.Background(), propagation.MapCarrier{
		"traceparent": r.Event.GetTraceparent(), "tracestate": r.Event.GetTracestate(),
	})
	return trace.SpanContextFromContext(ctx)
}

// TestE2ETracesOneComplaint is the tracing test: one complaint (the
// on-site hardware fault, which every service handles) from submission to
// the survey that closes it.
func TestE2ETracesOneComplaint(t *testing.T) {
	rcv := startOTLPReceiver(t)
	e := startE2E(t)
	e.setUp(t)
	var h *history
	if !t.Run("HardwareFaultL2OnSite", func(t *testing.T) { h = e.hardwareFault(t) }) {
		t.FailNow()
	}
	e.eventually(t, "bus consumers idle", e.consumersIdle)
	recs := e.stream(t, h.id)

	// A decision's span ends after its append and is exported in a batch:
	// flush until every event's span has arrived (or a while has passed:
	// the assertions below then say which did not).
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := e.sys.forceFlush(e.ctx); err != nil {
			t.Fatalf("flush the providers: %v", err)
		}
		_, _, byID := rcv.received()
		missing := false
		for _, r := range recs {
			if sc := traceContextOf(r); sc.IsValid() {
				if _, ok := byID[sc.SpanID().String()]; !ok {
					missing = true
				}
			}
		}
		if !missing || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	spans, traces, byID := rcv.received()
	if len(spans) == 0 {
		t.Fatalf("the collector at %s received no span", rcv.addr)
	}

	// Every service that handled the complaint reports under its own name;
	// nothing under the runner's process name (a library that took the
	// otel globals instead of its service's providers) or any other.
	perService := map[string]int{}
	leftovers := map[string]bool{}
	for _, s := range spans {
		perService[s.service]++
		if !slices.Contains(serviceNames(), s.service) {
			leftovers[s.String()] = true
		}
	}
	for _, name := range eventWriters() {
		if perService[name] == 0 {
			t.Errorf("no span with service.name=%s (spans per service.name: %v)", name, perService)
		}
	}
	for _, l := range sortedKeys(leftovers) {
		t.Errorf("span outside the services: %s", l)
	}

	// Every event of the stream: a correlation id, written in a trace the
	// collector received, inside a span of the service that wrote it (every
	// decision is a span of its service).
	var closed, answered []eventlog.Record
	for _, r := range recs {
		ev := eventName(r)
		if r.Event.GetCorrelationId() == "" {
			t.Errorf("%s: no correlation id", ev)
		}
		sc := traceContextOf(r)
		switch {
		case !sc.IsValid():
			t.Errorf("%s: outside any trace (traceparent %q)", ev, r.Event.GetTraceparent())
		case !traces[sc.TraceID().String()]:
			t.Errorf("%s: trace %s was never exported (no span of it arrived)", ev, sc.TraceID())
		default:
			if s, ok := byID[sc.SpanID().String()]; !ok {
				t.Errorf("%s: stamped in span %s of trace %s, which never arrived", ev, sc.SpanID(), sc.TraceID())
			} else if s.service != r.Event.GetProducer() {
				t.Errorf("%s: stamped in a %s, not in a span of its producer", ev, s)
			}
		}
		switch r.Event.GetType() {
		case "SurveyAnswered":
			answered = append(answered, r)
		case "ComplaintClosed":
			closed = append(closed, r)
		}
	}

	// The close is caused by the survey answer before it.
	if len(closed) != 1 || len(answered) != 1 {
		t.Fatalf("%d ComplaintClosed and %d SurveyAnswered in the stream, want one each", len(closed), len(answered))
	}
	if got, want := closed[0].Event.GetCausationId(), answered[0].Event.GetEventId(); got != want {
		t.Errorf("%s: causation id %q, want the event id %q of %s that closed it", eventName(closed[0]), got, want, eventName(answered[0]))
	}

	// Metrics too: each service exports its own (at least its event-log
	// appends, counted on its meter), none under the process name.
	for _, name := range eventWriters() {
		if !slices.Contains(rcv.metricsOf(name), "closeloop.eventlog.appended") {
			t.Errorf("%s exported no closeloop.eventlog.appended under its own name (it exported %v)", name, rcv.metricsOf(name))
		}
	}
	if m := rcv.metricsOf(processName); len(m) > 0 {
		t.Errorf("metrics under service.name=%s (libraries on the otel globals): %v", processName, m)
	}
	t.Logf("%d spans received, per service.name: %v; %d events in the complaint's stream", len(spans), perService, len(recs))
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestRunnerGivesEachServiceItsOwnTelemetry: startServices hands every
// service its own providers and metrics page, makes the otel globals the
// runner's own (service.name=closeloop), and stops them all on close.
func TestRunnerGivesEachServiceItsOwnTelemetry(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_SERVICE_NAME", "")
	got := map[string]platform.Deps{}
	real := builders
	t.Cleanup(func() { builders = real })
	builders = slices.Clone(real)
	for i := range builders {
		name := builders[i].name
		builders[i].build = func(d platform.Deps) (platform.Service, error) {
			got[name] = d
			return idleService(name), nil
		}
	}
	ns, err := startBus(t.Context(), t.TempDir(), natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	sys, err := startServices(t.Context(), ns, clock.Real{}, &syncBuffer{})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			sys.close()
		}
	})

	if n := spanServiceName(t, otel.GetTracerProvider()); n != processName {
		t.Errorf("the otel global tracer says service.name=%q, want %q", n, processName)
	}
	for _, name := range serviceNames() {
		d, ok := got[name]
		if !ok {
			t.Fatalf("%s was not built", name)
		}
		if n := spanServiceName(t, d.TracerProvider); n != name {
			t.Errorf("%s's tracer provider says service.name=%q", name, n)
		}
		if d.Metrics == nil || d.MeterProvider == nil {
			t.Errorf("%s: no meter provider or metrics page", name)
		}
		for other, od := range got {
			if other != name && (od.TracerProvider == d.TracerProvider || od.MeterProvider == d.MeterProvider) {
				t.Errorf("%s and %s share a provider", name, other)
			}
		}
	}

	// A metric of one service is on its page only.
	c, err := got["intake"].MeterProvider.Meter("test").Int64Counter("runner.test.marker")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(t.Context(), 1)
	for _, name := range serviceNames() {
		body := scrape(t, got[name].Metrics)
		if has := strings.Contains(body, "runner_test_marker_total 1"); has != (name == "intake") {
			t.Errorf("%s's /metrics shows intake's counter: %v\n%s", name, has, body)
		}
	}

	sys.close()
	closed = true
	for _, name := range serviceNames() {
		_, span := got[name].TracerProvider.Tracer("test").Start(context.Background(), "after close")
		if span.IsRecording() {
			t.Errorf("%s's tracer provider still records after close", name)
		}
		span.End()
	}
}

// idleService stands in for a service the runner builds.
type idleService string

func (s idleService) Name() string { return string(s) }

func (s idleService) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// spanServiceName is the service.name on the resource of a span tp records.
func spanServiceName(t *testing.T, tp trace.TracerProvider) string {
	t.Helper()
	_, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()
	ro, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		t.Fatalf("span %T is not recorded by the otel sdk", span)
	}
	v, _ := ro.Resource().Set().Value("service.name")
	return v.AsString()
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rr.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rr.Code, rr.Body)
	}
	return rr.Body.String()
}
