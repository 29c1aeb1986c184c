package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/clock/natsclock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/telemetry"
)

// Environment variables every service binary reads (besides its own).
const (
	EnvNATSURL = "NATS_URL"
	// EnvNATSUser names the service's NATS identity, its password in
	// EnvNATSPassword or in the file EnvNATSPasswordFile (for instance
	// <data>/secrets/NATS_<USER>_PASSWORD of `make run`). Unset: the
	// credentials in NATS_URL (nats://user:password@host:4222), if any.
	EnvNATSUser         = "NATS_USER"
	EnvNATSPassword     = "NATS_PASSWORD"
	EnvNATSPasswordFile = "NATS_PASSWORD_FILE"
	EnvBackend          = "EVENTLOG_BACKEND"
	EnvReplicas         = "EVENTLOG_REPLICAS"
	EnvDuplicateWindow  = "EVENTLOG_DUPLICATE_WINDOW"
	// EnvClock is a test facility: "nats-kv:<bucket>" runs the service on
	// the time a test harness publishes in that KV bucket (libs/clock/natsclock)
	// instead of the wall clock. Unset (the production default) means clock.Real.
	EnvClock = "CLOSELOOP_CLOCK"
	// EnvRebuildViews set to 1 makes every view ignore its snapshot and
	// rebuild from the log (new snapshots are still saved).
	EnvRebuildViews = "CLOSELOOP_REBUILD_VIEWS"
	// EnvAnchorFile names a file anchor of the log (the runner's
	// <data>/anchor.json) checked besides the ANCHORS stream.
	EnvAnchorFile = "CLOSELOOP_ANCHOR_FILE"
)

// DefaultNATSURL is where a service looks for NATS when NATS_URL is unset.
const DefaultNATSURL = "nats://127.0.0.1:4222"

// StoreConfigFromEnv reads the JetStream settings of the event log and the
// bus: the EVENTS stream's replicas (3 on a cluster) and the duplicate window.
func StoreConfigFromEnv() (jsstore.Config, error) {
	var cfg jsstore.Config
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

// StoreOpener opens the event log. The JetStream client js is always there:
// it is the bus, and with the default backend the log too. The returned
// close releases what the opener opened.
type StoreOpener func(ctx context.Context, js jetstream.JetStream, cfg jsstore.Config, logger *slog.Logger) (eventlog.Store, func() error, error)

// OpenJetStream is the default StoreOpener: the log is the EVENTS stream.
// It refuses EVENTLOG_BACKEND values it cannot serve, so a binary built
// without another backend never silently writes to the wrong place.
func OpenJetStream(ctx context.Context, js jetstream.JetStream, cfg jsstore.Config, _ *slog.Logger) (eventlog.Store, func() error, error) {
	if b := os.Getenv(EnvBackend); b != "" && b != "jetstream" {
		return nil, nil, fmt.Errorf("%s=%q: this binary has only the jetstream backend (see libs/esdb for eventstoredb)", EnvBackend, b)
	}
	if err := RefuseLostLog(ctx, js); err != nil {
		return nil, nil, err
	}
	s, err := jsstore.New(ctx, js, cfg)
	if err != nil {
		return nil, nil, err
	}
	return s, s.Close, nil
}

// Connect sets up a service binary: telemetry, a logger, a connection to the
// NATS at NATS_URL and the event log, opened by open (OpenJetStream when
// nil). The standalone runner does the same against its embedded server
// (see NewDeps).
func Connect(ctx context.Context, service string, open StoreOpener) (*Runtime, error) {
	tel, err := telemetry.Setup(ctx, service)
	if err != nil {
		return nil, err
	}
	logger := telemetry.NewLogger(service, os.Stderr)
	url := os.Getenv(EnvNATSURL)
	if url == "" {
		url = DefaultNATSURL
	}
	auth, err := NATSAuthFromEnv()
	if err != nil {
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	opts := append([]nats.Option{nats.Name(service), nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true),
		// A refused publish or subscription (a permission violation)
		// comes back asynchronously: say so rather than time out silently.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Error("NATS refused an operation", "error", err)
		})}, auth...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		_ = tel.Shutdown(context.Background())
		// The URL may carry a password: name the variable, not its value.
		return nil, fmt.Errorf("connect to NATS (%s): %w", EnvNATSURL, err)
	}
	clk, stopClock, err := clockFromEnv(ctx, nc)
	if err != nil {
		nc.Close()
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	sig, err := SigningFromEnv(service)
	if err != nil {
		stopClock()
		nc.Close()
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	deps, closeStore, err := newDeps(ctx, nc, clk, logger, tel, open, sig)
	if err != nil {
		stopClock()
		nc.Close()
		_ = tel.Shutdown(context.Background())
		return nil, err
	}
	return &Runtime{Deps: deps, Telemetry: tel, close: func() {
		stopClock()
		_ = closeStore()
		_ = nc.Drain()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	}}, nil
}

// NATSAuthFromEnv reads the service's NATS identity: NATS_USER with
// NATS_PASSWORD or NATS_PASSWORD_FILE. None of them set: no option (the
// URL may carry user:password).
func NATSAuthFromEnv() ([]nats.Option, error) {
	user, pw, file := os.Getenv(EnvNATSUser), os.Getenv(EnvNATSPassword), os.Getenv(EnvNATSPasswordFile)
	switch {
	case user == "" && pw == "" && file == "":
		return nil, nil
	case user == "":
		return nil, fmt.Errorf("%s: must name the NATS user when %s or %s is set", EnvNATSUser, EnvNATSPassword, EnvNATSPasswordFile)
	case pw != "" && file != "":
		return nil, fmt.Errorf("%s and %s: set one of them, not both", EnvNATSPassword, EnvNATSPasswordFile)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvNATSPasswordFile, err)
		}
		pw = strings.TrimSpace(string(b))
	}
	if pw == "" {
		return nil, fmt.Errorf("%s=%s: needs a password (%s or %s, not empty)", EnvNATSUser, user, EnvNATSPassword, EnvNATSPasswordFile)
	}
	return []nats.Option{nats.UserInfo(user, pw)}, nil
}

