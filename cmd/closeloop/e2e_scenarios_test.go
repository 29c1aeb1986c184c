package main

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
)

// Short names for the enums the scenarios use.
const (
	l1 = eventsv1.Severity_SEVERITY_L1
	l2 = eventsv1.Severity_SEVERITY_L2
	l4 = eventsv1.Severity_SEVERITY_L4

	catQuality = eventsv1.Category_CATEGORY_PRODUCT_QUALITY
	catService = eventsv1.Category_CATEGORY_SERVICE
	catPrice   = eventsv1.Category_CATEGORY_PRICE_PROMOTION

	lvOwner     = eventsv1.EscalationLevel_ESCALATION_LEVEL_OWNER
	lvTeamLead  = eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD
	lvSenior    = eventsv1.EscalationLevel_ESCALATION_LEVEL_SENIOR_MANAGEMENT
	lvEmergency = eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE

	acceptance     = eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE
	firstResponse  = eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE
	techContact    = eventsv1.SlaTarget_SLA_TARGET_TECHNICIAN_CONTACT
	onsiteArrival  = eventsv1.SlaTarget_SLA_TARGET_ONSITE_ARRIVAL
	resolution     = eventsv1.SlaTarget_SLA_TARGET_RESOLUTION
	firstFeedback  = eventsv1.SlaTarget_SLA_TARGET_FIRST_FEEDBACK
	secondFeedback = eventsv1.SlaTarget_SLA_TARGET_SECOND_FEEDBACK

	round1 = eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST
	round2 = eventsv1.FeedbackRound_FEEDBACK_ROUND_SECOND

	viaLink  = eventsv1.SurveyVia_SURVEY_VIA_LINK
	viaPhone = eventsv1.SurveyVia_SURVEY_VIA_PHONE

	satisfied = eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED
)

// personalData is every name, phone, email and address the scenarios send:
// none of it may appear in a service's log.
var personalData = []string{
	"张三", "+86 138-0013-8001", "8613800138001", "上海市浦东新区世纪大道100号",
	"李四", "+86 139-0000-0002", "li.si@example.com",
	"王五", "+86 137-0000-0003",
	"赵六", "+86 136-0000-0004",
	"钱七", "+86 135-0000-0005", "qian.qi@example.com",
}

// setUp gives routing its team rosters (one agent on shift per team, team
// leads and the senior manager off shift, so owners are deterministic) and
// registers the technician with dispatch.
func (e *e2e) setUp(t *testing.T) {
	members := []*routingv1.AddTeamMemberRequest{
		{Team: "customer-service", MemberId: "cs-1", DisplayName: "Agent CS-1", Skills: []string{"billing", "general", "logistics", "product", "service"}, Role: "agent", OnShift: true},
		{Team: "customer-service", MemberId: "cs-lead", DisplayName: "Lead CS", Role: "team_lead"},
		{Team: "technical-support", MemberId: "ts-1", DisplayName: "Agent TS-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
		{Team: "technical-support", MemberId: "ts-lead", DisplayName: "Lead TS", Role: "team_lead"},
		{Team: "management-coordination", MemberId: "mgr-1", DisplayName: "Manager 1", Skills: []string{"general", "product"}, Role: "manager", OnShift: true},
		{Team: "emergency-response", MemberId: "er-1", DisplayName: "Agent ER-1", Skills: []string{"product"}, Role: "agent", OnShift: true},
		{Team: "emergency-response", MemberId: "sm-1", DisplayName: "Senior Manager", Role: "senior_manager"},
	}
	for _, m := range members {
		if _, err := e.routing.AddTeamMember(e.as(tokAdmin), m); err != nil {
			t.Fatalf("add %s to %s: %v", m.GetMemberId(), m.GetTeam(), err)
		}
	}
	for _, team := range []string{"customer-service", "technical-support", "management-coordination", "emergency-response"} {
		r, err := e.routing.GetTeam(e.as(tokSupport), &routingv1.GetTeamRequest{Team: team})
		if err != nil || len(r.GetMembers()) == 0 {
			t.Fatalf("team %s: %v %v", team, r, err)
		}
	}
	_, err := e.dispatch.RegisterTechnician(e.as(tokAdmin), &dispatchv1.RegisterTechnicianRequest{TechnicianId: techID, Profile: &dispatchv1.TechnicianProfile{
		DisplayName: "Ann", ProductLines: []string{"air-conditioner"}, Services: []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REPAIR},
		ServiceCentre: "sc-east", Region: serviceArea, CalendarId: "always", MaxConcurrentJobs: 2, MaxDailyJobs: 4,
	}})
	if err != nil {
		t.Fatalf("register technician: %v", err)
	}
}

