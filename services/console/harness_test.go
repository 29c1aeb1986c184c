package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console"
	"github.com/closeloop/closeloop/services/followup"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/routing"
	"github.com/closeloop/closeloop/services/slaclock"
)

// The test's people and tools. Principal ids are routing's roster ids.
const (
	tokHotline = "console-test-hotline"
	tokAdmin   = "console-test-admin"
	tokTS1     = "console-test-agent-ts-1"
	tokCS1     = "console-test-agent-cs-1"
	tokTech    = "console-test-technician"
	tokMail    = "console-test-email"
	tokManager = "console-test-manager"
	tokStatus  = "console-test-status"  // the console's own, for the status page's survey link
	tokLead    = "console-test-lead-ts" // team_test.go: lead of technical-support
)

func tokens() []auth.TokenEntry {
	user := func(token, id string, roles ...string) auth.TokenEntry {
		return auth.TokenEntry{TokenSHA256: auth.HashToken(token), Principal: auth.Principal{ID: id, Kind: auth.KindUser, Roles: roles}}
	}
	return []auth.TokenEntry{
		{TokenSHA256: auth.HashToken(tokHotline), Principal: auth.Principal{ID: "adapter-hotline", Kind: auth.KindAdapter, Channels: []string{"phone"}}},
		{TokenSHA256: auth.HashToken(tokMail), Principal: auth.Principal{ID: "adapter-email", Kind: auth.KindAdapter, Channels: []string{"email"}}},
		user(tokAdmin, "admin-1", auth.RoleAdmin, auth.RoleManager),
		user(tokTS1, "ts-1", auth.RoleAgent),
		user(tokCS1, "cs-1", auth.RoleAgent),
		user(tokTech, "tech-ann", auth.RoleTechnician),
		user(tokManager, "manager-1", auth.RoleManager),
		{TokenSHA256: auth.HashToken(tokStatus), Principal: auth.Principal{ID: "console", Kind: auth.KindService, Roles: []string{auth.RoleCustomerLinks}}},
		user(tokLead, "lead-ts", auth.RoleTeamLead),
	}
}

// logBuffer collects the services' logs (to show them when a test fails
// and to check no personal data reaches them).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// system is NATS, intake, routing, the SLA clock and the console, all in
// this process on one fake clock.
type system struct {
	ctx     context.Context
	clk     *clock.Fake
	log     eventlog.Store
	console *console.Service
	url     string
	intake  intakev1.IntakeServiceClient
	routing routingv1.RoutingServiceClient
	logs    *logBuffer
}

// Monday 2 November 2026, 09:00 in Shanghai.
var start = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

