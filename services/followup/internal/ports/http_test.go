package ports

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/services/followup/internal/app"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
	"github.com/closeloop/closeloop/services/followup/internal/survey"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// newMux serves HTTP over an empty log; ready is its views' catch-up.
func newMux(t *testing.T, ready <-chan struct{}) (*http.ServeMux, *survey.Signer) {
	t.Helper()
	f := newServed(t, ready)
	return f.mux, f.sig
}

type served struct {
	mux *http.ServeMux
	sig *survey.Signer
	app *app.App
	log *memstore.Store
	clk *clock.Fake
}

func newServed(t *testing.T, ready <-chan struct{}) *served {
	t.Helper()
	clk := clock.NewFake(t0)
	sig, err := survey.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	log := memstore.New(clk)
	a, err := app.New(app.Options{Log: log, Clock: clk, Signer: sig, Policy: domain.DefaultPolicy(), Tracker: app.NewTracker(), BaseURL: "https://cl.example"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&HTTP{GRPC: &GRPC{App: a, KPI: kpi.NewWith(kpi.Options{}), KPILocation: time.UTC}, Auth: auth.Allow, Ready: ready}).Register(mux)
	return &served{mux: mux, sig: sig, app: a, log: log, clk: clk}
}

func get(mux *http.ServeMux, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// Before the KPI model has caught up with the log, the export answers 503
// with Retry-After rather than figures of a partial view.
func TestExportWaitsForTheViews(t *testing.T) {
	ready := make(chan struct{})
	mux, _ := newMux(t, ready)
	rec := get(mux, "/v1/kpi/export.csv")
	var body api.ErrorBody
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || body.Code != "Unavailable" {
		t.Fatalf("export while catching up: HTTP %d, Retry-After %q, code %q; want 503, a delay, Unavailable", rec.Code, rec.Header().Get("Retry-After"), body.Code)
	}
	close(ready)
	if rec := get(mux, "/v1/kpi/export.csv"); rec.Code != http.StatusOK || !strings.HasPrefix(rec.Body.String(), "group,") {
		t.Fatalf("export once caught up: HTTP %d\n%s", rec.Code, rec.Body)
	}
}

// The survey routes answer outside the gRPC server; their errors are the
// kernel's kinds mapped by api.Status, as a gRPC call's would be.
func TestSurveyRoutesMapKernelKinds(t *testing.T) {
	mux, sig := newMux(t, nil)
	token := sig.Sign(survey.Claims{ComplaintID: "c-none", SurveyID: "sv-1", ExpiresAt: t0.Add(time.Hour)})
	for _, tt := range []struct {
		path     string
		code     int
		contains string
	}{
		{"/survey/c-none?t=garbage", http.StatusForbidden, "not valid"},                    // ErrPermission
		{"/survey/c-none?t=" + token, http.StatusNotFound, "could not find"},               // ErrNotFound
		{"/v1/survey/c-none?t=" + token, http.StatusNotFound, `"code":"NotFound"`},         // ErrNotFound, JSON
		{"/v1/survey/c-none?t=garbage", http.StatusForbidden, `"code":"PermissionDenied"`}, // ErrPermission, JSON
	} {
		rec := get(mux, tt.path)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("GET %s: HTTP %d %s; want %d with %q", tt.path, rec.Code, rec.Body, tt.code, tt.contains)
		}
	}
	sig2 := sig.Sign(survey.Claims{ComplaintID: "c-none", SurveyID: "sv-1", ExpiresAt: t0})
	if rec := get(mux, "/survey/c-none?t="+sig2); rec.Code != http.StatusGone { // expired: ErrPrecondition
		t.Errorf("expired link: HTTP %d, want 410", rec.Code)
	}
}
