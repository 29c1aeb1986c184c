// Package routing classifies every accepted complaint by a versioned
// policy, flags repeats, assigns an owner in the team its severity picks,
// escalates on SLA warnings and breaches, dissatisfaction, repeats and
// missing technicians, and serves the owner's handling up to resolution
// (gRPC and HTTP/JSON). It reacts to the log through the durable bus
// consumer "routing" and keeps its own view of rosters, loads and past
// complaints, rebuilt from the log.
package routing

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/platform"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/routing/internal/app"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
	"github.com/closeloop/closeloop/services/routing/internal/ports"
)

// Name of the service.
const Name = "routing"

//go:embed policy/classification.v1.json
var defaultPolicy []byte

// Config of the routing service; DefaultConfig has the defaults.
type Config struct {
	// GRPCAddr and HTTPAddr to listen on (ROUTING_GRPC_ADDR, ROUTING_HTTP_ADDR).
	GRPCAddr string
	HTTPAddr string
	// PolicyFile overrides the embedded classification policy
	// (ROUTING_POLICY_FILE; empty: policy/classification.v1.json as built).
	PolicyFile string
	// Authenticator checks bearer tokens (libs/auth: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off for local development).
	Authenticator auth.Authenticator
	// Durable is the bus consumer the instances share (ROUTING_DURABLE).
	Durable string
	// Concurrency is how many events one instance handles at a time
	// (ROUTING_CONCURRENCY, default 4). Every decision re-reads the
	// complaint's stream and appends with its version, so order between
	// events does not matter and concurrent handling is safe.
	Concurrency int
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{GRPCAddr: ":7002", HTTPAddr: ":8002", Durable: "routing", Concurrency: 4}
}

// ConfigFromEnv reads the configuration from the environment over the
// defaults, naming the variable of any bad value.
func ConfigFromEnv() (Config, error) {
	c := DefaultConfig()
	for name, dst := range map[string]*string{"ROUTING_GRPC_ADDR": &c.GRPCAddr, "ROUTING_HTTP_ADDR": &c.HTTPAddr, "ROUTING_POLICY_FILE": &c.PolicyFile, "ROUTING_DURABLE": &c.Durable} {
		if v := os.Getenv(name); v != "" {
			*dst = v
		}
	}
	if v := os.Getenv("ROUTING_CONCURRENCY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 256 {
			return c, fmt.Errorf("routing: ROUTING_CONCURRENCY: %q is not an integer between 1 and 256", v)
		}
		c.Concurrency = n
	}
	a, err := auth.FromEnv()
	if err != nil {
		return c, err
	}
	c.Authenticator = a
	if _, err := c.policy(); err != nil {
		return c, err
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.Authenticator == nil:
		return errors.New("routing: config Authenticator: required (set CLOSELOOP_TOKENS_FILE, or CLOSELOOP_AUTH=off for local development)")
	case c.GRPCAddr == "":
		return errors.New("routing: ROUTING_GRPC_ADDR: must not be empty")
	case c.Durable == "":
		return errors.New("routing: ROUTING_DURABLE: must not be empty")
	case c.Concurrency < 1 || c.Concurrency > 256:
		return fmt.Errorf("routing: ROUTING_CONCURRENCY: must be between 1 and 256, got %d", c.Concurrency)
	}
	return nil
}

// policy loads the configured policy, or the embedded one.
func (c Config) policy() (*domain.Policy, error) {
	doc, where := defaultPolicy, "embedded policy/classification.v1.json"
	if c.PolicyFile != "" {
		b, err := os.ReadFile(c.PolicyFile)
		if err != nil {
			return nil, fmt.Errorf("routing: ROUTING_POLICY_FILE: %w", err)
		}
		doc, where = b, "ROUTING_POLICY_FILE "+c.PolicyFile
	}
	p, err := domain.ParsePolicy(doc)
	if err != nil {
		return nil, fmt.Errorf("routing: %s: %w", where, err)
	}
	return p, nil
}

