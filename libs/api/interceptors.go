package api

import (
	"context"
	"runtime/debug"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/telemetry"
)

const instrumentation = "github.com/closeloop/closeloop/libs/api"

// metadataCarrier lets the W3C propagator read and write gRPC metadata.
type metadataCarrier metadata.MD

func (c metadataCarrier) Get(key string) string {
	if v := metadata.MD(c).Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c metadataCarrier) Set(key, value string) { metadata.MD(c).Set(key, value) }
func (c metadataCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	service, method, _ = strings.Cut(full, "/")
	return service, method
}

// errNotReady refuses a call made before the service is ready.
var errNotReady = status.Error(codes.Unavailable, "not ready: the service is still catching up with the event log; retry shortly")

// exempt reports whether a method answers before the service is ready.
func exempt(fullMethod string) bool {
	return strings.HasPrefix(fullMethod, "/grpc.health.v1.Health/") || strings.HasPrefix(fullMethod, "/grpc.reflection.")
}

// ready reports whether calls are taken: ReadyWhen is closed (looked at
// directly, so a service that turns ready on the same channel is never
// refused in the moment before Run notices).
func (s *Server) ready() bool {
	if s.opts.ReadyWhen == nil || s.serving.Load() {
		return true
	}
	select {
	case <-s.opts.ReadyWhen:
		return true
	default:
		return false
	}
}

// readyUnary refuses calls until the server is ready (Options.ReadyWhen).
func (s *Server) readyUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if !s.ready() && !exempt(info.FullMethod) {
			return nil, errNotReady
		}
		return handler(ctx, req)
	}
}

// readyStream is readyUnary for streams.
func (s *Server) readyStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if !s.ready() && !exempt(info.FullMethod) {
			return errNotReady
		}
		return handler(srv, ss)
	}
}

// traceUnary starts a server span per call, continuing the caller's trace.
func (s *Server) traceUnary() grpc.UnaryServerInterceptor {
	tracer := s.opts.TracerProvider.Tracer(instrumentation)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		ctx = telemetry.Propagator.Extract(ctx, metadataCarrier(md))
		svc, m := splitMethod(info.FullMethod)
		ctx, span := tracer.Start(ctx, svc+"/"+m, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.service", svc), attribute.String("rpc.method", m)))
		defer span.End()
		resp, err := handler(ctx, req)
		code := status.Code(err)
		span.SetAttributes(attribute.Int("rpc.grpc.status_code", int(code)))
		if err != nil && serverFault(code) {
			span.SetStatus(otelcodes.Error, code.String())
		}
		return resp, err
	}
}

// serverFault reports codes that mean the server failed, not the caller.
func serverFault(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.Internal, codes.DataLoss, codes.Unavailable, codes.DeadlineExceeded, codes.Unimplemented:
		return true
	}
	return false
}

// logUnary logs each call's method, outcome and duration, never its
// payload, and records the call duration metric.
func (s *Server) logUnary() grpc.UnaryServerInterceptor {
	dur, err := s.opts.MeterProvider.Meter(instrumentation).Float64Histogram("rpc.server.call.duration",
		metric.WithUnit("s"), metric.WithDescription("Duration of gRPC calls (HTTP/JSON calls included)."))
	if err != nil {
		s.log.Warn("api: call duration metric", "err", err)
	}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		elapsed := time.Since(start)
		code := status.Code(err)
		if dur != nil {
			dur.Record(ctx, elapsed.Seconds(), metric.WithAttributes(
				attribute.String("rpc.method", info.FullMethod), attribute.String("rpc.grpc.status_code", code.String())))
		}
		if err == nil && strings.HasPrefix(info.FullMethod, "/grpc.health.v1.") {
			return resp, err // health probes would drown the log
		}
		attrs := []any{"method", info.FullMethod, "code", code.String(), "duration_ms", elapsed.Milliseconds()}
		switch {
		case err == nil:
			s.log.InfoContext(ctx, "rpc", attrs...)
		case serverFault(code):
			s.log.ErrorContext(ctx, "rpc", append(attrs, "error", status.Convert(err).Message())...)
		default:
			s.log.InfoContext(ctx, "rpc", append(attrs, "error", status.Convert(err).Message())...)
		}
		return resp, err
	}
}

// recoverUnary turns a handler's panic into codes.Internal: one bad
// request must not take the service down. The stack goes to the log, not
// to the caller.
func (s *Server) recoverUnary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.ErrorContext(ctx, "api: panic in handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

func (s *Server) recoverStream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("api: panic in stream handler", "method", info.FullMethod, "panic", p, "stack", string(debug.Stack()))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}
