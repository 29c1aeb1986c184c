// Package intake is the front door of every channel: adapters submit
// complaints (gRPC, HTTP/JSON, or a NATS request), each recorded once per
// channel reference, validated field by field, with the customer's personal
// data sealed under a per-customer key; agents accept, amend, attach
// evidence and withdraw. Intake reads only its own events.
package intake

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/adapters"
	"github.com/closeloop/closeloop/services/intake/internal/app"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
	"github.com/closeloop/closeloop/services/intake/internal/ports"
)

// Name of the service.
const Name = "intake"

// SubmitSubject is the NATS request subject for submissions (see README).
const SubmitSubject = ports.SubmitSubject

// Config of the intake service; DefaultConfig has the defaults.
type Config struct {
	// GRPCAddr and HTTPAddr to listen on (INTAKE_GRPC_ADDR, INTAKE_HTTP_ADDR).
	GRPCAddr string
	HTTPAddr string
	// Authenticator checks bearer tokens (libs/auth: CLOSELOOP_TOKENS_FILE,
	// CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off for local development).
	Authenticator auth.Authenticator
	// Secret keys the customer reference and problem fingerprint
	// (INTAKE_PII_SECRET, at least 16 bytes). Empty: a random secret is
	// created once and kept in the INTAKE_SECRETS bucket, so every instance
	// and restart shares it; production should set it and keep it apart
	// from the data.
	Secret []byte
	// KEKs wrap the customers' data keys in PII_KEYS (PII_KEK, hex
	// key-encryption keys newest first, or PII_KEK_FILE; required). Dispatch
	// needs the same ones.
	KEKs *pii.Keyring
	// DuplicateWindow: the same customer and problem through another
	// channel within it is linked to the first complaint
	// (INTAKE_DUPLICATE_WINDOW, default 72h).
	DuplicateWindow time.Duration
	// ClockSkew allowed on received_at (INTAKE_CLOCK_SKEW, default 5m).
	ClockSkew time.Duration
	// MaxReceivedAge: how far before now received_at may be
	// (INTAKE_MAX_RECEIVED_AGE, default 720h = 30 days).
	MaxReceivedAge time.Duration
	// MaxDescription in characters (INTAKE_MAX_DESCRIPTION, default 5000).
	MaxDescription int
	// MaxAttachments per complaint (INTAKE_MAX_ATTACHMENTS, default 20).
	MaxAttachments int
	// RatePerSecond and RateBurst of each caller's token bucket
	// (INTAKE_RATE, INTAKE_BURST; default 200/s, burst 400; rate 0 = off).
	RatePerSecond float64
	RateBurst     int
	// ClaimGrace before a duplicate-index claim whose complaint was never
	// written is taken over (INTAKE_CLAIM_GRACE, default 30s).
	ClaimGrace time.Duration
	// KVReplicas of intake's key-value buckets (INTAKE_KV_REPLICAS, default 1).
	KVReplicas int
	// NATSConcurrency bounds submissions handled at once from the NATS
	// subject (INTAKE_NATS_CONCURRENCY, default 64).
	NATSConcurrency int
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{
		GRPCAddr:        ":7001",
		HTTPAddr:        ":8001",
		DuplicateWindow: 72 * time.Hour,
		ClockSkew:       domain.DefaultLimits.ClockSkew,
		MaxReceivedAge:  domain.DefaultLimits.MaxAge,
		MaxDescription:  domain.DefaultLimits.MaxDescription,
		MaxAttachments:  domain.DefaultLimits.MaxAttachments,
		RatePerSecond:   200,
		RateBurst:       400,
		ClaimGrace:      30 * time.Second,
		KVReplicas:      1,
		NATSConcurrency: 64,
	}
}

// ConfigFromEnv reads the configuration from the environment over the
// defaults, reporting every bad variable at once, each by name.
func ConfigFromEnv() (Config, error) {
	return configFrom(platform.NewEnv())
}

