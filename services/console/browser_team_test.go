package console_test

// The team lead in a real headless Chromium (browser_test.go's helpers):
// an agent's proposal waits for the lead's review and is approved from
// the team page; the lead's own proposal is shown without an approve
// button (four eyes).

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

func TestTeamLeadReviewsInTheBrowser(t *testing.T) {
	s := startSystem(t)
	s.addLead(t)
	a := s.submitL2(t, "HOT-TEAM-B001")
	b := s.submitL2(t, "HOT-TEAM-B002")
	if _, err := s.routing.ProposeSolution(s.as(tokTS1), &routingv1.ProposeSolutionRequest{ComplaintId: a, Summary: "Replace the compressor relay"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent's proposal in the view", func() string {
		if c, _ := s.console.View().Get(a); !c.AwaitingReview() {
			return "not yet"
		}
		return ""
	})
	// 19 hours on, the first-response clocks have used 75 % of their time:
	// the board shows them.
	s.clk.Advance(19 * time.Hour)
	eventually(t, "the 75 % warnings in the view", func() string {
		if p := s.console.View().Find(view.Query{Team: "technical-support", MinWarned: 75}); p.Total != 2 {
			return fmt.Sprintf("%d of 2 warned at 75 %%", p.Total)
		}
		return ""
	})

	ctx := browser(t, s.ctx)
	run(t, ctx, "sign in as the team lead (English)",
		chromedp.Navigate(s.url+"/lang?to=en&back=/login"), chromedp.WaitVisible(chromedp.ID("#token")),
		chromedp.SendKeys(chromedp.ID("#token"), tokLead), chromedp.Click(chromedp.ID("#signin")),
		chromedp.WaitVisible(chromedp.ID("#user")))
	run(t, ctx, "open the team page from the nav",
		chromedp.Click(chromedp.ID("#nav-team")), chromedp.WaitVisible(chromedp.ID("#reviews")))
	waitText(t, ctx, "#team-name", "technical-support")
	item := `#reviews li[data-id="` + a + `"]`
	if p := text(t, ctx, item+" .proposer"); p != "ts-1" {
		t.Fatalf("proposer %q, want ts-1", p)
	}
	waitText(t, ctx, item+" .summary", "Replace the compressor relay")

	run(t, ctx, "approve the agent's proposal",
		chromedp.SendKeys(chromedp.CSS(item+" textarea"), "Relay swap is the known fix"),
		chromedp.Click(chromedp.CSS(item+" button.approve")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "Solution approved.")
	waitText(t, ctx, `#team-queue tr[data-id="`+a+`"] td.review`, "approved")
	var reviewedBy string
	for _, rec := range s.stream(t, a) {
		if r := rec.Event.GetSolutionReviewed(); r != nil && r.GetApproved() && rec.Event.GetActor() == "lead-ts" {
			reviewedBy = r.GetReviewedBy()
		}
	}
	if reviewedBy != "lead-ts" {
		t.Fatal("no approval by lead-ts in the log")
	}

	// The lead proposes a solution for the owner from the complaint page:
	// on the team page it waits for someone else, with no approve button.
	run(t, ctx, "propose as the lead",
		chromedp.Navigate(s.url+"/complaints/"+b), chromedp.WaitVisible(chromedp.ID("#propose-summary")),
		chromedp.SendKeys(chromedp.ID("#propose-summary"), "Swap the unit"),
		chromedp.Click(chromedp.ID("#propose")), chromedp.WaitVisible(chromedp.ID("#notice")))
	waitText(t, ctx, "#notice", "Solution proposed.")
	eventually(t, "the lead's proposal in the view", func() string {
		if c, _ := s.console.View().Get(b); !c.AwaitingReview() {
			return "not yet"
		}
		return ""
	})
	own := `#reviews li[data-id="` + b + `"]`
	run(t, ctx, "back to the team page",
		chromedp.Navigate(s.url+"/team"), chromedp.WaitVisible(chromedp.CSS(own)))
	waitText(t, ctx, own+" .own", "You proposed this solution")
	buttons, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('`+own+` button, `+own+` form').length`))
	if err != nil {
		t.Fatal(err)
	}
	if buttons != 0 {
		t.Fatalf("the lead's own proposal offers %d buttons or forms", buttons)
	}
	if band := text(t, ctx, "#band-75"); !strings.Contains(band, a) || !strings.Contains(band, b) {
		t.Fatalf("the board's 75 %% band:\n%s", band)
	}
	screenshot(t, ctx, "team")
	run(t, ctx, "open the roster",
		chromedp.Click(chromedp.ID("#roster-link")), chromedp.WaitVisible(chromedp.ID("#roster")))
	waitText(t, ctx, `#roster tr[data-id="lead-ts"] .role`, "team_lead")
	screenshot(t, ctx, "roster")
}