func startSystem(t *testing.T) *system {
	t.Helper()
	list, err := json.Marshal(tokens())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		auth.EnvTokens: string(list), auth.EnvTokensFile: "", auth.EnvAuth: "",
		"INTAKE_GRPC_ADDR": "127.0.0.1:0", "INTAKE_HTTP_ADDR": "127.0.0.1:0",
		"ROUTING_GRPC_ADDR": "127.0.0.1:0", "ROUTING_HTTP_ADDR": "127.0.0.1:0",
		"SLACLOCK_GRPC_ADDR": "127.0.0.1:0", "SLACLOCK_HTTP_ADDR": "",
		"INTAKE_PII_SECRET": "console-test-pii-secret-0123456789", "INTAKE_RATE": "0",
		"PII_KEK": strings.Repeat("5a", 32), "PII_KEK_FILE": "",
		"FOLLOWUP_GRPC_ADDR": "127.0.0.1:0", "FOLLOWUP_HTTP_ADDR": "127.0.0.1:0",
		"FOLLOWUP_SURVEY_SECRET": "console-test-survey-secret-0123456789abcdef", "FOLLOWUP_SURVEY_BASE_URL": "http://survey.test",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ns, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	s := &system{ctx: ctx, clk: clock.NewFake(start), logs: &logBuffer{}}
	logger := slog.New(slog.NewJSONHandler(s.logs, nil))
	var closers []func() // after the services stop
	deps := func(name string) platform.Deps {
		nc, err := ns.Connect("console-test-"+name, false)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, nc.Close)
		d, err := platform.NewDeps(ctx, nc, s.clk, logger.With("service", name), nil)
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, func() { _ = d.Log.Close() })
		return d
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	run := func(svc platform.Service) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.Run(runCtx); err != nil {
				t.Errorf("%s stopped: %v", svc.Name(), err)
			}
		}()
	}
	t.Cleanup(func() {
		stop()
		wg.Wait()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
		if t.Failed() {
			t.Logf("service logs:\n%s", problems(s.logs.String()))
		}
	})
	type readier interface{ Ready() <-chan struct{} }
	wait := func(svc readier, name string) {
		select {
		case <-svc.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s not ready", name)
		}
	}
	in, err := intake.FromEnv(deps("intake"))
	if err != nil {
		t.Fatal(err)
	}
	run(in)
	ro, err := routing.FromEnv(deps("routing"))
	if err != nil {
		t.Fatal(err)
	}
	run(ro)
	sl, err := slaclock.FromEnv(deps("slaclock"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.(*slaclock.Service).API().Listen(); err != nil {
		t.Fatal(err)
	}
	run(sl)
	fu, err := followup.FromEnv(deps("followup"))
	if err != nil {
		t.Fatal(err)
	}
	run(fu)
	wait(in.(readier), "intake")
	wait(ro.(readier), "routing")
	routingAddr := ro.(*routing.Service).GRPCAddr()

	authn, err := auth.ParseTokens(list)
	if err != nil {
		t.Fatal(err)
	}
	cd := deps("console")
	s.log = cd.Log
	cfg := console.DefaultConfig()
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.RoutingAddr, cfg.Authenticator = "127.0.0.1:0", "127.0.0.1:0", routingAddr, authn
	cfg.IndexSecret = []byte("console-test-index-secret")
	wait(fu.(readier), "followup")
	cfg.FollowupAddr, cfg.SLAClockAddr = fu.(*followup.Service).GRPCAddr(), sl.(*slaclock.Service).API().GRPCAddr()
	cfg.StatusSecret, cfg.StatusToken = []byte("console-test-status-secret-0123456789abcdef"), tokStatus
	c, err := console.New(cd, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(c)
	wait(c, "console")
	s.console, s.url = c, "http://"+c.HTTPAddr()

	dial := func(addr string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	s.intake = intakev1.NewIntakeServiceClient(dial(in.(*intake.Service).GRPCAddr()))
	s.routing = routingv1.NewRoutingServiceClient(dial(routingAddr))
	s.roster(t)
	return s
}

// as calls another service with a bearer token.
func (s *system) as(token string) context.Context {
	return metadata.AppendToOutgoingContext(s.ctx, "authorization", "Bearer "+token)
}

// roster puts one agent on shift in each team routing assigns to.
func (s *system) roster(t *testing.T) {
	t.Helper()
	for _, m := range []*routingv1.AddTeamMemberRequest{
		{Team: "customer-service", MemberId: "cs-1", DisplayName: "Agent CS-1", Skills: []string{"billing", "general", "logistics", "product", "service"}, Role: "agent", OnShift: true},
		{Team: "technical-support", MemberId: "ts-1", DisplayName: "Agent TS-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
		{Team: "management-coordination", MemberId: "mgr-1", DisplayName: "Manager 1", Skills: []string{"general", "product"}, Role: "manager", OnShift: true},
		{Team: "emergency-response", MemberId: "er-1", DisplayName: "Agent ER-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
	} {
		if _, err := s.routing.AddTeamMember(s.as(tokAdmin), m); err != nil {
			t.Fatalf("add %s: %v", m.GetMemberId(), err)
		}
	}
}

// eventually polls fn until it returns "" or the deadline passes.
func eventually(t *testing.T, what string, fn func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		msg := fn()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *system) stream(t *testing.T, id string) []eventlog.Record {
	t.Helper()
	recs, err := s.log.ReadStream(s.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func problems(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
