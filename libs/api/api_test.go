package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
)

// A test-only service, described at run time so no .proto is generated:
// closeloop.apitest.v1.EchoService/Echo(StringValue) returns (StringValue).
const echoService = "closeloop.apitest.v1.EchoService"

var registerOnce sync.Once

func registerEchoDescriptor(t *testing.T) {
	registerOnce.Do(func() {
		fdp := &descriptorpb.FileDescriptorProto{
			Name:       proto.String("closeloop/apitest/v1/echo.proto"),
			Package:    proto.String("closeloop.apitest.v1"),
			Dependency: []string{"google/protobuf/wrappers.proto"},
			Syntax:     proto.String("proto3"),
			Service: []*descriptorpb.ServiceDescriptorProto{{
				Name: proto.String("EchoService"),
				Method: []*descriptorpb.MethodDescriptorProto{{
					Name:       proto.String("Echo"),
					InputType:  proto.String(".google.protobuf.StringValue"),
					OutputType: proto.String(".google.protobuf.StringValue"),
				}},
			}},
		}
		fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
		if err != nil {
			t.Fatal(err)
		}
		if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
			t.Fatal(err)
		}
	})
}

// echo answers according to its input, to produce each kind of outcome.
func echo(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	switch in.GetValue() {
	case "panic":
		panic("boom")
	case "invalid":
		return nil, api.InvalidArgument("complaint is not valid",
			api.Violation{Field: "customer.phone", Rule: "required", Message: "a phone number is required"},
			api.Violation{Field: "product.serial", Rule: "format", Message: "must be 12 letters or digits"})
	case "exhausted":
		return nil, api.ResourceExhausted(2500 * time.Millisecond)
	case "manager":
		if err := auth.RequireRole(ctx, auth.RoleManager); err != nil {
			return nil, err
		}
	case "notfound":
		return nil, status.Error(codes.NotFound, "no such complaint")
	case "exists":
		return nil, status.Error(codes.AlreadyExists, "already submitted")
	case "precondition":
		return nil, status.Error(codes.FailedPrecondition, "complaint is closed")
	case "unavailable":
		return nil, status.Error(codes.Unavailable, "event log unavailable")
	case "internal":
		return nil, errors.New("plain error with a secret")
	case "kernel-invalid":
		return nil, kernel.Invalid(kernel.Violation{Field: "severity", Rule: "enum", Message: "must be L1 to L4"})
	case "kernel-notfound":
		return nil, fmt.Errorf("complaint_id %q: %w", "c-1", kernel.ErrNotReceived)
	case "kernel-precondition":
		return nil, &kernel.PreconditionError{Reason: "resolving needs a response", Missing: []string{"response"}}
	case "kernel-permission":
		return nil, fmt.Errorf("only the owner: %w", kernel.ErrPermission)
	case "kernel-stale":
		return nil, fmt.Errorf("expected_version 3: %w", kernel.ErrStale)
	case "kernel-busy":
		return nil, fmt.Errorf("claim held: %w", kernel.ErrRetryLater)
	case "damaged":
		return nil, fmt.Errorf("read complaint: %w", &eventlog.BrokenLink{Stream: "complaint-c1", Version: 1, Position: 7, Reason: "version 1 is missing from the log"})
	case "whoami":
		p, _ := auth.FromContext(ctx)
		return wrapperspb.String(p.ID), nil
	case "trace":
		return wrapperspb.String(trace.SpanContextFromContext(ctx).TraceID().String()), nil
	}
	return in, nil
}

var echoDesc = grpc.ServiceDesc{
	ServiceName: echoService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) { return echo(ctx, req.(*wrapperspb.StringValue)) }
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + echoService + "/Echo"}, h)
		},
	}},
}

type fixture struct {
	srv    *api.Server
	base   string
	conn   *grpc.ClientConn
	spans  *tracetest.SpanRecorder
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, nil)
}

