package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// These tests need no other service: no action reaches routing (its
// client points at a closed port).

var t0 = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

const (
	tokAgent = "web-test-agent"
	tokTech  = "web-test-technician"
	tokAdapt = "web-test-adapter"
)

func newTestServer(t *testing.T, tlsServer bool) (*httptest.Server, *clock.Fake) {
	t.Helper()
	authn, err := auth.NewStaticTokens([]auth.TokenEntry{
		{TokenSHA256: auth.HashToken(tokAgent), Principal: auth.Principal{ID: "agent-1", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}}},
		{TokenSHA256: auth.HashToken(tokTech), Principal: auth.Principal{ID: "tech-1", Kind: auth.KindUser, Roles: []string{auth.RoleTechnician}}},
		{TokenSHA256: auth.HashToken(tokAdapt), Principal: auth.Principal{ID: "adapter-1", Kind: auth.KindAdapter, Channels: []string{"phone"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	clk := clock.NewFake(t0)
	ready := make(chan struct{})
	close(ready)
	srv, err := New(Options{
		View: view.New(view.NewIndex([]byte("web-test-secret-0123"))), Log: memstore.New(clk),
		Routing: routingv1.NewRoutingServiceClient(conn), Authenticator: authn, Clock: clk,
		SessionIdle: 30 * time.Minute, Ready: ready,
	})
	if err != nil {
		t.Fatal(err)
	}
	var ts *httptest.Server
	if tlsServer {
		ts = httptest.NewTLSServer(srv)
	} else {
		ts = httptest.NewServer(srv)
	}
	t.Cleanup(ts.Close)
	return ts, clk
}

// client keeps cookies and does not follow redirects.
func client(t *testing.T, ts *httptest.Server) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := ts.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func get(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs in with token and returns the session's CSRF token.
func signIn(t *testing.T, ts *httptest.Server, c *http.Client, token string) string {
	t.Helper()
	_, body := get(t, c, ts.URL+"/login")
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", body)
	}
	resp, _ := post(t, c, ts.URL+"/login", url.Values{"csrf": {m[1]}, "token": {token}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign-in answered %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = get(t, c, ts.URL+"/")
	if m = csrfInput.FindStringSubmatch(body); m == nil {
		t.Fatalf("no CSRF token on the queue page:\n%s", body)
	}
	return m[1]
}

func TestSessionCookieFlags(t *testing.T) {
	for _, overTLS := range []bool{false, true} {
		ts, _ := newTestServer(t, overTLS)
		c := client(t, ts)
		_, body := get(t, c, ts.URL+"/login")
		token := csrfInput.FindStringSubmatch(body)[1]
		resp, _ := post(t, c, ts.URL+"/login", url.Values{"csrf": {token}, "token": {tokAgent}})
		var session *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == sessionCookie {
				session = ck
			}
		}
		if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure != overTLS {
			t.Fatalf("over TLS %t: session cookie %+v: want HttpOnly, SameSite=Lax, Secure only over TLS", overTLS, session)
		}
		if strings.Contains(session.Value, tokAgent) {
			t.Fatal("the cookie carries the access token")
		}
	}
}

func TestSignInNeedsItsCSRFTokenAndAPerson(t *testing.T) {
	ts, _ := newTestServer(t, false)
	c := client(t, ts)
	get(t, c, ts.URL+"/login")
	if resp, _ := post(t, c, ts.URL+"/login", url.Values{"token": {tokAgent}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-in without the form's CSRF token: %d", resp.StatusCode)
	}
	_, body := get(t, c, ts.URL+"/login")
	token := csrfInput.FindStringSubmatch(body)[1]
	resp, body := post(t, c, ts.URL+"/login", url.Values{"csrf": {token}, "token": {tokAdapt}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, `id="token-error"`) {
		t.Fatalf("an adapter's token signed in: %d", resp.StatusCode)
	}
	// A technician signs in but has no queue page in this slice.
	signIn(t, ts, c, tokTech)
}

func TestTechnicianSeesNoQueue(t *testing.T) {
	ts, _ := newTestServer(t, false)
	c := client(t, ts)
	_, body := get(t, c, ts.URL+"/login")
	token := csrfInput.FindStringSubmatch(body)[1]
	post(t, c, ts.URL+"/login", url.Values{"csrf": {token}, "token": {tokTech}})
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a technician's queue page: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/api/v1/complaints", "Authorization", "Bearer "+tokTech); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a technician's query: %d", resp.StatusCode)
	}
}

func TestIdleSessionExpiresOnTheInjectedClock(t *testing.T) {
	ts, clk := newTestServer(t, false)
	c := client(t, ts)
	csrf := signIn(t, ts, c, tokAgent)
	clk.Advance(29 * time.Minute)
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after 29 idle minutes: %d", resp.StatusCode)
	}
	// Using it restarted the idle time.
	clk.Advance(29 * time.Minute)
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("29 minutes after the last use: %d", resp.StatusCode)
	}
	clk.Advance(31 * time.Minute)
	resp, _ := get(t, c, ts.URL+"/")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?expired=1" {
		t.Fatalf("after 31 idle minutes: %d → %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The ended session's forms are refused.
	if resp, _ := post(t, c, ts.URL+"/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a form of an expired session: %d", resp.StatusCode)
	}
}

func TestFormsWithoutTheSessionsCSRFTokenAreRefused(t *testing.T) {
	ts, _ := newTestServer(t, false)
	c := client(t, ts)
	csrf := signIn(t, ts, c, tokAgent)
	for _, form := range []url.Values{{}, {"csrf": {"forged"}}, {"csrf": {csrf + "x"}}} {
		resp, body := post(t, c, ts.URL+"/logout", form)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "nothing was changed") && !strings.Contains(body, "未做任何更改") {
			t.Fatalf("logout with csrf %q: %d", form.Get("csrf"), resp.StatusCode)
		}
	}
	// Still signed in: the refused logouts changed nothing.
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("after refused logouts: %d", resp.StatusCode)
	}
	if resp, _ := post(t, c, ts.URL+"/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the queue after logout: %d", resp.StatusCode)
	}
}

func TestLanguage(t *testing.T) {
	ts, _ := newTestServer(t, false)
	c := client(t, ts)
	for _, tc := range []struct{ accept, want string }{
		{"zh-CN,zh;q=0.9,en;q=0.8", `<h1>登录</h1>`},
		{"en-US,en;q=0.9,zh;q=0.5", `<h1>Sign in</h1>`},
		{"fr-FR, en;q=0.3, zh;q=0.7", `<h1>登录</h1>`},
		{"", `<h1>登录</h1>`},
	} {
		if _, body := get(t, c, ts.URL+"/login", "Accept-Language", tc.accept); !strings.Contains(body, tc.want) {
			t.Fatalf("Accept-Language %q: want %s", tc.accept, tc.want)
		}
	}
	resp, _ := get(t, c, ts.URL+"/lang?to=en&back=//evil.example/")
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Fatalf("the language switch sent to %q", loc)
	}
	if _, body := get(t, c, ts.URL+"/login", "Accept-Language", "zh-CN"); !strings.Contains(body, `<h1>Sign in</h1>`) {
		t.Fatal("the chosen language does not win over the browser's")
	}
}

