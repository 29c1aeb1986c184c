package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// world is an embedded NATS with one complaint's history written through
// the event log, as the services would have written it.
type world struct {
	url   string
	js    jetstream.JetStream
	store *jsstore.Store
	clk   *clock.Fake
	id    string
}

// startNATS starts an embedded NATS for the test and connects to it.
func startNATS(t *testing.T) (url string, js jetstream.JetStream) {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect("test", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return ns.ClientURL(), js
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ns, err := natsembed.Start(natsembed.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	return worldOn(t, ns)
}

// worldOn writes the world's complaint on the server ns.
func worldOn(t *testing.T, ns *natsembed.Server) *world {
	t.Helper()
	nc, err := ns.Connect("test", false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	url := ns.ClientURL()
	clk := clock.NewFake(t0)
	store, err := jsstore.New(t.Context(), js, jsstore.Config{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	w := &world{url: url, js: js, store: store, clk: clk, id: "0190c0de-0000-7000-8000-000000000001"}
	w.append(t, "intake", &eventsv1.ComplaintReceived{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-1", FirstReceiver: "agent-li",
		Customer:    &eventsv1.Customer{CustomerRef: "cr_1", Personal: &eventsv1.SealedPersonalData{KeyId: "k1", Ciphertext: []byte("sealed")}},
		Description: "smoke from the unit",
	})
	w.append(t, "intake", &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	w.append(t, "slaclock", &eventsv1.SlaClockStarted{ClockId: "resolution-1", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, Deadline: timestamppb.New(t0.Add(48 * time.Hour))})
	w.append(t, "routing", &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: eventsv1.Severity_SEVERITY_L4, Priority: eventsv1.Priority_PRIORITY_URGENT})
	w.append(t, "routing", &eventsv1.ComplaintAssigned{Team: "emergency-response", Owner: "em-1"})
	w.append(t, "routing", &eventsv1.ComplaintResolved{ResolutionCode: "REPAIRED"})
	return w
}

// append writes one event an hour after the previous one.
func (w *world) append(t *testing.T, producer string, payload proto.Message) {
	t.Helper()
	w.clk.Advance(time.Hour)
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: w.id, Producer: producer, Actor: "system", OccurredAt: w.clk.Now()}, payload)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := w.store.ReadStream(t.Context(), eventlog.ComplaintStream(w.id), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.store.Append(t.Context(), eventlog.ComplaintStream(w.id), uint64(len(recs)), e); err != nil {
		t.Fatal(err)
	}
}

func (w *world) ctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), append([]string{"-nats", w.url}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHistoryListsEveryEventInOrderWithPersonalDataMasked(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.ctl(t, "history", w.id)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := []string{"ComplaintReceived", "ComplaintAccepted", "SlaClockStarted", "ComplaintClassified", "ComplaintAssigned", "ComplaintResolved"}
	lines := strings.Split(strings.TrimSpace(out), "\n")[1:]
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if !strings.Contains(l, " "+want[i]+" ") {
			t.Errorf("line %d = %q, want event %s", i+1, l, want[i])
		}
	}
	if !strings.Contains(lines[0], "customer.personal=[personal data]") || strings.Contains(out, "sealed") {
		t.Errorf("personal data not masked: %s", lines[0])
	}
	if !strings.Contains(lines[3], "severity=L4") {
		t.Errorf("key fields missing: %s", lines[3])
	}

	code, out, _ = w.ctl(t, "-o", "json", "history", w.id)
	var rows []historyLine
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != len(want) || rows[5].Service != "routing" || rows[5].Version != 6 {
		t.Fatalf("json history: exit %d, %d rows: %s", code, len(rows), out)
	}
}

func TestAsOfShowsWhatWasKnownAtThatInstant(t *testing.T) {
	w := newWorld(t)
	// Recorded at t0+1h … t0+6h: at t0+4h30 the complaint was classified, not yet assigned.
	code, out, errOut := w.ctl(t, "-o", "json", "as-of", w.id, t0.Add(4*time.Hour+30*time.Minute).Format(time.RFC3339))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var s Snapshot
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Version != 4 || s.Status != "classified" || s.Severity != "L4" || s.Owner != "" || len(s.OpenClocks) != 1 {
		t.Fatalf("snapshot = %+v", s)
	}
	code, _, _ = w.ctl(t, "as-of", w.id, t0.Format(time.RFC3339))
	if code != exitNotFound {
		t.Fatalf("before the first event: exit %d, want %d", code, exitNotFound)
	}
	code, _, errOut = w.ctl(t, "as-of", w.id, "yesterday")
	if code != exitUsage || !strings.Contains(errOut, "RFC 3339") {
		t.Fatalf("bad instant: exit %d: %s", code, errOut)
	}
}

func TestVerifyCatchesAForgedEventNamingComplaintAndPosition(t *testing.T) {
	w := newWorld(t)
	if code, out, _ := w.ctl(t, "verify", w.id); code != exitOK || !strings.HasPrefix(out, "OK") {
		t.Fatalf("untouched log: exit %d: %s", code, out)
	}
	// A forger publishes straight to the stream's subject, bypassing the
	// event log: the right next version, but no valid link to the chain.
	forged, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: w.id, Producer: "routing", Actor: "mallory", OccurredAt: t0}, &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED})
	if err != nil {
		t.Fatal(err)
	}
	forged.StreamId, forged.Version, forged.PrevHash = string(eventlog.ComplaintStream(w.id)), 7, []byte("not the hash")
	raw, _ := proto.Marshal(forged)
	ack, err := w.js.Publish(t.Context(), jsstore.Subject(eventlog.ComplaintStream(w.id)), raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{w.id, "--all"} {
		code, out, _ := w.ctl(t, "verify", target)
		if code != exitBroken {
			t.Fatalf("verify %s: exit %d, want %d: %s", target, code, exitBroken, out)
		}
		want := "complaint-" + w.id + ": chain broken at version 7 (log position " + itoa(ack.Sequence) + ")"
		if !strings.Contains(out, want) {
			t.Fatalf("verify %s = %q, want it to name %q", target, out, want)
		}
	}
}

func TestExportWritesOneCheckableLinePerEvent(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.ctl(t, "export", w.id)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	recs, _ := w.store.ReadStream(t.Context(), eventlog.ComplaintStream(w.id), 1)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(recs) {
		t.Fatalf("%d lines for %d events", len(lines), len(recs))
	}
	for i, l := range lines {
		var e exportLine
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if e.Position != recs[i].Position || e.Hash != hexHash(recs[i].Raw) || !strings.Contains(string(e.Event), `"version":"`+itoa(uint64(i+1))+`"`) {
			t.Fatalf("line %d = %s", i+1, l)
		}
	}
}

func TestUnknownComplaintAndBadUsageHaveTheirExitCodes(t *testing.T) {
	w := newWorld(t)
	if code, _, errOut := w.ctl(t, "history", "0190c0de-0000-7000-8000-00000000ffff"); code != exitNotFound || !strings.Contains(errOut, "no events") {
		t.Fatalf("unknown complaint: exit %d: %s", code, errOut)
	}
	if code, _, _ := w.ctl(t, "frobnicate"); code != exitUsage {
		t.Fatalf("unknown command: exit %d", code)
	}
	if code, _, _ := w.ctl(t, "-o", "yaml", "history", w.id); code != exitUsage {
		t.Fatalf("bad output format: exit %d", code)
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"-nats", "nats://127.0.0.1:1", "-timeout", "2s", "history", w.id}, &out, &errOut); code != exitFailure {
		t.Fatalf("no server: exit %d: %s", code, errOut.String())
	}
}