// startWith starts the server with Options.ReadyWhen set to ready; with
// ready nil it returns once the server is serving.
func startWith(t *testing.T, ready <-chan struct{}) *fixture {
	t.Helper()
	return startOpts(t, func(o *api.Options) { o.ReadyWhen = ready })
}

// startOpts starts the server with options changed by set.
func startOpts(t *testing.T, set func(*api.Options)) *fixture {
	t.Helper()
	registerEchoDescriptor(t)
	tokens, err := auth.ParseTokens([]byte(`[
	 {"token_sha256": "` + auth.HashToken("agent-token") + `", "id": "alice", "kind": "user", "roles": ["agent"]},
	 {"token_sha256": "` + auth.HashToken("manager-token") + `", "id": "bob", "kind": "user", "roles": ["manager"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	opts := api.Options{
		Name:           "apitest",
		GRPCAddr:       "127.0.0.1:0",
		HTTPAddr:       "127.0.0.1:0",
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		Authenticator:  tokens,
		TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)),
		Metrics:        http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metric_x 1\n") }),
	}
	set(&opts)
	srv := api.NewServer(opts)
	srv.GRPC().RegisterService(&echoDesc, struct{}{})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{srv: srv, base: "http://" + srv.HTTPAddr(), spans: spans, cancel: cancel, done: make(chan error, 1)}
	go func() { f.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-f.done
	})
	f.conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.conn.Close() })
	if opts.ReadyWhen != nil {
		return f
	}
	// Wait until Run has marked the server serving.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(f.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("server never became ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return f
}

func (f *fixture) post(t *testing.T, path, token, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", f.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const echoPath = "/v1/" + echoService + "/Echo"

func TestHTTPFaceInvokesTheGRPCMethod(t *testing.T) {
	f := start(t)
	resp, body := f.post(t, "/v1/grpc.health.v1.Health/Check", "", `{}`)
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"status":"SERVING"}` {
		t.Fatalf("health check over HTTP: %d %s", resp.StatusCode, body)
	}
	resp, body = f.post(t, "/v1/grpc.health.v1.Health/Check", "", `{"service":"closeloop.unknown.v1.X"}`)
	if resp.StatusCode != 404 || !strings.Contains(body, `"code":"NotFound"`) {
		t.Fatalf("unknown health service: %d %s", resp.StatusCode, body)
	}
	resp, body = f.post(t, echoPath, "agent-token", `"hello"`)
	if resp.StatusCode != 200 || body != `"hello"` || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("echo: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

func TestHTTPStatusesFollowGRPCCodes(t *testing.T) {
	f := start(t)
	for _, tc := range []struct {
		token, in string
		status    int
		code      string
	}{
		{"", "hello", 401, "Unauthenticated"},
		{"not-a-token", "hello", 401, "Unauthenticated"},
		{"agent-token", "manager", 403, "PermissionDenied"},
		{"manager-token", "manager", 200, ""},
		{"agent-token", "notfound", 404, "NotFound"},
		{"agent-token", "exists", 409, "AlreadyExists"},
		{"agent-token", "precondition", 409, "FailedPrecondition"},
		{"agent-token", "unavailable", 503, "Unavailable"},
		{"agent-token", "internal", 500, "Internal"},
		{"agent-token", "kernel-invalid", 400, "InvalidArgument"},
		{"agent-token", "kernel-notfound", 404, "NotFound"},
		{"agent-token", "kernel-precondition", 409, "FailedPrecondition"},
		{"agent-token", "kernel-permission", 403, "PermissionDenied"},
		{"agent-token", "kernel-stale", 409, "Aborted"},
		{"agent-token", "kernel-busy", 503, "Unavailable"},
		{"agent-token", "damaged", 500, "DataLoss"},
		{"agent-token", "panic", 500, "Internal"},
	} {
		resp, body := f.post(t, echoPath, tc.token, `"`+tc.in+`"`)
		if resp.StatusCode != tc.status {
			t.Errorf("%s with %q: status %d, want %d (%s)", tc.in, tc.token, resp.StatusCode, tc.status, body)
			continue
		}
		if tc.code == "" {
			continue
		}
		var eb api.ErrorBody
		if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Code != tc.code || eb.Message == "" {
			t.Errorf("%s: body %s, want code %s and a message", tc.in, body, tc.code)
		}
	}
	if _, body := f.post(t, echoPath, "agent-token", `"internal"`); strings.Contains(body, "secret") {
		t.Errorf("an unknown error's text reached the caller: %s", body)
	}
	if resp, body := f.post(t, echoPath, "agent-token", `"kernel-busy"`); resp.Header.Get("Retry-After") == "" {
		t.Errorf("ErrRetryLater without Retry-After: %s", body)
	}
	if _, body := f.post(t, echoPath, "agent-token", `"kernel-invalid"`); !strings.Contains(body, `"field":"severity"`) {
		t.Errorf("violations not listed: %s", body)
	}
	if _, body := f.post(t, echoPath, "agent-token", `"manager"`); !strings.Contains(body, "requires role manager") {
		t.Errorf("permission denied does not name the needed role: %s", body)
	}
	if _, body := f.post(t, echoPath, "agent-token", `"damaged"`); !strings.Contains(body, "stream damaged at complaint-c1 version 1 (log position 7)") {
		t.Errorf("a damaged stream is not reported where: %s", body)
	}
	if _, body := f.post(t, echoPath, "agent-token", `"panic"`); strings.Contains(body, "boom") {
		t.Errorf("panic value leaked to the caller: %s", body)
	}
}

func TestInvalidArgumentCarriesViolations(t *testing.T) {
	f := start(t)
	resp, body := f.post(t, echoPath, "agent-token", `"invalid"`)
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	var eb api.ErrorBody
	if err := json.Unmarshal([]byte(body), &eb); err != nil {
		t.Fatal(err)
	}
	want := []api.Violation{
		{Field: "customer.phone", Rule: "required", Message: "a phone number is required"},
		{Field: "product.serial", Rule: "format", Message: "must be 12 letters or digits"},
	}
	if eb.Code != "InvalidArgument" || len(eb.Violations) != 2 || eb.Violations[0] != want[0] || eb.Violations[1] != want[1] {
		t.Fatalf("body %s", body)
	}
	// The same details over gRPC.
	var out wrapperspb.StringValue
	err := f.conn.Invoke(authCtx("agent-token"), "/"+echoService+"/Echo", wrapperspb.String("invalid"), &out)
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("gRPC: %v", err)
	}
	if got := api.Violations(err); len(got) != 2 || got[0] != want[0] {
		t.Fatalf("gRPC violations %v", got)
	}
}

func TestResourceExhaustedSetsRetryAfter(t *testing.T) {
	f := start(t)
	resp, body := f.post(t, echoPath, "agent-token", `"exhausted"`)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("status %d, Retry-After %q (%s); want 429 and 3", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if d, ok := api.RetryAfter(api.ResourceExhausted(time.Second)); !ok || d != time.Second {
		t.Fatalf("RetryAfter = %v, %v", d, ok)
	}
}

func TestBadRequestsOverHTTP(t *testing.T) {
	f := start(t)
	resp, body := f.post(t, echoPath, "agent-token", `{"value": `)
	if resp.StatusCode != 400 || !strings.Contains(body, `"field":"body"`) {
		t.Fatalf("malformed JSON: %d %s", resp.StatusCode, body)
	}
	resp, body = f.post(t, "/v1/grpc.health.v1.Health/Check", "", `{"servise": "x"}`)
	if resp.StatusCode != 400 || !strings.Contains(body, "unknown field") {
		t.Fatalf("unknown field: %d %s", resp.StatusCode, body)
	}
	resp, _ = f.post(t, "/v1/"+echoService+"/Nope", "agent-token", `{}`)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown method: %d", resp.StatusCode)
	}
	resp, _ = f.post(t, "/v1/closeloop.nothing.v1.Svc/Do", "agent-token", `{}`)
	if resp.StatusCode != 404 {
		t.Fatalf("unknown service: %d", resp.StatusCode)
	}
	resp, body = f.post(t, "/v1/grpc.health.v1.Health/Watch", "", `{}`)
	if resp.StatusCode != 501 {
		t.Fatalf("streaming method over HTTP: %d %s", resp.StatusCode, body)
	}
}

// countingBody is a request body of size bytes that counts what is read.
type countingBody struct {
	size, read int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	if b.read >= b.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), b.size-b.read)
	clear(p[:n])
	b.read += n
	return int(n), nil
}

func (b *countingBody) Close() error { return nil }

// TestUnauthenticatedBodyIsNeverRead: the HTTP face refuses a call with no
// or an unknown token before reading a byte of its body, however large.
func TestUnauthenticatedBodyIsNeverRead(t *testing.T) {
	f := start(t)
	h := f.srv.HTTPHandler()
	for _, token := range []string{"", "not-a-token"} {
		body := &countingBody{size: 1 << 30}
		req := httptest.NewRequest(http.MethodPost, echoPath, nil)
		req.Body, req.ContentLength = body, body.size
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "Unauthenticated") {
			t.Fatalf("token %q: HTTP %d %s, want 401", token, rec.Code, rec.Body)
		}
		if body.read != 0 {
			t.Fatalf("token %q: %d bytes of the body were read before refusing", token, body.read)
		}
	}
	// With a good token the body is read, up to MaxBodyBytes.
	body := &countingBody{size: 1 << 30}
	req := httptest.NewRequest(http.MethodPost, echoPath, nil)
	req.Body, req.ContentLength = body, body.size
	req.Header.Set("Authorization", "Bearer agent-token")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "max_size") || body.read == 0 || body.read > 4<<20+1<<16 {
		t.Fatalf("authenticated, oversized: HTTP %d %s after reading %d bytes, want 400 max_size after about 4 MiB", rec.Code, rec.Body, body.read)
	}
}

