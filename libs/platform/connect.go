package platform

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/telemetry"
)

// Environment variables every service binary reads (besides its own).
const (
	EnvNATSURL         = "NATS_URL"
	EnvBackend         = "EVENTLOG_BACKEND"
	EnvReplicas        = "EVENTLOG_REPLICAS"
	EnvDuplicateWindow = "EVENTLOG_DUPLICATE_WINDOW"
)

// DefaultNATSURL is where a service looks for NATS when NATS_URL is unset.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// StoreConfigFromEnv reads the event-log settings: the backend (only
// "jetstream" is linked into the service binaries; see libs/esdb for
// KurrentDB), the EVENTS stream's replicas (3 on a cluster) and the
// duplicate window.
func StoreConfigFromEnv() (jsstore.Config, error) {
	var cfg jsstore.Config
	switch b := os.Getenv(EnvBackend); b {
	case "", "jetstream":
	case "eventstoredb":
		return cfg, fmt.Errorf("%s=eventstoredb: services keep appending to JetStream; run the KurrentDB relay (libs/esdb) beside them — see libs/esdb/README.md", EnvBackend)
	default:
		return cfg, fmt.Errorf("%s=%q: must be jetstream or eventstoredb", EnvBackend, b)
	}
	if v := os.Getenv(EnvReplicas); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 5 {
			return cfg, fmt.Errorf("%s=%q: must be a whole number from 1 to 5", EnvReplicas, v)
		}
		cfg.Replicas = n
	}
	if v := os.Getenv(EnvDuplicateWindow); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return cfg, fmt.Errorf("%s=%q: must be a positive duration such as 10m", EnvDuplicateWindow, v)
		}
		cfg.DuplicateWindow = d
	}
	return cfg, nil
}

// Runtime is what a service binary's main sets up before building its service.
type Runtime struct {
	Deps      Deps
	Telemetry *telemetry.Telemetry
	close     func()
}

// Close releases the event log, the connection (draining it) and telemetry.
func (r *Runtime) Close() { r.close() }

// Connect sets up a service binary: telemetry, a logger, a connection to the
// NATS at NATS_URL and the event log on it. The standalone runner does the
// same against its embedded server (see NewDeps).
func Connect(ctx context.Context, service string) (*Runtime, error) {
	tel, err := telemetry.Setup(ctx, service)
	if err != nil {
		return nil, err
	}
	logger := telemetry.NewLogger(service, os.Stderr)
	url := os.Getenv(EnvNATSURL)
	if url == "" {
		url = DefaultNATSURL
	}
	nc, err := nats.Connect(url, nats.Name(service), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true))
	if err != nil {
		_ = tel.Shutdown(context.Background())
		// The URL may carry a password: name the variable, not its value.
		return nil, fmt.Errorf("connect to NATS (%s): %w", EnvNATSURL, err)
	}
	deps, err := NewDeps(ctx, nc, clock.Real{}, logger)
	if err != nil {
		nc.Close()
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	deps.Metrics = tel.MetricsHandler()
	return &Runtime{Deps: deps, Telemetry: tel, close: func() {
		_ = deps.Log.Close()
		_ = nc.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}}, nil
}

// NewDeps builds a service's dependencies on an open connection: the
// JetStream context and the event log configured from the environment.
func NewDeps(ctx context.Context, nc *nats.Conn, clk clock.Clock, logger *slog.Logger) (Deps, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return Deps{}, fmt.Errorf("jetstream: %w", err)
	}
	cfg, err := StoreConfigFromEnv()
	if err != nil {
		return Deps{}, err
	}
	cfg.Clock = clk
	store, err := jsstore.New(ctx, js, cfg)
	if err != nil {
		return Deps{}, fmt.Errorf("open the event log: %w", err)
	}
	return Deps{NC: nc, JS: js, Log: store, Clock: clk, Logger: logger}, nil
}