func TestDeadLettersListAndShow(t *testing.T) {
	w := newWorld(t)
	code, out, errOut := w.ctl(t, "deadletters", "list")
	if code != exitOK || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("empty list: exit %d: %q %s", code, out, errOut)
	}
	if code, _, _ := w.ctl(t, "deadletters", "show", "x"); code != exitUsage {
		t.Fatalf("bad seq: exit %d", code)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func hexHash(raw []byte) string { return fmt.Sprintf("%x", eventlog.Hash(raw)) }

// Given a log of the old layout, the other commands refuse it naming the
// migration; migrate-subjects asks for the writers to be stopped, then
// moves it, and history reads the complaint again.
func TestMigrateSubjectsMakesAnOldLogReadable(t *testing.T) {
	url, js := startNATS(t)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: jsstore.StreamName, Subjects: []string{"events.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	id := "0190c0de-0000-7000-8000-000000000002"
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "system", OccurredAt: t0},
		&eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	if err != nil {
		t.Fatal(err)
	}
	raws, err := eventlog.Seal(t.Context(), eventlog.ComplaintStream(id), eventlog.StreamEnd{}, t0, []*eventsv1.Envelope{e})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "events.complaint."+id+".ComplaintAccepted", raws[0]); err != nil {
		t.Fatal(err)
	}
	w := &world{url: url}

	if code, _, errOut := w.ctl(t, "history", id); code != exitFailure || !strings.Contains(errOut, "migrate-subjects") {
		t.Fatalf("history on the old log: exit %d, %q; want 1 naming migrate-subjects", code, errOut)
	}
	if code, _, errOut := w.ctl(t, "migrate-subjects"); code != exitUsage || !strings.Contains(errOut, "--writers-stopped") {
		t.Fatalf("migrate-subjects without the confirmation: exit %d, %q", code, errOut)
	}
	code, out, errOut := w.ctl(t, "migrate-subjects", "--writers-stopped")
	if code != exitOK || !strings.Contains(out, "done") {
		t.Fatalf("migrate-subjects: exit %d, out %q, err %q", code, out, errOut)
	}
	if code, out, errOut := w.ctl(t, "history", id); code != exitOK || !strings.Contains(out, "ComplaintAccepted") {
		t.Fatalf("history after the migration: exit %d, out %q, err %q", code, out, errOut)
	}
}
