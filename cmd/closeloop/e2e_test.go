package main

// The end-to-end test: the services (the console too) and the bus in this test process
// (natsembed + startServices, as `make run` starts them) on a fake clock,
// driven only through their public gRPC and HTTP faces with bearer tokens.
// Every complaint's stream is asserted event by event against a written-out
// history (e2e_history_test.go), every hash chain is verified, the
// dead-letter stream must stay empty and no customer's personal data may
// appear in any service's log.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/console"
)

const (
	// effectTimeout bounds the wait for one asynchronous effect (a reaction
	// of another service) on this loaded machine.
	effectTimeout = 15 * time.Second
	pollEvery     = 10 * time.Millisecond
)

// The test's callers. Principal ids are the routing roster's member ids and
// dispatch's technician id, as the services require.
const (
	tokHotline  = "e2e-hotline-adapter"  // adapter-hotline: phone
	tokMail     = "e2e-mail-adapter"     // adapter-mail: email
	tokAdmin    = "e2e-admin"            // admin-1: admin, manager
	tokCS1      = "e2e-agent-cs-1"       // customer-service agent
	tokCSLead   = "e2e-lead-cs"          // customer-service team lead
	tokTS1      = "e2e-agent-ts-1"       // technical-support agent
	tokTSLead   = "e2e-lead-ts"          // technical-support team lead
	tokER1      = "e2e-agent-er-1"       // emergency-response agent
	tokTech     = "e2e-technician-ann"   // technician tech-ann
	tokSupport  = "e2e-support-readonly" // an auditor, for read-only calls
	techID      = "tech-ann"
	serviceArea = "east"
)

func tokenEntries() []auth.TokenEntry {
	user := func(token, id string, roles ...string) auth.TokenEntry {
		return auth.TokenEntry{TokenSHA256: auth.HashToken(token), Principal: auth.Principal{ID: id, Kind: auth.KindUser, Roles: roles}}
	}
	adapter := func(token, id string, channels ...string) auth.TokenEntry {
		return auth.TokenEntry{TokenSHA256: auth.HashToken(token), Principal: auth.Principal{ID: id, Kind: auth.KindAdapter, Channels: channels}}
	}
	return []auth.TokenEntry{
		adapter(tokHotline, "adapter-hotline", "phone"),
		adapter(tokMail, "adapter-mail", "email"),
		user(tokAdmin, "admin-1", auth.RoleAdmin, auth.RoleManager),
		user(tokCS1, "cs-1", auth.RoleAgent),
		user(tokCSLead, "cs-lead", auth.RoleTeamLead),
		user(tokTS1, "ts-1", auth.RoleAgent),
		user(tokTSLead, "ts-lead", auth.RoleTeamLead),
		user(tokER1, "er-1", auth.RoleAgent),
		user(tokTech, techID, auth.RoleTechnician),
		user(tokSupport, "auditor-1", auth.RoleAuditor),
	}
}

// e2e is the running system and the clients the test drives it with.
type e2e struct {
	ctx   context.Context
	clk   *clock.Fake
	js    jetstream.JetStream
	log   eventlog.Store
	logs  *syncBuffer
	start time.Time
	keys  *signing.Keyring // the services' keys, as the runner made them

	intake   intakev1.IntakeServiceClient
	routing  routingv1.RoutingServiceClient
	sla      slaclockv1.SlaClockServiceClient
	dispatch dispatchv1.DispatchServiceClient
	followup followupv1.FollowupServiceClient
	// followupHTTP is the follow-up HTTP face (survey links) host:port.
	followupHTTP string
	// consoleHTTP is the console's (pages and query API) host:port.
	consoleHTTP string
	// sys is the running services and their telemetry.
	sys *system
}

