// Package platform is the contract between a service and whoever starts it:
// its own binary (cmd/<name>) or the standalone runner that starts all five in
// one process. A service gets its connections and clock from here and talks to
// the others only through events and APIs.
package platform

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// Deps are the shared connections a service runs on.
type Deps struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Log    eventlog.Store
	Clock  clock.Clock
	Logger *slog.Logger
	// Snapshots keeps the services' view snapshots (libs/checkpoint); nil
	// turns them off.
	Snapshots checkpoint.Store
	// RebuildViews asks every view to ignore its snapshot and rebuild
	// from the log (CLOSELOOP_REBUILD_VIEWS=1).
	RebuildViews bool
	// Metrics serves the service's metrics in Prometheus format; a service
	// mounts it at /metrics on its HTTP face (nil: none).
	Metrics http.Handler
	// TracerProvider and MeterProvider are the service's own (its
	// service.name on every span and metric); a service passes them to
	// everything it builds: its kernel writer, bus consumers, API server.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// LogHealth tells whether the event log is still there and holds what
	// its anchors vouch for (nil error); a service passes it to its API
	// server as api.Options.Health, so /readyz reports a lost log. nil: no
	// check.
	LogHealth func(context.Context) error
	// Verifier checks every event a service's consumers and views apply
	// (bus.Options.Verifier, checkpoint.Options.Verifier); nil when no
	// keyring is configured (CLOSELOOP_SIGNERS_FILE).
	Verifier *eventlog.Verifier
}

// Service is one of the five services.
type Service interface {
	// Name is the service's name: intake, routing, slaclock, dispatch, followup.
	Name() string
	// Run serves until ctx is done, then stops gracefully (drains its
	// consumers, finishes in-flight work) and returns nil; any other return
	// is a failure to start or a fatal error.
	Run(ctx context.Context) error
}
