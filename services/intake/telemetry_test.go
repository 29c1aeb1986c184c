package intake_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/closeloop/closeloop/libs/eventlog"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake"
)

// traceparent of a caller's span: trace id, span id, sampled.
func traceparent(traceID string) string { return "00-" + traceID + "-00f067aa0ba902b7-01" }

// TestEventsCarryTheCallersTraceContext: whichever face a submission comes
// through, the events it appends belong to the caller's trace.
func TestEventsCarryTheCallersTraceContext(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	const (
		grpcTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		httpTrace = "5bf92f3577b34da6a3ce929d0e0e4737"
		natsTrace = "6bf92f3577b34da6a3ce929d0e0e4738"
	)
	ids := map[string]string{}
	// Three different problems, so none is linked to another.
	submission := func(ref string) *intakev1.SubmitComplaintRequest {
		req := e.phoneSubmission(ref)
		req.Product.SerialNumber = ref
		return req
	}

	ctx := metadata.AppendToOutgoingContext(as(tokPhone), "traceparent", traceparent(grpcTrace))
	resp, err := r.client.SubmitComplaint(ctx, submission("HOT-TRACE-GRPC"))
	if err != nil {
		t.Fatal(err)
	}
	ids[grpcTrace] = resp.GetComplaintId()

	body, _ := protojson.Marshal(submission("HOT-TRACE-HTTP"))
	hreq, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
	hreq.Header.Set("Authorization", "Bearer "+tokPhone)
	hreq.Header.Set("traceparent", traceparent(httpTrace))
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(hresp.Body)
	hresp.Body.Close()
	var out intakev1.SubmitComplaintResponse
	if hresp.StatusCode != http.StatusOK || protojson.Unmarshal(b, &out) != nil {
		t.Fatalf("HTTP %d %s", hresp.StatusCode, b)
	}
	ids[httpTrace] = out.GetComplaintId()

	msg := nats.NewMsg(intake.SubmitSubject)
	msg.Header.Set("Authorization", "Bearer "+tokPhone)
	msg.Header["traceparent"] = []string{traceparent(natsTrace)} // as telemetry.InjectNATS writes it
	msg.Data, _ = protojson.Marshal(submission("HOT-TRACE-NATS"))
	rep, err := e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil || rep.Header.Get(intakeErrorHeader) != "" || protojson.Unmarshal(rep.Data, &out) != nil {
		t.Fatalf("NATS reply %v %v %s", err, rep.Header, rep.Data)
	}
	ids[natsTrace] = out.GetComplaintId()

	for trace, id := range ids {
		recs, err := e.store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
		if err != nil || len(recs) != 2 {
			t.Fatalf("trace %s: complaint %s: %d events, %v", trace, id, len(recs), err)
		}
		for _, rec := range recs {
			if tp := rec.Event.GetTraceparent(); !strings.HasPrefix(tp, "00-"+trace+"-") {
				t.Errorf("trace %s: %s has traceparent %q, want the caller's trace", trace, eventlog.TypeOf(rec.Event), tp)
			}
		}
	}
}

const intakeErrorHeader = "Closeloop-Error"

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestLogsCarryNoPersonalData drives every kind of outcome — success,
// validation failure, refusal, rate limit, internal failure — through the
// three faces and checks the log for the customer's data.
func TestLogsCarryNoPersonalData(t *testing.T) {
	e := newEnv(t, false)
	var logs syncBuffer
	e.logOut = &logs
	cfg := testConfig(t)
	cfg.RatePerSecond, cfg.RateBurst = 1, 6
	r := e.start(t, cfg, nil)

	ok := e.phoneSubmission("HOT-LOG")
	if _, err := r.client.SubmitComplaint(as(tokPhone), ok); err != nil {
		t.Fatal(err)
	}
	bad := e.phoneSubmission("HOT-LOG-BAD")
	bad.Customer.Phone = "call 13800138000 now" // broken, and echoing it would leak it
	bad.Customer.Email = "zhang.san@"
	if _, err := r.client.SubmitComplaint(as(tokPhone), bad); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("invalid submission: %v", err)
	}
	if _, err := r.client.SubmitComplaint(as(tokEmail), ok); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("other channel: %v", err)
	}
	for _, body := range [][]byte{mustJSON(t, bad), []byte(`{"customer":{"name":"张三","phone":13800138000}}`)} {
		hreq, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
		hreq.Header.Set("Authorization", "Bearer "+tokPhone)
		hresp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(hresp.Body)
		hresp.Body.Close()
		if hresp.StatusCode != http.StatusBadRequest || bytes.Contains(b, []byte("13800138000")) {
			t.Fatalf("HTTP %d %s", hresp.StatusCode, b)
		}
	}
	msg := nats.NewMsg(intake.SubmitSubject)
	msg.Header.Set("Authorization", "Bearer "+tokPhone)
	msg.Data = mustJSON(t, bad)
	if rep, err := e.nc.RequestMsg(msg, 5*time.Second); err != nil || rep.Header.Get(intakeErrorHeader) != "InvalidArgument" {
		t.Fatalf("NATS: %v %v", err, rep)
	}
	for { // exhaust the bucket
		_, err := r.client.SubmitComplaint(as(tokPhone), ok)
		if status.Code(err) == codes.ResourceExhausted {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r.stop()
	dying := e.start(t, testConfig(t), &lossyStore{Store: e.store, failBefore: true})
	if _, err := dying.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-LOG-2")); status.Code(err) != codes.Internal {
		t.Fatalf("failing store: %v", err)
	}
	dying.stop()

	out := logs.String()
	for _, want := range []string{"InvalidArgument", "PermissionDenied", "ResourceExhausted", "api: request failed"} {
		if !strings.Contains(out, want) {
			t.Fatalf("log lacks %q (the test would prove nothing):\n%s", want, out)
		}
	}
	for _, pd := range []string{"张三", "13800138000", "138-0013-8000", "zhang.san", "建国路", "call 1"} {
		if strings.Contains(out, pd) {
			t.Fatalf("log holds personal data %q:\n%s", pd, out)
		}
	}
}

func mustJSON(t *testing.T, req *intakev1.SubmitComplaintRequest) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHealthReadinessAndMetrics: libs/api's health service and endpoints,
// and platform.Deps.Metrics on the HTTP face.
func TestHealthReadinessAndMetrics(t *testing.T) {
	e := newEnv(t, false)
	e.metrics = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "intake_test_metric 1\n") })
	r := e.start(t, testConfig(t), nil)

	conn, err := grpc.NewClient(r.svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "closeloop.intake.v1.IntakeService"})
	if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of the intake service: %v %v", hc, err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + r.svc.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "intake_test_metric 1") {
		t.Fatalf("/metrics: %d %q", code, body)
	}
}
