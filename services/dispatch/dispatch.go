// Package dispatch is the technician-dispatch service: it turns routing's
// DispatchRequested into work orders on the complaint's stream, matches and
// books technicians (event-sourced on their own streams, never over
// capacity), and serves the technician's app through the order's life:
// accept or decline, contact with an ETA, en route, on site, signed
// completion, failure with a follow-on order, or remote support.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/adapters"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/ports"
)

// Name of the service.
const Name = "dispatch"

// Config of the dispatch service; DefaultConfig has the defaults.
type Config struct {
	// GRPCAddr and HTTPAddr to listen on (DISPATCH_GRPC_ADDR, DISPATCH_HTTP_ADDR).
	GRPCAddr string
	HTTPAddr string
	// Authenticator checks bearer tokens (libs/auth: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off for local development).
	// Technicians call with role technician and their technician id as id.
	Authenticator auth.Authenticator
	// AcceptTimeout before an assignment not accepted is declined and the
	// order dispatched again (DISPATCH_ACCEPT_TIMEOUT, default 10m).
	AcceptTimeout time.Duration
	// TravelTime added to a shift start to estimate arrival on site
	// (DISPATCH_TRAVEL_TIME, default 2h).
	TravelTime time.Duration
	// ReconcileEvery: how often bookings left without an assignment are
	// repaired (DISPATCH_RECONCILE_EVERY, default 1m); ReconcileGrace is how
	// old such a booking must be (DISPATCH_RECONCILE_GRACE, default 1m).
	ReconcileEvery time.Duration
	ReconcileGrace time.Duration
	// KEKs unwrap the customers' data keys (PII_KEK or PII_KEK_FILE, the
	// same as intake's; required). Dispatch only reads PII_KEYS: it seals
	// the signer's name under the key intake made for the site contact.
	KEKs *pii.Keyring
	// KVReplicas of the PII key bucket (DISPATCH_KV_REPLICAS, default 1).
	KVReplicas int
	// Calendars technicians' calendar ids refer to (default: libs/calendar's shipped set).
	Calendars *calendar.Set
	// App holds the remaining use-case settings (match weights, checklists, follow-on windows).
	App app.Config
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{
		GRPCAddr: ":7004", HTTPAddr: ":8004", AcceptTimeout: 10 * time.Minute, TravelTime: 2 * time.Hour,
		ReconcileEvery: time.Minute, ReconcileGrace: time.Minute, KVReplicas: 1, App: app.DefaultConfig(),
	}
}

// ConfigFromEnv reads the configuration from the process environment
// (ConfigFrom).
func ConfigFromEnv() (Config, error) { return ConfigFrom(platform.NewEnv()) }

// ConfigFrom reads the configuration from env over the defaults; the error
// names every bad variable at once. The authenticator comes from the
// process environment whatever env is: auth.FromEnv reads nothing else.
func ConfigFrom(env *platform.Env) (Config, error) {
	c := DefaultConfig()
	c.GRPCAddr = env.String("DISPATCH_GRPC_ADDR", c.GRPCAddr)
	c.HTTPAddr = env.String("DISPATCH_HTTP_ADDR", c.HTTPAddr)
	c.AcceptTimeout = env.Duration("DISPATCH_ACCEPT_TIMEOUT", c.AcceptTimeout, time.Second)
	c.TravelTime = env.Duration("DISPATCH_TRAVEL_TIME", c.TravelTime, 0)
	c.ReconcileEvery = env.Duration("DISPATCH_RECONCILE_EVERY", c.ReconcileEvery, time.Second)
	c.ReconcileGrace = env.Duration("DISPATCH_RECONCILE_GRACE", c.ReconcileGrace, time.Second)
	c.KVReplicas = env.Int("DISPATCH_KV_REPLICAS", c.KVReplicas, 1, 5)
	keks, err := pii.KeyringFromLookup(env.Lookup)
	env.Check(err)
	c.KEKs = keks
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Authenticator = a
	if err := env.Err(); err != nil {
		return c, fmt.Errorf("dispatch: configuration: %w", err)
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.Authenticator == nil:
		return errors.New("dispatch: config Authenticator: required (set CLOSELOOP_TOKENS_FILE)")
	case c.KEKs == nil:
		return errors.New("dispatch: config KEKs: required (set " + pii.EnvKEK + " or " + pii.EnvKEKFile + ")")
	case c.AcceptTimeout <= 0:
		return errors.New("dispatch: DISPATCH_ACCEPT_TIMEOUT: must be positive")
	case c.TravelTime < 0:
		return errors.New("dispatch: DISPATCH_TRAVEL_TIME: must not be negative")
	case c.ReconcileEvery <= 0:
		return errors.New("dispatch: DISPATCH_RECONCILE_EVERY: must be positive")
	case c.ReconcileGrace <= 0:
		return errors.New("dispatch: DISPATCH_RECONCILE_GRACE: must be positive")
	}
	return nil
}

