package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// TestE2EDuplicateVsRepeat: the same customer reporting the same fault on
// the same unit again is a duplicate of the first complaint while that one
// is open (intake links it, routing sees no new complaint), and a repeat
// once it was resolved or closed (a complaint of its own that routing
// flags, raises one priority step, escalates and refuses to resolve
// without a 5W1H root cause) — the third report too. Another product is
// neither. All within intake's 72 h duplicate window, through the gRPC
// faces of the whole running system.
func TestE2EDuplicateVsRepeat(t *testing.T) {
	e := startE2E(t)
	e.setUp(t)

	for i, tc := range []struct {
		name string
		// before is what happens to each earlier complaint before the next
		// report: "" (left open), "resolved", "closed".
		before []string
		// otherUnit: the last report is about another product.
		otherUnit bool
		want      string // "duplicate", "repeat", "neither"
	}{
		{name: "FirstOpenDuplicate", before: []string{""}, want: "duplicate"},
		{name: "FirstResolvedRepeat", before: []string{"resolved"}, want: "repeat"},
		{name: "FirstClosedRepeat", before: []string{"closed"}, want: "repeat"},
		{name: "ThirdReportAfterTwoRepeat", before: []string{"resolved", "resolved"}, want: "repeat"},
		{name: "OtherProductNeither", before: []string{""}, otherUnit: true, want: "neither"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A customer of its own per case, reporting the same fault on
			// the same washing machine, alternately by phone and by email.
			phone := fmt.Sprintf("+86 131-0000-%04d", i+1)
			report := func(n int) (string, *intakev1.SubmitComplaintRequest) {
				req := &intakev1.SubmitComplaintRequest{
					Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: fmt.Sprintf("HOT-DR-%d-%d", i, n), ReceivedAt: ts(e.clk.Now()),
					Customer:    &intakev1.CustomerInput{Name: "孙八", Phone: phone},
					Product:     &eventsv1.Product{Model: "WM-9KG", SerialNumber: fmt.Sprintf("SN-WM-DR-%d", i)},
					Description: "洗衣机脱水时噪音很大，机身晃动", FirstReceiver: "hotline-7",
				}
				tok := tokHotline
				if n%2 == 1 {
					req.Channel, req.ChannelRef, tok = eventsv1.Channel_CHANNEL_EMAIL, fmt.Sprintf("<dr-%d-%d@mail.example>", i, n), tokMail
				}
				return tok, req
			}
			var earlier []string
			var first *routingv1.Complaint
			for n, then := range tc.before {
				tok, req := report(n)
				id := e.submit(t, tok, req)
				c := e.routed(t, id)
				if n == 0 {
					first = c
				} else if !c.GetRepeat() {
					t.Fatalf("report %d after %v: not flagged as a repeat: %v", n+1, tc.before[:n], c)
				}
				switch then {
				case "resolved":
					e.resolveE2E(t, c)
				case "closed":
					e.resolveE2E(t, c)
					e.closeSatisfied(t, id)
				}
				earlier = append(earlier, id)
			}

			tok, req := report(len(tc.before))
			if tc.otherUnit {
				req.Product = &eventsv1.Product{Model: "RF-300", SerialNumber: fmt.Sprintf("SN-RF-DR-%d", i)}
				req.Description = "冰箱冷藏室不制冷"
			}
			r, err := e.intake.SubmitComplaint(e.as(tok), req)
			if err != nil {
				t.Fatalf("last report: %v", err)
			}
			if tc.want == "duplicate" {
				if !r.GetLinked() || r.GetCreated() || r.GetComplaintId() != earlier[0] {
					t.Fatalf("last report: %v, want linked to %s", r, earlier[0])
				}
				// Routing still sees the one complaint, not a repeat of it.
				if c := e.routed(t, earlier[0]); c.GetRepeat() {
					t.Fatalf("the first complaint is flagged a repeat: %v", c)
				}
				return
			}
			if r.GetLinked() || !r.GetCreated() || slices.Contains(earlier, r.GetComplaintId()) {
				t.Fatalf("last report: %v, want a complaint of its own (earlier: %v)", r, earlier)
			}
			c := e.routed(t, r.GetComplaintId())
			if tc.want == "neither" {
				if c.GetRepeat() || len(c.GetEarlierComplaintIds()) > 0 || c.GetRootCauseRequired() {
					t.Fatalf("another product: %v, want no repeat", c)
				}
				return
			}
			// A repeat: flagged with every earlier complaint, one priority
			// step above the first, escalated, root cause required. The flag
			// is decided with the assignment, but the log may store that
			// append in parts and routing's retry finishes it.
			e.eventually(t, "routing flags the repeat", func() error {
				r, err := e.routing.GetComplaint(e.as(tokSupport), &routingv1.GetComplaintRequest{ComplaintId: c.GetComplaintId()})
				if err != nil {
					return err
				}
				if c = r.GetComplaint(); !c.GetRepeat() || !slices.Equal(c.GetEarlierComplaintIds(), earlier) {
					return fmt.Errorf("repeat: %v, want flagged with earlier %v", c, earlier)
				}
				return nil
			})
			if first.GetPriority() < eventsv1.Priority_PRIORITY_URGENT && c.GetPriority() != first.GetPriority()+1 {
				t.Fatalf("repeat priority %v, first's %v: want one step up", c.GetPriority(), first.GetPriority())
			}
			// The escalation is decided with the assignment, but the log may
			// store that append in parts (another service appending in
			// between) and routing's retry finishes it.
			e.eventually(t, "routing escalates the repeat", func() error {
				r, err := e.routing.GetComplaint(e.as(tokSupport), &routingv1.GetComplaintRequest{ComplaintId: c.GetComplaintId()})
				if err != nil {
					return err
				}
				if c = r.GetComplaint(); c.GetEscalationLevel() < eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD {
					return fmt.Errorf("escalation level %v, want at least the team lead", c.GetEscalationLevel())
				}
				return nil
			})
			if !c.GetRootCauseRequired() || c.GetRootCauseRecorded() {
				t.Fatalf("repeat: %v, want root cause required and not recorded", c)
			}
			e.resolveE2E(t, c)
		})
	}

	// Follow-up's KPIs read the same meanings: a duplicate is no complaint
	// received, a repeat is one received and one repeat. The cases made
	// 1+2+2+3+2 complaints, of which 1+1+2 repeats.
	kpis := e.kpis(t)
	e.eventually(t, "KPIs count complaints and repeats", func() error {
		r, err := kpis.QueryKpis(e.as(tokSupport), &followupv1.QueryKpisRequest{Group: followupv1.KpiGroup_KPI_GROUP_ALL, Period: followupv1.KpiPeriod_KPI_PERIOD_ALL})
		if err != nil {
			return err
		}
		if rows := r.GetRows(); len(rows) != 1 || rows[0].GetReceived() != 10 || rows[0].GetRepeats() != 4 {
			return fmt.Errorf("KPI rows %v, want one with 10 received, 4 repeats", rows)
		}
		return nil
	})
}

