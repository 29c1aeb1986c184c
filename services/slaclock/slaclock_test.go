package slaclock_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock"
)

var t0 = time.Date(2026, 2, 13, 8, 0, 0, 0, time.UTC) // Fri 16:00 Shanghai, the eve of the Spring Festival break

type rig struct {
	store *jsstore.Store
	js    jetstream.JetStream
	clk   *clock.Fake
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, srv)
	clk := clock.NewFake(t0)
	store, err := jsstore.New(context.Background(), js, jsstore.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{store: store, js: js, clk: clk}
}

// start runs a service instance (without snapshots) until the returned
// stop is called; it returns once the instance is ready.
func (r *rig) start(t *testing.T) (*slaclock.Service, func()) {
	t.Helper()
	return r.startWith(t, startOpts{})
}

func (r *rig) write(t *testing.T, id string, at time.Time, payload proto.Message) {
	t.Helper()
	ctx := context.Background()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "adapter-1", OccurredAt: at}, payload)
	if err != nil {
		t.Fatal(err)
	}
	for { // the service appends to the same stream: re-read on a conflict, as every writer does
		recs, err := r.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.store.Append(ctx, eventlog.ComplaintStream(id), uint64(len(recs)), e)
		if err == nil {
			return
		}
		if !errors.Is(err, eventlog.ErrConflict) {
			t.Fatal(err)
		}
	}
}

