package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// Tokens of the test callers.
var tokens = map[string]auth.Principal{
	"admin-token": {ID: "admin", Kind: auth.KindUser, Roles: []string{auth.RoleManager, auth.RoleTeamLead}},
	"agent-token": {ID: "cs-1", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}},
	"qa-token":    {ID: "qa-1", Kind: auth.KindUser, Roles: []string{auth.RoleQualityReviewer}},
	"lead-token":  {ID: "lead-1", Kind: auth.KindUser, Roles: []string{auth.RoleTeamLead}},
	"sm-token":    {ID: "sm-1", Kind: auth.KindUser, Roles: []string{auth.RoleSeniorManager}},
	"boss-token":  {ID: "boss-1", Kind: auth.KindUser, Roles: []string{auth.RoleTeamLead, auth.RoleQualityReviewer}},
	"audit-token": {ID: "auditor-1", Kind: auth.KindUser, Roles: []string{auth.RoleAuditor}},
	"tech-token":  {ID: "tech-9", Kind: auth.KindUser, Roles: []string{auth.RoleTechnician}},
	"phone-token": {ID: "adapter-hotline", Kind: auth.KindAdapter, Channels: []string{"phone"}},
	"mail-token":  {ID: "adapter-mail", Kind: auth.KindAdapter, Channels: []string{"email"}},
}

func authenticator(t testing.TB) auth.Authenticator {
	var entries []auth.TokenEntry
	for tok, p := range tokens {
		entries = append(entries, auth.TokenEntry{TokenSHA256: auth.HashToken(tok), Principal: p})
	}
	a, err := auth.NewStaticTokens(entries)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// env is an embedded NATS with the event log on it.
type env struct {
	ctx     context.Context
	natsURL string
	js      jetstream.JetStream
	store   *jsstore.Store
	clock   clock.Clock
	snaps   *checkpoint.JetStream
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvAt(t, clock.Real{})
}

// newEnvAt stamps the log's RecordedAt, and routing's events, with c.
func newEnvAt(t testing.TB, c clock.Clock) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ns, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("routing-test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store, err := jsstore.New(ctx, js, jsstore.Config{Clock: c})
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := checkpoint.NewJetStream(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, natsURL: ns.ClientURL(), js: js, store: store, clock: c, snaps: snaps}
}

// start runs one routing instance with its own store on the shared log,
// until the test ends.
func (e *env) start(t testing.TB, durable string) *Service {
	t.Helper()
	svc, stop := e.run(t, durable)
	t.Cleanup(stop)
	return svc
}

// run starts one routing instance, saving its view's snapshots, and
// returns it once ready with the function that stops it.
func (e *env) run(t testing.TB, durable string) (*Service, func()) {
	t.Helper()
	store, err := jsstore.New(e.ctx, e.js, jsstore.Config{Clock: e.clock})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Durable, cfg.Authenticator = "127.0.0.1:0", "127.0.0.1:0", durable, authenticator(t)
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	svc, err := New(platform.Deps{JS: e.js, Log: store, Clock: e.clock, Logger: quiet, Snapshots: e.snaps}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("routing %s stopped with %v", durable, err)
			}
		})
	}
	select {
	case <-svc.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("routing %s did not start: %v", durable, err)
	}
	select {
	case <-svc.follower.CaughtUp():
	default:
		t.Fatalf("routing %s ready before its view caught up with the log", durable)
	}
	return svc, stop
}