func configFrom(env *platform.Env) (Config, error) {
	c := DefaultConfig()
	// An empty HTTP address turns the HTTP face off (the NATS subject
	// still works, in process); gRPC cannot be off, so empty is the default.
	if v := env.String("INTAKE_GRPC_ADDR", ""); v != "" {
		c.GRPCAddr = v
	}
	c.HTTPAddr = env.String("INTAKE_HTTP_ADDR", c.HTTPAddr)
	if v := env.String("INTAKE_PII_SECRET", ""); v != "" {
		c.Secret = []byte(v)
		if len(c.Secret) < 16 {
			env.Fail("INTAKE_PII_SECRET", errors.New("must be at least 16 bytes"))
		}
	}
	// A second is the least window, skew or grace that means anything;
	// the upper bounds catch typos (a request body is at most
	// maxBodyBytes, so no description or attachment list is longer).
	c.DuplicateWindow = env.Duration("INTAKE_DUPLICATE_WINDOW", c.DuplicateWindow, time.Second)
	c.ClockSkew = env.Duration("INTAKE_CLOCK_SKEW", c.ClockSkew, time.Second)
	c.ClaimGrace = env.Duration("INTAKE_CLAIM_GRACE", c.ClaimGrace, time.Second)
	c.MaxReceivedAge = env.Duration("INTAKE_MAX_RECEIVED_AGE", c.MaxReceivedAge, time.Second)
	c.MaxDescription = env.Int("INTAKE_MAX_DESCRIPTION", c.MaxDescription, 1, maxBodyBytes)
	c.MaxAttachments = env.Int("INTAKE_MAX_ATTACHMENTS", c.MaxAttachments, 0, 10_000)
	c.RateBurst = env.Int("INTAKE_BURST", c.RateBurst, 1, 1_000_000)
	c.KVReplicas = env.Int("INTAKE_KV_REPLICAS", c.KVReplicas, 1, 5) // JetStream's most
	c.NATSConcurrency = env.Int("INTAKE_NATS_CONCURRENCY", c.NATSConcurrency, 1, 100_000)
	env.Parse("INTAKE_RATE", func(v string) error {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 || math.IsInf(f, 0) {
			return fmt.Errorf("%q must be a number >= 0 (requests per second per caller)", v)
		}
		c.RatePerSecond = f
		return nil
	})
	keks, err := pii.KeyringFromLookup(env.Lookup)
	env.Check(err)
	c.KEKs = keks
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Authenticator = a
	return c, env.Err()
}

func (c Config) validate() error {
	switch {
	case c.Authenticator == nil:
		return errors.New("intake: config Authenticator: required (set CLOSELOOP_TOKENS_FILE)")
	case c.KEKs == nil:
		return errors.New("intake: config KEKs: required (set " + pii.EnvKEK + " or " + pii.EnvKEKFile + ")")
	case c.Secret != nil && len(c.Secret) < 16:
		return errors.New("intake: INTAKE_PII_SECRET: must be at least 16 bytes")
	case c.DuplicateWindow <= 0:
		return errors.New("intake: INTAKE_DUPLICATE_WINDOW: must be positive")
	case c.MaxReceivedAge <= 0:
		return errors.New("intake: INTAKE_MAX_RECEIVED_AGE: must be positive")
	case c.MaxDescription <= 0:
		return errors.New("intake: INTAKE_MAX_DESCRIPTION: must be positive")
	case c.RateBurst < 1 && c.RatePerSecond > 0:
		return errors.New("intake: INTAKE_BURST: must be at least 1")
	}
	return nil
}

