package platform

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Two services' deps on one server (as the standalone runner builds them):
// each gets its own providers, and an append through one's log is counted
// on its metrics page only.
func TestNewDepsHandsEachServiceItsOwnTelemetry(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	ns, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	deps := map[string]Deps{}
	for _, name := range []string{"intake", "routing"} {
		tel, err := telemetry.New(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
		nc, err := ns.Connect("test-"+name, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		d, err := NewDeps(ctx, nc, clk, logger, tel)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Log.Close() })
		if d.TracerProvider != tel.TracerProvider || d.MeterProvider != tel.MeterProvider || d.Metrics == nil {
			t.Fatalf("%s: deps do not carry its own providers and metrics page", name)
		}
		deps[name] = d
	}

	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "intake"}, &eventsv1.ComplaintAccepted{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := deps["intake"].Log.Append(ctx, eventlog.ComplaintStream("c1"), 0, e); err != nil {
		t.Fatal(err)
	}
	scrape := func(name string) string {
		rr := httptest.NewRecorder()
		deps[name].Metrics.ServeHTTP(rr, httptest.NewRequest("GET", "/metrics", nil))
		return rr.Body.String()
	}
	const appended = `closeloop_eventlog_appended_total{kind="complaint"} 1` + "\n"
	if body := scrape("intake"); !strings.Contains(body, appended) {
		t.Errorf("intake's metrics lack its append (%q):\n%s", appended, body)
	}
	if body := scrape("routing"); strings.Contains(body, "closeloop_eventlog_appended") {
		t.Errorf("routing's metrics count intake's append:\n%s", body)
	}

	nc, err := ns.Connect("test-reader", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	reader, err := NewDeps(ctx, nc, clk, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reader.Log.Close() })
	if reader.TracerProvider != otel.GetTracerProvider() || reader.MeterProvider != otel.GetMeterProvider() || reader.Metrics != nil {
		t.Error("deps without telemetry: want the otel globals and no metrics page")
	}
}

// A service with a keyring folds only verified events into its commands
// and queries: its Log reads a stream holding an unsigned event as damaged.
func TestNewDepsWithAKeyringReadsOnlyVerifiedStreams(t *testing.T) {
	ns, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	ctx := t.Context()
	clk := clock.NewFake(time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	connect := func(name string, sig ...Signing) Deps {
		nc, err := ns.Connect(name, true)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		d, err := NewDeps(ctx, nc, clk, logger, nil, sig...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Log.Close() })
		return d
	}
	intake := signingtest.Signer(t, "intake-1", "intake")
	signed := connect("signed", Signing{Signer: intake, Keys: signingtest.Keyring(t, intake)})
	unsigned := connect("unsigned")

	stream := eventlog.ComplaintStream("c1")
	accepted := func() *eventsv1.Envelope {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "intake"}, &eventsv1.ComplaintAccepted{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	if _, err := signed.Log.Append(ctx, stream, 0, accepted()); err != nil {
		t.Fatal(err)
	}
	if recs, err := signed.Log.ReadStream(ctx, stream, 1); err != nil || len(recs) != 1 {
		t.Fatalf("a signed stream: %d events, %v", len(recs), err)
	}
	if _, err := unsigned.Log.Append(ctx, stream, 1, accepted()); err != nil {
		t.Fatal(err)
	}
	if _, err := signed.Log.ReadStream(ctx, stream, 1); !errors.Is(err, eventlog.ErrDamaged) || !strings.Contains(err.Error(), "unsigned") {
		t.Fatalf("a stream with an unsigned event: %v, want it damaged, naming the unsigned event", err)
	}
}
