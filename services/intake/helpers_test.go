package intake_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake"
)

// Test credentials: tokens in the clear here, their hashes in the config.
const (
	tokPhone   = "test-token-adapter-phone"
	tokEmail   = "test-token-adapter-email"
	tokAgent   = "test-token-agent-0000001"
	tokLead    = "test-token-teamlead-0001"
	tokAdmin   = "test-token-admin-0000001"
	tokAuditor = "test-token-auditor-00001"
)

func testAuthenticator(t testing.TB) auth.Authenticator {
	t.Helper()
	a, err := auth.NewStaticTokens([]auth.TokenEntry{
		{TokenSHA256: auth.HashToken(tokPhone), Principal: auth.Principal{ID: "adapter-hotline", Kind: auth.KindAdapter, Channels: []string{"phone"}}},
		{TokenSHA256: auth.HashToken(tokEmail), Principal: auth.Principal{ID: "adapter-mail", Kind: auth.KindAdapter, Channels: []string{"email"}}},
		{TokenSHA256: auth.HashToken(tokAgent), Principal: auth.Principal{ID: "agent-li", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}}},
		{TokenSHA256: auth.HashToken(tokLead), Principal: auth.Principal{ID: "lead-wang", Kind: auth.KindUser, Roles: []string{auth.RoleTeamLead}}},
		{TokenSHA256: auth.HashToken(tokAdmin), Principal: auth.Principal{ID: "dpo", Kind: auth.KindUser, Roles: []string{auth.RoleAdmin}}},
		{TokenSHA256: auth.HashToken(tokAuditor), Principal: auth.Principal{ID: "audit", Kind: auth.KindUser, Roles: []string{auth.RoleAuditor}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// env is one embedded NATS server with the JetStream event log.
type env struct {
	srv   *natsembed.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	store eventlog.Store
	clock *clock.Fake
	now   time.Time
	// logOut receives the service's log (default: discarded); metrics is
	// platform.Deps.Metrics (default: none).
	logOut  io.Writer
	metrics http.Handler
	// tracer and meter are platform.Deps' providers (default: none).
	tracer trace.TracerProvider
	meter  metric.MeterProvider
}

func newEnv(t testing.TB, sync bool) *env {
	t.Helper()
	s, err := natsembed.Start(natsembed.Options{NoSync: !sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	nc, err := s.Connect("intake-test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := jsstore.New(context.Background(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	return &env{srv: s, nc: nc, js: js, store: store, clock: clock.NewFake(now), now: now}
}

func testConfig(t testing.TB) intake.Config {
	cfg := intake.DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Authenticator = testAuthenticator(t)
	cfg.Secret = []byte("test-secret-0123456789")
	cfg.KEKs = testKEKs(t)
	cfg.RatePerSecond = 0 // off, unless a test sets it
	return cfg
}

// running is a started service with a gRPC client.
type running struct {
	svc    *intake.Service
	client intakev1.IntakeServiceClient
	stop   func()
}

// start runs a fresh Service instance on e's store.
func (e *env) start(t testing.TB, cfg intake.Config, store eventlog.Store) *running {
	t.Helper()
	if store == nil {
		store = e.store
	}
	out := e.logOut
	if out == nil {
		out = io.Discard
	}
	svc, err := intake.New(platform.Deps{NC: e.nc, JS: e.js, Log: store, Clock: e.clock, Logger: slog.New(slog.NewJSONHandler(out, nil)), Metrics: e.metrics,
		TracerProvider: e.tracer, MeterProvider: e.meter}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := svc.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready")
	}
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { conn.Close(); cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return &running{svc: svc, client: intakev1.NewIntakeServiceClient(conn), stop: stop}
}

func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// phoneSubmission is a complete hotline report by customer n.
func (e *env) phoneSubmission(ref string) *intakev1.SubmitComplaintRequest {
	return &intakev1.SubmitComplaintRequest{
		Channel:    eventsv1.Channel_CHANNEL_PHONE,
		ChannelRef: ref,
		ReceivedAt: timestamppb.New(e.now.Add(-2 * time.Minute)),
		Customer: &intakev1.CustomerInput{
			Name: "张三", Phone: "+86 138-0013-8000", Email: "zhang.san@example.com", Address: "北京市朝阳区建国路 88 号",
			Tier: eventsv1.CustomerTier_CUSTOMER_TIER_VIP,
		},
		Product:         &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-778899", PurchaseDate: "2026-03-01"},
		Place:           &eventsv1.Place{Region: "North", City: "Beijing"},
		Description:     "空调开机十分钟后自动关机 (unit shuts down after ten minutes)",
		Emotion:         eventsv1.Emotion_EMOTION_DISSATISFIED,
		CustomerRequest: "repair on site",
		FirstReceiver:   "agent-li",
	}
}

// events returns the type of every event of a complaint's stream.
func (e *env) events(t testing.TB, id string) []string {
	t.Helper()
	recs, err := e.store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, eventlog.TypeOf(r.Event))
	}
	return out
}

// allEvents counts the log's events by type.
func (e *env) allEvents(t testing.TB) map[string]int {
	t.Helper()
	n := map[string]int{}
	recs, err := e.store.ReadAll(context.Background(), 1, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		n[eventlog.TypeOf(r.Event)]++
	}
	return n
}

func count(types []string, want string) int {
	n := 0
	for _, s := range types {
		if s == want {
			n++
		}
	}
	return n
}

// devTokensFile holds the well-known local credentials `make run` uses (the
// standalone runner embeds it; the top-level README lists the tokens).
const devTokensFile = "../../cmd/closeloop/devtokens.json"

// TestDevTokensFileParses keeps the documented local-only file usable.
func TestDevTokensFileParses(t *testing.T) {
	b, err := os.ReadFile(devTokensFile)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.ParseTokens(b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "dev-intake-phone-adapter")
	if err != nil || p.Kind != auth.KindAdapter || len(p.Channels) != 1 || p.Channels[0] != "phone" {
		t.Fatalf("phone adapter dev token: %+v %v", p, err)
	}
	if p, err := a.Authenticate(context.Background(), "dev-agent-token"); err != nil || !p.HasRole(auth.RoleAgent) {
		t.Fatalf("agent dev token: %+v %v", p, err)
	}
}

// testKEKs is the tests' key-encryption keyring (PII_KEK).
func testKEKs(t testing.TB) *pii.Keyring {
	t.Helper()
	r, err := pii.ParseKeyring(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
