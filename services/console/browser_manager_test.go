package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// A manager watches a KPI move when a complaint is resolved and downloads
// the CSV; the customer opens the status link (no sign-in) and sees the
// status; a tampered link is refused.
func TestManagerDashboardAndCustomerStatusInTheBrowser(t *testing.T) {
	s := startSystem(t)
	id := s.submitL1(t, "HOT-MGR-B001")
	// A second team's complaint, left open: the charts compare two bars.
	if _, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-MGR-B002", ReceivedAt: timestamppb.New(s.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "王五", Phone: "+86 137-0013-7003", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-112233"},
		Description: "空调开机十分钟后自动关机，现在无法开机", Emotion: eventsv1.Emotion_EMOTION_DISSATISFIED, FirstReceiver: "hotline-7",
	}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t, s.ctx)
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "en"}}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "sign in as the manager",
		chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("#token")),
		chromedp.SendKeys(chromedp.ID("#token"), tokManager), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#user")))
	run(t, ctx, "open the dashboard from the navigation",
		chromedp.Click(chromedp.ID("#nav-dashboard")), chromedp.WaitVisible(chromedp.ID("#kpi-apply")))
	row := `#kpi-table tr[data-group="customer-service"]`
	// figure reloads the dashboard until the team's cell shows want.
	figure := func(class, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			run(t, ctx, "reload the dashboard", chromedp.Navigate(s.url+"/dashboard?group=team&period=week"), chromedp.WaitVisible(chromedp.ID("#kpi-apply")))
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('`+row+` td.`+class+`') || {textContent: ''}).textContent`))
			if err == nil && strings.TrimSpace(got) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s of customer-service is %q, want %q", class, got, want)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	figure("received", "1")
	figure("fcr", "0.0%")

	s.resolveAsCS1(t, id)
	figure("fcr", "100.0%")
	if r := text(t, ctx, `#kpi-table tr[data-group="technical-support"] td.resolution`); r != "0.0%" {
		t.Fatalf("technical support's resolution rate %q", r)
	}
	if r := text(t, ctx, row+" td.resolution"); r != "100.0%" {
		t.Fatalf("resolution rate %q", r)
	}
	if c := text(t, ctx, "#chart-fcr table"); !strings.Contains(c, "customer-service 2026-11-02\t100.0%") {
		t.Fatalf("the first-contact chart's table: %q", c)
	}
	if title, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#chart-fcr svg title').textContent`)); title != "First-contact resolution" {
		t.Fatalf("chart title %q", title)
	}
	screenshot(t, ctx, "dashboard")

	// The CSV link downloads the same rows (fetched in the page, with its session).
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#csv').getAttribute('href')`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const x = new XMLHttpRequest(); x.open('GET', `+"`"+href+"`"+`, false); x.send();
		return x.status + '|' + x.getResponseHeader('Content-Type') + '|' + x.getResponseHeader('Content-Disposition') + '|' + x.responseText })()`))
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(got, "|", 4)
	if len(parts) != 4 || parts[0] != "200" || parts[1] != "text/csv; charset=utf-8" || parts[2] != `attachment; filename="kpis-team-week.csv"` ||
		!strings.Contains(parts[3], "\ncustomer-service,2026-11-02,1,1,") {
		t.Fatalf("CSV download: %q", got)
	}

	// Staff get the customer's link; the customer needs no sign-in.
	code, link := s.statusLink(t, tokCS1, id)
	if code != http.StatusOK {
		t.Fatalf("status link: %d", code)
	}
	run(t, ctx, "sign out",
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("#token")))
	run(t, ctx, "the customer opens the link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("#status")))
	waitText(t, ctx, "#status", "您的投诉已解决") // Chinese unless the customer switches
	waitText(t, ctx, "#team", "客户服务部")
	run(t, ctx, "switch to English", chromedp.Click(chromedp.ID("#lang-switch")), chromedp.WaitVisible(chromedp.ID("#status")))
	waitText(t, ctx, "#status", "Your complaint is resolved")
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#survey').length`))
		if err == nil && n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the status page offers no survey")
		}
		time.Sleep(200 * time.Millisecond)
		run(t, ctx, "reload the status page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("#status")))
	}
	if main := text(t, ctx, "main"); strings.Contains(main, mgrCustomerName) || strings.Contains(main, "139-0013") || strings.Contains(main, "cs-1") {
		t.Fatalf("the status page shows personal data or a person:\n%s", main)
	}
	screenshot(t, ctx, "status")

	// A tampered link: a bare 404.
	i := strings.LastIndexByte(link, '.')
	tampered := link[:i+1] + "A" + link[i+2:]
	if link[i+1] == 'A' {
		tampered = link[:i+1] + "B" + link[i+2:]
	}
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(tampered))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != http.StatusNotFound {
		t.Fatalf("tampered link: %d", resp.Status)
	}
	if body := text(t, ctx, "body"); body != "404 page not found" {
		t.Fatalf("tampered link shows %q", body)
	}
}
