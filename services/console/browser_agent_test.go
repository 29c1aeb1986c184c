package console_test

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// An agent works a repeat complaint in a real Chromium: requests a
// dispatch with a bad work sheet (routing's errors beside the fields),
// then a good one; records the root cause the repeat needs; puts it on
// hold and takes it off hold.
func TestAgentFormsInTheBrowser(t *testing.T) {
	s := startSystem(t)
	// A first complaint of the customer, answered and resolved: the next
	// one of the same product is a repeat of it.
	first := s.submitBilling(t, "HOT-AGENT-B001", start)
	s.waitOwner(t, first, "cs-1")
	if _, err := s.routing.RecordResponse(s.as(tokCS1), &routingv1.RecordResponseRequest{ComplaintId: first,
		Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "Will reissue the invoice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.routing.Resolve(s.as(tokCS1), &routingv1.ResolveRequest{ComplaintId: first, ResolutionCode: "REISSUED", Summary: "Invoice reissued"}); err != nil {
		t.Fatal(err)
	}
	id := s.submitBilling(t, "HOT-AGENT-B002", start)
	s.waitOwner(t, id, "cs-1")

	ctx := browser(t, s.ctx)
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Accept-Language": "en"}}); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "sign in",
		chromedp.Navigate(s.url+"/login"), chromedp.WaitVisible(chromedp.ID("#token")),
		chromedp.SendKeys(chromedp.ID("#token"), tokCS1), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#queue")))
	run(t, ctx, "open the repeat",
		chromedp.Navigate(s.url+"/complaints/"+id), chromedp.WaitVisible(chromedp.ID("#repeat")))
	waitText(t, ctx, "#repeat", "A repeat of the earlier complaints: "+first)
	waitText(t, ctx, "#no-work-orders", "none")
	screenshot(t, ctx, "complaint-agent-forms")

	// A work sheet without a mode and due in the past: both errors beside
	// their fields, what was chosen kept, nothing logged.
	before := len(s.stream(t, id))
	run(t, ctx, "request dispatch with a bad work sheet",
		chromedp.SetValue(chromedp.ID("#dispatch-service-type"), "SERVICE_TYPE_REPAIR"),
		chromedp.SetValue(chromedp.ID("#dispatch-required-by"), "2026-11-01T10:00"),
		chromedp.SendKeys(chromedp.ID("#dispatch-product-line"), "AC-3000"),
		chromedp.Click(chromedp.ID("#dispatch")), chromedp.WaitVisible(chromedp.ID("#dispatch-mode-error")))
	waitText(t, ctx, "#dispatch-mode-error", "must be on-site or remote")
	waitText(t, ctx, "#dispatch-required-by-error", "must be a time in the future")
	waitText(t, ctx, "#notice", "Please correct the fields marked below.")
	if v, err := chromedp.Run(ctx, chromedp.Value(chromedp.ID("#dispatch-service-type"))); err != nil || v != "SERVICE_TYPE_REPAIR" {
		t.Fatalf("service type after the refusal %q (%v)", v, err)
	}
	for _, rec := range s.stream(t, id)[before:] {
		if rec.Event.GetActor() == "cs-1" {
			t.Fatalf("a refused dispatch appended %s", rec.Event.GetType())
		}
	}
	screenshot(t, ctx, "complaint-dispatch-error")
	run(t, ctx, "request dispatch",
		chromedp.SetValue(chromedp.ID("#dispatch-mode"), "SERVICE_MODE_ON_SITE"),
		chromedp.SetValue(chromedp.ID("#dispatch-required-by"), "2026-11-03T18:00"),
		chromedp.Click(chromedp.ID("#dispatch")), chromedp.WaitVisible(chromedp.ID("#work-orders")))
	waitText(t, ctx, "#notice", "Dispatch requested.")
	waitText(t, ctx, "#status", "dispatched")
	wo := lastBy(t, s, id, "DispatchRequested", "cs-1").GetDispatchRequested().GetWorkOrderId()
	if row := waitText(t, ctx, "#work-orders tbody", wo); !strings.Contains(row, "on_site") || !strings.Contains(row, "repair") || !strings.Contains(row, "2026-11-03 18:00Z") {
		t.Fatalf("work order row %q", row)
	}

	// The root cause, every part of 5W1H; then the form is no longer offered.
	run(t, ctx, "record the root cause",
		chromedp.SendKeys(chromedp.ID("#rootcause-what"), "wrong invoice title"),
		chromedp.SendKeys(chromedp.ID("#rootcause-why"), "the title was copied from the previous order"),
		chromedp.SendKeys(chromedp.ID("#rootcause-where"), "billing desk"),
		chromedp.SendKeys(chromedp.ID("#rootcause-when"), "at checkout"),
		chromedp.SendKeys(chromedp.ID("#rootcause-who"), "order entry"),
		chromedp.SendKeys(chromedp.ID("#rootcause-how"), "title checked against the order"),
		chromedp.Click(chromedp.ID("#rootcause")), chromedp.WaitNotPresent(chromedp.ID("#rootcause-form")))
	waitText(t, ctx, "#notice", "Root cause recorded.")
	waitText(t, ctx, "#timeline", "RootCauseRecorded by cs-1")

	// On hold and off again: each offers only the other.
	run(t, ctx, "put on hold",
		chromedp.SetValue(chromedp.ID("#hold-reason"), "HOLD_REASON_WAITING_FOR_PARTS"),
		chromedp.SendKeys(chromedp.ID("#hold-note"), "relay on order"),
		chromedp.Click(chromedp.ID("#hold")), chromedp.WaitVisible(chromedp.ID("#unhold")))
	waitText(t, ctx, "#notice", "Put on hold.")
	waitText(t, ctx, "#status", "on hold")
	waitText(t, ctx, "#hold-info", "On hold: Waiting for parts: relay on order")
	waitText(t, ctx, "#timeline", "ComplaintPutOnHold by cs-1")
	run(t, ctx, "take off hold",
		chromedp.Click(chromedp.ID("#unhold")), chromedp.WaitVisible(chromedp.ID("#hold")))
	waitText(t, ctx, "#notice", "Taken off hold.")
	waitText(t, ctx, "#status", "dispatched")
	waitText(t, ctx, "#timeline", "ComplaintTakenOffHold by cs-1")
	for typ, want := range map[string]string{"RootCauseRecorded": "cs-1", "ComplaintPutOnHold": "cs-1", "ComplaintTakenOffHold": "cs-1"} {
		lastBy(t, s, id, typ, want)
	}
}
