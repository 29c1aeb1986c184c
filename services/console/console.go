// Package console is the desk: a web console where the back office works
// its complaints (server-rendered pages, Chinese and English), and a query
// API over its read model (JSON, and the gRPC QueueService). The read model is a checkpointed view of
// the whole log's open work (internal/view); every action goes through the
// owning service's API in the signed-in person's name (internal/web).
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/platform"
	consolev1 "github.com/closeloop/closeloop/proto/gen/closeloop/console/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
	"github.com/closeloop/closeloop/services/console/internal/web"
)

// Name of the service.
const Name = "console"

// Config of the console; DefaultConfig has the defaults.
type Config struct {
	// HTTPAddr to serve the pages and the query API on (CONSOLE_HTTP_ADDR).
	HTTPAddr string
	// GRPCAddr to serve the query API's gRPC face (QueueService) on
	// (CONSOLE_GRPC_ADDR); empty: none.
	GRPCAddr string
	// RoutingAddr is routing's gRPC address (CONSOLE_ROUTING_ADDR): the
	// agents' actions go there.
	RoutingAddr string
	// IndexSecret keys the blind index of descriptions and serials
	// (CONSOLE_INDEX_SECRET, at least 16 bytes). Empty: a random secret is
	// created once and kept in the CONSOLE_SECRETS bucket, so instances and
	// restarts share it.
	IndexSecret []byte
	// SessionIdle ends a session unused this long (CONSOLE_SESSION_IDLE).
	SessionIdle time.Duration
	// SecureCookies marks cookies Secure behind a TLS-terminating proxy
	// (CONSOLE_SECURE_COOKIES); over TLS they always are.
	SecureCookies bool
	// Authenticator checks the access tokens people sign in with (libs/auth:
	// CLOSELOOP_TOKENS_FILE, CLOSELOOP_TOKENS, or CLOSELOOP_AUTH=off).
	Authenticator auth.Authenticator
	// FollowupAddr is follow-up's gRPC address (CONSOLE_FOLLOWUP_ADDR): the
	// dashboard's KPIs, the status page's survey link.
	FollowupAddr string
	// SLAClockAddr is sla-clock's gRPC address (CONSOLE_SLACLOCK_ADDR): the
	// what-if report.
	SLAClockAddr string
	// StatusSecret signs the customers' status links (CONSOLE_STATUS_SECRET,
	// at least 32 bytes). Empty: a random one per process (a warning is
	// logged), so links die with the process.
	StatusSecret []byte
	// StatusLinkTTL is how long a status link works (CONSOLE_STATUS_LINK_TTL).
	StatusLinkTTL time.Duration
	// StatusToken is the console's own bearer token, used only to ask
	// follow-up for the customer's survey link (CONSOLE_STATUS_TOKEN; a
	// principal follow-up lets read it). Empty: no survey link on the page.
	StatusToken string
	// PublicURL is where customers reach the console (CONSOLE_PUBLIC_URL),
	// the start of the status links; empty: the requesting host's.
	PublicURL string
}

// DefaultConfig returns the defaults (no authenticator: set one).
func DefaultConfig() Config {
	return Config{HTTPAddr: "127.0.0.1:8090", GRPCAddr: ":7090", RoutingAddr: "127.0.0.1:7002", SessionIdle: 30 * time.Minute,
		FollowupAddr: "127.0.0.1:7005", SLAClockAddr: "127.0.0.1:7003", StatusLinkTTL: 30 * 24 * time.Hour}
}

// ConfigFromEnv reads the configuration over the defaults, reporting every
// bad variable at once, each by name.
func ConfigFromEnv() (Config, error) {
	env, d := platform.NewEnv(), DefaultConfig()
	c := Config{
		HTTPAddr:      env.String("CONSOLE_HTTP_ADDR", d.HTTPAddr),
		GRPCAddr:      env.String("CONSOLE_GRPC_ADDR", d.GRPCAddr),
		RoutingAddr:   env.String("CONSOLE_ROUTING_ADDR", d.RoutingAddr),
		SessionIdle:   env.Duration("CONSOLE_SESSION_IDLE", d.SessionIdle, time.Minute),
		SecureCookies: env.Bool("CONSOLE_SECURE_COOKIES", false),
		FollowupAddr:  env.String("CONSOLE_FOLLOWUP_ADDR", d.FollowupAddr),
		SLAClockAddr:  env.String("CONSOLE_SLACLOCK_ADDR", d.SLAClockAddr),
		StatusLinkTTL: env.Duration("CONSOLE_STATUS_LINK_TTL", d.StatusLinkTTL, time.Hour),
		StatusToken:   env.String("CONSOLE_STATUS_TOKEN", ""),
		PublicURL:     env.String("CONSOLE_PUBLIC_URL", ""),
	}
	if s := env.String("CONSOLE_INDEX_SECRET", ""); s != "" {
		c.IndexSecret = []byte(s)
	}
	if s := env.String("CONSOLE_STATUS_SECRET", ""); s != "" {
		c.StatusSecret = []byte(s)
	}
	a, err := auth.FromLookup(env.Lookup)
	env.Check(err)
	c.Authenticator = a
	if err := errors.Join(env.Err(), c.validate()); err != nil {
		return c, fmt.Errorf("console: %w", err)
	}
	return c, nil
}

