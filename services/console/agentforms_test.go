package console_test

// The agent's forms on the complaint page (request dispatch, root cause,
// resolve, reassign, put on hold / take off hold) against the real system:
// each succeeds with the person recorded as the actor, and each refusal
// shows routing's error beside its field (or routing's precondition as the
// notice) and appends nothing.

import (
	"cmp"
	"html"
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
)

// desk is a signed-in person's HTTP session with the console (English).
type desk struct {
	t    *testing.T
	url  string
	c    *http.Client
	csrf string
	lang string // Accept-Language: en unless set
}

// untranslated is a message key shown as the text (i18n.go's msg gives the key when it has no message).
var untranslated = regexp.MustCompile(`>\s*(f|opt|act|wo|links|workorders|dispatch|rootcause|resolve|done|err)\.[A-Za-z_.]+\s*<`)

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (s *system) signIn(t *testing.T, token string) *desk {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &desk{t: t, url: s.url, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
	_, body, _ := d.do(http.MethodGet, "/login", nil)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the sign-in page:\n%s", body)
	}
	if code, body, _ := d.do(http.MethodPost, "/login", url.Values{"csrf": {m[1]}, "token": {token}}); code != http.StatusSeeOther {
		t.Fatalf("sign in: %d\n%s", code, body)
	}
	_, body, _ = d.do(http.MethodGet, "/", nil)
	if m = csrfInput.FindStringSubmatch(body); m == nil {
		t.Fatalf("no CSRF token on the queue page:\n%s", body)
	}
	d.csrf = m[1]
	return d
}

// do sends a request (a form when form is not nil); to is where a
// redirect goes.
func (d *desk) do(method, path string, form url.Values) (code int, body, to string) {
	d.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, d.url+path, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	req.Header.Set("Accept-Language", cmp.Or(d.lang, "en"))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := d.c.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		d.t.Fatal(err)
	}
	return resp.StatusCode, html.UnescapeString(string(b)), resp.Header.Get("Location")
}

// page is the complaint page's HTML.
func (d *desk) page(id string) string {
	d.t.Helper()
	code, body, _ := d.do(http.MethodGet, "/complaints/"+id, nil)
	if code != http.StatusOK {
		d.t.Fatalf("complaint page: %d\n%s", code, body)
	}
	return body
}

// act posts an action's form; success redirects to the page with its notice.
func (d *desk) act(id, action string, form url.Values) (int, string) {
	d.t.Helper()
	form.Set("csrf", d.csrf)
	code, body, to := d.do(http.MethodPost, "/complaints/"+id+"/"+action, form)
	if code == http.StatusSeeOther {
		var got int
		if got, body, _ = d.do(http.MethodGet, to, nil); got != http.StatusOK {
			d.t.Fatalf("after %s: %s answers %d\n%s", action, to, got, body)
		}
	}
	return code, body
}

// ok posts a form that must succeed and show its notice.
func (d *desk) ok(id, action string, form url.Values, notice string) string {
	d.t.Helper()
	code, body := d.act(id, action, form)
	if code != http.StatusSeeOther || !strings.Contains(body, notice) {
		d.t.Fatalf("%s: %d, want success with %q\n%s", action, code, notice, body)
	}
	return body
}

// refused posts a form that must be refused with code, showing want
// (routing's message), and appending nothing in the person's name.
func (d *desk) refused(s *system, id, actor, action string, form url.Values, code int, want ...string) string {
	d.t.Helper()
	before := len(s.stream(d.t, id))
	got, body := d.act(id, action, form)
	if got != code {
		d.t.Fatalf("%s: %d, want %d\n%s", action, got, code, body)
	}
	for _, w := range want {
		if !strings.Contains(body, w) {
			d.t.Fatalf("%s refused without %q:\n%s", action, w, body)
		}
	}
	// The SLA clock may append its own events meanwhile: none may be the person's.
	for _, rec := range s.stream(d.t, id)[before:] {
		if rec.Event.GetActor() == actor {
			d.t.Fatalf("a refused %s appended %s", action, rec.Event.GetType())
		}
	}
	return body
}