// TestSlowHeadersAreCutOff: a client that never finishes its headers is
// disconnected after ReadHeaderTimeout (set short here), not held for ever.
func TestSlowHeadersAreCutOff(t *testing.T) {
	f := startOpts(t, func(o *api.Options) { o.ReadHeaderTimeout = 100 * time.Millisecond })
	conn, err := net.Dial("tcp", f.srv.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST "+echoPath+" HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	// Only a guard against hanging: the server closes long before.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	_, err = io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept a connection with unfinished headers open")
	}
}

func authCtx(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func TestGRPCAuthAndPrincipal(t *testing.T) {
	f := start(t)
	var out wrapperspb.StringValue
	err := f.conn.Invoke(context.Background(), "/"+echoService+"/Echo", wrapperspb.String("whoami"), &out)
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v, want Unauthenticated", err)
	}
	if err := f.conn.Invoke(authCtx("manager-token"), "/"+echoService+"/Echo", wrapperspb.String("whoami"), &out); err != nil || out.GetValue() != "bob" {
		t.Fatalf("whoami = %q, %v; want bob", out.GetValue(), err)
	}
	// Authorization passes through the HTTP face too.
	if _, body := f.post(t, echoPath, "agent-token", `"whoami"`); body != `"alice"` {
		t.Fatalf("whoami over HTTP = %s, want alice", body)
	}
}

