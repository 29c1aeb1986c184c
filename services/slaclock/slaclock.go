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

// Config of the service; DefaultConfig has the defaults.
type Config struct {
	// GRPCAddr (SLACLOCK_GRPC_ADDR, default ":7003") and HTTPAddr
	// (SLACLOCK_HTTP_ADDR, default ":8003"; empty: no HTTP face).
	GRPCAddr string
	HTTPAddr string
	// Partition is this instance's share of the complaints
	// (SLACLOCK_PARTITION "i/n", default "0/1": all of them).
	Partition app.Partition
	// Policy is the policy document used until one is published on the
	// log (SLACLOCK_POLICY_FILE; default: the shipped policy/sla.v1.json).
	Policy []byte
	// Calendars (SLACLOCK_CALENDAR_DIR: a directory with calendars.json and
	// <region>/<year>.json; default: the calendars shipped in libs/calendar).
	Calendars *calendar.Set
	// Authenticator for the API (libs/auth: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off).
	Authenticator auth.Authenticator
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{GRPCAddr: ":7003", HTTPAddr: ":8003", Partition: app.Partition{Index: 0, Count: 1}, Policy: policydata.Default}
}

// ConfigFromEnv reads the configuration from the environment.
func ConfigFromEnv() (Config, error) {
	c := DefaultConfig()
	var errs []error
	if v, ok := os.LookupEnv("SLACLOCK_GRPC_ADDR"); ok {
		c.GRPCAddr = v
	}
	if v, ok := os.LookupEnv("SLACLOCK_HTTP_ADDR"); ok {
		c.HTTPAddr = v
	}
	if v := os.Getenv("SLACLOCK_PARTITION"); v != "" {
		p, err := ParsePartition(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLACLOCK_PARTITION: %w", err))
		}
		c.Partition = p
	}
	if path := os.Getenv("SLACLOCK_POLICY_FILE"); path != "" {
		doc, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("SLACLOCK_POLICY_FILE: %w", err))
		}
		c.Policy = doc
	}
	if dir := os.Getenv("SLACLOCK_CALENDAR_DIR"); dir != "" {
		set, err := calendar.LoadFS(os.DirFS(dir))
		if err != nil {
			errs = append(errs, fmt.Errorf("SLACLOCK_CALENDAR_DIR: %w", err))
		}
		c.Calendars = set
	}
	a, err := auth.FromEnv()
	if err != nil {
		errs = append(errs, err)
	}
	c.Authenticator = a
	if err := errors.Join(errs...); err != nil {
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
	if _, err := policy.Parse(c.Policy); err != nil {
		return fmt.Errorf("slaclock: SLACLOCK_POLICY_FILE: %w", err)
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

// New builds the service on deps (Log, Clock and Logger are used).
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("slaclock: deps Log and Clock: required")
	}
	pol, _ := policy.Parse(cfg.Policy)
	cals := cfg.Calendars
	if cals == nil {
		var err error
		if cals, err = calendar.Default(); err != nil {
			return nil, err
		}
	}
	logger := deps.Logger
	a, err := app.New(deps.Log, deps.Clock, logger, policy.NewBook(pol), cals, cfg.Partition)
	if err != nil {
		return nil, err
	}
	m, err := newSLAMetrics(nil)
	if err != nil {
		return nil, err
	}
	a.OnAppended(m.record)
	a.UseSnapshots(deps.Snapshots, deps.RebuildViews, 0)
	srv := api.NewServer(api.Options{Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, Logger: logger, Authenticator: cfg.Authenticator})
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
// serves the API until ctx is done. The API turns ready (/readyz, gRPC
// health) once the schedule has caught up and the triggers found on the
// way are decided.
func (s *Service) Run(ctx context.Context) error {
	if err := s.api.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	appDone := make(chan error, 1)
	go func() {
		appDone <- s.app.Run(ctx)
		cancel() // one part stopping stops the other
	}()
	select {
	case <-s.app.Rebuilt():
	case err := <-appDone:
		return err // stopped, or failed, while starting
	}
	err := s.api.Run(ctx)
	cancel()
	return errors.Join(err, <-appDone)
}