// lastBy asserts the stream's last event of type typ was recorded as actor's.
func lastBy(t *testing.T, s *system, id, typ, actor string) *eventsv1.Envelope {
	t.Helper()
	var last *eventsv1.Envelope
	for _, rec := range s.stream(t, id) {
		if rec.Event.GetType() == typ {
			last = rec.Event
		}
	}
	if last == nil {
		t.Fatalf("no %s in the stream of %s", typ, id)
	}
	if last.GetActor() != actor {
		t.Fatalf("%s recorded with actor %q, want %q", typ, last.GetActor(), actor)
	}
	return last
}

// submitBilling submits an L1 billing complaint of one customer through the
// hotline (routing gives it to cs-1 in customer service).
func (s *system) submitBilling(t *testing.T, ref string, at time.Time) string {
	t.Helper()
	r, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: ref, ReceivedAt: timestamppb.New(at),
		Customer:    &intakev1.CustomerInput{Name: "李四", Phone: "+86 139-0013-9002", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-445566"},
		Place:       &eventsv1.Place{Region: "east", City: "Shanghai"},
		Description: "发票抬头写错了，请帮忙重新开具发票", CustomerRequest: "重开发票", FirstReceiver: "hotline-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	return r.GetComplaintId()
}

func (s *system) waitOwner(t *testing.T, id, owner string) {
	t.Helper()
	eventually(t, id+" owned by "+owner, func() string {
		if c, ok := s.console.View().Get(id); !ok || c.Owner != owner {
			return "not yet"
		}
		return ""
	})
}

func TestAgentForms(t *testing.T) {
	s := startSystem(t)
	agent := s.signIn(t, tokCS1)
	first := s.submitBilling(t, "HOT-AGENT-0001", start)
	s.waitOwner(t, first, "cs-1")

	// Resolve: a missing field is named beside it; a missing handling step
	// is named by routing's precondition; then it resolves.
	body := agent.refused(s, first, "cs-1", "resolve", url.Values{"resolution_code": {""}, "summary": {"Invoice reissued"}},
		http.StatusBadRequest, `id="resolve-resolution-code-error"`, "must say how it was resolved", "Invoice reissued")
	if !strings.Contains(body, `id="resolve-resolution-code" name="resolution_code" type="text" value="" aria-describedby="resolve-resolution-code-help resolve-resolution-code-error" aria-invalid="true"`) {
		t.Fatalf("the refused field is not marked invalid:\n%s", body)
	}
	agent.refused(s, first, "cs-1", "resolve", url.Values{"resolution_code": {"REISSUED"}, "summary": {"Invoice reissued"}},
		http.StatusConflict, "This cannot be done now: cannot resolve yet under handling rules", "a response to the customer (RecordResponse)")
	agent.ok(first, "respond", url.Values{"channel": {"CHANNEL_PHONE"}, "summary": {"Will reissue the invoice"}}, "Response recorded.")
	body = agent.ok(first, "resolve", url.Values{"resolution_code": {"REISSUED"}, "summary": {"Invoice reissued"}}, "Resolved.")
	lastBy(t, s, first, "ComplaintResolved", "cs-1")
	if strings.Contains(body, `id="resolve-form"`) || strings.Contains(body, `id="hold-form"`) {
		t.Fatal("a resolved complaint still offers resolve or hold")
	}

	// The same customer with the same product again: a repeat of the first.
	second := s.submitBilling(t, "HOT-AGENT-0002", start.Add(time.Minute))
	s.waitOwner(t, second, "cs-1")
	eventually(t, "the repeat flagged", func() string {
		for _, rec := range s.stream(t, second) {
			if rec.Event.GetType() == "RepeatComplaintFlagged" {
				return ""
			}
		}
		return "not yet"
	})
	body = agent.page(second)
	if !strings.Contains(body, `<a href="/complaints/`+first+`">`+first+`</a>`) {
		t.Fatalf("the repeat does not link the earlier complaint %s:\n%s", first, body)
	}
	if !strings.Contains(body, `id="rootcause-form"`) {
		t.Fatal("a repeat without its root cause does not offer the root cause form")
	}
	if strings.Contains(body, `id="reassign-form"`) || strings.Contains(body, `id="unhold-form"`) {
		t.Fatal("an agent is offered reassign, or take off hold on a complaint not on hold")
	}
	// In Chinese every label, option and heading of the forms is translated
	// (a missing message would show its key).
	zh := &desk{t: t, url: agent.url, c: agent.c, csrf: agent.csrf, lang: "zh"}
	page := zh.page(second)
	if k := untranslated.FindString(page); k != "" || !strings.Contains(page, "申请派工") || !strings.Contains(page, "等待配件") {
		t.Fatalf("the Chinese page shows the key %q or lacks the forms' texts:\n%s", k, page)
	}

	// The customer writes in about it too: intake links the report here.
	mail, err := s.intake.SubmitComplaint(s.as(tokMail), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_EMAIL, ChannelRef: "MAIL-AGENT-0003", ReceivedAt: timestamppb.New(start.Add(2 * time.Minute)),
		Customer:    &intakev1.CustomerInput{Name: "李四", Phone: "+86 139-0013-9002", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-445566"},
		Description: "发票抬头又写错了", FirstReceiver: "mailbox",
	})
	if err != nil {
		t.Fatal(err)
	}
	if !mail.GetLinked() || mail.GetComplaintId() != second {
		t.Fatalf("the e-mail was not linked to %s: %v", second, mail)
	}
	if body = agent.page(second); !strings.Contains(body, `<ul id="duplicates"><li>email <code>MAIL-AGENT-0003</code> (2026-11-02 01:02Z)</li></ul>`) {
		t.Fatalf("the page does not list the linked e-mail:\n%s", body)
	}

	// Root cause: every 5W1H part is required.
	rc := url.Values{"what": {"wrong invoice title"}, "why": {""}, "where": {"billing desk"}, "when": {"at checkout"},
		"who": {"order entry"}, "how": {"title checked against the order; entry form fixed"}}
	agent.refused(s, second, "cs-1", "rootcause", rc, http.StatusBadRequest, `id="rootcause-why-error"`, "5W1H needs every part", "wrong invoice title")
	rc.Set("why", "the title field was copied from the previous order")
	body = agent.ok(second, "rootcause", rc, "Root cause recorded.")
	if x := lastBy(t, s, second, "RootCauseRecorded", "cs-1").GetRootCauseRecorded(); x.GetWhy() != rc.Get("why") || x.GetHow() != rc.Get("how") {
		t.Fatalf("root cause recorded as %v", x)
	}
	if strings.Contains(body, `id="rootcause-form"`) {
		t.Fatal("the root cause form is still offered after it was recorded")
	}

	// Request dispatch: a bad work sheet is refused field by field.
	spec := url.Values{"spec.mode": {""}, "spec.service_type": {"SERVICE_TYPE_REPAIR"}, "spec.required_by": {"2026-11-01T10:00"},
		"spec.quantity": {"1"}, "spec.product_line": {"AC-3000"}}
	body = agent.refused(s, second, "cs-1", "dispatch", spec, http.StatusBadRequest,
		`id="dispatch-mode-error"`, "must be on-site or remote", `id="dispatch-required-by-error"`, "must be a time in the future")
	if !strings.Contains(body, `<option value="SERVICE_TYPE_REPAIR" selected>`) {
		t.Fatal("the refused form lost the chosen service type")
	}
	spec.Set("spec.required_by", "2026-11-02 soon")
	agent.refused(s, second, "cs-1", "dispatch", spec, http.StatusBadRequest, `id="dispatch-required-by-error"`, "must be a date and time (UTC)")
	spec.Set("spec.mode", "SERVICE_MODE_ON_SITE")
	spec.Set("spec.required_by", "2026-11-03T18:00")
	body = agent.ok(second, "dispatch", spec, "Dispatch requested.")
	dr := lastBy(t, s, second, "DispatchRequested", "cs-1").GetDispatchRequested()
	if got := dr.GetSpec(); got.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_ON_SITE || got.GetRequiredBy().AsTime() != time.Date(2026, 11, 3, 18, 0, 0, 0, time.UTC) ||
		got.GetEquipmentModel() != "AC-3000" || got.GetRegion() != "east" || got.GetSiteContact() == nil {
		t.Fatalf("work sheet %v: want on site by 18:00 UTC, model, region and contact from the complaint", got)
	}
	if !strings.Contains(body, `<tr data-id="`+dr.GetWorkOrderId()+`">`) || !strings.Contains(body, "on_site") {
		t.Fatalf("the page does not list work order %s:\n%s", dr.GetWorkOrderId(), body)
	}

	// Put on hold (a reason is required), then take off hold.
	agent.refused(s, second, "cs-1", "hold", url.Values{"reason": {""}, "note": {"parts ordered"}}, http.StatusBadRequest,
		`id="hold-reason-error"`, "must be waiting for customer or waiting for parts", "parts ordered")
	body = agent.ok(second, "hold", url.Values{"reason": {"HOLD_REASON_WAITING_FOR_CUSTOMER"}, "note": {"customer abroad"}}, "Put on hold.")
	lastBy(t, s, second, "ComplaintPutOnHold", "cs-1")
	if !strings.Contains(body, `id="unhold-form"`) || strings.Contains(body, `id="hold-form"`) || strings.Contains(body, `id="dispatch-form"`) {
		t.Fatal("on hold, the page should offer take off hold and neither hold nor dispatch")
	}
	if !strings.Contains(body, "On hold: Waiting for the customer: customer abroad") {
		t.Fatalf("the page does not say why it is on hold:\n%s", body)
	}
	// Hidden is not forbidden: routing refuses what the state forbids.
	agent.refused(s, second, "cs-1", "dispatch", spec, http.StatusConflict, "This cannot be done now: complaint is on hold")
	body = agent.ok(second, "unhold", url.Values{}, "Taken off hold.")
	lastBy(t, s, second, "ComplaintTakenOffHold", "cs-1")
	if strings.Contains(body, `id="unhold-form"`) {
		t.Fatal("take off hold is still offered off hold")
	}
	agent.refused(s, second, "cs-1", "unhold", url.Values{}, http.StatusConflict, "complaint is not on hold")

	// Reassign: a manager's form; an agent is refused by routing.
	agent.refused(s, second, "cs-1", "reassign", url.Values{"team": {"technical-support"}, "owner": {"ts-1"}, "reason": {"product fault"}},
		http.StatusForbidden, "You may not do this.")
	lead := s.signIn(t, tokAdmin)
	if !strings.Contains(lead.page(second), `id="reassign-form"`) {
		t.Fatal("a manager is not offered reassign")
	}
	lead.refused(s, second, "admin-1", "reassign", url.Values{"team": {"technical-support"}, "owner": {"ts-1"}, "reason": {" "}}, http.StatusBadRequest,
		`id="reassign-reason-error"`, "a reassignment needs a reason")
	lead.refused(s, second, "admin-1", "reassign", url.Values{"team": {"no-such-team"}, "owner": {""}, "reason": {"product fault"}}, http.StatusNotFound,
		`Not found: team "no-such-team"`)
	lead.ok(second, "reassign", url.Values{"team": {"technical-support"}, "owner": {"ts-1"}, "reason": {"product fault"}}, "Reassigned.")
	if a := lastBy(t, s, second, "ComplaintAssigned", "admin-1").GetComplaintAssigned(); a.GetOwner() != "ts-1" || a.GetPreviousOwner() != "cs-1" {
		t.Fatalf("reassigned to %q from %q", a.GetOwner(), a.GetPreviousOwner())
	}
	s.waitOwner(t, second, "ts-1")
}