func client(t testing.TB, svc *Service) routingv1.RoutingServiceClient {
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return routingv1.NewRoutingServiceClient(conn)
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// roster puts one agent on shift in every team, and a lead in each.
func roster(t testing.TB, ctx context.Context, c routingv1.RoutingServiceClient) {
	t.Helper()
	for _, m := range []*routingv1.AddTeamMemberRequest{
		{Team: "customer-service", MemberId: "cs-1", Skills: []string{"service", "logistics", "billing", "general", "product"}, Role: "agent", OnShift: true},
		{Team: "customer-service", MemberId: "cs-2", Skills: []string{"service", "logistics", "billing", "general", "product"}, Role: "agent", OnShift: true},
		{Team: "customer-service", MemberId: "lead-1", Role: "team_lead"},
		{Team: "technical-support", MemberId: "tech-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
		{Team: "management-coordination", MemberId: "mgr-1", Skills: []string{"general", "product"}, Role: "manager", OnShift: true},
		{Team: "emergency-response", MemberId: "er-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
	} {
		if _, err := c.AddTeamMember(as(ctx, "admin-token"), m); err != nil {
			t.Fatal(err)
		}
	}
}

var texts = []string{
	"客服态度很差，说话不耐烦", "冰箱买了一个月就不制冷了", "I will sue your company for the damage.",
	"The charger started to smoke while charging.", "快递一直没收到", "There is a scratch on the screen bezel.",
}

// intake appends what intake writes for a new complaint.
func (e *env) intake(t testing.TB, id, text, customer string) {
	t.Helper()
	e.write(t, id, &eventsv1.ComplaintReceived{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "ref-" + id, Description: text, FirstReceiver: "hotline-7",
		Customer: &eventsv1.Customer{CustomerRef: customer, Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:  &eventsv1.Product{Model: "M-" + customer},
	}, &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
}

// write appends events to a complaint as another service would.
func (e *env) write(t testing.TB, id string, msgs ...proto.Message) []*eventsv1.Envelope {
	t.Helper()
	stream := eventlog.ComplaintStream(id)
	for {
		recs, err := e.store.ReadStream(e.ctx, stream, 1)
		if err != nil {
			t.Fatal(err)
		}
		var envs []*eventsv1.Envelope
		for _, m := range msgs {
			env, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "test", Actor: "system", OccurredAt: e.clock.Now()}, m)
			if err != nil {
				t.Fatal(err)
			}
			envs = append(envs, env)
		}
		_, err = e.store.Append(e.ctx, stream, uint64(len(recs)), envs...)
		if err == nil {
			return envs
		}
		if !errorsIsConflict(err) {
			t.Fatal(err)
		}
	}
}

func errorsIsConflict(err error) bool { return err != nil && isConflict(err) }

// count returns how many events of each type a complaint's stream holds.
func (e *env) count(t testing.TB, id string) map[string]int {
	t.Helper()
	recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range recs {
		out[r.Event.GetType()]++
	}
	return out
}

// checkFor polls until fn returns nil or the deadline passes.
func checkFor(t testing.TB, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// consumersIdle: every message of both durables is handled and acked.
func (e *env) consumersIdle(durables ...string) error {
	for _, d := range durables {
		if err := bus.CaughtUp(e.ctx, e.js, "EVENTS", d); err != nil {
			return err
		}
	}
	return nil
}

// TestTwoInstancesDecideEachThingOnce: two routing instances, each on its
// own durable consumer, both see every event and decide concurrently; the
// optimistic append on the complaint's stream lets exactly one of them
// assign, escalate and notify for each cause.
func TestTwoInstancesDecideEachThingOnce(t *testing.T) {
	for _, durables := range [][2]string{{"routing-a", "routing-b"}, {"routing", "routing"}} {
		t.Run(durables[0]+"+"+durables[1], func(t *testing.T) { twoInstances(t, durables) })
	}
}

// twoInstances: with their own durables both instances handle every event;
// sharing one they split the work (and a redelivery may still race).
func twoInstances(t *testing.T, durables [2]string) {
	e := newEnv(t)
	a := e.start(t, durables[0])
	e.start(t, durables[1])
	roster(t, e.ctx, client(t, a))

	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.intake(t, fmt.Sprintf("c-%02d", i), texts[i%len(texts)], fmt.Sprintf("cust-%d", i))
		}()
	}
	wg.Wait()
	checkFor(t, 20*time.Second, func() error {
		for i := range n {
			if got := e.count(t, fmt.Sprintf("c-%02d", i))["ComplaintAssigned"]; got == 0 {
				return fmt.Errorf("c-%02d not assigned yet", i)
			}
		}
		return nil
	})
	breaches := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("c-%02d", i)
		breaches[id] = e.write(t, id, &eventsv1.SlaBreached{ClockId: "k", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE})[0].GetEventId()
		e.write(t, id, &eventsv1.SlaWarning{ClockId: "k2", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, ThresholdPercent: 50})
	}
	checkFor(t, 20*time.Second, func() error { return e.consumersIdle(durables[0], durables[1]) })

	for i := range n {
		id := fmt.Sprintf("c-%02d", i)
		got := e.count(t, id)
		wantEsc := 1 // the breach
		if i%len(texts) == 3 {
			wantEsc = 2 // L4: emergency response on arrival, then the breach
		}
		if got["ComplaintClassified"] != 1 || got["ComplaintAssigned"] != 1 || got["ComplaintEscalated"] != wantEsc || got["StakeholdersNotified"] != 1 {
			t.Errorf("%s: %v; want one classification, one assignment, %d escalation(s), one notification", id, got, wantEsc)
		}
		recs, _ := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
		if broken := eventlog.VerifyChain(eventlog.ComplaintStream(id), recs); broken != nil {
			t.Errorf("%s: %v", id, broken)
		}
		var byBreach int
		for _, r := range recs {
			if x := r.Event.GetComplaintEscalated(); x != nil && x.GetCauseEventId() == breaches[id] {
				byBreach++
			}
		}
		if byBreach != 1 {
			t.Errorf("%s: %d escalations caused by the breach, want 1", id, byBreach)
		}
	}
}

// TestAPI drives the gRPC and HTTP faces: roles, error codes, and a
// complaint through to resolution.
func TestAPI(t *testing.T) {
	e := newEnv(t)
	svc := e.start(t, "routing")
	c := client(t, svc)
	roster(t, e.ctx, c)
	e.intake(t, "c-api", "快递一直没收到，物流信息三天没更新", "api")

	var got *routingv1.Complaint
	checkFor(t, 10*time.Second, func() error {
		r, err := c.GetComplaint(as(e.ctx, "agent-token"), &routingv1.GetComplaintRequest{ComplaintId: "c-api"})
		if err != nil {
			return err
		}
		if got = r.GetComplaint(); got.GetOwner() == "" {
			return fmt.Errorf("not assigned yet: %v", got)
		}
		return nil
	})
	if got.GetCategory() != eventsv1.Category_CATEGORY_DELIVERY || got.GetTeam() != "customer-service" || got.GetPolicyVersion() != "classification.v2" {
		t.Fatalf("complaint %v", got)
	}
	owner := got.GetOwner()
	ownerToken := "agent-token"
	if owner != "cs-1" {
		ownerToken = "admin-token" // supervisors act for the owner
	}
	codeOf := func(err error) codes.Code { return status.Code(err) }
	// Errors: unauthenticated, wrong role, unknown complaint, unknown team, stale version.
	if _, err := c.GetComplaint(e.ctx, &routingv1.GetComplaintRequest{ComplaintId: "c-api"}); codeOf(err) != codes.Unauthenticated {
		t.Errorf("no token: %v", err)
	}
	if _, err := c.Reassign(as(e.ctx, "agent-token"), &routingv1.ReassignRequest{ComplaintId: "c-api", Reason: "x"}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("agent reassigns: %v", err)
	}
	if _, err := c.Resolve(as(e.ctx, "qa-token"), &routingv1.ResolveRequest{ComplaintId: "c-api", ResolutionCode: "X", Summary: "y"}); codeOf(err) != codes.PermissionDenied {
		t.Errorf("quality reviewer resolves: %v", err)
	}
	if _, err := c.Resolve(as(e.ctx, ownerToken), &routingv1.ResolveRequest{ComplaintId: "c-nope", ResolutionCode: "X", Summary: "y"}); codeOf(err) != codes.NotFound {
		t.Errorf("unknown complaint: %v", err)
	}
	if _, err := c.Reassign(as(e.ctx, "admin-token"), &routingv1.ReassignRequest{ComplaintId: "c-api", Team: "nobody", Reason: "x"}); codeOf(err) != codes.NotFound {
		t.Errorf("unknown team: %v", err)
	}
	if _, err := c.RecordResponse(as(e.ctx, ownerToken), &routingv1.RecordResponseRequest{ComplaintId: "c-api", ExpectedVersion: 1, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called"}); codeOf(err) != codes.Aborted {
		t.Errorf("stale version: %v", err)
	}
	if _, err := c.RecordResponse(as(e.ctx, ownerToken), &routingv1.RecordResponseRequest{ComplaintId: "c-api"}); codeOf(err) != codes.InvalidArgument {
		t.Errorf("empty response: %v", err)
	}

	// A precondition's missing steps reach the caller as PreconditionFailure details.
	if _, err := c.PutOnHold(as(e.ctx, ownerToken), &routingv1.PutOnHoldRequest{ComplaintId: "c-api", Reason: eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Resolve(as(e.ctx, ownerToken), &routingv1.ResolveRequest{ComplaintId: "c-api", ResolutionCode: "X", Summary: "y"})
	if codeOf(err) != codes.FailedPrecondition || !slices.ContainsFunc(status.Convert(err).Details(), func(d any) bool {
		pf, ok := d.(*errdetails.PreconditionFailure)
		return ok && len(pf.GetViolations()) == 1 && pf.GetViolations()[0].GetType() == "missing" && pf.GetViolations()[0].GetSubject() == "take off hold"
	}) {
		t.Errorf("resolve on hold: %v (details %v), want FailedPrecondition missing \"take off hold\"", err, status.Convert(err).Details())
	}
	if _, err := c.TakeOffHold(as(e.ctx, ownerToken), &routingv1.TakeOffHoldRequest{ComplaintId: "c-api"}); err != nil {
		t.Fatal(err)
	}

	// HTTP/JSON face: a response then the resolution.
	post := func(method, token string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://"+svc.HTTPAddr()+"/v1/closeloop.routing.v1.RoutingService/"+method, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+token)
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
	if code, body := post("RecordResponse", ownerToken, map[string]any{"complaintId": "c-api", "expectedVersion": 1, "channel": "CHANNEL_PHONE", "summary": "parcel located"}); code != http.StatusConflict || body["code"] != "Aborted" {
		t.Errorf("HTTP stale version: %d %v, want 409 Aborted", code, body)
	}
	if code, body := post("RecordResponse", ownerToken, map[string]any{"complaintId": "c-api", "channel": "CHANNEL_PHONE", "summary": "parcel located"}); code != http.StatusOK {
		t.Fatalf("HTTP RecordResponse: %d %v", code, body)
	}
	if code, body := post("RecordRootCause", ownerToken, map[string]any{"complaintId": "c-api", "what": "x"}); code != http.StatusBadRequest || body["violations"] == nil {
		t.Fatalf("HTTP bad root cause: %d %v", code, body)
	}
	if code, body := post("Resolve", ownerToken, map[string]any{"complaintId": "c-api", "resolutionCode": "DELIVERED", "summary": "parcel delivered"}); code != http.StatusOK {
		t.Fatalf("HTTP Resolve: %d %v", code, body)
	}
	r, err := c.GetComplaint(as(e.ctx, "agent-token"), &routingv1.GetComplaintRequest{ComplaintId: "c-api"})
	if err != nil || r.GetComplaint().GetStatus() != "resolved" {
		t.Fatalf("after resolve: %v %v", r, err)
	}
	team, err := c.GetTeam(as(e.ctx, "agent-token"), &routingv1.GetTeamRequest{Team: "customer-service"})
	if err != nil || len(team.GetMembers()) != 3 {
		t.Fatalf("team: %v %v", team, err)
	}
}

// TestReadsAreConfined: GetComplaint and GetTeam answer the back office;
// a technician is refused; an adapter reads only its own channel's
// complaints, and another channel's answers exactly as an unknown id
// does (a refusal would confirm that it exists), on both faces.
func TestReadsAreConfined(t *testing.T) {
	e := newEnv(t)
	svc := e.start(t, "routing")
	c := client(t, svc)
	roster(t, e.ctx, c)
	e.intake(t, "c-read", "快递一直没收到", "reader") // through the phone channel
	checkFor(t, 10*time.Second, func() error {
		_, err := c.GetComplaint(as(e.ctx, "agent-token"), &routingv1.GetComplaintRequest{ComplaintId: "c-read"})
		return err
	})
	get := func(token, id string) error {
		_, err := c.GetComplaint(as(e.ctx, token), &routingv1.GetComplaintRequest{ComplaintId: id})
		return err
	}
	team := func(token string) error {
		_, err := c.GetTeam(as(e.ctx, token), &routingv1.GetTeamRequest{Team: "customer-service"})
		return err
	}
	for _, tok := range []string{"agent-token", "admin-token", "qa-token", "audit-token", "phone-token"} {
		if err := get(tok, "c-read"); err != nil {
			t.Errorf("%s reads the complaint: %v", tok, err)
		}
	}
	for _, tok := range []string{"agent-token", "admin-token", "qa-token", "audit-token"} {
		if err := team(tok); err != nil {
			t.Errorf("%s reads the team: %v", tok, err)
		}
	}
	for _, tok := range []string{"tech-token", "phone-token", "mail-token"} {
		if err := team(tok); status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s reads the team: %v, want PermissionDenied", tok, err)
		}
	}
	if err := get("tech-token", "c-read"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a technician reads the complaint: %v, want PermissionDenied", err)
	}

	// Another channel's complaint and an unknown one, to the mail adapter.
	foreign, unknown := get("mail-token", "c-read"), get("mail-token", "c-nobody")
	if status.Code(foreign) != codes.NotFound || status.Code(unknown) != codes.NotFound ||
		strings.ReplaceAll(status.Convert(foreign).Message(), "c-read", "ID") != strings.ReplaceAll(status.Convert(unknown).Message(), "c-nobody", "ID") {
		t.Fatalf("gRPC: another channel's complaint %v, an unknown one %v, want the same NotFound", foreign, unknown)
	}
	post := func(id string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, "http://"+svc.HTTPAddr()+"/v1/closeloop.routing.v1.RoutingService/GetComplaint",
			strings.NewReader(`{"complaintId":"`+id+`"}`))
		req.Header.Set("Authorization", "Bearer mail-token")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	fCode, fBody := post("c-read")
	uCode, uBody := post("c-nobody")
	fMsg, _ := fBody["message"].(string)
	uMsg, _ := uBody["message"].(string)
	if fCode != http.StatusNotFound || fCode != uCode || fBody["code"] != uBody["code"] ||
		strings.ReplaceAll(fMsg, "c-read", "ID") != strings.ReplaceAll(uMsg, "c-nobody", "ID") {
		t.Fatalf("HTTP: another channel's complaint %d %v, an unknown one %d %v, want the same 404", fCode, fBody, uCode, uBody)
	}
}

func isConflict(err error) bool { return errors.Is(err, eventlog.ErrConflict) }

func TestConfigFromEnvNamesTheBadVariable(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	if c, err := ConfigFromEnv(); err != nil || c.GRPCAddr != ":7002" || c.HTTPAddr != ":8002" || c.Concurrency != 4 {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for name, value := range map[string]string{"ROUTING_CONCURRENCY": "lots", "ROUTING_POLICY_FILE": "/nonexistent/policy.json"} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, value)
			if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), name) {
				t.Fatalf("err %v, want it to name %s", err, name)
			}
		})
	}
	bad := t.TempDir() + "/policy.json"
	if err := os.WriteFile(bad, []byte(`{"version": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROUTING_POLICY_FILE", bad)
	if _, err := ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "repeat_window_days") {
		t.Fatalf("bad policy file: %v", err)
	}
}

// An operator fixes every mistake in one go: ConfigFromEnv names each bad
// variable, not only the first.
func TestConfigFromEnvReportsEveryMistakeAtOnce(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "maybe")
	t.Setenv("ROUTING_CONCURRENCY", "0")
	t.Setenv("ROUTING_DURABLE", "")
	t.Setenv("ROUTING_POLICY_FILE", "/nonexistent/policy.json")
	_, err := ConfigFromEnv()
	if err == nil {
		t.Fatal("ConfigFromEnv accepted four bad variables")
	}
	for _, name := range []string{"CLOSELOOP_AUTH", "ROUTING_CONCURRENCY", "ROUTING_DURABLE", "ROUTING_POLICY_FILE"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

// ConfigFromEnv hands on the policy and model it parsed: the embedded
// ones, or the files'; and the triage confidence.
func TestConfigFromEnvHandsOnTheParsedPolicy(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	c, err := ConfigFromEnv()
	if err != nil || c.Policy == nil || c.Policy.Version != "classification.v2" || c.Model == nil || !strings.HasPrefix(c.Model.Version, "classifier.v1+") || c.TriageConfidence != DefaultTriageConfidence {
		t.Fatalf("embedded: policy %v model %v triage %v, err %v", c.Policy != nil, c.Model != nil, c.TriageConfidence, err)
	}
	doc := bytes.Replace(defaultPolicy, []byte(`"classification.v2"`), []byte(`"classification.v2-local"`), 1)
	path := t.TempDir() + "/policy.json"
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	doc = bytes.Replace(defaultModel, []byte(`"version": "classifier.v1+`), []byte(`"version": "classifier.v1-local+`), 1)
	modelPath := t.TempDir() + "/model.json"
	if err := os.WriteFile(modelPath, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ROUTING_POLICY_FILE", path)
	t.Setenv("ROUTING_MODEL_FILE", modelPath)
	t.Setenv("ROUTING_TRIAGE_CONFIDENCE", "0.7")
	c, err = ConfigFromEnv()
	if err != nil || c.Policy == nil || c.Policy.Version != "classification.v2-local" || c.Model == nil || !strings.HasPrefix(c.Model.Version, "classifier.v1-local+") || c.TriageConfidence != 0.7 {
		t.Fatalf("from files: policy %v model %v triage %v, err %v", c.Policy != nil, c.Model != nil, c.TriageConfidence, err)
	}
}

// A bad triage confidence or model file is refused, naming the variable.
func TestConfigFromEnvRefusesBadClassifierSettings(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	bad := t.TempDir() + "/model.json"
	if err := os.WriteFile(bad, []byte(`{"version": "x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, value, want string }{
		{"ROUTING_TRIAGE_CONFIDENCE", "1.5", "ROUTING_TRIAGE_CONFIDENCE: must be a number from 0 to 1"},
		{"ROUTING_TRIAGE_CONFIDENCE", "sure", "ROUTING_TRIAGE_CONFIDENCE: must be a number from 0 to 1"},
		{"ROUTING_MODEL_FILE", bad, "ROUTING_MODEL_FILE: " + bad + ": model: heads"},
		{"ROUTING_MODEL_FILE", bad + ".missing", "ROUTING_MODEL_FILE"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, err := ConfigFromEnv()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// unreadable is a log whose history cannot be read.
type unreadable struct{ eventlog.Store }

func (unreadable) ReadAll(context.Context, uint64, int) ([]eventlog.Record, error) {
	return nil, errors.New("log unreachable")
}

// A view that cannot catch up stops the whole service: Run returns the
// view's error, having stopped the server it started, and never consumes.
func TestRunStopsWhenTheViewCannotCatchUp(t *testing.T) {
	e := newEnv(t)
	cfg := DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Authenticator = "127.0.0.1:0", "", auth.Allow
	quiet := slog.New(slog.DiscardHandler)
	svc, err := New(platform.Deps{JS: e.js, Log: unreadable{e.store}, Clock: e.clock, Logger: quiet}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(e.ctx) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not catch up") || !strings.Contains(err.Error(), "log unreachable") {
			t.Fatalf("Run = %v, want the view's failure to catch up", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run kept going with a view that cannot catch up")
	}
	select {
	case <-svc.Ready():
		t.Fatal("ready without a view")
	default:
	}
	if info, err := e.js.Consumer(e.ctx, "EVENTS", cfg.Durable); err == nil {
		t.Fatalf("consumer %s created: %v", cfg.Durable, info)
	}
}
