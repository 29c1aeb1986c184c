// Package routing classifies every accepted complaint by a versioned text
// model with the policy's rules as floors, flags repeats, assigns an owner
// in the team its severity picks, escalates on SLA warnings and breaches,
// dissatisfaction, repeats and missing technicians, and serves the owner's
// handling up to resolution (gRPC and HTTP/JSON). It reacts to the log through the durable bus
// consumer "routing" and keeps its own view of rosters, loads and past
// complaints, rebuilt from the log.
package routing

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"

	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/platform"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/routing/internal/app"
	"github.com/closeloop/closeloop/services/routing/internal/classifier"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
	"github.com/closeloop/closeloop/services/routing/internal/ports"
)

// Name of the service.
const Name = "routing"

//go:embed policy/classification.v2.json
var defaultPolicy []byte

//go:embed policy/classifier.v1.json
var defaultModel []byte

// DefaultTriageConfidence: a model verdict less sure than this is flagged
// for a person to triage (ROUTING_TRIAGE_CONFIDENCE).
const DefaultTriageConfidence = domain.DefaultTriageConfidence

// Config of the routing service; DefaultConfig has the defaults.
type Config struct {
	// GRPCAddr and HTTPAddr to listen on (ROUTING_GRPC_ADDR, ROUTING_HTTP_ADDR;
	// an empty HTTPAddr serves no HTTP face).
	GRPCAddr string
	HTTPAddr string
	// Policy classifies, assigns and escalates (ROUTING_POLICY_FILE names a
	// file replacing it; nil: the embedded policy/classification.v2.json).
	Policy *domain.Policy
	// Model is the text classifier the policy's rules are floors to
	// (ROUTING_MODEL_FILE names a file replacing it; nil: the embedded
	// policy/classifier.v1.json).
	Model *classifier.Model
	// TriageConfidence: below it a classification is flagged for a person
	// to triage (ROUTING_TRIAGE_CONFIDENCE, 0..1, default 0.5).
	TriageConfidence float64
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
	return Config{GRPCAddr: ":7002", HTTPAddr: ":8002", Durable: "routing", Concurrency: 4, TriageConfidence: DefaultTriageConfidence}
}

// ConfigFromEnv reads the configuration from the environment over the
// defaults, parsing the policy once; it reports every bad variable at
// once, each by name.
func ConfigFromEnv() (Config, error) {
	env, d := platform.NewEnv(), DefaultConfig()
	c := Config{
		GRPCAddr:         env.String("ROUTING_GRPC_ADDR", d.GRPCAddr),
		HTTPAddr:         env.String("ROUTING_HTTP_ADDR", d.HTTPAddr),
		Policy:           policyFrom(env),
		Model:            modelFrom(env),
		TriageConfidence: d.TriageConfidence,
		Durable:          env.String("ROUTING_DURABLE", d.Durable),
		Concurrency:      env.Int("ROUTING_CONCURRENCY", d.Concurrency, 1, 256),
	}
	env.Parse("ROUTING_TRIAGE_CONFIDENCE", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 1) {
			return fmt.Errorf("must be a number from 0 to 1, got %q", v)
		}
		c.TriageConfidence = f
		return nil
	})
	if c.GRPCAddr == "" {
		env.Fail("ROUTING_GRPC_ADDR", errors.New("must not be empty"))
	}
	if c.Durable == "" {
		env.Fail("ROUTING_DURABLE", errors.New("must not be empty"))
	}
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Authenticator = a
	if err := env.Err(); err != nil {
		return c, fmt.Errorf("routing: %w", err)
	}
	return c, nil
}

// policyFrom parses the policy ROUTING_POLICY_FILE names, or the embedded
// one.
func policyFrom(env *platform.Env) *domain.Policy {
	const name = "ROUTING_POLICY_FILE"
	path, _ := env.Lookup(name)
	if path == "" {
		p, err := embeddedPolicy()
		env.Fail("embedded policy/classification.v2.json", err)
		return p
	}
	doc := env.File(name)
	if doc == nil {
		return nil // unreadable, and recorded
	}
	p, err := domain.ParsePolicy(doc)
	if err != nil {
		env.Fail(name, fmt.Errorf("%s: %w", path, err))
	}
	return p
}

func embeddedPolicy() (*domain.Policy, error) { return domain.ParsePolicy(defaultPolicy) }

// modelFrom parses the model ROUTING_MODEL_FILE names, or the embedded one.
func modelFrom(env *platform.Env) *classifier.Model {
	const name = "ROUTING_MODEL_FILE"
	path, _ := env.Lookup(name)
	if path == "" {
		m, err := classifier.ParseModel(defaultModel)
		env.Fail("embedded policy/classifier.v1.json", err)
		return m
	}
	doc := env.File(name)
	if doc == nil {
		return nil // unreadable, and recorded
	}
	m, err := classifier.ParseModel(doc)
	if err != nil {
		env.Fail(name, fmt.Errorf("%s: %w", path, err))
	}
	return m
}

