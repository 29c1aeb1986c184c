package intake_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake"
)

// startOnDeps runs the service on the dependencies platform gives every
// service (its anchor check and LogHealth included).
func (e *env) startOnDeps(t *testing.T) (*intake.Service, intakev1.IntakeServiceClient) {
	t.Helper()
	deps, err := platform.NewDeps(t.Context(), e.nc, e.clock, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := intake.New(deps, testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = svc.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	select {
	case <-svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("service not ready")
	}
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return svc, intakev1.NewIntakeServiceClient(conn)
}

func readyz(t *testing.T, svc *intake.Service) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + svc.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The EVENTS stream deleted while the service runs: /readyz says the log is
// unavailable; recreated empty, it says what the anchor vouches for; and
// a service starting on it refuses, naming the anchor.
func TestReadinessAndStartReportALogLostUnderItsAnchor(t *testing.T) {
	e := newEnv(t, false)
	ctx := t.Context()
	svc, client := e.startOnDeps(t)
	if _, err := client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-A1")); err != nil {
		t.Fatal(err)
	}
	if err := anchor.EnsureStream(ctx, e.js, 1); err != nil {
		t.Fatal(err)
	}
	w := &anchor.Writer{Log: e.store.(*jsstore.Store), Stores: []anchor.Store{anchor.JetStream{JS: e.js}}, Clock: e.clock}
	if err := w.Write(ctx); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, svc); code != http.StatusOK {
		t.Fatalf("/readyz on an anchored log = %d %s", code, body)
	}

	if err := e.js.DeleteStream(ctx, jsstore.StreamName); err != nil {
		t.Fatal(err)
	}
	if code, body := readyz(t, svc); code != http.StatusServiceUnavailable || !strings.Contains(body, "event log unavailable") || !strings.Contains(body, "EVENTS does not exist") {
		t.Fatalf("/readyz with EVENTS deleted = %d %s, want 503 saying the log is unavailable", code, body)
	}
	// A service starting now neither starts nor creates an empty EVENTS.
	if _, err := platform.NewDeps(ctx, e.nc, e.clock, slog.New(slog.DiscardHandler), nil); err == nil || !strings.Contains(err.Error(), "refusing to create an empty event log") {
		t.Fatalf("a service starting on the deleted log: %v; want a refusal", err)
	}
	if _, err := e.js.Stream(ctx, jsstore.StreamName); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the refused start created EVENTS: %v", err)
	}
	if _, err := jsstore.New(ctx, e.js, jsstore.Config{}); err != nil { // recreated empty
		t.Fatal(err)
	}
	if code, body := readyz(t, svc); code != http.StatusServiceUnavailable || !strings.Contains(body, "the log is empty") {
		t.Fatalf("/readyz with EVENTS recreated empty = %d %s, want 503 naming the anchor", code, body)
	}
	_, err := platform.NewDeps(ctx, e.nc, e.clock, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "refusing to start on this event log") || !strings.Contains(err.Error(), "stream ANCHORS") {
		t.Fatalf("a service starting on the emptied log: %v; want a refusal naming the anchor", err)
	}
}

// A complaint whose stream misses a version is damaged, not "not found":
// GetComplaint answers DATA_LOSS naming where.
func TestADamagedComplaintIsNotReportedNotFound(t *testing.T) {
	e := newEnv(t, false)
	ctx := t.Context()
	_, client := e.startOnDeps(t)
	resp, err := client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-D1"))
	if err != nil {
		t.Fatal(err)
	}
	stream := eventlog.ComplaintStream(resp.GetComplaintId())
	recs, err := e.store.ReadStream(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	// An event two versions past the last: the one between is missing.
	last := proto.Clone(recs[len(recs)-1].Event).(*eventsv1.Envelope)
	last.EventId, last.Version, last.PrevPosition = "forged-"+resp.GetComplaintId(), last.GetVersion()+2, 0
	raw, err := proto.Marshal(last)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.nc.PublishMsg(&nats.Msg{Subject: jsstore.Subject(stream), Data: raw}); err != nil {
		t.Fatal(err)
	}
	want := len(recs) + 1
	var got error
	for range 50 { // the publish is asynchronous
		_, got = client.GetComplaint(as(tokEmail), &intakev1.GetComplaintRequest{ComplaintId: resp.GetComplaintId()})
		if status.Code(got) != codes.OK {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status.Code(got) != codes.DataLoss || !strings.Contains(got.Error(), "stream damaged at "+string(stream)) || !strings.Contains(got.Error(), "version "+strconv.Itoa(want)) {
		t.Fatalf("GetComplaint of a damaged stream: %v; want DATA_LOSS naming version %d", got, want)
	}
}
