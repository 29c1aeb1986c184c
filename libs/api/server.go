// Package api is the one way every service serves its API: a gRPC server
// with health checking, reflection, tracing, logging, panic recovery and
// authentication, and an HTTP/JSON face for channel adapters that maps
// POST /v1/<service full name>/<Method> to the same gRPC method (protojson
// in and out) through an in-process client connection, so both faces pass
// through the same interceptors.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/test/bufconn"

	"github.com/closeloop/closeloop/libs/auth"
)

// Options configure a Server.
type Options struct {
	// Name of the service (logs, spans).
	Name string
	// GRPCAddr and HTTPAddr to listen on (":0" picks a free port). An
	// empty HTTPAddr serves no HTTP face; GRPCAddr defaults to ":0".
	GRPCAddr string
	HTTPAddr string
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Authenticator checks every call but health and reflection. nil
	// refuses every such call (use auth.Allow, explicitly, for no auth).
	Authenticator auth.Authenticator
	// Metrics, if set, is served at GET /metrics on the HTTP face.
	Metrics http.Handler
	// TracerProvider and MeterProvider default to the otel globals.
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// UnaryInterceptors run after the built-in ones (inside auth).
	UnaryInterceptors []grpc.UnaryServerInterceptor
	// ShutdownTimeout bounds the graceful stop (default 10s); calls still
	// running then are cancelled.
	ShutdownTimeout time.Duration
	// MaxBodyBytes bounds an HTTP request body (default 4 MiB).
	MaxBodyBytes int64
	// The HTTP face's timeouts, so a slow or idle client cannot hold a
	// connection (and its goroutine) for ever: ReadHeaderTimeout for the
	// request line and headers (default 10s), ReadTimeout for the whole
	// request, body included (default 30s), IdleTimeout between requests on
	// a kept-alive connection (default 2m).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	IdleTimeout       time.Duration
	// ReadyWhen, if set, holds readiness until it is closed (a view still
	// catching up with the log): meanwhile Run serves /healthz and gRPC
	// health (NOT_SERVING), /readyz answers 503 and every other call is
	// refused as UNAVAILABLE.
	ReadyWhen <-chan struct{}
	// Health, if set, is asked by every GET /readyz once serving: an error
	// (the event log gone or behind its anchor) answers 503 with it as the
	// reason. It must be quick and must not name personal data. gRPC
	// health follows it too, asked every HealthInterval (default 5s).
	Health         func(context.Context) error
	HealthInterval time.Duration
}

// Server serves one service's gRPC API and its HTTP/JSON face.
type Server struct {
	opts    Options
	log     *slog.Logger
	grpc    *grpc.Server
	health  *health.Server
	serving atomic.Bool

	// httpAuth is libs/auth's interceptor, run by the HTTP face before it
	// reads a body (the gRPC call then authenticates again, cheaply).
	httpAuth grpc.UnaryServerInterceptor

	inproc *bufconn.Listener
	conn   *grpc.ClientConn
	http   *http.Server

	mu        sync.Mutex
	grpcLis   net.Listener
	httpLis   net.Listener
	listening bool
}

// NewServer builds the server; register services on GRPC() before Run.
func NewServer(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.GRPCAddr == "" {
		o.GRPCAddr = ":0"
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	if o.MeterProvider == nil {
		o.MeterProvider = otel.GetMeterProvider()
	}
	if o.ShutdownTimeout == 0 {
		o.ShutdownTimeout = 10 * time.Second
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.ReadHeaderTimeout == 0 {
		o.ReadHeaderTimeout = 10 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 30 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	s := &Server{opts: o, log: o.Logger.With("component", "api")}
	if o.Authenticator == nil {
		s.log.Warn("api: no authenticator configured: every call but health and reflection is refused")
	}
	s.httpAuth = auth.UnaryServerInterceptor(o.Authenticator)
	unary := append([]grpc.UnaryServerInterceptor{
		s.readyUnary(),
		s.traceUnary(),
		s.logUnary(),
		s.recoverUnary(),
		s.statusUnary(),
		auth.UnaryServerInterceptor(o.Authenticator),
	}, o.UnaryInterceptors...)
	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(s.readyStream(), s.recoverStream(), s.statusStream(), auth.StreamServerInterceptor(o.Authenticator)),
	)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.setStatus(false)

	s.inproc = bufconn.Listen(1 << 20)
	conn, err := grpc.NewClient("passthrough:///"+o.Name+"-inprocess",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	)
	if err != nil {
		// NewClient fails only on a malformed target or options, both fixed here.
		panic(fmt.Sprintf("api: in-process client: %v", err))
	}
	s.conn = conn
	s.http = &http.Server{Handler: s.HTTPHandler(), ReadHeaderTimeout: o.ReadHeaderTimeout, ReadTimeout: o.ReadTimeout, IdleTimeout: o.IdleTimeout}
	return s
}

// GRPC is the gRPC server to register services on.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// SetServing sets the health of the server and of every registered
// service (gRPC health and GET /readyz). Run sets it to true once
// listening and to false when stopping.
func (s *Server) SetServing(ok bool) { s.setStatus(ok) }

func (s *Server) setStatus(ok bool) {
	s.serving.Store(ok)
	s.setGRPCHealth(ok)
}

// setGRPCHealth sets the gRPC health of the server and of every service.
func (s *Server) setGRPCHealth(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, st)
	}
}

