package followup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/platform"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/followup"
)

var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// env is one embedded NATS server, a fake clock and the event log on it.
type env struct {
	t   *testing.T
	srv *natsembed.Server
	js  jetstream.JetStream
	log *jsstore.Store
	clk *clock.Fake
	// snaps, when set, keeps the services' view snapshots.
	snaps checkpoint.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := natstest.Start(t, natsembed.Options{StoreDir: t.TempDir(), NoSync: true})
	_, js := natstest.Connect(t, srv)
	clk := clock.NewFake(start)
	log, err := jsstore.New(context.Background(), js, jsstore.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, srv: srv, js: js, log: log, clk: clk}
}

// running is a started follow-up service.
type running struct {
	svc  *followup.Service
	stop func()
}

// startService runs the service on its own connection, as in production.
func (e *env) startService() *running {
	e.t.Helper()
	nc, err := e.srv.Connect("followup", true)
	if err != nil {
		e.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		e.t.Fatal(err)
	}
	log, err := jsstore.New(context.Background(), js, jsstore.Config{Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := followup.DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.SurveySecret = "test-secret-test-secret-test-secret!"
	cfg.Auth = auth.Allow
	svc, err := followup.New(platform.Deps{NC: nc, JS: js, Log: log, Clock: e.clk, Snapshots: e.snaps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	select {
	case <-svc.Ready():
	case err := <-done:
		e.t.Fatalf("service stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("service not ready after 10s")
	}
	r := &running{svc: svc}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("service Run: %v", err)
		}
		nc.Close()
	}
	e.t.Cleanup(r.stop)
	return r
}

// emit appends events to a complaint's stream as another service would.
func (e *env) emit(complaintID string, payloads ...proto.Message) []*eventsv1.Envelope {
	e.t.Helper()
	ctx := context.Background()
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := e.log.ReadStream(ctx, stream, 1)
	if err != nil {
		e.t.Fatal(err)
	}
	var envs []*eventsv1.Envelope
	for _, p := range payloads {
		env, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: complaintID, Producer: "routing", Actor: "test", OccurredAt: e.clk.Now()}, p)
		if err != nil {
			e.t.Fatal(err)
		}
		envs = append(envs, env)
	}
	if _, err := e.log.Append(ctx, stream, uint64(len(recs)), envs...); err != nil {
		e.t.Fatal(err)
	}
	return envs
}

func (e *env) stream(complaintID string) []*eventsv1.Envelope {
	e.t.Helper()
	recs, err := e.log.ReadStream(context.Background(), eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]*eventsv1.Envelope, len(recs))
	for i, r := range recs {
		out[i] = r.Event
	}
	return out
}

func types(envs []*eventsv1.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = eventlog.TypeOf(e)
	}
	return out
}

// checkFor polls fn until it returns nil or the deadline passes.
func checkFor(t *testing.T, total time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(total)
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", total, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// waitForTypes waits until the complaint's stream holds exactly want.
func (e *env) waitForTypes(complaintID string, want ...string) []*eventsv1.Envelope {
	e.t.Helper()
	var got []*eventsv1.Envelope
	checkFor(e.t, 10*time.Second, func() error {
		got = e.stream(complaintID)
		if strings.Join(types(got), ",") != strings.Join(want, ",") {
			return errString("stream holds " + strings.Join(types(got), ",") + "; want " + strings.Join(want, ","))
		}
		return nil
	})
	return got
}

// call posts a request to the JSON face (POST /v1/<service>/<Method>).
func call(t *testing.T, r *running, method string, req, resp proto.Message) int {
	t.Helper()
	body, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	svc := "closeloop.followup.v1.FollowupService"
	if method == "QueryKpis" {
		svc = "closeloop.followup.v1.KpiService"
	}
	res, err := http.Post("http://"+r.svc.HTTPAddr()+"/v1/"+svc+"/"+method, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK && resp != nil {
		if err := protojson.Unmarshal(data, resp); err != nil {
			t.Fatalf("%s response: %v", method, err)
		}
	}
	return res.StatusCode
}

func followUp(t *testing.T, r *running, id string) *followupv1.GetFollowUpResponse {
	t.Helper()
	resp := &followupv1.GetFollowUpResponse{}
	if code := call(t, r, "GetFollowUp", &followupv1.GetFollowUpRequest{ComplaintId: id}, resp); code != http.StatusOK {
		t.Fatalf("GetFollowUp: HTTP %d", code)
	}
	return resp
}

// surveyURL returns the customer's link, rewritten to the test server.
func surveyURL(t *testing.T, r *running, id string) string {
	t.Helper()
	link := followUp(t, r, id).GetSurveyUrl()
	if link == "" {
		t.Fatal("no survey link")
	}
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = r.svc.HTTPAddr()
	return u.String()
}

// answerByLink GETs the survey page, then POSTs the form as a browser does.
func answerByLink(t *testing.T, link string, satisfaction int, resolved bool, comment string) (int, string) {
	t.Helper()
	res, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, string(page)
	}
	if !strings.Contains(string(page), `<form method="post"`) {
		t.Fatalf("survey page has no form:\n%s", page)
	}
	u, _ := url.Parse(link)
	yes := "no"
	if resolved {
		yes = "yes"
	}
	form := url.Values{"t": {u.Query().Get("t")}, "satisfaction": {string(rune('0' + satisfaction))}, "resolved": {yes}, "comment": {comment}}
	res, err = http.PostForm(link, form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(body)
}

// postAgain replays a form submission for a link (token reuse).
func postAgain(t *testing.T, link string, satisfaction int) int {
	t.Helper()
	u, _ := url.Parse(link)
	res, err := http.PostForm(link, url.Values{"t": {u.Query().Get("t")}, "satisfaction": {string(rune('0' + satisfaction))}, "resolved": {"yes"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

func jsonBody(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	defer res.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(res.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	return m
}

// lastPosition is the position of the last event in the log.
func (e *env) lastPosition() uint64 {
	e.t.Helper()
	var last uint64
	for {
		recs, err := e.log.ReadAll(context.Background(), last+1, 500)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(recs) == 0 {
			return last
		}
		last = recs[len(recs)-1].Position
	}
}