func TestNotReadyUntilReadyWhenCloses(t *testing.T) {
	ready := make(chan struct{})
	f := startWith(t, ready)
	get := func(path string) int {
		resp, err := http.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/healthz"); got != 200 {
		t.Fatalf("/healthz while catching up = %d, want 200 (the process is alive)", got)
	}
	if got := get("/readyz"); got != 503 {
		t.Fatalf("/readyz while catching up = %d, want 503", got)
	}
	r, err := healthpb.NewHealthClient(f.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("gRPC health while catching up = %v, %v; want NOT_SERVING", r, err)
	}
	var out wrapperspb.StringValue
	err = f.conn.Invoke(authCtx("agent-token"), "/"+echoService+"/Echo", wrapperspb.String("hi"), &out)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("a call while catching up = %v, want UNAVAILABLE", err)
	}
	close(ready)
	deadline := time.Now().Add(5 * time.Second)
	for get("/readyz") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("/readyz not 200 after ReadyWhen closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.conn.Invoke(authCtx("agent-token"), "/"+echoService+"/Echo", wrapperspb.String("hi"), &out); err != nil {
		t.Fatalf("a call once ready: %v", err)
	}
}

// Readiness asks Options.Health once serving: the event log gone turns
// /readyz to 503 with the reason.
func TestReadinessReportsAFailedHealthCheck(t *testing.T) {
	var lost atomic.Bool
	f := startOpts(t, func(o *api.Options) {
		o.HealthInterval = 20 * time.Millisecond
		o.Health = func(context.Context) error {
			if lost.Load() {
				return errors.New("event log unavailable: stream EVENTS does not exist")
			}
			return nil
		}
	})
	get := func() (int, string) {
		resp, err := http.Get(f.base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 {
		t.Fatalf("/readyz = %d %s, want 200", code, body)
	}
	lost.Store(true)
	if code, body := get(); code != 503 || !strings.Contains(body, "stream EVENTS does not exist") {
		t.Fatalf("/readyz with the log gone = %d %s, want 503 with the reason", code, body)
	}
	// gRPC health (what the k8s probes ask) follows within HealthInterval.
	hc := healthpb.NewHealthClient(f.conn)
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gRPC health with the log gone: %v %v, want NOT_SERVING", r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestHealthReadinessAndReflection(t *testing.T) {
	f := start(t)
	hc := healthpb.NewHealthClient(f.conn)
	for _, svc := range []string{"", echoService} {
		r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v, %v", svc, r, err)
		}
	}
	f.srv.SetServing(false)
	if r, err := hc.Check(context.Background(), &healthpb.HealthCheckRequest{Service: echoService}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("after SetServing(false): %v, %v", r, err)
	}
	for path, want := range map[string]int{"/readyz": 503, "/healthz": 200} {
		resp, err := http.Get(f.base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s = %d, want %d", path, resp.StatusCode, want)
		}
	}
	f.srv.SetServing(true)

	resp, err := http.Get(f.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "metric_x 1\n" {
		t.Fatalf("/metrics = %q", b)
	}

	// Reflection needs no token, so grpcurl can list services.
	rc, err := reflectionpb.NewServerReflectionClient(f.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	rr, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range rr.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, ","), echoService) {
		t.Fatalf("reflection lists %v, want %s among them", names, echoService)
	}
	rc.CloseSend()
}

func TestTraceContextFromHTTPHeaders(t *testing.T) {
	f := start(t)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	_, body := f.post(t, echoPath, "agent-token", `"trace"`, "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	if body != `"`+traceID+`"` {
		t.Fatalf("handler saw trace %s, want %s", body, traceID)
	}
	var found bool
	for _, s := range f.spans.Ended() {
		if s.SpanKind() == trace.SpanKindServer && s.SpanContext().TraceID().String() == traceID && s.Name() == echoService+"/Echo" {
			found = true
		}
	}
	if !found {
		t.Fatal("no server span continuing the caller's trace")
	}
}

func TestRunStopsGracefullyOnCancel(t *testing.T) {
	f := start(t)
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		f.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(f.base + "/healthz"); err == nil {
		t.Fatal("HTTP still answering after stop")
	}
}
