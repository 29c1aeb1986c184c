package web

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
	"github.com/closeloop/closeloop/services/console/internal/viewtest"
)

// benchServer is the console's handler over a view of 50,000 open
// complaints (20 owners: 2,500 each), with a signed-in agent.
func benchServer(b *testing.B) (*Server, *http.Cookie) {
	b.Helper()
	authn, err := auth.NewStaticTokens([]auth.TokenEntry{
		{TokenSHA256: auth.HashToken(tokAgent), Principal: auth.Principal{ID: "agent-3", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}}},
	})
	if err != nil {
		b.Fatal(err)
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	v := view.New(view.NewIndex([]byte("bench-secret-0123456789")))
	owners := make([]string, 20)
	for i := range owners {
		owners[i] = "agent-" + string(rune('0'+i/10)) + string(rune('0'+i%10))
	}
	owners[3] = "agent-3"
	viewtest.FillOpen(v, 50_000, owners, t0)
	clk := clock.NewFake(t0.Add(24 * time.Hour))
	srv, err := New(Options{View: v, Log: memstore.New(clk), Routing: routingv1.NewRoutingServiceClient(conn),
		Authenticator: authn, Clock: clk, SessionIdle: time.Hour, Ready: make(chan struct{})})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := authn.Authenticate(b.Context(), tokAgent)
	ss := srv.sessions.create(p, tokAgent)
	return srv, &http.Cookie{Name: sessionCookie, Value: ss.id}
}

// measure serves url b.N times and reports the 50th and 99th percentile
// of the server's time (the handler, rendering included; no network).
func measure(b *testing.B, srv *Server, url string, cookie *http.Cookie, bearer string) {
	b.Helper()
	times := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		req := httptest.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept-Language", "en")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		w := httptest.NewRecorder()
		start := time.Now()
		srv.ServeHTTP(w, req)
		times = append(times, time.Since(start))
		if w.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", url, w.Code, w.Body.String())
		}
	}
	b.StopTimer()
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "p99-ms")
}

// The queue pages with 50,000 open complaints in the view.
func BenchmarkQueuePage(b *testing.B) {
	srv, cookie := benchServer(b)
	for _, tc := range []struct{ name, url string }{
		{"mine", "/"},          // 2,500 owned, nearest deadline first
		{"all", "/?scope=all"}, // all 50,000, sorted by deadline
		{"all-search", "/?scope=all&q=自动关机+batch+7"}, // blind-index search over all
	} {
		b.Run(tc.name, func(b *testing.B) { measure(b, srv, tc.url, cookie, "") })
	}
}

// The query API with 50,000 open complaints in the view.
func BenchmarkQueryAPI(b *testing.B) {
	srv, _ := benchServer(b)
	for _, tc := range []struct{ name, url string }{
		{"owner", "/api/v1/complaints?owner=agent-3"},
		{"all-by-due", "/api/v1/complaints?sort=due&limit=100"},
		{"text", "/api/v1/complaints?q=自动关机+batch+7"},
		{"serial", "/api/v1/complaints?serial=SN-0012345"},
		{"filters", "/api/v1/complaints?severity=l2&priority=urgent&team=team-1&sort=priority"},
	} {
		b.Run(tc.name, func(b *testing.B) { measure(b, srv, tc.url, nil, tokAgent) })
	}
}