func (c Config) validate() error {
	var errs []error
	if c.HTTPAddr == "" {
		errs = append(errs, errors.New("CONSOLE_HTTP_ADDR: must not be empty"))
	}
	if c.RoutingAddr == "" {
		errs = append(errs, errors.New("CONSOLE_ROUTING_ADDR: must not be empty"))
	}
	if len(c.IndexSecret) > 0 && len(c.IndexSecret) < 16 {
		errs = append(errs, errors.New("CONSOLE_INDEX_SECRET: must be at least 16 bytes"))
	}
	if c.FollowupAddr == "" {
		errs = append(errs, errors.New("CONSOLE_FOLLOWUP_ADDR: must not be empty"))
	}
	if c.SLAClockAddr == "" {
		errs = append(errs, errors.New("CONSOLE_SLACLOCK_ADDR: must not be empty"))
	}
	if len(c.StatusSecret) > 0 && len(c.StatusSecret) < 32 {
		errs = append(errs, errors.New("CONSOLE_STATUS_SECRET: must be at least 32 bytes"))
	}
	if c.StatusLinkTTL < time.Hour {
		errs = append(errs, fmt.Errorf("CONSOLE_STATUS_LINK_TTL: must be at least 1h, got %s", c.StatusLinkTTL))
	}
	if c.PublicURL != "" && !strings.HasPrefix(c.PublicURL, "https://") && !strings.HasPrefix(c.PublicURL, "http://") {
		errs = append(errs, errors.New("CONSOLE_PUBLIC_URL: must start with https:// or http://"))
	}
	if c.SessionIdle < time.Minute {
		errs = append(errs, fmt.Errorf("CONSOLE_SESSION_IDLE: must be at least 1m, got %s", c.SessionIdle))
	}
	return errors.Join(errs...)
}

// Service is the running console.
type Service struct {
	deps     platform.Deps
	cfg      Config
	view     *view.View
	follower *checkpoint.Follower
	web      *web.Server
	conn     *grpc.ClientConn
	grpc     *api.Server // nil: no gRPC face

	listener net.Listener
	ready    chan struct{}
	once     sync.Once
	others   []*grpc.ClientConn // follow-up, sla-clock
}

var _ platform.Service = (*Service)(nil)

// FromEnv builds the service from its environment: what its binary and the
// runner call.
func FromEnv(deps platform.Deps) (platform.Service, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(deps, cfg)
}

