// Package slaclock is the sla-clock service: every deadline of a
// complaint's life (domain.md §4) as durable clocks in business time. It
// starts clocks on the events other services write, pauses them on hold,
// fires warnings and breaches on the injected clock, survives restarts by
// rebuilding its schedule from the event log, and answers what is due next.
package slaclock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/platform"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/app"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	"github.com/closeloop/closeloop/services/slaclock/internal/ports"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

// Name is the service's name (logs, metrics, its NATS consumer).
const Name = "slaclock"

// Config of the service; DefaultConfig has the defaults. Every setting is
// parsed once, in ConfigFromEnv: the service gets the parsed values.
type Config struct {
	// GRPCAddr (SLACLOCK_GRPC_ADDR, default ":7003") and HTTPAddr
	// (SLACLOCK_HTTP_ADDR, default ":8003"; empty: no HTTP face).
	GRPCAddr string
	HTTPAddr string
	// Partition is this instance's share of the complaints
	// (SLACLOCK_PARTITION "i/n", default "0/1": all of them).
	Partition app.Partition
	// Policy is the policy used until one is published on the log
	// (SLACLOCK_POLICY_FILE; nil: the shipped policy/sla.v1.json).
	Policy *policy.Policy
	// Calendars (SLACLOCK_CALENDAR_DIR: a directory with calendars.json and
	// <region>/<year>.json; nil: the calendars shipped in libs/calendar).
	Calendars *calendar.Set
	// Authenticator for the API (libs/auth: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off).
	Authenticator auth.Authenticator
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{GRPCAddr: ":7003", HTTPAddr: ":8003", Partition: app.Partition{Index: 0, Count: 1}}
}

// ConfigFromEnv reads the configuration from the environment and reports
// every mistake in it at once, each naming its variable.
func ConfigFromEnv() (Config, error) {
	c := DefaultConfig()
	env := platform.NewEnv()
	c.GRPCAddr = env.String("SLACLOCK_GRPC_ADDR", c.GRPCAddr)
	c.HTTPAddr = env.String("SLACLOCK_HTTP_ADDR", c.HTTPAddr)
	env.Parse("SLACLOCK_PARTITION", func(v string) (err error) {
		c.Partition, err = ParsePartition(v)
		return err
	})
	doc := env.File("SLACLOCK_POLICY_FILE")
	if doc == nil {
		doc = policydata.Default
	}
	pol, err := policy.Parse(doc)
	env.Fail("SLACLOCK_POLICY_FILE", err)
	c.Policy = pol
	env.Parse("SLACLOCK_CALENDAR_DIR", func(dir string) (err error) {
		c.Calendars, err = calendar.LoadFS(os.DirFS(dir))
		return err
	})
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Authenticator = a
	if err := env.Err(); err != nil {
		return c, err
	}
	return c, c.validate()
}

// ParsePartition reads "i/n" with 0 <= i < n.
func ParsePartition(s string) (app.Partition, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return app.Partition{}, fmt.Errorf("%q must be i/n with 0 <= i < n, e.g. 0/2", s)
	}
	return app.Partition{Index: i, Count: n}, nil
}

func (c Config) validate() error {
	if c.GRPCAddr == "" {
		return errors.New("slaclock: SLACLOCK_GRPC_ADDR: required")
	}
	if c.Authenticator == nil {
		return errors.New("slaclock: config Authenticator: required (set CLOSELOOP_TOKENS_FILE)")
	}
	return nil
}

// Service is the sla-clock; it implements platform.Service.
type Service struct {
	app *app.App
	api *api.Server
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

// New builds the service on deps (Log, Clock, Logger, the snapshots and
// the telemetry providers are used).
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("slaclock: deps Log and Clock: required")
	}
	pol := cfg.Policy
	if pol == nil {
		var err error
		if pol, err = policy.Parse(policydata.Default); err != nil {
			return nil, fmt.Errorf("slaclock: shipped policy: %w", err)
		}
	}
	cals := cfg.Calendars
	if cals == nil {
		var err error
		if cals, err = calendar.Default(); err != nil {
			return nil, err
		}
	}
	// Until every runner hands the service its own providers, the otel
	// globals stand in, as in libs/api.
	tp, mp := deps.TracerProvider, deps.MeterProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	logger := deps.Logger
	a, err := app.New(deps.Log, deps.Clock, logger, policy.NewBook(pol), cals, cfg.Partition, tp)
	if err != nil {
		return nil, err
	}
	m, err := newSLAMetrics(mp)
	if err != nil {
		return nil, err
	}
	a.OnAppended(m.record)
	a.UseSnapshots(deps.Snapshots, deps.RebuildViews, 0)
	a.Verify(deps.Verifier)
	srv := api.NewServer(api.Options{Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, Logger: logger,
		Authenticator: cfg.Authenticator, TracerProvider: tp, MeterProvider: mp, ReadyWhen: a.Rebuilt(),
		Health: deps.LogHealth})
	slaclockv1.RegisterSlaClockServiceServer(srv.GRPC(), ports.NewServer(a))
	return &Service{app: a, api: srv}, nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// App is the running instance (queries in tests and the standalone runner).
func (s *Service) App() *app.App { return s.app }

// API is the gRPC/HTTP server (its addresses after Run has started).
func (s *Service) API() *api.Server { return s.api }

// Run starts the schedule (from its snapshot, caught up with the log, or
// rebuilt from the whole log), then fires clocks, follows the log and
// serves the API until ctx is done. The API listens at once and turns
// ready (/readyz, gRPC health; other calls wait) once the schedule has
// caught up and the triggers found on the way are decided.
func (s *Service) Run(ctx context.Context) error {
	if err := s.api.Listen(); err != nil {
		return err
	}
	schedule := func(ctx context.Context) error {
		err := s.app.Run(ctx)
		if err == nil && ctx.Err() == nil {
			return errors.New("slaclock: the schedule stopped") // the API must not answer without it
		}
		return err
	}
	return platform.RunGroup(ctx, schedule, s.api.Run)
}
