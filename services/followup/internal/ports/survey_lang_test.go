package ports

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// openSurvey writes a received and resolved complaint, lets follow-up send
// its survey, and returns the path of the customer's link.
func (f *served) openSurvey(t *testing.T, id string) string {
	t.Helper()
	ctx := context.Background()
	var envs []*eventsv1.Envelope
	for _, p := range []proto.Message{&eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{}} {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: f.clk.Now()}, p)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, e)
	}
	if _, err := f.log.Append(ctx, eventlog.ComplaintStream(id), 0, envs...); err != nil {
		t.Fatal(err)
	}
	recs, err := f.log.ReadStream(ctx, eventlog.ComplaintStream(id), 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.app.ScheduleFollowUpOnResolved(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	s, err := f.app.FollowUp(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(f.app.SurveyLink(s))
	if err != nil || u.Path == "" {
		t.Fatalf("survey link of %s: %v", id, err)
	}
	return u.RequestURI()
}

func (f *served) do(method, target, acceptLanguage string, form url.Values) *httptest.ResponseRecorder {
	var req *http.Request
	if form != nil {
		req = httptest.NewRequest(method, target, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(method, target, nil)
	}
	if acceptLanguage != "" {
		req.Header.Set("Accept-Language", acceptLanguage)
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return rec
}

var switchLink = regexp.MustCompile(`<nav aria-label="[^"]*"><a href="([^"]+)" hreflang="([^"]+)"`)

// pageIn checks a survey page's language: its html lang, its
// Content-Language, and words only a page in that language has.
func pageIn(t *testing.T, what string, rec *httptest.ResponseRecorder, tag string, words ...string) {
	t.Helper()
	body := rec.Body.String()
	if !strings.Contains(body, `<html lang="`+tag+`">`) || rec.Header().Get("Content-Language") != tag {
		t.Fatalf("%s: want a page in %s, got Content-Language %q:\n%s", what, tag, rec.Header().Get("Content-Language"), body)
	}
	for _, w := range words {
		if !strings.Contains(body, w) {
			t.Fatalf("%s: page in %s lacks %q:\n%s", what, tag, w, body)
		}
	}
}

// The survey page answers in Chinese for a browser that asks for it and in
// English otherwise; its switch shows the same form in the other language,
// and the form submitted from there answers in the language chosen.
func TestSurveyPageSpeaksTheBrowsersLanguage(t *testing.T) {
	f := newServed(t, nil)
	link := f.openSurvey(t, "c-zh")
	token := func(u string) string { p, _ := url.Parse(u); return p.Query().Get("t") }(link)

	for _, tt := range []struct {
		accept, tag string
		words       []string
	}{
		{"zh-CN,zh;q=0.9,en;q=0.8", "zh-CN", []string{"您对投诉的处理是否满意", "您的问题解决了吗？", "> 是</label>", "> 否</label>", `<button type="submit">提交</button>`, `name="lang" value="zh"`}},
		{"zh", "zh-CN", []string{"我们的服务怎么样？"}},
		{"en-US,en;q=0.9", "en", []string{"How satisfied are you", "> Yes</label>", `<button type="submit">Send</button>`, `name="lang" value="en"`}},
		{"en;q=0.5,zh-TW;q=0.8", "zh-CN", nil}, // weights, not order
		{"fr-FR", "en", nil},                   // neither: English
		{"", "en", nil},
	} {
		rec := f.do(http.MethodGet, link, tt.accept, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET with Accept-Language %q: HTTP %d", tt.accept, rec.Code)
		}
		pageIn(t, "Accept-Language "+tt.accept, rec, tt.tag, tt.words...)
		if rec.Header().Get("Vary") != "Accept-Language" {
			t.Fatalf("Vary %q", rec.Header().Get("Vary"))
		}
	}

	// The switch: a Chinese browser's page links to the English one, which
	// the same browser then gets, with a link back.
	rec := f.do(http.MethodGet, link, "zh-CN", nil)
	m := switchLink.FindStringSubmatch(rec.Body.String())
	if m == nil || m[2] != "en" || !strings.Contains(rec.Body.String(), ">English</a>") {
		t.Fatalf("no switch to English on the Chinese page:\n%s", rec.Body)
	}
	href, _ := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if href.Query().Get("t") != token || href.Query().Get("lang") != "en" {
		t.Fatalf("switch %q loses the token or names no language", m[1])
	}
	english := "/survey/c-zh?" + href.RawQuery
	rec = f.do(http.MethodGet, english, "zh-CN", nil)
	pageIn(t, "switched to English", rec, "en", "How did we do?", `name="lang" value="en"`)
	if m := switchLink.FindStringSubmatch(rec.Body.String()); m == nil || m[2] != "zh-CN" || !strings.Contains(rec.Body.String(), ">中文</a>") {
		t.Fatalf("no switch back to Chinese on the English page:\n%s", rec.Body)
	}

	// A mistake in the form is named in the page's language, field and rule.
	rec = f.do(http.MethodPost, "/survey/c-zh", "zh-CN", url.Values{"t": {token}, "lang": {"zh"}, "satisfaction": {"many"}, "resolved": {"maybe"}})
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("bad answer: HTTP %d", rec.Code)
	}
	pageIn(t, "bad answer in Chinese", rec, "zh-CN", "请检查您的回答", "满意度须为 1 到 5", "问题是否解决须为“是”或“否”", `role="alert"`)
	rec = f.do(http.MethodPost, "/survey/c-zh", "zh-CN", url.Values{"t": {token}, "lang": {"en"}, "satisfaction": {"9"}, "resolved": {"yes"}})
	pageIn(t, "bad answer in English", rec, "en", "Please check your answer: satisfaction must be 1 to 5.")

	// The form submitted from the English page (its hidden lang), by a
	// Chinese browser: recorded, and thanked in English.
	rec = f.do(http.MethodPost, english, "zh-CN", url.Values{"t": {token}, "lang": {"en"}, "satisfaction": {"5"}, "resolved": {"yes"}, "comment": {"很好"}})
	if rec.Code != http.StatusOK {
		t.Fatalf("submit: HTTP %d\n%s", rec.Code, rec.Body)
	}
	pageIn(t, "thanks", rec, "en", "Thank you for your feedback.")
	events, err := f.log.ReadStream(context.Background(), eventlog.ComplaintStream("c-zh"), 1)
	if err != nil {
		t.Fatal(err)
	}
	var answer *eventsv1.SurveyAnswered
	for _, r := range events {
		if a := r.Event.GetSurveyAnswered(); a != nil {
			answer = a
		}
	}
	if answer == nil || answer.GetSatisfaction() != 5 || answer.GetComment() != "很好" {
		t.Fatalf("answer stored: %v", answer)
	}

	// Now answered: the link says so in Chinese, with the switch.
	rec = f.do(http.MethodGet, link, "zh-CN", nil)
	if rec.Code != http.StatusGone {
		t.Fatalf("answered link: HTTP %d", rec.Code)
	}
	pageIn(t, "answered link", rec, "zh-CN", "此调查已关闭", ">English</a>")
	rec = f.do(http.MethodGet, "/survey/c-zh?t=forged&lang=zh", "", nil)
	pageIn(t, "forged link", rec, "zh-CN", "此调查链接无效。")
}
