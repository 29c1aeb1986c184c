package console_test

// The manager's dashboard and the customer's status page against the real
// system (embedded NATS, intake, routing, the SLA clock, follow-up).

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// Personal data of the manager tests' customer: never on the status page.
const (
	mgrCustomerName  = "李四"
	mgrCustomerPhone = "+86 139-0013-9002"
	mgrDescription   = "会员积分没有到账，请核实"
)

// submitL1 submits a complaint the policy's default rule takes (other, L1,
// customer service: cs-1) and waits until it is assigned.
func (s *system) submitL1(t *testing.T, ref string) string {
	t.Helper()
	r, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: ref, ReceivedAt: timestamppb.New(s.clk.Now()),
		Customer: &intakev1.CustomerInput{Name: mgrCustomerName, Phone: mgrCustomerPhone, Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:  &eventsv1.Product{Model: "AC-3000"}, Description: mgrDescription, Emotion: eventsv1.Emotion_EMOTION_CALM, FirstReceiver: "hotline-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetComplaintId()
	eventually(t, "assigned to cs-1 in the view", func() string {
		if c, ok := s.console.View().Get(id); !ok || c.Owner != "cs-1" {
			return fmt.Sprintf("%+v", c)
		}
		return ""
	})
	return id
}

// resolveAsCS1 has the owner accept, respond and resolve: L1 needs only a
// response, so it is resolved at first contact.
func (s *system) resolveAsCS1(t *testing.T, id string) {
	t.Helper()
	ctx := s.as(tokCS1)
	if _, err := s.routing.AcceptAssignment(ctx, &routingv1.AcceptAssignmentRequest{ComplaintId: id}); err != nil {
		t.Fatalf("accept: %v", err)
	}
	if _, err := s.routing.RecordResponse(ctx, &routingv1.RecordResponseRequest{ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "points credited"}); err != nil {
		t.Fatalf("respond: %v", err)
	}
	if _, err := s.routing.Resolve(ctx, &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "CREDITED", Summary: "points credited by hand"}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
}

// signedIn is an HTTP client with a session of token's person.
func (s *system) signedIn(t *testing.T, token string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	_, body := httpGet(t, c, s.url+"/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no CSRF token on the sign-in page")
	}
	resp, err := c.PostForm(s.url+"/login", url.Values{"csrf": {m[1]}, "token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/" {
		t.Fatalf("sign-in ended at %s (%d)", resp.Request.URL, resp.StatusCode)
	}
	return c
}

func httpGet(t *testing.T, c *http.Client, u string, header ...string) (*http.Response, string) {
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
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// kpiCell is the text of a cell (by class) of the team's dashboard row.
func kpiCell(body, team, class string) string {
	row := regexp.MustCompile(`(?s)<tr data-group="` + regexp.QuoteMeta(team) + `"[^>]*>(.*?)</tr>`).FindStringSubmatch(body)
	if row == nil {
		return ""
	}
	m := regexp.MustCompile(`<td class="` + class + `"[^>]*>([^<]*)</td>`).FindStringSubmatch(row[1])
	if m == nil {
		return ""
	}
	return m[1]
}

// statusLink asks the query API for a complaint's status link.
func (s *system) statusLink(t *testing.T, token, id string) (int, string) {
	t.Helper()
	resp, body := httpGet(t, http.DefaultClient, s.url+"/api/v1/complaints/"+id+"/status-link", "Authorization", "Bearer "+token)
	var link struct {
		URL       string    `json:"url"`
		Path      string    `json:"path"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &link); err != nil {
			t.Fatal(err)
		}
		if link.URL != s.url+link.Path || !link.ExpiresAt.Equal(s.clk.Now().Add(30*24*time.Hour).Truncate(time.Second)) {
			t.Fatalf("status link %s", body)
		}
	}
	return resp.StatusCode, link.URL
}

func TestManagerDashboardShowsKPIsAndExportsThem(t *testing.T) {
	s := startSystem(t)
	id := s.submitL1(t, "HOT-MGR-0001")
	mgr := s.signedIn(t, tokManager)
	dash := s.url + "/dashboard?group=team&period=week"
	eventually(t, "the dashboard counts the received complaint", func() string {
		_, body := httpGet(t, mgr, dash)
		if got := kpiCell(body, "customer-service", "received"); got != "1" {
			return "received " + got
		}
		return ""
	})
	_, body := httpGet(t, mgr, dash)
	if fcr := kpiCell(body, "customer-service", "fcr"); fcr != "0.0%" {
		t.Fatalf("first-contact resolution before resolving: %q", fcr)
	}
	for _, want := range []string{`id="chart-fcr"`, `<svg role="img" aria-labelledby="chart-fcr-title"`, `<title id="chart-fcr-title">`, `class="chart-table"`, `href="/dashboard.csv?`} {
		if !strings.Contains(body, want) {
			t.Fatalf("dashboard lacks %s", want)
		}
	}

	s.resolveAsCS1(t, id)
	eventually(t, "the dashboard shows the resolution", func() string {
		_, body := httpGet(t, mgr, dash)
		if r, f := kpiCell(body, "customer-service", "resolution"), kpiCell(body, "customer-service", "fcr"); r != "100.0%" || f != "100.0%" {
			return "resolution " + r + ", first contact " + f
		}
		return ""
	})
	_, body = httpGet(t, mgr, dash)
	if !regexp.MustCompile(`(?s)<figure class="card chart" id="chart-fcr">.*?<td>customer-service 2026-11-02</td><td>100.0%</td>`).MatchString(body) {
		t.Fatal("the first-contact chart's table lacks customer-service's week at 100.0%")
	}

	resp, csvBody := httpGet(t, mgr, s.url+"/dashboard.csv?group=team&period=week")
	if ct, cd := resp.Header.Get("Content-Type"), resp.Header.Get("Content-Disposition"); resp.StatusCode != http.StatusOK ||
		ct != "text/csv; charset=utf-8" || cd != `attachment; filename="kpis-team-week.csv"` {
		t.Fatalf("CSV: %d %q %q", resp.StatusCode, ct, cd)
	}
	recs, err := csv.NewReader(strings.NewReader(csvBody)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, r := range recs[1:] {
		if r[0] == "customer-service" {
			found = true
			if r[1] != "2026-11-02" || r[2] != "1" || r[3] != "1" || r[6] != "1.0000" || r[7] != "1.0000" {
				t.Fatalf("CSV row %v", r)
			}
		}
	}
	if !found || strings.Join(recs[0][:8], ",") != "group,period_start,received,resolved,surveys_answered,csi_average,resolution_rate,first_contact_resolution_rate" {
		t.Fatalf("CSV:\n%s", csvBody)
	}

	// Every complaint over all time: one row.
	if _, body := httpGet(t, mgr, s.url+"/dashboard?group=all&period=all"); kpiCell(body, "", "resolved") != "1" || !strings.Contains(body, "<td>—</td><td>100.0%</td>") {
		t.Fatal("group all, period all: no row of one resolved complaint")
	}
	// A bad query names the field and asks follow-up nothing.
	resp, body = httpGet(t, mgr, s.url+"/dashboard?group=planet&from=yesterday")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `<p id="kpi-group-error" class="field-error">请从列表中选择。</p>`) ||
		!strings.Contains(body, `<p id="kpi-from-error" class="field-error">请填写日期，如 2026-11-02。</p>`) {
		t.Fatalf("bad query: %d", resp.StatusCode)
	}
	// An agent sees no dashboard and exports nothing.
	agent := s.signedIn(t, tokCS1)
	for _, p := range []string{"/dashboard", "/dashboard.csv", "/dashboard/whatif"} {
		if resp, _ := httpGet(t, agent, s.url+p); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("agent GET %s: %d", p, resp.StatusCode)
		}
	}
	if _, body := httpGet(t, agent, s.url+"/"); strings.Contains(body, `href="/dashboard"`) {
		t.Fatal("the agent's navigation links the dashboard")
	}
}

func TestManagerRunsTheWhatIfReport(t *testing.T) {
	s := startSystem(t)
	s.submitL1(t, "HOT-MGR-0002")
	mgr := s.signedIn(t, tokManager)
	_, page := httpGet(t, mgr, s.url+"/dashboard/whatif")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the what-if form")
	}
	form := url.Values{"csrf": {m[1]}, "from": {"2026-11-01"}, "to": {"2026-11-03"}}
	resp, err := mgr.PostForm(s.url+"/dashboard/whatif", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !regexp.MustCompile(`<dd id="whatif-complaints">1</dd>`).Match(b) || !strings.Contains(string(b), `id="whatif-targets"`) {
		t.Fatalf("what-if: %d\n%s", resp.StatusCode, b)
	}
	// A candidate that is not a policy: sla-clock's refusal beside the field.
	form.Set("policy", `{"not":"a policy"}`)
	resp, err = mgr.PostForm(s.url+"/dashboard/whatif", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `id="whatif-policy-error"`) {
		t.Fatalf("a bad policy: %d\n%s", resp.StatusCode, b)
	}
	// Without the form's CSRF token: refused.
	form.Del("csrf")
	resp, err = mgr.PostForm(s.url+"/dashboard/whatif", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("what-if without CSRF: %d", resp.StatusCode)
	}
}

func TestCustomerStatusPageBySignedLink(t *testing.T) {
	s := startSystem(t)
	id := s.submitL1(t, "HOT-MGR-0003")
	// Staff get the link from the query API; technicians do not.
	if code, _ := s.statusLink(t, tokTech, id); code != http.StatusForbidden {
		t.Fatalf("technician got a status link: %d", code)
	}
	if code, _ := s.statusLink(t, tokCS1, "no-such-complaint"); code != http.StatusNotFound {
		t.Fatalf("link of an unknown complaint: %d", code)
	}
	code, link := s.statusLink(t, tokCS1, id)
	if code != http.StatusOK {
		t.Fatalf("status link: %d", code)
	}
	// No sign-in: a client without cookies. Chinese unless switched.
	resp, body := httpGet(t, http.DefaultClient, link)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "负责团队已收到您的投诉") || !strings.Contains(body, "客户服务部") ||
		!regexp.MustCompile(`<dd id="due">[^<]+: 2026-11-\d\d \d\d:\d\d （北京时间）</dd>`).MatchString(body) || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("status page: %d\n%s", resp.StatusCode, body)
	}
	for _, private := range []string{mgrCustomerName, "13900139002", "139-0013-9002", mgrDescription, "cs-1"} {
		if strings.Contains(body, private) {
			t.Fatalf("the status page shows %q", private)
		}
	}

	s.resolveAsCS1(t, id)
	eventually(t, "the status page offers the survey", func() string {
		_, body := httpGet(t, http.DefaultClient, link+"?lang=en")
		if !strings.Contains(body, "Your complaint is resolved") || !strings.Contains(body, `href="http://survey.test/survey/`+id+`?t=`) {
			return "not yet"
		}
		return ""
	})

	// Tampered: another id under the signature, a changed signature, no signature.
	i := strings.LastIndexByte(link, '.')
	sig := link[i+1:]
	flipped := []byte(sig)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == '.' || flipped[len(flipped)/2] == '/' {
		flipped[len(flipped)/2] = 'A'
	}
	for _, bad := range []string{
		s.url + "/s/" + id + "x." + sig,
		link[:i+1] + string(flipped),
		s.url + "/s/" + id,
	} {
		resp, body := httpGet(t, http.DefaultClient, bad)
		if resp.StatusCode != http.StatusNotFound || strings.Contains(body, id) || strings.TrimSpace(body) != "404 page not found" {
			t.Fatalf("tampered link %s: %d %q", bad, resp.StatusCode, body)
		}
	}
	// Expired after 30 days.
	s.clk.Advance(30*24*time.Hour + time.Minute)
	if resp, _ := httpGet(t, http.DefaultClient, link); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("expired link: %d", resp.StatusCode)
	}
}
