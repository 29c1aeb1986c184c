package console_test

// The team lead's pages against the real system (harness_test.go): the
// clock board on the fake clock, reviews with four eyes, reassignment and
// the roster, as a signed-in person over plain HTTP.

import (
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
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// addLead puts lead-ts on technical-support's roster as its team lead,
// off shift (so routing assigns nothing to them), and waits until the
// console's view knows it.
func (s *system) addLead(t *testing.T) {
	t.Helper()
	if _, err := s.routing.AddTeamMember(s.as(tokAdmin), &routingv1.AddTeamMemberRequest{
		Team: "technical-support", MemberId: "lead-ts", DisplayName: "Lead TS", Role: "team_lead"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "lead-ts on the roster in the view", func() string {
		if len(s.console.View().TeamsOf("lead-ts", "team_lead")) == 0 {
			return "not yet"
		}
		return ""
	})
}

// submitL2 submits a product fault through intake (routing makes it L2,
// technical support, owner ts-1) and waits until the view has it with its
// clocks.
func (s *system) submitL2(t *testing.T, ref string) string {
	t.Helper()
	r, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: ref, ReceivedAt: timestamppb.New(s.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "李四", Phone: "+86 139-0000-0002", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-" + ref, PurchaseDate: "2026-03-01"},
		Place:       &eventsv1.Place{Region: "east", City: "Shanghai"},
		Description: "空调开机十分钟后自动关机，现在无法开机", CustomerRequest: "上门维修", FirstReceiver: "hotline-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetComplaintId()
	eventually(t, "assigned to ts-1 with clocks in the view", func() string {
		if c, ok := s.console.View().Get(id); !ok || c.Owner != "ts-1" || c.Team != "technical-support" || len(c.Clocks) < 2 {
			return fmt.Sprintf("%+v", c)
		}
		return ""
	})
	return id
}

// person is a signed-in browser without a browser: a cookie jar and the
// session's CSRF token, read from the last page.
type person struct {
	t    *testing.T
	url  string
	http *http.Client
	csrf string
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func signIn(t *testing.T, s *system, token string) *person {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &person{t: t, url: s.url, http: &http.Client{Jar: jar}}
	_, body := p.get("/login")
	if _, body = p.post("/login", url.Values{"token": {token}}, csrfOf(t, body)); !strings.Contains(body, `id="user"`) {
		t.Fatalf("sign-in failed:\n%s", body)
	}
	return p
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	return m[1]
}

func (p *person) do(req *http.Request) (int, string) {
	p.t.Helper()
	req.Header.Set("Accept-Language", "en")
	resp, err := p.http.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	if m := csrfRe.FindSubmatch(b); m != nil {
		p.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

func (p *person) get(path string) (int, string) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.url+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.do(req)
}

// post sends a form with csrf (the session's when empty).
func (p *person) post(path string, form url.Values, csrf string) (int, string) {
	p.t.Helper()
	if csrf == "" {
		csrf = p.csrf
	}
	form.Set("csrf", csrf)
	req, err := http.NewRequest(http.MethodPost, p.url+path, strings.NewReader(form.Encode()))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return p.do(req)
}

// part is the element of the page opened by the first occurrence of open,
// up to the next close.
func part(t *testing.T, body, open, close string) string {
	t.Helper()
	i := strings.Index(body, open)
	if i < 0 {
		t.Fatalf("the page has no %s:\n%s", open, body)
	}
	j := strings.Index(body[i:], close)
	if j < 0 {
		j = len(body) - i
	}
	return body[i : i+j]
}

// bandsOf says which board bands list complaint id.
func bandsOf(t *testing.T, body, id string) []string {
	t.Helper()
	var in []string
	for _, b := range []string{"breached", "90", "75", "50"} {
		if strings.Contains(part(t, body, `<section id="band-`+b+`"`, "</section>"), `data-id="`+id+`"`) {
			in = append(in, b)
		}
	}
	return in
}

func reviews(t *testing.T, s *system, id string) []*eventsv1.SolutionReviewed {
	t.Helper()
	var out []*eventsv1.SolutionReviewed
	for _, rec := range s.stream(t, id) {
		if r := rec.Event.GetSolutionReviewed(); r != nil {
			out = append(out, r)
		}
	}
	return out
}

func TestTeamLeadBoardReviewsAndRoster(t *testing.T) {
	s := startSystem(t)
	s.addLead(t)
	a := s.submitL2(t, "HOT-TEAM-0001")
	lead := signIn(t, s, tokLead)

	// An agent may not open the team page.
	agent := signIn(t, s, tokTS1)
	if code, body := agent.get("/team"); code != http.StatusForbidden || strings.Contains(body, `id="team-name"`) {
		t.Fatalf("an agent's /team: %d", code)
	}
	if _, body := agent.get("/"); strings.Contains(body, `href="/team"`) {
		t.Fatal("an agent's nav links to the team page")
	}

	// The board: first response (24 h) and resolution (48 h), grouped by
	// the share of their time used, as the SLA clock warns on the fake clock.
	code, body := lead.get("/team")
	if code != http.StatusOK || !strings.Contains(body, `<span id="team-name">technical-support</span>`) {
		t.Fatalf("the lead's /team: %d\n%s", code, body)
	}
	if !strings.Contains(body, `id="nav-team"`) {
		t.Fatal("the lead's nav has no team link")
	}
	if !strings.Contains(part(t, body, `<table id="team-queue"`, "</table>"), `data-id="`+a+`"`) {
		t.Fatal("the team queue lacks the complaint")
	}
	if in := bandsOf(t, body, a); len(in) != 0 {
		t.Fatalf("a fresh complaint on the board: %v", in)
	}
	for _, step := range []struct {
		advance time.Duration
		warned  uint32 // the first-response clock's warning to wait for
		want    []string
	}{
		{13 * time.Hour, 50, []string{"50"}},           // 13 of 24 h
		{6 * time.Hour, 75, []string{"75"}},            // 19 h
		{3 * time.Hour, 90, []string{"90"}},            // 22 h
		{3 * time.Hour, 0, []string{"breached", "50"}}, // 25 h: breached; resolution 25 of 48 h
	} {
		s.clk.Advance(step.advance)
		eventually(t, "the clock's warning in the view", func() string {
			c, _ := s.console.View().Get(a)
			for _, k := range c.Clocks {
				if k.Target == eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE && (k.Warned == step.warned && !k.Breached || step.warned == 0 && k.Breached) {
					if step.warned == 0 && !slicesHasWarned(c.Clocks, eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, 50) {
						return "resolution not warned yet"
					}
					return ""
				}
			}
			return fmt.Sprintf("clocks %+v", c.Clocks)
		})
		lead = signIn(t, s, tokLead) // the session idled out on the fake clock
		_, body = lead.get("/team")
		if in := bandsOf(t, body, a); strings.Join(in, ",") != strings.Join(step.want, ",") {
			t.Fatalf("after %v more: bands %v, want %v", step.advance, in, step.want)
		}
	}
	eventually(t, "escalated on the breach", func() string {
		if c, _ := s.console.View().Get(a); !c.Escalated() {
			return fmt.Sprintf("escalation %v", c.Escalation)
		}
		return ""
	})
	_, body = lead.get("/team")
	if !strings.Contains(part(t, body, `<table id="escalated"`, "</table>"), `data-id="`+a+`"`) {
		t.Fatal("the breached complaint (escalated to the team lead) is not under escalated")
	}

	// ts-1 proposes a solution: it waits for the lead's supervisor review.
	if _, err := s.routing.ProposeSolution(s.as(tokTS1), &routingv1.ProposeSolutionRequest{ComplaintId: a, Summary: "Replace the compressor relay"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the proposal in the view", func() string {
		if c, _ := s.console.View().Get(a); !c.AwaitingReview() {
			return "not yet"
		}
		return ""
	})
	_, body = lead.get("/team")
	item := part(t, body, `<li data-id="`+a+`" class="review-item"`, "</li>")
	if !strings.Contains(item, `<dd class="proposer">ts-1</dd>`) || !strings.Contains(item, "Replace the compressor relay") ||
		!strings.Contains(item, `value="approve"`) {
		t.Fatalf("the review waiting for the lead:\n%s", item)
	}
	sol := regexp.MustCompile(`name="solution" value="([^"]+)"`).FindStringSubmatch(item)[1]
	// A rejection needs a comment: routing's error beside the field, nothing logged.
	code, body = lead.post("/team/review", url.Values{"team": {"technical-support"}, "complaint": {a}, "solution": {sol},
		"level": {"REVIEW_LEVEL_SUPERVISOR"}, "verdict": {"reject"}}, "")
	if code != http.StatusBadRequest || !strings.Contains(body, `id="comment-`+a+`-error"`) || len(reviews(t, s, a)) != 0 {
		t.Fatalf("a rejection without a comment: %d, %d reviews\n%s", code, len(reviews(t, s, a)), body)
	}
	// The lead approves it: SolutionReviewed by lead-ts.
	code, body = lead.post("/team/review", url.Values{"team": {"technical-support"}, "complaint": {a}, "solution": {sol},
		"level": {"REVIEW_LEVEL_SUPERVISOR"}, "verdict": {"approve"}, "comment": {"ok"}}, "")
	if code != http.StatusOK || !strings.Contains(body, "Solution approved.") {
		t.Fatalf("approve: %d\n%s", code, body)
	}
	if row := part(t, body, `<tr data-id="`+a+`"`, "</tr>"); !strings.Contains(row, `<td data-label="Solution review" class="review">approved</td>`) {
		t.Fatalf("the queue row after approval:\n%s", row)
	}
	if strings.Contains(body, `<li data-id="`+a+`" class="review-item"`) {
		t.Fatal("the approved solution still waits for review")
	}
	rs := reviews(t, s, a)
	if len(rs) != 1 || !rs[0].GetApproved() || rs[0].GetReviewedBy() != "lead-ts" || rs[0].GetLevel() != eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR {
		t.Fatalf("reviews logged: %v", rs)
	}
	for _, rec := range s.stream(t, a) {
		if rec.Event.GetSolutionReviewed() != nil && rec.Event.GetActor() != "lead-ts" {
			t.Fatalf("SolutionReviewed logged with actor %q", rec.Event.GetActor())
		}
	}

	// The lead proposes for the owner: shown, with no approve button; a
	// forged approval (a valid session and token) is refused by routing
	// (four eyes) and logs nothing.
	b := s.submitL2(t, "HOT-TEAM-0002")
	if _, err := s.routing.ProposeSolution(s.as(tokLead), &routingv1.ProposeSolutionRequest{ComplaintId: b, Summary: "Swap the unit"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lead's proposal in the view", func() string {
		if c, _ := s.console.View().Get(b); !c.AwaitingReview() {
			return "not yet"
		}
		return ""
	})
	_, body = lead.get("/team")
	item = part(t, body, `<li data-id="`+b+`" class="review-item"`, "</li>")
	if strings.Contains(item, `value="approve"`) || strings.Contains(item, "<form") || !strings.Contains(item, "You proposed this solution") {
		t.Fatalf("the lead's own proposal:\n%s", item)
	}
	c, _ := s.console.View().Get(b)
	code, body = lead.post("/team/review", url.Values{"team": {"technical-support"}, "complaint": {b}, "solution": {c.Solution.ID},
		"level": {"REVIEW_LEVEL_SUPERVISOR"}, "verdict": {"approve"}}, "")
	if code != http.StatusConflict || !strings.Contains(body, "four eyes") || !strings.Contains(body, "lead-ts proposed this solution and may not review it") {
		t.Fatalf("a forged approval of one's own proposal: %d\n%s", code, body)
	}
	if rs := reviews(t, s, b); len(rs) != 0 {
		t.Fatalf("a refused approval logged %v", rs)
	}

	// Reassignment: a reason is required (beside its field, nothing
	// changes); with one, the complaint moves to the lead.
	code, body = lead.post("/team/reassign", url.Values{"team": {"technical-support"}, "complaint": {b}, "owner": {"lead-ts"}}, "")
	if code != http.StatusBadRequest || !strings.Contains(body, `id="reassign-reason-error"`) {
		t.Fatalf("a reassignment without a reason: %d\n%s", code, body)
	}
	if c, _ := s.console.View().Get(b); c.Owner != "ts-1" {
		t.Fatalf("a refused reassignment moved it to %s", c.Owner)
	}
	code, body = lead.post("/team/reassign", url.Values{"team": {"technical-support"}, "complaint": {b}, "owner": {"lead-ts"}, "reason": {"ts-1 on leave"}}, "")
	if code != http.StatusOK || !strings.Contains(body, "Complaint reassigned.") {
		t.Fatalf("reassign: %d\n%s", code, body)
	}
	if row := part(t, body, `<tr data-id="`+b+`"`, "</tr>"); !strings.Contains(row, `class="owner">lead-ts</td>`) {
		t.Fatalf("the queue row after reassigning:\n%s", row)
	}
	// Another team's complaint cannot be moved from this team's page.
	code, _ = lead.post("/team/reassign", url.Values{"team": {"customer-service"}, "complaint": {b}, "owner": {"cs-1"}, "reason": {"x"}}, "")
	if code != http.StatusForbidden {
		t.Fatalf("reassign from a team the lead is not on: %d", code)
	}

	// The roster: members with role, skills and shift; off and on shift;
	// a bad role is named beside its field; a new member is added.
	code, body = lead.get("/team/roster")
	row := part(t, body, `<tr data-id="ts-1"`, "</tr>")
	if code != http.StatusOK || !strings.Contains(row, `class="role">agent</td>`) || !strings.Contains(row, `class="skills">product</td>`) ||
		!strings.Contains(row, `<span class="shift">on shift</span>`) {
		t.Fatalf("roster: %d\n%s", code, row)
	}
	_, body = lead.post("/team/roster/shift", url.Values{"team": {"technical-support"}, "member_id": {"ts-1"}, "on_shift": {"0"}}, "")
	if row := part(t, body, `<tr data-id="ts-1"`, "</tr>"); !strings.Contains(body, "Shift updated.") || !strings.Contains(row, "off shift") ||
		!strings.Contains(row, `class="skills">product</td>`) {
		t.Fatalf("off shift (skills kept):\n%s", row)
	}
	code, body = lead.post("/team/roster/member", url.Values{"team": {"technical-support"}, "member_id": {"ts-2"}, "skills": {"product, service"}, "role": {"boss"}}, "")
	if code != http.StatusBadRequest || !strings.Contains(part(t, body, `id="member-role-error"`, "</p>"), "unknown role") ||
		!strings.Contains(body, `id="member-id" name="member_id" value="ts-2"`) {
		t.Fatalf("a bad role: %d\n%s", code, body)
	}
	_, body = lead.post("/team/roster/member", url.Values{"team": {"technical-support"}, "member_id": {"ts-2"}, "display_name": {"Wang Fang"},
		"skills": {"product, service"}, "role": {"agent"}, "on_shift": {"1"}}, "")
	if row := part(t, body, `<tr data-id="ts-2"`, "</tr>"); !strings.Contains(row, "Wang Fang") || !strings.Contains(row, `class="skills">product, service</td>`) ||
		!strings.Contains(row, `<span class="shift">on shift</span>`) {
		t.Fatalf("the added member:\n%s", row)
	}
	// A roster change without the session's CSRF token changes nothing.
	if code, _ := lead.post("/team/roster/shift", url.Values{"team": {"technical-support"}, "member_id": {"ts-2"}, "on_shift": {"0"}}, "forged"); code != http.StatusForbidden {
		t.Fatalf("a forged roster change: %d", code)
	}
	if _, body = lead.get("/team/roster"); !strings.Contains(part(t, body, `<tr data-id="ts-2"`, "</tr>"), `<span class="shift">on shift</span>`) {
		t.Fatal("a forged roster change took effect")
	}
}

func slicesHasWarned(ks []view.Clock, target eventsv1.SlaTarget, pct uint32) bool {
	for _, k := range ks {
		if k.Target == target && k.Warned >= pct {
			return true
		}
	}
	return false
}