// Service is the running dispatch service.
type Service struct {
	deps     platform.Deps
	cfg      Config
	app      *app.App
	view     *app.View
	follower *checkpoint.Follower
	srv      *api.Server
}

var _ platform.Service = (*Service)(nil)

// FromEnv builds the service from its environment (ConfigFromEnv): what
// its own binary and the standalone runner call.
func FromEnv(deps platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	s, err := New(deps, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// New builds the service and opens the PII key bucket (to seal the name of
// the customer who signs a completed work sheet).
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.JS == nil || deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("dispatch: deps JS, Log and Clock are required")
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	// Without the runner's providers (tests) telemetry goes nowhere rather
	// than to the process-wide otel globals.
	if deps.TracerProvider == nil {
		deps.TracerProvider = tracenoop.NewTracerProvider()
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = metricnoop.NewMeterProvider()
	}
	logger := deps.Logger
	if cfg.Calendars == nil {
		set, err := calendar.Default()
		if err != nil {
			return nil, fmt.Errorf("dispatch: calendars: %w", err)
		}
		cfg.Calendars = set
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	keys, err := pii.New(ctx, deps.JS, pii.Config{Replicas: cfg.KVReplicas, KEKs: cfg.KEKs, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("dispatch: pii keystore: %w", err)
	}
	appCfg := cfg.App
	appCfg.AcceptTimeout = cfg.AcceptTimeout
	appCfg.ReconcileGrace = cfg.ReconcileGrace
	appCfg.Policy.TravelTime = cfg.TravelTime
	view := app.NewView(adapters.NewCalendarSchedules(cfg.Calendars), logger)
	a, err := app.New(app.Deps{
		Log: deps.Log, Clock: deps.Clock, TracerProvider: deps.TracerProvider, View: view, Sealer: keys, Logger: logger,
		NewID: func() string { return uuid.Must(uuid.NewV7()).String() },
	}, appCfg)
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	follower, err := checkpoint.New(checkpoint.Options{
		Name: app.ViewName, Format: app.ViewFormat, Log: deps.Log, Snapshots: deps.Snapshots, Rebuild: deps.RebuildViews,
		Logger: logger, Verifier: deps.Verifier,
	}, view)
	if err != nil {
		return nil, fmt.Errorf("dispatch: %w", err)
	}
	// Until the view has caught up with the log, calls are refused as
	// UNAVAILABLE: answers from a partial view would be wrong, not late.
	srv := api.NewServer(api.Options{
		Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, Logger: logger, Authenticator: cfg.Authenticator,
		TracerProvider: deps.TracerProvider, MeterProvider: deps.MeterProvider, ReadyWhen: follower.CaughtUp(),
		Health: deps.LogHealth,
	})
	dispatchv1.RegisterDispatchServiceServer(srv.GRPC(), ports.NewGRPC(a))
	return &Service{deps: deps, cfg: cfg, app: a, view: view, follower: follower, srv: srv}, nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// API is the service's API server (its listening addresses once running).
func (s *Service) API() *api.Server { return s.srv }

// App gives tests and the standalone runner the use cases.
func (s *Service) App() *app.App { return s.app }

// Run restores the view from its snapshot and catches it up with the log,
// repairs what a crash may have left (Reconcile), then follows the log,
// consumes complaint events, fires accept timeouts and reconciles until ctx
// is done. The API listens from the start but is ready (/readyz, and every
// call but health) only once the view caught up. Every goroutine is joined
// before Run returns.
func (s *Service) Run(ctx context.Context) error {
	return platform.RunGroup(ctx, s.follower.Run, s.srv.Run, s.runCaughtUp)
}

// runCaughtUp waits for the view to catch up with the log, repairs what a
// crash may have left, then consumes, fires accept timeouts and reconciles
// until ctx is done.
func (s *Service) runCaughtUp(ctx context.Context) error {
	select {
	case <-s.follower.CaughtUp():
	case <-ctx.Done():
		return nil
	}
	log := s.deps.Logger
	if err := s.app.Reconcile(ctx); err != nil {
		log.Warn("reconcile at start", "err", err)
	}
	sub, err := ports.SubscribeComplaintEvents(ctx, s.deps.JS, s.app, bus.Options{
		Logger: log, TracerProvider: s.deps.TracerProvider, MeterProvider: s.deps.MeterProvider, Verifier: s.deps.Verifier,
	})
	if err != nil {
		return fmt.Errorf("dispatch: subscribe: %w", err)
	}
	defer sub.Stop() // drains and waits for the handlers in flight
	return platform.RunGroup(ctx, s.app.RunAcceptTimeouts, func(ctx context.Context) error {
		s.reconcileLoop(ctx, log)
		return nil
	})
}

// Follower is what keeps the view (its start: restored or rebuilt).
func (s *Service) Follower() *checkpoint.Follower { return s.follower }

func (s *Service) reconcileLoop(ctx context.Context, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.deps.Clock.After(s.cfg.ReconcileEvery):
			if err := s.app.Reconcile(ctx); err != nil && ctx.Err() == nil {
				log.Warn("reconcile", "err", err)
			}
		}
	}
}