// submit sends a complaint through an adapter and expects a new, accepted complaint.
func (e *e2e) submit(t *testing.T, token string, req *intakev1.SubmitComplaintRequest) string {
	t.Helper()
	r, err := e.intake.SubmitComplaint(e.as(token), req)
	if err != nil {
		t.Fatalf("submit %s: %v", req.GetChannelRef(), err)
	}
	if !r.GetCreated() || !r.GetAccepted() || r.GetLinked() {
		t.Fatalf("submit %s: %v, want created and accepted", req.GetChannelRef(), r)
	}
	return r.GetComplaintId()
}

// opening is what every complete complaint gets at once: intake records and
// accepts it (ComplaintAccepted may land after the sla-clock's first events,
// see the report); routing, reacting to the acceptance, classifies and
// assigns it; the sla-clock starts the acceptance, first-response and
// resolution clocks on the receipt and stops the acceptance clock on the
// acceptance.
func opening(routing ...want) []step {
	routing[0] = routing[0].afterEvent("ComplaintAccepted")
	return append(seq(ev("ComplaintReceived")),
		par(lane(acceptedAutomatically()), routing,
			lane(slaStarted(acceptance), slaStarted(firstResponse), slaStarted(resolution), slaMet(acceptance).afterEvent("ComplaintAccepted")))...)
}