// syncBuffer collects the services' logs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startE2E starts NATS and the services on a fake clock and connects a
// client to each gRPC API.
func startE2E(t *testing.T) *e2e {
	t.Helper()
	tokens, err := json.Marshal(tokenEntries())
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		auth.EnvTokens: string(tokens), auth.EnvTokensFile: "", auth.EnvAuth: "",
		"INTAKE_GRPC_ADDR": "127.0.0.1:0", "INTAKE_HTTP_ADDR": "127.0.0.1:0",
		"ROUTING_GRPC_ADDR": "127.0.0.1:0", "ROUTING_HTTP_ADDR": "127.0.0.1:0",
		"SLACLOCK_GRPC_ADDR": "127.0.0.1:0", "SLACLOCK_HTTP_ADDR": "127.0.0.1:0",
		"DISPATCH_GRPC_ADDR": "127.0.0.1:0", "DISPATCH_HTTP_ADDR": "127.0.0.1:0",
		"FOLLOWUP_GRPC_ADDR": "127.0.0.1:0", "FOLLOWUP_HTTP_ADDR": "127.0.0.1:0",
		"INTAKE_PII_SECRET":      "e2e-intake-pii-secret-0123456789abcdef",
		"FOLLOWUP_SURVEY_SECRET": "e2e-followup-survey-secret-0123456789abcdef",
		"PII_KEK":                strings.Repeat("5a", 32), "PII_KEK_FILE": "",
		// The runner's other settings keep their defaults.
		"INTAKE_RATE": "0",
	} {
		t.Setenv(k, v)
	}
	for k, v := range consoleTestEnv(t) {
		t.Setenv(k, v)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ns, err := startBus(ctx, t.TempDir(), natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)

	// Monday 2 November 2026, 09:00 in Shanghai.
	start := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	e := &e2e{ctx: ctx, clk: clock.NewFake(start), logs: &syncBuffer{}, start: start, keys: ns.signing[console.Name].Keys}
	sys, err := startServices(ctx, ns, e.clk, e.logs)
	if err != nil {
		t.Fatal(err)
	}
	e.sys = sys
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runAll(runCtx, sys.services, slog.New(slog.NewJSONHandler(e.logs, nil))) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("services stopped with: %v", err)
		}
		sys.close()
		// Every service works within its NATS permissions.
		if n := strings.Count(e.logs.String(), refusedMsg); n > 0 {
			t.Errorf("NATS refused %d operations of the services", n)
		}
		if t.Failed() {
			t.Logf("service warnings and errors:\n%s", problems(e.logs.String()))
		}
	})

	// The test reads as an operator does.
	e.js, e.log = openLogAs(t, ctx, ns, "ops")

	addrs := map[string]string{}
	for _, s := range sys.services {
		if hasGRPC(s) {
			addrs[s.Name()] = e.grpcAddr(t, s, done)
		}
		if s.Name() == console.Name {
			e.consoleHTTP = e.httpAddr(t, s, done)
		}
	}
	dial := func(name string) *grpc.ClientConn {
		conn, err := grpc.NewClient(addrs[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		// Ready = the service's own health check says SERVING.
		e.eventually(t, name+" serving", func() error {
			r, err := grpc_health_v1.NewHealthClient(conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if r.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
				return fmt.Errorf("%s: %v", name, r.GetStatus())
			}
			return nil
		})
		return conn
	}
	e.intake = intakev1.NewIntakeServiceClient(dial("intake"))
	e.routing = routingv1.NewRoutingServiceClient(dial("routing"))
	e.sla = slaclockv1.NewSlaClockServiceClient(dial("slaclock"))
	e.dispatch = dispatchv1.NewDispatchServiceClient(dial("dispatch"))
	e.followup = followupv1.NewFollowupServiceClient(dial("followup"))
	return e
}

// grpcAddr waits until a service has bound its listeners and returns the
// gRPC address (and notes follow-up's HTTP face for survey links).
func (e *e2e) grpcAddr(t *testing.T, s platform.Service, done <-chan error) string {
	t.Helper()
	type readier interface{ Ready() <-chan struct{} }
	type addressed interface{ GRPCAddr() string }
	type withAPI interface{ API() *api.Server }
	if r, ok := s.(readier); ok {
		select {
		case <-r.Ready():
		case err := <-done:
			t.Fatalf("services stopped before %s was ready: %v", s.Name(), err)
		case <-time.After(effectTimeout):
			t.Fatalf("%s not ready", s.Name())
		}
	}
	if h, ok := s.(interface{ HTTPAddr() string }); ok && s.Name() == "followup" {
		e.followupHTTP = h.HTTPAddr()
	}
	var addr string
	e.eventually(t, s.Name()+" listening", func() error {
		switch a := s.(type) {
		case addressed:
			addr = a.GRPCAddr()
		case withAPI:
			addr = a.API().GRPCAddr()
		default:
			t.Fatalf("%s: no way to learn its address", s.Name())
		}
		if addr == "" {
			return fmt.Errorf("%s not listening yet", s.Name())
		}
		return nil
	})
	return addr
}

// httpAddr waits until a service with only an HTTP face is ready and
// returns its address.
func (e *e2e) httpAddr(t *testing.T, s platform.Service, done <-chan error) string {
	t.Helper()
	r, ok := s.(interface {
		Ready() <-chan struct{}
		HTTPAddr() string
	})
	if !ok {
		t.Fatalf("%s: no way to learn its address", s.Name())
	}
	select {
	case <-r.Ready():
	case err := <-done:
		t.Fatalf("services stopped before %s was ready: %v", s.Name(), err)
	case <-time.After(effectTimeout):
		t.Fatalf("%s not ready", s.Name())
	}
	return r.HTTPAddr()
}

// problems keeps the log lines above INFO.
func problems(logs string) string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, `"level":"WARN"`) || strings.Contains(l, `"level":"ERROR"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// as calls with a bearer token.
func (e *e2e) as(token string) context.Context {
	return metadata.AppendToOutgoingContext(e.ctx, "authorization", "Bearer "+token)
}

// eventually polls fn until it returns nil, failing at the deadline.
func (e *e2e) eventually(t *testing.T, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(effectTimeout)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(pollEvery)
	}
}

func (e *e2e) stream(t *testing.T, complaintID string) []eventlog.Record {
	t.Helper()
	recs, err := e.log.ReadStream(e.ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		t.Fatalf("read complaint %s: %v", complaintID, err)
	}
	return recs
}

// consumersIdle: every bus consumer has handled and acknowledged everything.
func (e *e2e) consumersIdle() error {
	for _, d := range []string{"routing", "dispatch", "followup"} {
		if err := bus.CaughtUp(e.ctx, e.js, "EVENTS", d); err != nil {
			return err
		}
	}
	return nil
}

// postJSON posts body to url and decodes the JSON answer.
func (e *e2e) postJSON(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestE2E runs the complaint scenarios one after another on one system and
// one fake clock. They are ordered so that no complaint left open has a
// clock that a later scenario's time travel would fire: the L4 emergency
// runs first (its clocks are all met or breached when it ends), the
// complaints that end closed in the middle, the duplicate (left open) last.
func TestE2E(t *testing.T) {
	e := startE2E(t)
	e.setUp(t)

	var histories []*history
	for _, sc := range []struct {
		name string
		run  func(*testing.T) *history
	}{
		{"SafetyL4Emergency", e.safetyEmergency},
		{"HardwareFaultL2OnSite", e.hardwareFault},
		{"PriceL1ResolvedByAgent", e.priceComplaint},
		{"DissatisfiedReopened", e.dissatisfied},
		{"DuplicateFromSecondChannel", e.duplicate},
	} {
		if !t.Run(sc.name, func(t *testing.T) { histories = append(histories, sc.run(t)) }) {
			t.FailNow()
		}
	}

	// Settled: every consumer has caught up; no stream changed since its
	// scenario ended.
	e.eventually(t, "bus consumers idle", e.consumersIdle)
	for _, h := range histories {
		h.verify(t)
	}
	e.checkWholeLog(t, histories)
	t.Run("ConsoleShowsTheOpenWork", func(t *testing.T) { e.consoleShowsOpenWork(t, histories) })
}

// consoleShowsOpenWork: the console, following the log as its own NATS
// user, serves its sign-in page and lists the scenarios' complaints that
// are still open, and none of the closed ones.
func (e *e2e) consoleShowsOpenWork(t *testing.T, histories []*history) {
	get := func(path, token string) (int, []byte) {
		req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, "http://"+e.consoleHTTP+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if code, _ := get("/login", ""); code != http.StatusOK {
		t.Errorf("console /login: %d", code)
	}
	// Open: every scenario's complaint its stream does not close.
	var open []string
	for _, h := range histories {
		if !slices.ContainsFunc(e.stream(t, h.id), func(r eventlog.Record) bool {
			typ := r.Event.GetType()
			return typ == "ComplaintClosed" || typ == "ComplaintWithdrawn"
		}) {
			open = append(open, h.id)
		}
	}
	slices.Sort(open)
	if len(open) == 0 || len(open) == len(histories) {
		t.Fatalf("%d of %d complaints open: the check needs open and closed ones", len(open), len(histories))
	}
	e.eventually(t, "the console lists the open complaints", func() error {
		code, body := get("/api/v1/complaints?limit=500", tokSupport)
		if code != http.StatusOK {
			return fmt.Errorf("console query API: %d %s", code, body)
		}
		var page struct {
			Complaints []struct {
				ID string `json:"id"`
			} `json:"complaints"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return err
		}
		var listed []string
		for _, c := range page.Complaints {
			listed = append(listed, c.ID)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, open) {
			return fmt.Errorf("console lists %v, want the open %v", listed, open)
		}
		return nil
	})
}