// Service is the running routing service.
type Service struct {
	deps platform.Deps
	cfg  Config
	app  *app.Application
	view *app.View
	// follower restores the view from its snapshot and keeps it applying
	// the log.
	follower *checkpoint.Follower
	srv      *api.Server

	ready     chan struct{}
	readyOnce sync.Once
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

// New builds the service; Run starts it.
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.JS == nil || deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("routing: deps JS, Log and Clock are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p, err := cfg.policy()
	if err != nil {
		return nil, err
	}
	log := deps.Logger
	view := app.NewView(p)
	follower, err := checkpoint.New(checkpoint.Options{
		Name: app.ViewName, Format: app.ViewFormat, Log: deps.Log,
		Snapshots: deps.Snapshots, Rebuild: deps.RebuildViews, Logger: log,
	}, view)
	if err != nil {
		return nil, fmt.Errorf("routing: view: %w", err)
	}
	a, err := app.New(deps.Log, deps.Clock, p, view, log)
	if err != nil {
		return nil, err
	}
	g, err := ports.NewGRPC(a, log)
	if err != nil {
		return nil, err
	}
	srv := api.NewServer(api.Options{Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, Logger: log, Authenticator: cfg.Authenticator, ReadyWhen: follower.CaughtUp()})
	routingv1.RegisterRoutingServiceServer(srv.GRPC(), g)
	return &Service{deps: deps, cfg: cfg, app: a, view: view, follower: follower, srv: srv, ready: make(chan struct{})}, nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// Ready is closed once the view has caught up with the log and the
// service serves and consumes.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// GRPCAddr and HTTPAddr are the listening addresses (after Ready).
func (s *Service) GRPCAddr() string { return s.srv.GRPCAddr() }
func (s *Service) HTTPAddr() string { return s.srv.HTTPAddr() }

// PolicyVersion is the classification policy in use.
func (s *Service) PolicyVersion() string { return s.app.Policy().Version }

// Run restores the view from its snapshot and catches it up with the log;
// then it consumes events.complaint.> and events.team.> on the durable
// consumer and serves the API until ctx is done, when it drains the
// consumer and stops the server.
//
// Consuming and serving wait for the catch-up: a handler waits at most
// viewWait for the view to reach its event and is retried a few times
// before its event is dead-lettered, which a long rebuild would outlast.
// The durable consumer keeps what arrives meanwhile. The server answers
// liveness at once, and readiness and calls once the view has caught up.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return err
	}
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	srvErr := make(chan error, 1)
	go func() { srvErr <- s.srv.Run(srvCtx) }()
	stopSrvAndWait := func() error { stopSrv(); return <-srvErr }

	// The view outlives the consumer: handlers being drained still wait on it.
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	viewErr := make(chan error, 1)
	go func() { viewErr <- s.view.Run(viewCtx, s.follower) }()
	stopViewAndWait := func() error { stopView(); return <-viewErr }

	// The consumer starts once the view has caught up: a handler waits for
	// the view only so long before its event is retried, and a long
	// rebuild would use up the retries and dead-letter real events.
	select {
	case <-s.follower.CaughtUp():
	case <-ctx.Done():
		_ = stopViewAndWait()
		return stopSrvAndWait()
	case err := <-viewErr:
		if err == nil {
			err = errors.New("stopped")
		}
		_ = stopSrvAndWait()
		return fmt.Errorf("routing: view did not catch up with the log: %w", err)
	case err := <-srvErr:
		_ = stopViewAndWait()
		return err
	}

	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	sub, err := bus.Subscribe(subCtx, s.deps.JS, bus.Options{
		Durable:     s.cfg.Durable,
		Subjects:    []string{jsstore.KindSubjects(eventlog.KindComplaint), jsstore.KindSubjects(eventlog.KindTeam)},
		Concurrency: s.cfg.Concurrency,
		Logger:      s.deps.Logger,
	}, s.handle)
	if err != nil {
		_ = stopSrvAndWait()
		_ = stopViewAndWait()
		return fmt.Errorf("routing: subscribe: %w", err)
	}
	s.readyOnce.Do(func() { close(s.ready) })

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-viewErr:
		viewErr <- err
		runErr = fmt.Errorf("routing: view stopped following the log: %w", err)
	case err := <-srvErr:
		srvErr <- err
		runErr = err
	}
	if err := stopSrvAndWait(); err != nil && runErr == nil {
		runErr = err
	}
	stopSub()
	sub.Stop()
	if err := stopViewAndWait(); err != nil && runErr == nil {
		runErr = err
	}
	return runErr
}

// handle is the bus handler: an event about a complaint routing cannot
// find is dead-lettered rather than retried.
func (s *Service) handle(ctx context.Context, rec eventlog.Record) error {
	err := s.app.HandleEvent(ctx, rec)
	if errors.Is(err, domain.ErrNotFound) {
		return bus.Permanent(err)
	}
	return err
}
