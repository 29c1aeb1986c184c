package console_test

// The browser test: a real headless Chromium, driven from Go (chromedp),
// against the console wired to an embedded NATS and the real intake,
// routing and SLA-clock services in this process. It asserts what the
// pages show, not only status codes.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// chromiumPath finds the browser; the test fails (never skips) without it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome", "/usr/bin/google-chrome-stable"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium not found (looked at /usr/bin/chromium, chromium-browser, google-chrome and $PATH). " +
		"Install it: `apt-get update && apt-get install -y --no-install-recommends chromium` (Debian; .ci/run does this), " +
		"or set CHROMIUM_PATH to a Chrome or Chromium binary.")
	return ""
}

// browser starts a headless Chromium for the test.
func browser(t *testing.T, parent context.Context) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(parent, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// screenshot saves the page when CONSOLE_SCREENSHOTS names a directory
// (the README's pictures).
func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("CONSOLE_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

// waitText waits until the element's text contains want: after a click
// the old page may still be showing.
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got string
	for time.Now().Before(deadline) {
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		cancel()
		if got = strings.TrimSpace(s); err == nil && strings.Contains(got, want) {
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s shows %q, want %q", sel, got, want)
	return ""
}

func run(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// removeCSRF takes the CSRF token out of the proposal form, as a forged
// or replayed form would lack it.
func removeCSRF(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
	_, err := chromedp.Evaluate[bool](`(document.querySelector('#propose-form input[name=csrf]').remove(), true)`)(ctx, tg)
	return chromedp.Void{}, err
}

func TestAgentWorksAComplaintInTheBrowser(t *testing.T) {
	s := startSystem(t)
	r, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-CONSOLE-0001", ReceivedAt: timestamppb.New(start),
		Customer:    &intakev1.CustomerInput{Name: "张三", Phone: "+86 138-0013-8001", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-778899", PurchaseDate: "2026-03-01"},
		Place:       &eventsv1.Place{Region: "east", City: "Shanghai"},
		Description: "空调开机十分钟后自动关机，现在无法开机", Emotion: eventsv1.Emotion_EMOTION_DISSATISFIED,
		CustomerRequest: "上门维修", FirstReceiver: "hotline-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetComplaintId()
	// Routing assigns it to ts-1 (L2, technical support); the console's view
	// follows.
	eventually(t, "assigned to ts-1 in the view", func() string {
		if c, ok := s.console.View().Get(id); !ok || c.Owner != "ts-1" || len(c.Clocks) == 0 {
			return "not yet"
		}
		return ""
	})

	// 23 hours on: the first response is due within the hour (its clock
	// warned at 50, 75 and 90 %), so its countdown moves every second.
	s.clk.Advance(23 * time.Hour)
	eventually(t, "the 90 % warning in the view", func() string {
		c, _ := s.console.View().Get(id)
		for _, k := range c.Clocks {
			if k.Target == eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE && k.Warned == 90 {
				return ""
			}
		}
		return fmt.Sprintf("clocks %+v", c.Clocks)
	})

	ctx := browser(t, s.ctx)
	// The browser asks for Chinese: the sign-in page is in Chinese.
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "open the sign-in page in Chinese",
		chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("#token")))
	if h := text(t, ctx, "h1"); h != "登录" {
		t.Fatalf("sign-in heading %q, want 登录", h)
	}
	if l := text(t, ctx, "label[for=token]"); l != "访问令牌" {
		t.Fatalf("token label %q", l)
	}
	screenshot(t, ctx, "login-zh")
	// A wrong token: the error is shown next to the field.
	run(t, ctx, "sign in with a wrong token",
		chromedp.SendKeys(chromedp.ID("#token"), "not-a-token"), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#token-error")))
	waitText(t, ctx, "#token-error", "令牌无效。")
	// Switch to English, sign in as the agent.
	run(t, ctx, "switch to English",
		chromedp.Click(chromedp.CSS(`a[href^="/lang?to=en"]`)), chromedp.WaitVisible(chromedp.ID("#token")))
	waitText(t, ctx, "h1", "Sign in")
	run(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("#token"), tokTS1), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#queue")))
	if u := text(t, ctx, "#user"); u != "ts-1" {
		t.Fatalf("signed in as %q", u)
	}
	row := `#queue tr[data-id="` + id + `"]`
	if st := text(t, ctx, row+" td.status"); st != "assigned" {
		t.Fatalf("queue status %q, want assigned", st)
	}
	due := text(t, ctx, row+" time.countdown")
	if !regexp.MustCompile(`^(\d+h )?\d+m \d\ds left$`).MatchString(due) {
		t.Fatalf("queue countdown %q, want the time left to the second", due)
	}
	// The countdown is live: the page's script moves it.
	waitChange := time.Now().Add(5 * time.Second)
	for text(t, ctx, row+" time.countdown") == due {
		if time.Now().After(waitChange) {
			t.Fatalf("the countdown stayed at %q", due)
		}
		time.Sleep(200 * time.Millisecond)
	}
	screenshot(t, ctx, "queue")

	// Open it, accept it.
	run(t, ctx, "open the complaint",
		chromedp.Click(chromedp.CSS(row+" a")), chromedp.WaitVisible(chromedp.ID("#status")))
	waitText(t, ctx, "#status", "assigned")
	if sev := text(t, ctx, "#severity"); sev != "L2" {
		t.Fatalf("severity %q, want L2 as the domain writes it", sev)
	}
	if d := text(t, ctx, "#description"); d != "空调开机十分钟后自动关机，现在无法开机" {
		t.Fatalf("description %q", d)
	}
	for _, want := range []string{"ComplaintReceived", "ComplaintClassified", "ComplaintAssigned", "SlaClockStarted"} {
		if tl := text(t, ctx, "#timeline"); !strings.Contains(tl, want) {
			t.Fatalf("timeline lacks %s:\n%s", want, tl)
		}
	}
	if strings.Contains(text(t, ctx, "main"), "138") {
		t.Fatal("the complaint page shows the customer's phone")
	}
	run(t, ctx, "accept",
		chromedp.Click(chromedp.ID("#accept")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "Assignment accepted.")
	waitText(t, ctx, "#status", "in progress")

	// Respond without a summary: routing's field error beside the field,
	// the channel as chosen, nothing recorded.
	before := len(s.stream(t, id))
	run(t, ctx, "respond without a summary",
		chromedp.SetValue(chromedp.ID("#respond-channel"), "CHANNEL_PHONE"),
		chromedp.Click(chromedp.ID("#respond")), chromedp.WaitVisible(chromedp.ID("#respond-summary-error")))
	waitText(t, ctx, "#respond-summary-error", "must say what was told to the customer")
	channel, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("#respond-channel")))
	if err != nil {
		t.Fatal(err)
	}
	if channel != "CHANNEL_PHONE" {
		t.Fatalf("channel after the refusal %q", channel)
	}
	if n := len(s.stream(t, id)); n != before {
		t.Fatalf("a refused response appended %d events", n-before)
	}
	screenshot(t, ctx, "complaint-field-error")

	run(t, ctx, "respond",
		chromedp.SendKeys(chromedp.ID("#respond-summary"), "Called back: will send a technician"),
		chromedp.Click(chromedp.ID("#respond")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "Response recorded.")
	waitText(t, ctx, "#status", "responded")
	tl := text(t, ctx, "#timeline")
	if !strings.Contains(tl, "ResponseRecorded by ts-1") || !strings.Contains(tl, "phone: Called back: will send a technician") {
		t.Fatalf("timeline lacks the response by ts-1:\n%s", tl)
	}

	run(t, ctx, "propose",
		chromedp.SendKeys(chromedp.ID("#propose-summary"), "Replace the compressor relay"),
		chromedp.Click(chromedp.ID("#propose")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "Solution proposed.")
	waitText(t, ctx, "#status", "solution proposed")
	screenshot(t, ctx, "complaint")
	// The log records the person as the actor of each action.
	actors := map[string]string{}
	for _, rec := range s.stream(t, id) {
		actors[rec.Event.GetType()] = rec.Event.GetActor()
	}
	for _, typ := range []string{"AssignmentAccepted", "ResponseRecorded", "SolutionProposed"} {
		if actors[typ] != "ts-1" {
			t.Fatalf("%s recorded with actor %q, want ts-1", typ, actors[typ])
		}
	}

	// A form whose CSRF token is removed is refused and changes nothing.
	before = len(s.stream(t, id))
	run(t, ctx, "post a form without its CSRF token",
		chromedp.SendKeys(chromedp.ID("#propose-summary"), "A forged proposal"),
		removeCSRF,
		chromedp.Click(chromedp.ID("#propose")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "nothing was changed")
	if n := len(s.stream(t, id)); n != before {
		t.Fatalf("a form without its CSRF token appended %d events", n-before)
	}
	// Nor does a post from elsewhere, without the session.
	resp, err := http.PostForm(s.url+"/complaints/"+id+"/propose", url.Values{"summary": {"from another site"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || len(s.stream(t, id)) != before {
		t.Fatalf("a post without a session: %d, events %d → %d", resp.StatusCode, before, len(s.stream(t, id)))
	}

	// The view follows: the query API answers the new status.
	eventually(t, "the query API shows the proposal", func() string {
		req, _ := http.NewRequest(http.MethodGet, s.url+"/api/v1/complaints?owner=ts-1&status=solution_proposed", nil)
		req.Header.Set("Authorization", "Bearer "+tokAdmin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		var page struct {
			Total      int `json:"total"`
			Complaints []struct {
				ID, Status, Owner string
			} `json:"complaints"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
			return err.Error()
		}
		if page.Total != 1 || page.Complaints[0].ID != id {
			return "not yet"
		}
		return ""
	})

	// Idle for longer than the session lasts: back to the sign-in page.
	s.clk.Advance(31 * time.Minute)
	run(t, ctx, "come back after idling",
		chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("#token")))
	waitText(t, ctx, "#notice", "idle for too long")
	// Sign in again and out.
	run(t, ctx, "sign in again, then out",
		chromedp.SendKeys(chromedp.ID("#token"), tokTS1), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#user")),
		chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("#token")))
	run(t, ctx, "the queue after signing out",
		chromedp.Navigate(s.url+"/"), chromedp.WaitVisible(chromedp.ID("#token")))

	if logs := s.logs.String(); strings.Contains(logs, "13800138001") || strings.Contains(logs, "138-0013-8001") || strings.Contains(logs, tokTS1) {
		t.Fatal("a service log holds the customer's phone or a person's token")
	}
}