// followUpRound is the reaction to a resolution at resolvedAt: follow-up
// schedules both feedback tasks and sends the survey, while the sla-clock
// stops the resolution clock and starts both feedback clocks.
func followUpRound(resolvedAt time.Time) []step {
	return par(
		lane(feedbackScheduled(round1, resolvedAt.Add(24*time.Hour)), feedbackScheduled(round2, resolvedAt.Add(72*time.Hour)), ev("SurveySent")),
		lane(slaMet(resolution), slaStarted(firstFeedback), slaStarted(secondFeedback)),
	)
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// resolutionEndedTheClocks: once resolved, no clock of the complaint's
// own (not a work order's) runs but the feedback ones the resolution
// started: sla-clock has met or cancelled every one the resolution ends.
func (e *e2e) resolutionEndedTheClocks(t *testing.T, id string) {
	t.Helper()
	e.eventually(t, "only feedback clocks running after the resolution", func() error {
		r, err := e.sla.GetClocks(e.as(tokSupport), &slaclockv1.GetClocksRequest{ComplaintId: id})
		if err != nil {
			return err
		}
		for _, c := range r.GetClocks() {
			running := c.GetStatus() == slaclockv1.ClockStatus_CLOCK_STATUS_RUNNING || c.GetStatus() == slaclockv1.ClockStatus_CLOCK_STATUS_PAUSED
			if running && c.GetSubjectId() == "" && c.GetTarget() != firstFeedback && c.GetTarget() != secondFeedback {
				return fmt.Errorf("clock %s still %s after the resolution", c.GetClockId(), c.GetStatus())
			}
		}
		return nil
	})
}

func (e *e2e) followUp(t *testing.T, id string) *followupv1.GetFollowUpResponse {
	t.Helper()
	r, err := e.followup.GetFollowUp(e.as(tokCS1), &followupv1.GetFollowUpRequest{ComplaintId: id})
	if err != nil {
		t.Fatalf("GetFollowUp %s: %v", id, err)
	}
	return r
}

// answerByLink answers the survey as the customer does: through the link
// follow-up made, on its HTTP face.
func (e *e2e) answerByLink(t *testing.T, surveyURL string, satisfaction int, resolved bool) (int, map[string]any) {
	t.Helper()
	u, err := url.Parse(surveyURL)
	if err != nil || u.Query().Get("t") == "" || !strings.HasPrefix(u.Path, "/survey/") {
		t.Fatalf("survey link %q: %v", surveyURL, err)
	}
	return e.postJSON(t, "http://"+e.followupHTTP+"/v1"+u.Path, map[string]any{
		"token": u.Query().Get("t"), "satisfaction": satisfaction, "resolved": resolved, "comment": "answered in the e2e test",
	})
}

// Scenario 2: a safety complaint (smoke) is L4: classified, assigned and
// escalated to emergency response in one go. The owner responds at once; as
// the fake clock reaches 50, 75 and 90 % of the 48 h resolution limit the
// sla-clock warns and routing notifies the owner and the first receiver;
// at the deadline the breach escalates it to senior management.
func (e *e2e) safetyEmergency(t *testing.T) *history {
	t0 := e.clk.Now()
	id := e.submit(t, tokMail, &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_EMAIL, ChannelRef: "<smoke-0001@mail.example>", ReceivedAt: ts(t0),
		Customer:    &intakev1.CustomerInput{Name: "李四", Phone: "+86 139-0000-0002", Email: "li.si@example.com", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "CHG-65W", SerialNumber: "SN-CHG-0001", PurchaseDate: "2026-09-01"},
		Place:       &eventsv1.Place{Region: serviceArea, City: "Shanghai"},
		Description: "充电器充电时冒烟，还有烧焦味", Emotion: eventsv1.Emotion_EMOTION_ANGRY,
		CustomerRequest: "更换并做安全检查", FirstReceiver: "mailbox-1",
	})
	h := e.history(id)
	emergency := []string{"er-1", "mailbox-1", "sm-1"}
	h.expect(t, opening(
		classified(l4, catQuality), assigned("emergency-response", "er-1"),
		escalated(lvOwner, lvEmergency, eventsv1.EscalationCause_ESCALATION_CAUSE_SEVERITY, emergency...),
	))

	if _, err := e.routing.RecordResponse(e.as(tokER1), &routingv1.RecordResponseRequest{ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called back: stop using the charger, replacement on the way"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("ResponseRecorded"), slaMet(firstResponse)))

	for _, w := range []struct {
		at  time.Duration
		pct uint32
	}{{24 * time.Hour, 50}, {36 * time.Hour, 75}, {43*time.Hour + 12*time.Minute, 90}} {
		e.clk.Set(t0.Add(w.at))
		h.expect(t, seq(slaWarning(resolution, w.pct), notified("er-1", "mailbox-1")))
	}
	e.clk.Set(t0.Add(48 * time.Hour))
	h.expect(t, seq(slaBreached(resolution), escalated(lvEmergency, lvSenior, eventsv1.EscalationCause_ESCALATION_CAUSE_SLA_BREACH, emergency...)))

	c, err := e.routing.GetComplaint(e.as(tokSupport), &routingv1.GetComplaintRequest{ComplaintId: id})
	if err != nil || c.GetComplaint().GetEscalationLevel() != lvSenior || c.GetComplaint().GetSeverity() != l4 {
		t.Errorf("routing's view after the breach: %v %v", c, err)
	}
	return h
}

// Scenario 1: a hardware fault (L2) from the hotline, handled on site.
func (e *e2e) hardwareFault(t *testing.T) *history {
	t0 := e.clk.Now()
	id := e.submit(t, tokHotline, &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-E2E-0001", ReceivedAt: ts(t0),
		Customer:    &intakev1.CustomerInput{Name: "张三", Phone: "+86 138-0013-8001", Address: "上海市浦东新区世纪大道100号", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-778899", PurchaseDate: "2026-03-01"},
		Place:       &eventsv1.Place{Region: serviceArea, City: "Shanghai"},
		Description: "空调开机十分钟后自动关机，现在无法开机", Emotion: eventsv1.Emotion_EMOTION_DISSATISFIED,
		CustomerRequest: "上门维修", FirstReceiver: "hotline-7",
	})
	h := e.history(id)
	recs := h.expect(t, opening(classified(l2, catQuality), assigned("technical-support", "ts-1")))

	// The owner takes it on and calls the customer back.
	if _, err := e.routing.AcceptAssignment(e.as(tokTS1), &routingv1.AcceptAssignmentRequest{ComplaintId: id}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("AssignmentAccepted")))
	if _, err := e.routing.RecordResponse(e.as(tokTS1), &routingv1.RecordResponseRequest{ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "fault confirmed by phone; technician will come"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("ResponseRecorded"), slaMet(firstResponse)))

	// On-site repair. The work sheet names no site contact, model, serial
	// number or region: routing fills them in from the complaint (the
	// contact as intake sealed it, the product, the place).
	d, err := e.routing.RequestDispatch(e.as(tokTS1), &routingv1.RequestDispatchRequest{ComplaintId: id, Spec: &eventsv1.WorkOrderSpec{
		Quantity: 1, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR, Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE,
		RequiredBy: ts(e.clk.Now().Add(24 * time.Hour)), ProductLine: "air-conditioner",
	}})
	if err != nil {
		t.Fatal(err)
	}
	wo := d.GetWorkOrderId()
	// Dispatch opens the order and books the technician (two appends); the
	// sla-clock starts the arrival clock on the opening and the contact
	// clock on the assignment.
	all := h.expect(t, seq(ev("DispatchRequested")),
		par(lane(ev("WorkOrderOpened"), technicianAssigned(wo, techID)), lane(slaStarted(onsiteArrival))),
		seq(slaStarted(techContact)))
	site := recs[0].Event.GetComplaintReceived().GetCustomer().GetPersonal()
	for _, r := range all {
		if dr := r.Event.GetDispatchRequested(); dr != nil {
			if sp := dr.GetSpec(); site == nil || !proto.Equal(sp.GetSiteContact(), site) || sp.GetRegion() != serviceArea ||
				sp.GetEquipmentModel() != "AC-3000" || !slices.Equal(sp.GetSerialNumbers(), []string{"SN-778899"}) {
				t.Fatalf("work sheet not filled in from the complaint: region %q model %q serials %v contact sealed under %q",
					sp.GetRegion(), sp.GetEquipmentModel(), sp.GetSerialNumbers(), sp.GetSiteContact().GetKeyId())
			}
		}
	}

	jobs, err := e.dispatch.ListMyJobs(e.as(tokTech), &dispatchv1.ListMyJobsRequest{})
	if err != nil || len(jobs.GetJobs()) != 1 || jobs.GetJobs()[0].GetWorkOrderId() != wo {
		t.Fatalf("technician's jobs: %v %v", jobs, err)
	}
	if _, err := e.dispatch.Accept(e.as(tokTech), &dispatchv1.AcceptRequest{WorkOrderId: wo}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("TechnicianAccepted")))
	if _, err := e.dispatch.ReportContacted(e.as(tokTech), &dispatchv1.ReportContactedRequest{WorkOrderId: wo, Eta: ts(e.clk.Now().Add(2 * time.Hour)), Note: "on my way after the current job"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("CustomerContacted"), slaMet(techContact)))
	if _, err := e.dispatch.ReportEnRoute(e.as(tokTech), &dispatchv1.ReportEnRouteRequest{WorkOrderId: wo}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("TechnicianEnRoute")))
	e.clk.Advance(2 * time.Hour)
	if _, err := e.dispatch.ReportArrived(e.as(tokTech), &dispatchv1.ReportArrivedRequest{WorkOrderId: wo}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("TechnicianArrived"), slaMet(onsiteArrival)))
	e.clk.Advance(time.Hour)
	passed := func(name string) *eventsv1.CheckResult { return &eventsv1.CheckResult{Check: name, Passed: true} }
	if _, err := e.dispatch.Complete(e.as(tokTech), &dispatchv1.CompleteRequest{
		WorkOrderId: wo, WorkDone: "replaced the main control board; ran for 30 minutes without shutting down",
		PartsUsed:  []*eventsv1.PartUsed{{PartNumber: "PCB-AC3000-MAIN", Quantity: 1}},
		Checks:     []*eventsv1.CheckResult{passed("fault_reproduced"), passed("fault_cleared"), passed("functional_test"), passed("electrical_safety")},
		SignerName: "张三", SignedAt: ts(e.clk.Now()), SignatureImage: []byte("\x89PNG e2e signature"),
	}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("WorkCompleted")))

	// L2 needs the supervisor's review before the owner may resolve.
	p, err := e.routing.ProposeSolution(e.as(tokTS1), &routingv1.ProposeSolutionRequest{ComplaintId: id, Summary: "main board replaced on site under warranty"})
	if err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("SolutionProposed")))
	if _, err := e.routing.Resolve(e.as(tokTS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "REPAIRED_ON_SITE", Summary: "board replaced"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "supervisor") {
		t.Fatalf("resolve before the supervisor's review: %v, want FAILED_PRECONDITION naming the review", err)
	}
	if _, err := e.routing.ReviewSolution(e.as(tokTSLead), &routingv1.ReviewSolutionRequest{ComplaintId: id, SolutionId: p.GetSolutionId(), Level: eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, Approved: true, Comment: "ok"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("SolutionReviewed")))
	resolvedAt := e.clk.Now()
	if _, err := e.routing.Resolve(e.as(tokTS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "REPAIRED_ON_SITE", Summary: "main board replaced, tested, signed off"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(resolved("ts-1", false)), followUpRound(resolvedAt))
	e.resolutionEndedTheClocks(t, id)

	fu := e.followUp(t, id)
	due, err := e.followup.ListDueTasks(e.as(tokCS1), &followupv1.ListDueTasksRequest{DueBy: ts(resolvedAt.Add(24 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var listed bool
	for _, task := range due.GetTasks() {
		if task.GetComplaintId() == id {
			listed = task.GetKind() == followupv1.DueTaskKind_DUE_TASK_KIND_FIRST_FEEDBACK && !task.GetOverdue() && task.GetDueAt().AsTime().Equal(resolvedAt.Add(24*time.Hour))
		}
	}
	if !listed {
		t.Errorf("the first feedback task is not listed as due at +24h: %v", due.GetTasks())
	}

	// The first feedback is given just before its 24 h deadline, the second
	// before 72 h; the sla-clock warned at 50/75/90 % of each on the way.
	deliver := func(round eventsv1.FeedbackRound, at time.Duration, target eventsv1.SlaTarget) {
		e.clk.Set(resolvedAt.Add(at))
		h.expect(t, seq(slaWarning(target, 50), slaWarning(target, 75), slaWarning(target, 90)))
		var task string
		for _, ft := range fu.GetFeedbackTasks() {
			if ft.GetRound() == round {
				task = ft.GetTaskId()
			}
		}
		if _, err := e.followup.DeliverFeedback(e.as(tokTS1), &followupv1.DeliverFeedbackRequest{ComplaintId: id, TaskId: task, Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "ts-1", Summary: "explained the repair and the warranty; customer content"}); err != nil {
			t.Fatal(err)
		}
		h.expect(t, seq(feedbackDelivered(round), slaMet(target)))
	}
	deliver(round1, 23*time.Hour, firstFeedback)
	deliver(round2, 71*time.Hour, secondFeedback)

	code, body := e.answerByLink(t, fu.GetSurveyUrl(), 5, true)
	if code != 200 || body["outcome"] != followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_SATISFIED.String() {
		t.Fatalf("survey answer: %d %v", code, body)
	}
	h.expect(t, seq(surveyAnswered(5, true, viaLink), closed(satisfied)))
	if code, body := e.answerByLink(t, fu.GetSurveyUrl(), 1, false); code < 400 || body["code"] != "FailedPrecondition" {
		t.Errorf("second use of the survey link: %d %v, want a FailedPrecondition refusal", code, body)
	}
	return h
}

func technicianAssigned(wo, tech string) want {
	return payloadCheck("TechnicianAssigned", tech, func(p *eventsv1.TechnicianAssigned) error {
		return expectf(p.GetWorkOrderId() == wo && p.GetTechnicianId() == tech, "want %s on %s", tech, wo)
	})
}

// Scenario 3: a price complaint (L1) resolved by the agent at first
// contact, no review needed; the customer says by phone they are satisfied.
func (e *e2e) priceComplaint(t *testing.T) *history {
	id := e.submit(t, tokHotline, &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-E2E-0003", ReceivedAt: ts(e.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "王五", Phone: "+86 137-0000-0003"},
		Product:     &eventsv1.Product{Model: "TV-55X", SerialNumber: "SN-TV-0003"},
		Description: "电视买了一周就降价了，要求退还差价", Emotion: eventsv1.Emotion_EMOTION_DISSATISFIED,
		CustomerRequest: "退差价", FirstReceiver: "hotline-7",
	})
	h := e.history(id)
	h.expect(t, opening(classified(l1, catPrice), assigned("customer-service", "cs-1")))
	if _, err := e.routing.RecordResponse(e.as(tokCS1), &routingv1.RecordResponseRequest{ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "price protection applies"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("ResponseRecorded"), slaMet(firstResponse)))
	resolvedAt := e.clk.Now()
	if _, err := e.routing.Resolve(e.as(tokCS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "PRICE_DIFFERENCE_REFUNDED", Summary: "difference refunded"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(resolved("cs-1", true)), followUpRound(resolvedAt))
	e.resolutionEndedTheClocks(t, id)
	r, err := e.followup.RecordSurveyAnswer(e.as(tokCS1), &followupv1.RecordSurveyAnswerRequest{ComplaintId: id, SurveyId: e.followUp(t, id).GetSurveyId(), Satisfaction: 4, Resolved: true, RecordedBy: "cs-1"})
	if err != nil || r.GetOutcome() != followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_SATISFIED {
		t.Fatalf("survey by phone: %v %v", r, err)
	}
	// Closing stops the feedback clocks still running.
	h.expect(t, seq(surveyAnswered(4, true, viaPhone), closed(satisfied), slaCancelled(firstFeedback), slaCancelled(secondFeedback)))
	return h
}

// Scenario 4: the customer is not satisfied: the complaint is reopened,
// routing escalates it to the team lead, the owner proposes a new solution
// (the first no longer counts), resolves it again and the second survey
// closes it.
func (e *e2e) dissatisfied(t *testing.T) *history {
	id := e.submit(t, tokHotline, &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-E2E-0004", ReceivedAt: ts(e.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "赵六", Phone: "+86 136-0000-0004"},
		Product:     &eventsv1.Product{Model: "RF-450", SerialNumber: "SN-RF-0004"},
		Description: "客服态度很差，打了三次电话都没人回复", Emotion: eventsv1.Emotion_EMOTION_ANGRY,
		FirstReceiver: "hotline-7",
	})
	h := e.history(id)
	h.expect(t, opening(classified(l1, catService), assigned("customer-service", "cs-1")))
	if _, err := e.routing.RecordResponse(e.as(tokCS1), &routingv1.RecordResponseRequest{ComplaintId: id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "apologised"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("ResponseRecorded"), slaMet(firstResponse)))
	resolvedAt := e.clk.Now()
	if _, err := e.routing.Resolve(e.as(tokCS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "APOLOGY", Summary: "apologised to the customer"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(resolved("cs-1", true)), followUpRound(resolvedAt))

	link := e.followUp(t, id).GetSurveyUrl()
	e.clk.Advance(2 * time.Hour)
	code, body := e.answerByLink(t, link, 2, false)
	if code != 200 || body["outcome"] != followupv1.SurveyOutcome_SURVEY_OUTCOME_REOPENED.String() {
		t.Fatalf("survey answer: %d %v", code, body)
	}
	// Reopened: routing escalates (cause: dissatisfaction) while the
	// sla-clock cancels the feedback clocks and starts a new resolution clock.
	h.expect(t, seq(surveyAnswered(2, false, viaLink), reopened(1)),
		par(lane(escalated(lvOwner, lvTeamLead, eventsv1.EscalationCause_ESCALATION_CAUSE_DISSATISFACTION, "cs-1", "cs-lead", "hotline-7")),
			lane(slaCancelled(firstFeedback), slaCancelled(secondFeedback), slaStarted(resolution))))
	if code, body := e.answerByLink(t, link, 5, true); code < 400 || body["code"] != "FailedPrecondition" {
		t.Errorf("the first survey's link after the reopen: %d %v, want a FailedPrecondition refusal", code, body)
	}
	c, err := e.routing.GetComplaint(e.as(tokSupport), &routingv1.GetComplaintRequest{ComplaintId: id})
	if err != nil || c.GetComplaint().GetReopenCount() != 1 || c.GetComplaint().GetOwner() != "cs-1" || c.GetComplaint().GetEscalationLevel() != lvTeamLead {
		t.Fatalf("routing's view after the reopen: %v %v", c, err)
	}

	e.clk.Advance(3 * time.Hour)
	// The first solution no longer counts: a reopened complaint needs a new
	// one, even at L1 (routing's handling rules).
	if _, err := e.routing.Resolve(e.as(tokCS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "CALLBACK_AND_VOUCHER", Summary: "lead called back, voucher given"}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "a new solution proposal since the reopen") {
		t.Fatalf("resolve after the reopen without a new solution: %v, want FAILED_PRECONDITION naming it", err)
	}
	if _, err := e.routing.ProposeSolution(e.as(tokCS1), &routingv1.ProposeSolutionRequest{ComplaintId: id, Summary: "team lead calls back and offers a voucher"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(ev("SolutionProposed")))
	resolvedAgain := e.clk.Now()
	if _, err := e.routing.Resolve(e.as(tokCS1), &routingv1.ResolveRequest{ComplaintId: id, ResolutionCode: "CALLBACK_AND_VOUCHER", Summary: "lead called back, voucher given"}); err != nil {
		t.Fatal(err)
	}
	h.expect(t, seq(resolved("cs-1", false)), followUpRound(resolvedAgain))
	r, err := e.followup.RecordSurveyAnswer(e.as(tokCS1), &followupv1.RecordSurveyAnswerRequest{ComplaintId: id, SurveyId: e.followUp(t, id).GetSurveyId(), Satisfaction: 5, Resolved: true, RecordedBy: "cs-1"})
	if err != nil || r.GetOutcome() != followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_SATISFIED {
		t.Fatalf("second survey by phone: %v %v", r, err)
	}
	h.expect(t, seq(surveyAnswered(5, true, viaPhone), closed(satisfied), slaCancelled(firstFeedback), slaCancelled(secondFeedback)))
	return h
}

// Scenario 5: the same customer reports the same problem by email after
// calling the hotline: intake links it to the first complaint.
func (e *e2e) duplicate(t *testing.T) *history {
	id := e.submit(t, tokHotline, &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-E2E-0005", ReceivedAt: ts(e.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "钱七", Phone: "+86 135-0000-0005"},
		Product:     &eventsv1.Product{Model: "WM-8KG", SerialNumber: "SN-WM-0005"},
		Description: "洗衣机脱水时噪音很大", FirstReceiver: "hotline-7",
	})
	h := e.history(id)
	h.expect(t, opening(classified(l2, catQuality), assigned("technical-support", "ts-1")))

	e.clk.Advance(time.Hour)
	byMail := &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_EMAIL, ChannelRef: "<wm-noise-0005@mail.example>", ReceivedAt: ts(e.clk.Now()),
		Customer:    &intakev1.CustomerInput{Name: "钱七", Phone: "+86 135-0000-0005", Email: "qian.qi@example.com"},
		Product:     &eventsv1.Product{Model: "WM-8KG", SerialNumber: "SN-WM-0005"},
		Description: "The washing machine is very noisy when spinning.", FirstReceiver: "mailbox-1",
	}
	for attempt := range 2 {
		r, err := e.intake.SubmitComplaint(e.as(tokMail), byMail)
		if err != nil || !r.GetLinked() || r.GetCreated() || r.GetComplaintId() != id {
			t.Fatalf("submission %d by email: %v %v, want linked to %s", attempt+1, r, err, id)
		}
		if attempt == 0 {
			h.expect(t, seq(duplicateLinked(eventsv1.Channel_CHANNEL_EMAIL)))
		} else { // an adapter's retry: the same answer, nothing stored
			h.verify(t)
		}
	}
	c, err := e.intake.GetComplaint(e.as(tokSupport), &intakev1.GetComplaintRequest{ComplaintId: id})
	if err != nil || len(c.GetComplaint().GetLinked()) != 1 || c.GetComplaint().GetLinked()[0].GetChannel() != eventsv1.Channel_CHANNEL_EMAIL {
		t.Fatalf("intake's view of the first complaint: %v %v", c, err)
	}
	return h
}