// checkWholeLog: every hash chain verifies, exactly the scenarios'
// complaints exist, every event is signed by the service that may write
// it, nothing was dead-lettered (or quarantined), no personal data was logged.
func (e *e2e) checkWholeLog(t *testing.T, histories []*history) {
	rep, err := eventlog.VerifyLog(e.ctx, e.log, 0, e.keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range rep.Broken {
		t.Errorf("broken hash chain: %v", b)
	}
	complaints := map[string]bool{}
	var from uint64 = 1
	for {
		recs, err := e.log.ReadAll(e.ctx, from, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			from = r.Position + 1
			if id := eventlog.StreamID(r.Event.GetStreamId()); id.Kind() == eventlog.KindComplaint {
				complaints[id.ID()] = true
			}
		}
	}
	want := map[string]bool{}
	for _, h := range histories {
		want[h.id] = true
	}
	if len(complaints) != len(want) {
		t.Errorf("the log holds complaints %v, want exactly %v", keys(complaints), keys(want))
	}
	t.Logf("log verified: %d events in %d streams, %d complaints", rep.Events, rep.Streams, len(complaints))

	dead, err := bus.DeadLetters(e.ctx, e.js, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dead {
		t.Errorf("dead letter from %s: %s", d.Consumer, d.Reason)
	}

	logs := e.logs.String()
	if logs == "" {
		t.Error("no service logs captured")
	}
	for _, pd := range personalData {
		if strings.Contains(logs, pd) {
			t.Errorf("personal data %q appears in the service logs", pd)
		}
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