func (c Config) validate() error {
	var errs []error
	if c.Authenticator == nil {
		errs = append(errs, errors.New("config Authenticator: required (set CLOSELOOP_TOKENS_FILE, or CLOSELOOP_AUTH=off for local development)"))
	}
	if c.GRPCAddr == "" {
		errs = append(errs, errors.New("ROUTING_GRPC_ADDR: must not be empty"))
	}
	if c.Durable == "" {
		errs = append(errs, errors.New("ROUTING_DURABLE: must not be empty"))
	}
	if !(c.TriageConfidence >= 0 && c.TriageConfidence <= 1) {
		errs = append(errs, fmt.Errorf("ROUTING_TRIAGE_CONFIDENCE: must be a number from 0 to 1, got %v", c.TriageConfidence))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		errs = append(errs, fmt.Errorf("ROUTING_CONCURRENCY: must be between 1 and 256, got %d", c.Concurrency))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("routing: %w", err)
	}
	return nil
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

// New builds the service; Run starts it. Deps without providers trace
// and measure nothing (never through the otel globals).
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.JS == nil || deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("routing: deps JS, Log and Clock are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.TracerProvider == nil {
		deps.TracerProvider = tracenoop.NewTracerProvider()
	}
	if deps.MeterProvider == nil {
		deps.MeterProvider = metricnoop.NewMeterProvider()
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := cfg.Policy
	if p == nil {
		var err error
		if p, err = embeddedPolicy(); err != nil {
			return nil, fmt.Errorf("routing: embedded policy/classification.v2.json: %w", err)
		}
	}
	m := cfg.Model
	if m == nil {
		var err error
		if m, err = classifier.ParseModel(defaultModel); err != nil {
			return nil, fmt.Errorf("routing: embedded policy/classifier.v1.json: %w", err)
		}
	}
	p = p.WithClassifier(domain.Classifier{Model: m, TriageBelow: cfg.TriageConfidence})
	log := deps.Logger
	view := app.NewView(p)
	follower, err := checkpoint.New(checkpoint.Options{
		Name: app.ViewName, Format: app.ViewFormat, Log: deps.Log, Verifier: deps.Verifier,
		Snapshots: deps.Snapshots, Rebuild: deps.RebuildViews, Logger: log,
	}, view)
	if err != nil {
		return nil, fmt.Errorf("routing: view: %w", err)
	}
	a, err := app.New(deps.Log, deps.Clock, deps.TracerProvider, p, view, log)
	if err != nil {
		return nil, err
	}
	g, err := ports.NewGRPC(a)
	if err != nil {
		return nil, err
	}
	srv := api.NewServer(api.Options{
		Name: Name, Metrics: deps.Metrics, GRPCAddr: cfg.GRPCAddr, HTTPAddr: cfg.HTTPAddr, Logger: log,
		Authenticator: cfg.Authenticator, ReadyWhen: follower.CaughtUp(),
		TracerProvider: deps.TracerProvider, MeterProvider: deps.MeterProvider, Health: deps.LogHealth,
	})
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
// then it consumes the log on the durable consumer (complaint and team
// events matter) and serves the API until ctx is done, when it drains the
// consumer and stops the server. The first of them to fail stops the
// others.
//
// Consuming waits for the catch-up: a handler waits at most viewWait for
// the view to reach its event and is retried a few times before its event
// is dead-lettered, which a long rebuild would outlast. The durable
// consumer keeps what arrives meanwhile. The server answers liveness at
// once, and readiness and calls once the view has caught up.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return err
	}
	// The view outlives the consumer, whose handlers being drained still
	// wait on it: the consumer stops it once drained, not the group.
	viewCtx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	return platform.RunGroup(ctx,
		s.srv.Run,
		func(context.Context) error { return s.follow(viewCtx) },
		func(ctx context.Context) error {
			defer stopView()
			return s.consume(ctx)
		})
}

// follow keeps the view applying the log until viewCtx is done.
func (s *Service) follow(viewCtx context.Context) error {
	err := s.view.Run(viewCtx, s.follower)
	if viewCtx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("stopped")
	}
	select {
	case <-s.follower.CaughtUp():
		return fmt.Errorf("routing: view stopped following the log: %w", err)
	default:
		return fmt.Errorf("routing: view did not catch up with the log: %w", err)
	}
}

// consume handles events on the durable consumer once the view has caught
// up, until ctx is done; then it drains the handlers running.
func (s *Service) consume(ctx context.Context) error {
	select {
	case <-s.follower.CaughtUp():
	case <-ctx.Done():
		return nil
	}
	sub, err := bus.Subscribe(ctx, s.deps.JS, bus.Options{
		Durable:  s.cfg.Durable,
		Verifier: s.deps.Verifier,
		// The whole log, though routing reacts to complaint and team
		// events only (HandleEvent skips the rest): a consumer with
		// several filters makes the server intersect every subject of a
		// message block with them for each message it delivers, which
		// took 29 % of the CPU while routing drained 30,000 complaints.
		Subjects:       nil,
		Concurrency:    s.cfg.Concurrency,
		Logger:         s.deps.Logger,
		TracerProvider: s.deps.TracerProvider,
		MeterProvider:  s.deps.MeterProvider,
	}, s.handle)
	if err != nil {
		return fmt.Errorf("routing: subscribe: %w", err)
	}
	s.readyOnce.Do(func() { close(s.ready) })
	<-ctx.Done()
	sub.Stop()
	return nil
}

// handle is the bus handler: an event about a complaint routing cannot
// find is dead-lettered rather than retried.
func (s *Service) handle(ctx context.Context, rec eventlog.Record) error {
	err := s.app.HandleEvent(ctx, rec)
	if errors.Is(err, kernel.ErrNotFound) {
		return bus.Permanent(err)
	}
	return err
}