// Service is the running intake service.
type Service struct {
	deps platform.Deps
	cfg  Config
	srv  *api.Server

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

// New builds the service: opens its key-value buckets (PII_KEYS,
// INTAKE_DUPLICATES, INTAKE_LINKS, and INTAKE_SECRETS when no secret is set)
// and its libs/api server (gRPC with health and reflection, the HTTP/JSON
// face, /metrics from deps.Metrics). Its spans and metrics go to deps'
// providers; without them, nowhere (never to the otel globals, which
// would mix the services of one process).
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.JS == nil || deps.NC == nil || deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("intake: deps NC, JS, Log and Clock are required")
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if len(cfg.Secret) == 0 {
		s, err := sharedSecret(ctx, deps.JS, cfg.KVReplicas)
		if err != nil {
			return nil, err
		}
		cfg.Secret = s
	}
	keys, err := pii.New(ctx, deps.JS, pii.Config{Replicas: cfg.KVReplicas, KEKs: cfg.KEKs})
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	index, err := adapters.NewKVIndex(ctx, deps.JS, cfg.DuplicateWindow, cfg.KVReplicas)
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	a, err := app.New(deps.Log, keys, index, deps.Clock, deps.TracerProvider, app.Config{
		Limits:     domain.Limits{ClockSkew: cfg.ClockSkew, MaxAge: cfg.MaxReceivedAge, MaxDescription: cfg.MaxDescription, MaxAttachments: cfg.MaxAttachments},
		Secret:     cfg.Secret,
		ClaimGrace: cfg.ClaimGrace,
	})
	if err != nil {
		return nil, fmt.Errorf("intake: %w", err)
	}
	rl := ports.NewRateLimiter(cfg.RatePerSecond, cfg.RateBurst, deps.Clock)
	srv := api.NewServer(api.Options{
		Name:              Name,
		GRPCAddr:          cfg.GRPCAddr,
		HTTPAddr:          cfg.HTTPAddr,
		Logger:            deps.Logger,
		Authenticator:     cfg.Authenticator,
		Metrics:           deps.Metrics,
		TracerProvider:    deps.TracerProvider,
		MeterProvider:     deps.MeterProvider,
		Health:            deps.LogHealth,
		UnaryInterceptors: []grpc.UnaryServerInterceptor{rl.Unary},
		MaxBodyBytes:      maxBodyBytes,
	})
	intakev1.RegisterIntakeServiceServer(srv.GRPC(), ports.NewServer(a))
	return &Service{deps: deps, cfg: cfg, srv: srv, ready: make(chan struct{})}, nil
}

// maxBodyBytes bounds an HTTP request body, as NATS bounds a message (1 MiB
// by default): a complaint with its attachment references is far smaller.
const maxBodyBytes = 1 << 20

// sharedSecret returns the deployment's generated secret, creating it once.
func sharedSecret(ctx context.Context, js jetstream.JetStream, replicas int) ([]byte, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "INTAKE_SECRETS", History: 1, Storage: jetstream.FileStorage, Replicas: replicas})
	if err != nil {
		return nil, fmt.Errorf("intake: secrets bucket: %w", err)
	}
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, "pii_hmac", s); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("intake: store generated secret: %w", err)
	}
	e, err := kv.Get(ctx, "pii_hmac")
	if err != nil {
		return nil, fmt.Errorf("intake: read generated secret: %w", err)
	}
	return e.Value(), nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// Run serves gRPC, HTTP/JSON and the NATS submit subject until ctx is done,
// then stops taking requests and finishes those in flight: the NATS
// subject first (its requests run through the server), then the server.
func (s *Service) Run(ctx context.Context) error {
	if err := s.srv.Listen(); err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	nr, err := ports.ServeNATS(ctx, s.deps.NC, s.srv.HTTPHandler(), s.cfg.NATSConcurrency)
	if err != nil {
		return fmt.Errorf("intake: %w", err)
	}
	// The server outlives the group's context until the subject is
	// drained, so the NATS requests in flight still find it.
	srvCtx, stopSrv := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSrv()
	s.readyOnce.Do(func() { close(s.ready) })
	s.deps.Logger.InfoContext(ctx, "intake: serving", "grpc", s.srv.GRPCAddr(), "http", s.srv.HTTPAddr(), "nats", ports.SubmitSubject)
	return platform.RunGroup(ctx,
		func(context.Context) error { return s.srv.Run(srvCtx) },
		func(ctx context.Context) error {
			<-ctx.Done() // shutdown, or the server failed
			nr.Stop()
			stopSrv()
			return nil
		},
	)
}

// Ready is closed once the listeners are bound.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// GRPCAddr and HTTPAddr are the bound addresses (after Ready).
func (s *Service) GRPCAddr() string { return s.srv.GRPCAddr() }
func (s *Service) HTTPAddr() string { return s.srv.HTTPAddr() }
