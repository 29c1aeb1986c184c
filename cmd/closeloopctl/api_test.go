package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAPIBaseAcceptsHostsAndHostPorts(t *testing.T) {
	cases := []struct{ api, intake, followup string }{
		{"http://127.0.0.1", "http://127.0.0.1:8001/", "http://127.0.0.1:8005/"},
		{"127.0.0.1", "http://127.0.0.1:8001/", "http://127.0.0.1:8005/"},
		{"localhost:8001", "http://localhost:8001/", "http://localhost:8005/"},
		{"localhost:8003/", "http://localhost:8001/", "http://localhost:8005/"}, // one of make run's ports: that layout
		{"https://closeloop.example:9100", "https://closeloop.example:9100/", "https://closeloop.example:9104/"},
		{"[::1]", "http://[::1]:8001/", "http://[::1]:8005/"},
	}
	for _, c := range cases {
		b, err := parseAPI(c.api)
		if err != nil {
			t.Fatalf("%q: %v", c.api, err)
		}
		if got := b.url("intake", "GetComplaint"); got != c.intake+"v1/closeloop.intake.v1.IntakeService/GetComplaint" {
			t.Errorf("%q: intake at %s", c.api, got)
		}
		if got := b.url("followup", "GetFollowUp"); !strings.HasPrefix(got, c.followup) {
			t.Errorf("%q: followup at %s, want %s…", c.api, got, c.followup)
		}
	}
}

func TestAPIBaseRefusesGarbageWithUsageExit(t *testing.T) {
	for _, api := range []string{"", "ftp://host", "http://", "localhost:", "localhost:http", "localhost:99999", "host/v1/x", "http://u:p@host", "a b"} {
		_, err := parseAPI(api)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "-api") {
			t.Errorf("-api %q: %v, want a usage error naming -api", api, err)
		}
	}
	w := newWorld(t)
	if code, _, errOut := w.ctl(t, "-api", "ftp://x", "history", w.id); code != exitUsage || !strings.Contains(errOut, "-api") {
		t.Fatalf("garbage -api: exit %d: %s", code, errOut)
	}
}

func TestSubmitMakesANewComplaintEachTimeUnlessGivenItsReference(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 123, time.UTC)
	a, err := submission(nil, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := submission(nil, now.Add(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	serial := func(r map[string]any) any { return r["product"].(map[string]any)["serialNumber"] }
	if a["channelRef"] == b["channelRef"] || serial(a) == serial(b) {
		t.Fatalf("two submissions share a reference or serial (a duplicate): %v / %v", a, b)
	}
	// An hour later, the first reference with the same flags: the same
	// report, received at the same instant.
	again, err := submission([]string{"--channel-ref", a["channelRef"].(string)}, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !equalJSON(t, a, again) {
		t.Fatalf("resent report differs:\n%v\n%v", a, again)
	}
	got, err := submission([]string{"--customer-name", "Wang", "--phone", "+8613911112222", "--product-model", "WM-10", "--serial", "SN-1", "--description", "drum noise", "--channel", "phone", "--received-at", "2026-12-03T08:00:00Z"}, now)
	if err != nil {
		t.Fatal(err)
	}
	c, p := got["customer"].(map[string]any), got["product"].(map[string]any)
	if c["name"] != "Wang" || c["phone"] != "+8613911112222" || p["model"] != "WM-10" || p["serialNumber"] != "SN-1" ||
		got["description"] != "drum noise" || got["channel"] != "CHANNEL_PHONE" || got["receivedAt"] != "2026-12-03T08:00:00Z" {
		t.Fatalf("flags not taken: %v", got)
	}
	if _, err := submission([]string{"--received-at", "yesterday"}, now); err == nil {
		t.Fatal("a bad --received-at was taken")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ja) == string(jb)
}

// show asks the log whether the complaint exists: a service may answer an
// empty view for one it never heard of.
func TestShowTakesExistenceFromTheLog(t *testing.T) {
	w := newWorld(t)
	if code, _, errOut := w.ctl(t, "--token", "dev-auditor-token", "show", "0190c0de-0000-7000-8000-00000000ffff"); code != exitNotFound || !strings.Contains(errOut, "no events") {
		t.Fatalf("unknown complaint: exit %d: %s", code, errOut)
	}
	// No service listening (port 1 and the four after it): a failure, not
	// "not found".
	if code, _, errOut := w.ctl(t, "-api", "127.0.0.1:1", "--token", "dev-auditor-token", "show", w.id); code != exitFailure || !strings.Contains(errOut, "no service answered") {
		t.Fatalf("no services: exit %d: %s", code, errOut)
	}
}