// routed waits until routing has classified and assigned a complaint, and
// returns routing's state of it.
func (e *e2e) routed(t *testing.T, id string) *routingv1.Complaint {
	t.Helper()
	var c *routingv1.Complaint
	e.eventually(t, "routing assigns "+id, func() error {
		r, err := e.routing.GetComplaint(e.as(tokSupport), &routingv1.GetComplaintRequest{ComplaintId: id})
		if err != nil {
			return err
		}
		if c = r.GetComplaint(); c.GetOwner() == "" {
			return fmt.Errorf("not assigned yet: %v", c)
		}
		return nil
	})
	return c
}

// ownerTokens and leadTokens are the callers acting for setUp's on-shift
// owners and their teams' leads (the supervisors who review).
var (
	ownerTokens = map[string]string{"cs-1": tokCS1, "ts-1": tokTS1, "er-1": tokER1}
	leadTokens  = map[string]string{"customer-service": tokCSLead, "technical-support": tokTSLead}
)

// resolveE2E resolves a complaint as its owner after responding: a repeat is refused until
// its root cause is recorded, a solution gets the reviews the severity
// needs (a supervisor's for L2 at most, here).
func (e *e2e) resolveE2E(t *testing.T, c *routingv1.Complaint) {
	t.Helper()
	id, owner := c.GetComplaintId(), ownerTokens[c.GetOwner()]
	if owner == "" {
		t.Fatalf("no token for owner %q", c.GetOwner())
	}
	resolve := &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "REPAIRED", Summary: "drum bearing replaced"}
	// The handling rules: no resolution without a response to the customer.
	if _, err := e.routing.RecordResponse(e.as(owner), &routingv1.RecordResponseRequest{
		ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called back: a technician will replace the bearing",
	}); err != nil {
		t.Fatalf("record the response: %v", err)
	}
	if c.GetRootCauseRequired() {
		_, err := e.routing.Resolve(e.as(owner), resolve)
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "root cause") {
			t.Fatalf("resolve a repeat without a root cause: %v, want FAILED_PRECONDITION naming the root cause", err)
		}
		if _, err := e.routing.RecordRootCause(e.as(owner), &routingv1.RecordRootCauseRequest{
			ComplaintId: id, What: "drum noise", Why: "worn bearing batch", Where: "drum", When: "spin cycle", Who: "supplier", How: "bearing replaced, batch recalled",
		}); err != nil {
			t.Fatalf("record the root cause: %v", err)
		}
	}
	if c.GetSeverity() >= eventsv1.Severity_SEVERITY_L2 {
		p, err := e.routing.ProposeSolution(e.as(owner), &routingv1.ProposeSolutionRequest{ComplaintId: id, Summary: "replace the drum bearing"})
		if err != nil {
			t.Fatalf("propose: %v", err)
		}
		if _, err := e.routing.ReviewSolution(e.as(leadTokens[c.GetTeam()]), &routingv1.ReviewSolutionRequest{
			ComplaintId: id, SolutionId: p.GetSolutionId(), Level: eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, Approved: true, Comment: "ok",
		}); err != nil {
			t.Fatalf("review: %v", err)
		}
	}
	if _, err := e.routing.Resolve(e.as(owner), resolve); err != nil {
		t.Fatalf("resolve %s: %v", id, err)
	}
	// Intake reads the resolution from the complaint's stream: it is
	// there once Resolve answered.
}

