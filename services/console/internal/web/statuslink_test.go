package web

import (
	"encoding/base64"
	"encoding/binary"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestStatusLinkVerifiesUntilItExpires(t *testing.T) {
	secret := []byte("status-link-test-secret-0123456789abcdef")
	now := time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)
	path := statusPath(secret, "c-1", now.Add(time.Hour))
	seg := strings.TrimPrefix(path, "/s/")
	if id, ok := checkStatusLink(secret, seg, now); !ok || id != "c-1" {
		t.Fatalf("a fresh link: %q %v", id, ok)
	}
	if _, ok := checkStatusLink(secret, seg, now.Add(time.Hour)); ok {
		t.Fatal("a link at its expiry still works")
	}
	sig := seg[strings.LastIndexByte(seg, '.')+1:]
	refused := map[string]string{
		"another complaint":  "c-2." + sig,
		"another secret":     strings.TrimPrefix(statusPath([]byte("another-secret-of-enough-length-0123456789"), "c-1", now.Add(time.Hour)), "/s/"),
		"a later expiry":     "c-1." + laterExpiry(t, sig, now.Add(48*time.Hour)),
		"no signature":       "c-1",
		"an empty id":        "." + sig,
		"a short signature":  "c-1." + sig[:20],
		"not base64":         "c-1." + strings.Repeat("*", len(sig)),
		"an edited last bit": "c-1." + sig[:len(sig)-1] + string("AB"[boolIndex(sig[len(sig)-1] == 'A')]),
	}
	for what, s := range refused {
		if _, ok := checkStatusLink(secret, s, now); ok {
			t.Errorf("%s: accepted", what)
		}
	}
}

// laterExpiry is sig with its expiry moved to exp, the MAC kept.
func laterExpiry(t *testing.T, sig string, exp time.Time) string {
	raw, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(raw[:8], uint64(exp.Unix()))
	return base64.RawURLEncoding.EncodeToString(raw)
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestKpiCSVKeepsNamesFromBeingFormulas(t *testing.T) {
	rows := []kpiRow{{Group: "=HYPERLINK(\"x\")", Period: "2026-11-02", Received: 2, Resolved: 1, Resolution: 0.5,
		SLA: map[eventsv1.SlaTarget]float64{eventsv1.SlaTarget_SLA_TARGET_RESOLUTION: 1}}}
	w := httptest.NewRecorder()
	writeKpiCSV(w, rows, []eventsv1.SlaTarget{eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, eventsv1.SlaTarget_SLA_TARGET_RESOLUTION})
	want := "group,period_start,received,resolved,surveys_answered,csi_average,resolution_rate,first_contact_resolution_rate,reopen_rate,repeat_rate,sla_first_response_rate,sla_resolution_rate\n" +
		"\"'=HYPERLINK(\"\"x\"\")\",2026-11-02,2,1,0,0.0000,0.5000,0.0000,0.0000,0.0000,,1.0000\n"
	if got := w.Body.String(); got != want {
		t.Fatalf("CSV:\n%s\nwant:\n%s", got, want)
	}
}

func TestChartBarsScaleAndSkipRowsWithoutAFigure(t *testing.T) {
	rows := []kpiRow{{Group: "a", CSI: 5, Surveys: 1}, {Group: "b"}, {Group: "c", CSI: 2.5, Surveys: 2}}
	c := kpiCharts(langEN, rows, nil)[0]
	if c.ID != "chart-csi" || len(c.Bars) != 2 || c.Bars[0].Width != chartBarMax || c.Bars[1].Width != chartBarMax/2 ||
		c.Bars[1].Y != chartBarHeight+chartGap || c.Bars[1].Text != "2.50" || c.Bars[1].Label != "c" {
		t.Fatalf("CSI chart %+v", c)
	}
}