// Listen binds the listeners (Run does it if not done); after it the Addr
// accessors tell the chosen ports.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listening {
		return nil
	}
	gl, err := net.Listen("tcp", s.opts.GRPCAddr)
	if err != nil {
		return fmt.Errorf("api: listen gRPC on %s: %w", s.opts.GRPCAddr, err)
	}
	if s.opts.HTTPAddr != "" {
		hl, err := net.Listen("tcp", s.opts.HTTPAddr)
		if err != nil {
			gl.Close()
			return fmt.Errorf("api: listen HTTP on %s: %w", s.opts.HTTPAddr, err)
		}
		s.httpLis = hl
	}
	s.grpcLis = gl
	s.listening = true
	return nil
}

// GRPCAddr is the gRPC listener's address ("" before Listen).
func (s *Server) GRPCAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.grpcLis == nil {
		return ""
	}
	return s.grpcLis.Addr().String()
}

// HTTPAddr is the HTTP listener's address ("" before Listen or without an
// HTTP face).
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// serve waits for ctx or a serving error, meanwhile keeping gRPC health
// in step with Options.Health (probes on gRPC see a lost event log too).
func (s *Server) serve(ctx context.Context, errc <-chan error) error {
	var tick <-chan time.Time
	if s.opts.Health != nil {
		every := s.opts.HealthInterval
		if every <= 0 {
			every = 5 * time.Second
		}
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	healthy := true
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return fmt.Errorf("api: serve: %w", err)
		case <-tick:
			err := s.opts.Health(ctx)
			if ok := err == nil; ok != healthy && ctx.Err() == nil {
				healthy = ok
				s.setGRPCHealth(ok)
				if !ok {
					s.log.Error("api: health check failed: not serving", "error", err)
				} else {
					s.log.Info("api: health check passes again: serving")
				}
			}
		}
	}
}

// Run serves until ctx is done, then stops gracefully: health turns to
// NOT_SERVING, the HTTP face and then gRPC finish in-flight calls (within
// ShutdownTimeout). It returns nil after a clean stop.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	errc := make(chan error, 3)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() { errc <- s.grpc.Serve(s.inproc) }()
	if s.httpLis != nil {
		go func() {
			if err := s.http.Serve(s.httpLis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	var runErr error
	if s.opts.ReadyWhen != nil {
		s.log.Info("api: listening, not ready yet", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
		select {
		case <-s.opts.ReadyWhen:
		case <-ctx.Done():
		case err := <-errc:
			runErr = fmt.Errorf("api: serve: %w", err)
		}
	}
	if runErr == nil && ctx.Err() == nil {
		s.setStatus(true)
		s.log.Info("api: serving", "grpc", s.GRPCAddr(), "http", s.HTTPAddr())
		runErr = s.serve(ctx, errc)
	}
	s.setStatus(false)
	s.health.Shutdown()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.http.Shutdown(sctx); err != nil {
		s.log.Warn("api: HTTP shutdown", "err", err)
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-sctx.Done():
		s.log.Warn("api: graceful stop timed out, cancelling calls")
		s.grpc.Stop()
		<-stopped
	}
	_ = s.conn.Close()
	return runErr
}
