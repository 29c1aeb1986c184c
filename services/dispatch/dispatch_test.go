package dispatch_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch"
)

func principalTokens(t *testing.T) auth.Authenticator {
	t.Helper()
	entry := func(token, id string, roles ...string) auth.TokenEntry {
		return auth.TokenEntry{TokenSHA256: auth.HashToken(token), Principal: auth.Principal{ID: id, Kind: auth.KindUser, Roles: roles}}
	}
	a, err := auth.NewStaticTokens([]auth.TokenEntry{
		entry("admin-token", "boss", auth.RoleAdmin),
		entry("ann-token", "ann", auth.RoleTechnician),
		entry("bob-token", "bob", auth.RoleTechnician),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// running is the service on an embedded NATS, with a gRPC client of it.
type running struct {
	ctx    context.Context
	js     jetstream.JetStream
	store  *jsstore.Store
	clock  *clock.Fake
	svc    *dispatch.Service
	client dispatchv1.DispatchServiceClient
}

// startService runs the service until the test ends, once it listens;
// wrap, if set, wraps the log the service is given.
func startService(t *testing.T, wrap func(eventlog.Store) eventlog.Store) *running {
	t.Helper()
	srv, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect("dispatch-service-test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	fake := clock.NewFake(time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC))
	store, err := jsstore.New(ctx, js, jsstore.Config{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	var log eventlog.Store = store
	if wrap != nil {
		log = wrap(store)
	}
	cfg := dispatch.DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.Authenticator = "127.0.0.1:0", "127.0.0.1:0", principalTokens(t)
	cfg.KEKs = testKEKs(t)
	svc, err := dispatch.New(platform.Deps{NC: nc, JS: js, Log: log, Clock: fake}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	checkFor(t, 10*time.Second, func() error {
		if svc.API().GRPCAddr() == "" || svc.API().HTTPAddr() == "" {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	conn, err := grpc.NewClient(svc.API().GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &running{ctx: ctx, js: js, store: store, clock: fake, svc: svc, client: dispatchv1.NewDispatchServiceClient(conn)}
}

// The service wired end to end: routing's DispatchRequested arrives through
// the bus, the technician works the job through gRPC and the HTTP/JSON face,
// and the API refuses the wrong caller and the wrong state with their codes.
func TestServiceDispatchesFromTheBusAndServesTechnicians(t *testing.T) {
	r := startService(t, nil)
	ctx, js, store, fake, svc, client := r.ctx, r.js, r.store, r.clock, r.svc, r.client

	profile := &dispatchv1.TechnicianProfile{
		DisplayName: "Ann", ProductLines: []string{"chiller"}, Services: []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REPAIR},
		ServiceCentre: "sc-east", Region: "east", CalendarId: "always", MaxConcurrentJobs: 2, MaxDailyJobs: 4,
	}
	if _, err := client.RegisterTechnician(as(ctx, "ann-token"), &dispatchv1.RegisterTechnicianRequest{TechnicianId: "ann", Profile: profile}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a technician registering: %v", err)
	}
	bad := &dispatchv1.TechnicianProfile{DisplayName: "X", CalendarId: "nope"}
	if _, err := client.RegisterTechnician(as(ctx, "admin-token"), &dispatchv1.RegisterTechnicianRequest{TechnicianId: "x", Profile: bad}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad profile: %v", err)
	}
	if _, err := client.RegisterTechnician(as(ctx, "admin-token"), &dispatchv1.RegisterTechnicianRequest{TechnicianId: "ann", Profile: profile}); err != nil {
		t.Fatal(err)
	}

	keys, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(t)}) // as intake
	if err != nil {
		t.Fatal(err)
	}
	site, err := keys.Seal(ctx, "cr_abc", &eventsv1.PersonalData{Address: "1 Harbour Rd"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "routing", OccurredAt: fake.Now()}, &eventsv1.DispatchRequested{
		WorkOrderId: "wo1", Spec: &eventsv1.WorkOrderSpec{
			SiteContact: site, Region: "east", ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR, ProductLine: "chiller",
			Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, RequiredBy: timestamppb.New(fake.Now().Add(24 * time.Hour)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "intake", OccurredAt: fake.Now()},
		&eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "c1", Description: "the chiller is down"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(ctx, eventlog.ComplaintStream("c1"), 0, rcv, req); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		jobs, err := client.ListMyJobs(as(ctx, "ann-token"), &dispatchv1.ListMyJobsRequest{})
		if err != nil {
			return err
		}
		if len(jobs.GetJobs()) != 1 || jobs.GetJobs()[0].GetStatus() != dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ASSIGNED {
			return fmt.Errorf("ann's jobs: %v", jobs.GetJobs())
		}
		return nil
	})

	if _, err := client.Accept(as(ctx, "bob-token"), &dispatchv1.AcceptRequest{WorkOrderId: "wo1"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("bob accepting ann's job: %v", err)
	}
	if _, err := client.ReportArrived(as(ctx, "ann-token"), &dispatchv1.ReportArrivedRequest{WorkOrderId: "wo1"}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("arriving before accepting: %v", err)
	}
	// The HTTP/JSON face, as the mobile app calls it.
	httpReq, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+svc.API().HTTPAddr()+"/v1/closeloop.dispatch.v1.DispatchService/Accept",
		bytes.NewBufferString(`{"workOrderId":"wo1"}`))
	httpReq.Header.Set("Authorization", "Bearer ann-token")
	httpReq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(httpReq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP accept: %d", resp.StatusCode)
	}
	got, err := client.GetWorkOrder(as(ctx, "admin-token"), &dispatchv1.GetWorkOrderRequest{WorkOrderId: "wo1"})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetJob().GetStatus() != dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ACCEPTED || got.GetJob().GetTechnicianId() != "ann" {
		t.Fatalf("work order %v", got.GetJob())
	}
}

func checkFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigFromEnvNamesTheVariable(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	t.Setenv("PII_KEK", strings.Repeat("ab", 32))
	t.Setenv("DISPATCH_ACCEPT_TIMEOUT", "soon")
	_, err := dispatch.ConfigFromEnv()
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("DISPATCH_ACCEPT_TIMEOUT")) {
		t.Fatalf("err %v", err)
	}
	t.Setenv("DISPATCH_ACCEPT_TIMEOUT", "5m")
	cfg, err := dispatch.ConfigFromEnv()
	if err != nil || cfg.AcceptTimeout != 5*time.Minute || cfg.GRPCAddr != ":7004" || cfg.HTTPAddr != ":8004" {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
}

// gatedLog holds the view's catch-up (ReadAll) until open is closed.
type gatedLog struct {
	eventlog.Store
	open <-chan struct{}
}

func (g gatedLog) ReadAll(ctx context.Context, from uint64, max int) ([]eventlog.Record, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Store.ReadAll(ctx, from, max)
}

// Until the view has caught up with the log the API listens but answers
// UNAVAILABLE (and /readyz 503) rather than from a partial view; once it
// has, the same call is answered.
func TestCallsBeforeTheViewCaughtUpAreUnavailable(t *testing.T) {
	open := make(chan struct{})
	r := startService(t, func(s eventlog.Store) eventlog.Store { return gatedLog{Store: s, open: open} })
	ctx, svc, client := r.ctx, r.svc, r.client
	get := &dispatchv1.GetWorkOrderRequest{WorkOrderId: "wo-none"}
	if _, err := client.GetWorkOrder(as(ctx, "admin-token"), get); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetWorkOrder before the view caught up: %v, want UNAVAILABLE", err)
	}
	resp, err := http.Get("http://" + svc.API().HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before the view caught up: %d, want 503", resp.StatusCode)
	}
	close(open)
	checkFor(t, 10*time.Second, func() error {
		_, err := client.GetWorkOrder(as(ctx, "admin-token"), get)
		if status.Code(err) != codes.NotFound {
			return fmt.Errorf("GetWorkOrder of an unknown id after catch-up: %v, want NOT_FOUND", err)
		}
		return nil
	})
}

// Every bad variable is named at once, not the first only.
func TestConfigFromNamesEveryBadVariable(t *testing.T) {
	_, err := dispatch.ConfigFrom(platform.EnvOf(map[string]string{
		"CLOSELOOP_AUTH":           "off",
		"DISPATCH_ACCEPT_TIMEOUT":  "soon",
		"DISPATCH_RECONCILE_GRACE": "-1m",
		"DISPATCH_KV_REPLICAS":     "0",
	}))
	for _, name := range []string{"DISPATCH_ACCEPT_TIMEOUT", "DISPATCH_RECONCILE_GRACE", "DISPATCH_KV_REPLICAS", "PII_KEK"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
	cfg, err := dispatch.ConfigFrom(platform.EnvOf(map[string]string{"CLOSELOOP_AUTH": "off", "DISPATCH_TRAVEL_TIME": "90m", "DISPATCH_KV_REPLICAS": "3", "PII_KEK": strings.Repeat("ab", 32)}))
	if err != nil || cfg.TravelTime != 90*time.Minute || cfg.KVReplicas != 3 || cfg.AcceptTimeout != 10*time.Minute || cfg.KEKs == nil {
		t.Fatalf("cfg %+v err %v", cfg, err)
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