func (r *rig) own(t *testing.T, id, eventType string) []*ev.Envelope {
	t.Helper()
	recs, err := r.store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ev.Envelope
	for _, rec := range recs {
		if rec.Event.GetProducer() == "slaclock" && rec.Event.GetType() == eventType {
			out = append(out, rec.Event)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func post(t *testing.T, addr, method, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/closeloop.slaclock.v1.SlaClockService/"+method, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %s", method, raw)
	}
	return resp.StatusCode, out
}

// On JetStream: clocks start on a complaint, the HTTP face answers, and a
// restart after the service missed two deadlines fires both once, late.
func TestServiceOnJetStream(t *testing.T) {
	r := newRig(t)
	svc, stop := r.start(t)
	id := uuid.NewString()
	r.write(t, id, t0, &ev.ComplaintReceived{ReceivedAt: timestamppb.New(t0), Customer: &ev.Customer{Tier: ev.CustomerTier_CUSTOMER_TIER_VIP}})
	r.write(t, id, t0, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
	// Whether the service saw the classification with the receipt or after
	// it (then it re-terms the clocks), a business-time resolution clock runs.
	waitFor(t, "major resolution clock", func() bool {
		return slices.ContainsFunc(r.own(t, id, "SlaClockStarted"), func(e *ev.Envelope) bool { return e.GetSlaClockStarted().GetBusinessTime() }) ||
			slices.ContainsFunc(r.own(t, id, "SlaClockRetermed"), func(e *ev.Envelope) bool { return e.GetSlaClockRetermed().GetTerms().GetBusinessTime() })
	})

	code, body := post(t, svc.API().HTTPAddr(), "GetClocks", `{"complaintId":"`+id+`"}`)
	running := map[string]string{}
	for _, c := range body["clocks"].([]any) {
		if m := c.(map[string]any); m["status"] == "CLOCK_STATUS_RUNNING" {
			running[m["target"].(string)] = m["deadline"].(string)
		}
	}
	// Major: resolution is 2 working days (16 business hours) across the Spring Festival:
	// Fri 16-18, Sat Feb 14 (make-up day), then Tue Feb 24 until 16:00 Shanghai.
	want := map[string]string{"SLA_TARGET_ACCEPTANCE": "2026-02-14T08:00:00Z", "SLA_TARGET_FIRST_RESPONSE": "2026-02-15T08:00:00Z", "SLA_TARGET_RESOLUTION": "2026-02-24T08:00:00Z"}
	if code != 200 || !maps.Equal(running, want) {
		t.Fatalf("GetClocks: %d running %v, want %v", code, running, want)
	}
	for _, bad := range []struct{ method, body, field string }{
		{"GetClocks", `{}`, "complaint_id"},
		{"ListDueWithin", `{"limit": 5000}`, "window"},
		{"ListDueWithin", `{"window": "3600s", "limit": 5000}`, "limit"},
		{"WhatIf", `{"from": "2026-02-13T00:00:00Z", "to": "2026-02-12T00:00:00Z"}`, "to"},
		{"ReapplyPolicy", `{"complaintId": "x"}`, "reason"},
		{"PublishPolicy", `{"document": "e30=", "publishedBy": "m"}`, "document"},
	} {
		code, body := post(t, svc.API().HTTPAddr(), bad.method, bad.body)
		if code != 400 || !strings.Contains(toJSON(body), `"`+bad.field) {
			t.Errorf("%s %s: %d %v, want 400 naming %s", bad.method, bad.body, code, body, bad.field)
		}
	}
	code, body = post(t, svc.API().HTTPAddr(), "ListDueWithin", `{"window": "90000s"}`)
	if code != 200 || len(body["clocks"].([]any)) != 1 {
		t.Fatalf("ListDueWithin 25h: %d %v", code, body)
	}

	stop()
	// While no instance runs: past the acceptance (24 h) and major first
	// response (48 h) deadlines.
	r.clk.Set(t0.Add(50 * time.Hour))
	_, stop2 := r.start(t)
	waitFor(t, "late breaches", func() bool { return len(r.own(t, id, "SlaBreached")) >= 2 })
	third, stop3 := r.start(t) // a second instance on the same log changes nothing
	<-third.App().Rebuilt()
	r.clk.Advance(time.Minute)
	stop2()
	stop3()
	br := r.own(t, id, "SlaBreached")
	if len(br) != 2 {
		t.Fatalf("%d breaches, want 2 (acceptance, first response)", len(br))
	}
	for _, b := range br {
		p := b.GetSlaBreached()
		if want := t0.Add(50 * time.Hour).Sub(p.GetDeadline().AsTime()); p.GetLateBy().AsDuration() != want || want <= 0 {
			t.Errorf("%s late_by %v, want %v", p.GetClockId(), p.GetLateBy().AsDuration(), want)
		}
	}
}

func toJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestConfigErrorsNameTheVariable(t *testing.T) {
	t.Setenv("CLOSELOOP_AUTH", "off")
	t.Setenv("SLACLOCK_PARTITION", "2/2")
	if _, err := slaclock.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "SLACLOCK_PARTITION") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("SLACLOCK_PARTITION", "1/3")
	t.Setenv("SLACLOCK_POLICY_FILE", "/nonexistent/sla.json")
	if _, err := slaclock.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), "SLACLOCK_POLICY_FILE") {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("SLACLOCK_POLICY_FILE", "")
	cfg, err := slaclock.ConfigFromEnv()
	if err != nil || cfg.Partition.Index != 1 || cfg.Partition.Count != 3 || cfg.GRPCAddr != ":7003" || cfg.HTTPAddr != ":8003" {
		t.Fatalf("cfg = %+v, err = %v", cfg, err)
	}
	if cfg.Policy == nil || cfg.Policy.Version != "sla.v1" {
		t.Fatalf("cfg.Policy = %+v, want the shipped sla.v1, parsed", cfg.Policy)
	}
	// Every mistake at once, each naming its variable.
	bad := filepath.Join(t.TempDir(), "sla.json")
	if err := os.WriteFile(bad, []byte(`{"version": ""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SLACLOCK_POLICY_FILE", bad)
	t.Setenv("SLACLOCK_PARTITION", "x")
	_, err = slaclock.ConfigFromEnv()
	if err == nil || !strings.Contains(err.Error(), "SLACLOCK_POLICY_FILE") || !strings.Contains(err.Error(), "SLACLOCK_PARTITION") {
		t.Fatalf("err = %v, want both the policy file and the partition named", err)
	}
}