// New builds the service; Run starts it.
func New(deps platform.Deps, cfg Config) (*Service, error) {
	if deps.JS == nil || deps.Log == nil || deps.Clock == nil {
		return nil, errors.New("console: deps JS, Log and Clock are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if cfg.Authenticator == nil {
		return nil, errors.New("console: config Authenticator: required (set CLOSELOOP_TOKENS_FILE, or CLOSELOOP_AUTH=off for local development)")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	secret := cfg.IndexSecret
	if len(secret) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var err error
		if secret, err = sharedSecret(ctx, deps.JS); err != nil {
			return nil, err
		}
	}
	v := view.New(view.NewIndex(secret))
	f, err := checkpoint.New(checkpoint.Options{
		Name: view.Name, Format: view.Format, Log: deps.Log, Verifier: deps.Verifier,
		Snapshots: deps.Snapshots, Rebuild: deps.RebuildViews, Logger: deps.Logger,
	}, v)
	if err != nil {
		return nil, fmt.Errorf("console: view: %w", err)
	}
	conn, err := grpc.NewClient(cfg.RoutingAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("console: CONSOLE_ROUTING_ADDR: %w", err)
	}
	statusSecret := cfg.StatusSecret
	if len(statusSecret) == 0 {
		statusSecret = make([]byte, 32)
		if _, err := rand.Read(statusSecret); err != nil {
			conn.Close()
			return nil, err
		}
		deps.Logger.Warn("console: CONSOLE_STATUS_SECRET not set; customers' status links work only until this process stops")
	}
	followupConn, err := grpc.NewClient(cfg.FollowupAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("console: CONSOLE_FOLLOWUP_ADDR: %w", err)
	}
	slaConn, err := grpc.NewClient(cfg.SLAClockAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		conn.Close()
		followupConn.Close()
		return nil, fmt.Errorf("console: CONSOLE_SLACLOCK_ADDR: %w", err)
	}
	others := []*grpc.ClientConn{followupConn, slaConn}
	w, err := web.New(web.Options{
		View: v, Log: deps.Log, Routing: routingv1.NewRoutingServiceClient(conn),
		Authenticator: cfg.Authenticator, Clock: deps.Clock, Logger: deps.Logger,
		SessionIdle: cfg.SessionIdle, SecureCookies: cfg.SecureCookies, Ready: f.CaughtUp(),
		Health: deps.LogHealth,
		Kpis:   followupv1.NewKpiServiceClient(followupConn), SLAClock: slaclockv1.NewSlaClockServiceClient(slaConn),
		Followup: followupv1.NewFollowupServiceClient(followupConn), StatusToken: cfg.StatusToken,
		StatusSecret: statusSecret, StatusLinkTTL: cfg.StatusLinkTTL, PublicURL: cfg.PublicURL,
	})
	if err != nil {
		conn.Close()
		for _, c := range others {
			c.Close()
		}
		return nil, fmt.Errorf("console: %w", err)
	}
	s := &Service{deps: deps, cfg: cfg, view: v, follower: f, web: w, conn: conn, others: others, ready: make(chan struct{})}
	if cfg.GRPCAddr != "" {
		tp, mp := deps.TracerProvider, deps.MeterProvider
		if tp == nil {
			tp = tracenoop.NewTracerProvider()
		}
		if mp == nil {
			mp = metricnoop.NewMeterProvider()
		}
		s.grpc = api.NewServer(api.Options{
			Name: Name, GRPCAddr: cfg.GRPCAddr, Logger: deps.Logger, Authenticator: cfg.Authenticator,
			ReadyWhen: f.CaughtUp(), Health: deps.LogHealth, TracerProvider: tp, MeterProvider: mp,
		})
		consolev1.RegisterQueueServiceServer(s.grpc.GRPC(), web.NewQueueService(v))
	}
	return s, nil
}

// sharedSecret returns the deployment's generated index secret, creating
// it once.
func sharedSecret(ctx context.Context, js jetstream.JetStream) ([]byte, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "CONSOLE_SECRETS", History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("console: secrets bucket: %w", err)
	}
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return nil, err
	}
	if _, err := kv.Create(ctx, "index_hmac", s); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("console: store generated secret: %w", err)
	}
	e, err := kv.Get(ctx, "index_hmac")
	if err != nil {
		return nil, fmt.Errorf("console: read generated secret: %w", err)
	}
	return e.Value(), nil
}

// Name implements platform.Service.
func (s *Service) Name() string { return Name }

// Ready is closed once the view has caught up and the pages are served.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// HTTPAddr is the address the console listens on (after Ready).
func (s *Service) HTTPAddr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// GRPCAddr is the address of the gRPC QueueService (after Ready; "" without
// one).
func (s *Service) GRPCAddr() string {
	if s.grpc == nil {
		return ""
	}
	return s.grpc.GRPCAddr()
}

// View is the read model (benchmarks and tests).
func (s *Service) View() *view.View { return s.view }

// Run listens at once (liveness answers; /readyz says 503 until the view
// has caught up), follows the log, and serves until ctx is done.
func (s *Service) Run(ctx context.Context) error {
	defer s.conn.Close()
	for _, c := range s.others {
		defer c.Close()
	}
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("console: listen on CONSOLE_HTTP_ADDR %s: %w", s.cfg.HTTPAddr, err)
	}
	s.listener = ln
	grpcFace := func(context.Context) error { return nil }
	if s.grpc != nil {
		if err := s.grpc.Listen(); err != nil {
			ln.Close()
			return fmt.Errorf("console: CONSOLE_GRPC_ADDR: %w", err)
		}
		grpcFace = s.grpc.Run
	}
	hs := &http.Server{Handler: s.web, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second}
	return platform.RunGroup(ctx,
		grpcFace,
		func(ctx context.Context) error {
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(ln) }()
			select {
			case err := <-errc:
				return fmt.Errorf("console: serve: %w", err)
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				return hs.Shutdown(sctx)
			}
		},
		func(ctx context.Context) error {
			err := s.view.Run(ctx, s.follower)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("console: view stopped following the log: %w", err)
		},
		func(ctx context.Context) error {
			select {
			case <-s.follower.CaughtUp():
				s.once.Do(func() { close(s.ready) })
			case <-ctx.Done():
			}
			return nil
		})
}
