package followup_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/followup"
)

// heldLog holds the views' catch-up (ReadAll) until released.
type heldLog struct {
	eventlog.Store
	release chan struct{}
}

func (h *heldLog) ReadAll(ctx context.Context, from uint64, limit int) ([]eventlog.Record, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return h.Store.ReadAll(ctx, from, limit)
}

// Until the views have caught up with the log the service is live but not
// ready, and calls that read a view (due tasks, KPIs) are refused as
// unavailable rather than answered from a partial view.
func TestCallsWaitForTheViews(t *testing.T) {
	e := newEnv(t)
	e.emit("c1", received, l1, resolved())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	cfg := followup.DefaultConfig()
	cfg.GRPCAddr, cfg.HTTPAddr = "127.0.0.1:0", addr
	cfg.SurveySecret = "test-secret-test-secret-test-secret!"
	cfg.Auth = auth.Allow
	held := &heldLog{Store: e.log, release: make(chan struct{})}
	svc, err := followup.New(platform.Deps{JS: e.js, Log: held, Clock: e.clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	get := func(path string) int {
		res, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	post := func(method string) int {
		res, err := http.Post("http://"+addr+"/v1/closeloop.followup.v1."+method, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	checkFor(t, 10*time.Second, func() error {
		if get("/healthz") != http.StatusOK {
			return errString("not live yet")
		}
		return nil
	})
	if code := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while catching up: HTTP %d, want 503", code)
	}
	if code := post("FollowupService/ListDueTasks"); code != http.StatusServiceUnavailable {
		t.Errorf("ListDueTasks while catching up: HTTP %d, want 503", code)
	}
	if code := get("/v1/kpi/export.csv"); code != http.StatusServiceUnavailable {
		t.Errorf("KPI export while catching up: HTTP %d, want 503", code)
	}

	close(held.release)
	select {
	case <-svc.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("not ready 10s after the catch-up was released")
	}
	checkFor(t, 10*time.Second, func() error {
		if code := post("FollowupService/ListDueTasks"); code != http.StatusOK {
			return errString("ListDueTasks after catch-up: HTTP " + http.StatusText(code))
		}
		return nil
	})
	// The resolution emitted before the start is followed up once caught up.
	e.waitForTypes("c1", scheduled...)
}