// rebuildViewsFromEnv reads CLOSELOOP_REBUILD_VIEWS.
func rebuildViewsFromEnv() (bool, error) {
	switch v := os.Getenv(EnvRebuildViews); v {
	case "", "0":
		return false, nil
	case "1":
		return true, nil
	default:
		return false, fmt.Errorf("%s=%q: must be 1 (rebuild every view from the log) or 0", EnvRebuildViews, v)
	}
}

// clockFromEnv picks the service's clock: clock.Real unless CLOSELOOP_CLOCK
// names a test clock.
func clockFromEnv(ctx context.Context, nc *nats.Conn) (clock.Clock, func(), error) {
	v := os.Getenv(EnvClock)
	if v == "" {
		return clock.Real{}, func() {}, nil
	}
	bucket, ok := strings.CutPrefix(v, "nats-kv:")
	if !ok || bucket == "" {
		return nil, nil, fmt.Errorf("%s=%q: must be empty (wall clock) or nats-kv:<bucket> (a test clock)", EnvClock, v)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: jetstream: %w", EnvClock, err)
	}
	c, err := natsclock.New(ctx, js, bucket)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", EnvClock, err)
	}
	return c, c.Stop, nil
}

// NewDeps builds a service's dependencies on an open connection: the
// JetStream context and the event log on the EVENTS stream, configured from
// the environment. tel is the service's own telemetry: its providers go in
// Deps and count the log's appends, its metrics are Deps.Metrics. The
// standalone runner, which runs five services in one process, passes each
// its own (telemetry.New); nil means the otel globals and no metrics page,
// for a client that is not a service (a test reading the log). sig, at most
// one, is the service's event signing (the runner gives each service its
// own key); none turns signing and verification off. Close the log
// (Deps.Log.Close) when done; tel stays the caller's to shut down.
func NewDeps(ctx context.Context, nc *nats.Conn, clk clock.Clock, logger *slog.Logger, tel *telemetry.Telemetry, sig ...Signing) (Deps, error) {
	var s Signing
	if len(sig) > 0 {
		s = sig[0]
	}
	deps, _, err := newDeps(ctx, nc, clk, logger, tel, nil, s)
	return deps, err
}

func newDeps(ctx context.Context, nc *nats.Conn, clk clock.Clock, logger *slog.Logger, tel *telemetry.Telemetry, open StoreOpener, sig Signing) (Deps, func() error, error) {
	if open == nil {
		open = OpenJetStream
	}
	var (
		tp      trace.TracerProvider = otel.GetTracerProvider()
		mp      metric.MeterProvider = otel.GetMeterProvider()
		metrics http.Handler
	)
	if tel != nil {
		tp, mp, metrics = tel.TracerProvider, tel.MeterProvider, tel.MetricsHandler()
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return Deps{}, nil, fmt.Errorf("jetstream: %w", err)
	}
	cfg, err := StoreConfigFromEnv()
	if err != nil {
		return Deps{}, nil, err
	}
	cfg.Clock = clk
	cfg.MeterProvider = mp
	cfg.Signer = sig.Signer
	store, closeStore, err := open(ctx, js, cfg, logger)
	if err != nil {
		return Deps{}, nil, fmt.Errorf("open the event log: %w", err)
	}
	health, err := checkAnchors(ctx, js, store)
	if err != nil {
		_ = closeStore()
		return Deps{}, nil, err
	}
	counted, err := eventlog.Instrument(store, mp)
	if err != nil {
		_ = closeStore()
		return Deps{}, nil, err
	}
	rebuild, err := rebuildViewsFromEnv()
	if err != nil {
		_ = closeStore()
		return Deps{}, nil, err
	}
	snaps, err := checkpoint.NewJetStream(ctx, js, cfg.Replicas)
	if err != nil {
		_ = closeStore()
		return Deps{}, nil, err
	}
	verifier, err := newVerifier(store, js, sig, logger, mp)
	if err != nil {
		_ = closeStore()
		return Deps{}, nil, err
	}
	if verifier != nil {
		// Commands and queries fold only verified events, as the readers do.
		counted = eventlog.Verified(counted, verifier)
	}
	return Deps{NC: nc, JS: js, Log: counted, Verifier: verifier, Clock: clk, Logger: logger, Snapshots: snaps, RebuildViews: rebuild,
		Metrics: metrics, TracerProvider: tp, MeterProvider: mp, LogHealth: health}, closeStore, nil
}

// newVerifier is the readers' verifier when sig has a keyring (nil
// otherwise): a writing service records what its views quarantine among
// its own dead letters, a reading one (the console) logs and counts it.
func newVerifier(store eventlog.Store, js jetstream.JetStream, sig Signing, logger *slog.Logger, mp metric.MeterProvider) (*eventlog.Verifier, error) {
	if sig.Keys == nil {
		return nil, nil
	}
	o := eventlog.VerifierOptions{Keys: sig.Keys, Logger: logger, MeterProvider: mp}
	if sig.Signer != nil {
		o.DeadLetter = bus.Quarantine(js, sig.Signer.Producer())
	}
	return eventlog.NewVerifier(store, o)
}