// closeSatisfied answers a resolved complaint's survey by phone, satisfied:
// follow-up closes it.
func (e *e2e) closeSatisfied(t *testing.T, id string) {
	t.Helper()
	var survey string
	e.eventually(t, "follow-up sends the survey of "+id, func() error {
		r, err := e.followup.GetFollowUp(e.as(tokCS1), &followupv1.GetFollowUpRequest{ComplaintId: id})
		if err != nil {
			return err
		}
		if survey = r.GetSurveyId(); survey == "" {
			return fmt.Errorf("no survey yet")
		}
		return nil
	})
	r, err := e.followup.RecordSurveyAnswer(e.as(tokCS1), &followupv1.RecordSurveyAnswerRequest{ComplaintId: id, SurveyId: survey, Satisfaction: 5, Resolved: true, RecordedBy: "cs-1"})
	if err != nil || r.GetOutcome() != followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_SATISFIED {
		t.Fatalf("survey answer: %v %v", r, err)
	}
}

// kpis is a client of follow-up's KpiService (served beside the follow-up
// API on the same gRPC address).
func (e *e2e) kpis(t *testing.T) followupv1.KpiServiceClient {
	t.Helper()
	for _, s := range e.sys.services {
		if a, ok := s.(interface{ GRPCAddr() string }); ok && s.Name() == "followup" {
			conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return followupv1.NewKpiServiceClient(conn)
		}
	}
	t.Fatal("no follow-up service with a gRPC address")
	return nil
}