func TestQueryAPI(t *testing.T) {
	ts, _ := newTestServer(t, false)
	c := client(t, ts)
	if resp, _ := get(t, c, ts.URL+"/api/v1/complaints"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d", resp.StatusCode)
	}
	if resp, _ := get(t, c, ts.URL+"/api/v1/complaints", "Authorization", "Bearer "+tokAdapt); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an adapter: %d", resp.StatusCode)
	}
	resp, body := get(t, c, ts.URL+"/api/v1/complaints?severity=l9&sort=size&limit=9999&breached=maybe", "Authorization", "Bearer "+tokAgent)
	var bad struct {
		Violations []struct{ Field, Rule string } `json:"violations"`
	}
	if err := json.Unmarshal([]byte(body), &bad); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad query: %d %s", resp.StatusCode, body)
	}
	var fields []string
	for _, v := range bad.Violations {
		fields = append(fields, v.Field)
	}
	if got := strings.Join(fields, ","); got != "severity,breached,sort,limit" {
		t.Fatalf("violations name %s", got)
	}
	resp, body = get(t, c, ts.URL+"/api/v1/complaints?owner=agent-1&sort=due", "Authorization", "Bearer "+tokAgent)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"total":0`) {
		t.Fatalf("empty query: %d %s", resp.StatusCode, body)
	}
	if resp, _ := get(t, c, ts.URL+"/api/v1/complaints/nope", "Authorization", "Bearer "+tokAgent); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown complaint: %d", resp.StatusCode)
	}
}
