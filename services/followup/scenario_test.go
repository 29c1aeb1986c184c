package followup_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
)

var (
	received = &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "t-1"}
	l1       = &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_SERVICE, Severity: eventsv1.Severity_SEVERITY_L1}
	l3       = &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: eventsv1.Severity_SEVERITY_L3}
)

func resolved() *eventsv1.ComplaintResolved {
	return &eventsv1.ComplaintResolved{ResolutionCode: "fixed", ResolvedBy: "agent-1"}
}

// Given: received, classified, resolved; the service schedules the follow-up.
const head = "ComplaintReceived,ComplaintClassified,ComplaintResolved"

var scheduled = []string{"ComplaintReceived", "ComplaintClassified", "ComplaintResolved", "FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent"}

func with(base []string, more ...string) []string {
	return append(append([]string{}, base...), more...)
}

func TestScenarioSatisfied(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	res := e.emit("c-sat", received, l1, resolved())[2]

	got := e.waitForTypes("c-sat", scheduled...)
	fb1, fb2, sent := got[3].GetFeedbackTaskScheduled(), got[4].GetFeedbackTaskScheduled(), got[5].GetSurveySent()
	if !fb1.GetDueAt().AsTime().Equal(start.Add(day)) || !fb2.GetDueAt().AsTime().Equal(start.Add(3*day)) {
		t.Fatalf("feedback due %v and %v; want resolution + 24 h and + 72 h", fb1.GetDueAt().AsTime(), fb2.GetDueAt().AsTime())
	}
	if !sent.GetExpiresAt().AsTime().Equal(start.Add(7*day)) || sent.GetResolutionEventId() != res.GetEventId() {
		t.Fatalf("survey %v", sent)
	}
	if got[5].GetCausationId() != res.GetEventId() || got[5].GetProducer() != "followup" {
		t.Fatalf("survey causation %q producer %q", got[5].GetCausationId(), got[5].GetProducer())
	}

	// Feedback is recorded by an agent through the API.
	fbResp := &followupv1.DeliverFeedbackResponse{}
	if code := call(t, r, "DeliverFeedback", &followupv1.DeliverFeedbackRequest{
		ComplaintId: "c-sat", TaskId: fb1.GetTaskId(), Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "agent-1", Summary: "explained the repair and its basis",
	}, fbResp); code != http.StatusOK || fbResp.GetVersion() != 7 {
		t.Fatalf("DeliverFeedback: HTTP %d, version %d (want 7)", code, fbResp.GetVersion())
	}
	// A feedback without a summary names the field and changes nothing.
	if code := call(t, r, "DeliverFeedback", &followupv1.DeliverFeedbackRequest{
		ComplaintId: "c-sat", TaskId: fb2.GetTaskId(), Channel: eventsv1.Channel_CHANNEL_PHONE, DeliveredBy: "agent-1",
	}, nil); code != http.StatusBadRequest {
		t.Fatalf("DeliverFeedback without summary: HTTP %d, want 400", code)
	}

	e.clk.Advance(2 * day)
	link := surveyURL(t, r, "c-sat")
	code, page := answerByLink(t, link, 5, true, "quick and polite")
	if code != http.StatusOK || !strings.Contains(page, "Thank you") {
		t.Fatalf("answer: HTTP %d\n%s", code, page)
	}
	got = e.waitForTypes("c-sat", with(scheduled, "FeedbackDelivered", "SurveyAnswered", "ComplaintClosed")...)
	if a := got[7].GetSurveyAnswered(); a.GetSatisfaction() != 5 || !a.GetResolved() || a.GetVia() != eventsv1.SurveyVia_SURVEY_VIA_LINK || a.GetComment() != "quick and polite" {
		t.Fatalf("answer %v", a)
	}
	if c := got[8].GetComplaintClosed(); c.GetOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED {
		t.Fatalf("closed %v", c)
	}
	// The close names the answer written in the same append as its cause.
	if got[8].GetCausationId() != got[7].GetEventId() || got[8].GetCorrelationId() == "" || got[8].GetCorrelationId() != got[7].GetCorrelationId() {
		t.Fatalf("close: causation %q correlation %q; want the answer's id %q and correlation %q",
			got[8].GetCausationId(), got[8].GetCorrelationId(), got[7].GetEventId(), got[7].GetCorrelationId())
	}
	// The link is single-use: a second submission is refused and writes nothing.
	if code := postAgain(t, link, 1); code != http.StatusGone {
		t.Fatalf("reused link: HTTP %d, want 410", code)
	}
	if n := len(e.stream("c-sat")); n != 9 {
		t.Fatalf("stream has %d events after a refused reuse, want 9", n)
	}
	if s := followUp(t, r, "c-sat"); s.GetStatus() != followupv1.FollowUpStatus_FOLLOW_UP_STATUS_CLOSED || s.GetSurveyUrl() != "" {
		t.Fatalf("follow-up after close: %v", s)
	}
}

func TestScenarioDissatisfiedReopenedResolvedSatisfied(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-re", received, l1, resolved())
	got := e.waitForTypes("c-re", scheduled...)
	firstSurvey := got[5].GetSurveySent().GetSurveyId()
	firstLink := surveyURL(t, r, "c-re")

	// The customer answers by phone: score 2 → reopened.
	resp := &followupv1.RecordSurveyAnswerResponse{}
	if code := call(t, r, "RecordSurveyAnswer", &followupv1.RecordSurveyAnswerRequest{
		ComplaintId: "c-re", SurveyId: firstSurvey, Satisfaction: 2, Resolved: true, RecordedBy: "agent-7",
	}, resp); code != http.StatusOK || resp.GetOutcome() != followupv1.SurveyOutcome_SURVEY_OUTCOME_REOPENED {
		t.Fatalf("phone answer: HTTP %d outcome %v", code, resp.GetOutcome())
	}
	got = e.waitForTypes("c-re", with(scheduled, "SurveyAnswered", "ComplaintReopened")...)
	if got[6].GetSurveyAnswered().GetVia() != eventsv1.SurveyVia_SURVEY_VIA_PHONE {
		t.Fatalf("via %v", got[6].GetSurveyAnswered().GetVia())
	}
	if ro := got[7].GetComplaintReopened(); ro.GetReopenCount() != 1 || ro.GetSatisfaction() != 2 || !strings.Contains(ro.GetReason(), "dissatisfied") {
		t.Fatalf("reopened %v", ro)
	}

	// Routing handles it again and resolves it; a new follow-up round starts.
	e.clk.Advance(day)
	res2 := e.emit("c-re", resolved())[0]
	want := with(scheduled, "SurveyAnswered", "ComplaintReopened", "ComplaintResolved", "FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent")
	got = e.waitForTypes("c-re", want...)
	if got[11].GetSurveySent().GetResolutionEventId() != res2.GetEventId() || got[11].GetSurveySent().GetSurveyId() == firstSurvey {
		t.Fatalf("second survey %v", got[11].GetSurveySent())
	}
	// The first link is dead (answered, and overtaken).
	if code := postAgain(t, firstLink, 5); code != http.StatusGone {
		t.Fatalf("first link after reopen: HTTP %d, want 410", code)
	}
	code, page := answerByLink(t, surveyURL(t, r, "c-re"), 4, true, "")
	if code != http.StatusOK {
		t.Fatalf("second answer: HTTP %d\n%s", code, page)
	}
	got = e.waitForTypes("c-re", with(want, "SurveyAnswered", "ComplaintClosed")...)
	if c := got[13].GetComplaintClosed(); c.GetOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED || c.GetSurveyId() != got[11].GetSurveySent().GetSurveyId() {
		t.Fatalf("closed %v", c)
	}
	if s := followUp(t, r, "c-re"); s.GetReopenCount() != 1 || s.GetCloseOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED {
		t.Fatalf("follow-up %v", s)
	}
}

// waitArmed waits until the service has armed its no-response timer on the
// fake clock, so an Advance cannot slip in before it.
func (e *env) waitArmed(n int) {
	e.t.Helper()
	checkFor(e.t, 10*time.Second, func() error {
		if e.clk.Pending() < n {
			return errString("no-response timer not armed")
		}
		return nil
	})
}

func TestScenarioNoResponse(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-nr", received, l1, resolved())
	e.waitForTypes("c-nr", scheduled...)
	link := surveyURL(t, r, "c-nr")
	e.waitArmed(1)

	// A minute before the 7 days are up nothing happens: the timer is still armed.
	e.clk.Advance(7*day - time.Minute)
	if e.clk.Pending() != 1 {
		t.Fatal("no-response timer fired early")
	}
	e.clk.Advance(time.Minute)
	got := e.waitForTypes("c-nr", with(scheduled, "ComplaintClosed")...)
	if c := got[6].GetComplaintClosed(); c.GetOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE || c.GetClosedBy() != "system" {
		t.Fatalf("closed %v", c)
	}
	// The expired link no longer opens.
	if code, _ := answerByLink(t, link, 5, true, ""); code != http.StatusGone {
		t.Fatalf("expired link: HTTP %d, want 410", code)
	}
}

// A restart loses no timer: the deadline passes while the service is down,
// and the new instance, rebuilding from the log, closes the complaint once.
func TestScenarioNoResponseAcrossRestart(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-rs", received, l1, resolved())
	e.waitForTypes("c-rs", scheduled...)
	r.stop()

	e.clk.Advance(8 * day)
	e.startService()
	got := e.waitForTypes("c-rs", with(scheduled, "ComplaintClosed")...)
	if got[6].GetComplaintClosed().GetOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE {
		t.Fatalf("closed %v", got[6].GetComplaintClosed())
	}
	// A second instance started now finds nothing left to do: once both
	// have read the whole log, neither has a timer armed.
	r3 := e.startService()
	last := e.lastPosition()
	checkFor(t, 10*time.Second, func() error {
		if r3.svc.KPIPosition() < last || e.clk.Pending() != 0 {
			return errString("second instance not caught up, or a timer still armed")
		}
		return nil
	})
	if n := len(e.stream("c-rs")); n != 7 {
		t.Fatalf("stream has %d events, want 7 (closed exactly once)", n)
	}
}

func TestScenarioReturnVisit(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-rv", received, l3, resolved())
	got := e.waitForTypes("c-rv", scheduled...)
	fb1, fb2 := got[3].GetFeedbackTaskScheduled().GetTaskId(), got[4].GetFeedbackTaskScheduled().GetTaskId()

	e.clk.Advance(time.Hour)
	closedAt := e.clk.Now()
	if code, page := answerByLink(t, surveyURL(t, r, "c-rv"), 4, true, ""); code != http.StatusOK {
		t.Fatalf("answer: HTTP %d\n%s", code, page)
	}
	got = e.waitForTypes("c-rv", with(scheduled, "SurveyAnswered", "ComplaintClosed", "ReturnVisitScheduled")...)
	visit := got[8].GetReturnVisitScheduled()
	if !visit.GetDueAt().AsTime().Equal(closedAt.Add(30 * day)) {
		t.Fatalf("return visit due %v, want close + 30 days", visit.GetDueAt().AsTime())
	}

	due := func() map[string]*followupv1.DueTask {
		resp := &followupv1.ListDueTasksResponse{}
		if code := call(t, r, "ListDueTasks", &followupv1.ListDueTasksRequest{}, resp); code != http.StatusOK {
			t.Fatalf("ListDueTasks: HTTP %d", code)
		}
		m := map[string]*followupv1.DueTask{}
		for _, d := range resp.GetTasks() {
			m[d.GetTaskId()] = d
		}
		return m
	}
	// Not due yet: neither the feedback (24 h, 72 h) nor the visit.
	if d := due(); len(d) != 0 {
		t.Fatalf("due tasks an hour after resolution: %v", d)
	}
	e.clk.Advance(30 * day)
	var d map[string]*followupv1.DueTask
	checkFor(t, 10*time.Second, func() error {
		d = due()
		if d[visit.GetVisitId()] == nil {
			return errString("return visit not listed as due after 30 days")
		}
		return nil
	})
	// The complaint is closed: its undelivered feedback tasks are not due
	// any more, its return visit is.
	if d[fb1] != nil || d[fb2] != nil || len(d) != 1 {
		t.Fatalf("due tasks of the closed complaint: %v, want its return visit alone", d)
	}
	if d[visit.GetVisitId()].GetKind() != followupv1.DueTaskKind_DUE_TASK_KIND_RETURN_VISIT {
		t.Fatalf("kind %v", d[visit.GetVisitId()].GetKind())
	}

	rvResp := &followupv1.CompleteReturnVisitResponse{}
	if code := call(t, r, "CompleteReturnVisit", &followupv1.CompleteReturnVisitRequest{
		ComplaintId: "c-rv", VisitId: visit.GetVisitId(), VisitedBy: "agent-3", Notes: "device works", Satisfaction: 5,
	}, rvResp); code != http.StatusOK || rvResp.GetVersion() != 10 {
		t.Fatalf("CompleteReturnVisit: HTTP %d, version %d (want 10)", code, rvResp.GetVersion())
	}
	got = e.waitForTypes("c-rv", with(scheduled, "SurveyAnswered", "ComplaintClosed", "ReturnVisitScheduled", "ReturnVisitCompleted")...)
	if c := got[9].GetReturnVisitCompleted(); c.GetVisitedBy() != "agent-3" || c.GetSatisfaction() != 5 {
		t.Fatalf("visit completed %v", c)
	}
	// Twice is refused.
	if code := call(t, r, "CompleteReturnVisit", &followupv1.CompleteReturnVisitRequest{ComplaintId: "c-rv", VisitId: visit.GetVisitId(), VisitedBy: "agent-3"}, nil); code != http.StatusConflict {
		t.Fatalf("second CompleteReturnVisit: HTTP %d, want 409", code)
	}
	checkFor(t, 10*time.Second, func() error {
		if _, ok := due()[visit.GetVisitId()]; ok {
			return errString("completed visit still listed as due")
		}
		return nil
	})
}

func TestSurveyLinkRefusals(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-a", received, l1, resolved())
	e.emit("c-b", received, l1, resolved())
	e.waitForTypes("c-a", scheduled...)
	e.waitForTypes("c-b", scheduled...)
	linkA := surveyURL(t, r, "c-a")

	// A's token on B's page: refused, and B is untouched.
	wrong := strings.Replace(linkA, "/survey/c-a", "/survey/c-b", 1)
	if code, _ := answerByLink(t, wrong, 5, true, ""); code != http.StatusForbidden {
		t.Fatalf("token of another complaint: HTTP %d, want 403", code)
	}
	// A forged token (signature changed).
	forged := linkA[:len(linkA)-3] + "AAA"
	if code, _ := answerByLink(t, forged, 5, true, ""); code != http.StatusForbidden {
		t.Fatalf("forged token: HTTP %d, want 403", code)
	}
	// A bad answer names the field and changes nothing.
	res, err := http.Post("http://"+r.svc.HTTPAddr()+"/v1/survey/c-a", "application/json",
		strings.NewReader(`{"token":"`+strings.SplitN(linkA, "?t=", 2)[1]+`","satisfaction":9,"resolved":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("satisfaction 9: HTTP %d, want 400", res.StatusCode)
	}
	body := jsonBody(t, res)
	if vs, _ := body["violations"].([]any); len(vs) != 1 || vs[0].(map[string]any)["field"] != "satisfaction" {
		t.Fatalf("violations %v", body)
	}
	for _, id := range []string{"c-a", "c-b"} {
		if n := len(e.stream(id)); n != 6 {
			t.Fatalf("%s has %d events after refused answers, want 6", id, n)
		}
	}
	// The JSON API takes a good answer.
	res, err = http.Post("http://"+r.svc.HTTPAddr()+"/v1/survey/c-a", "application/json",
		strings.NewReader(`{"token":"`+strings.SplitN(linkA, "?t=", 2)[1]+`","satisfaction":3,"resolved":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if b := jsonBody(t, res); res.StatusCode != http.StatusOK || b["outcome"] != "SURVEY_OUTCOME_CLOSED_NEUTRAL" {
		t.Fatalf("JSON answer: HTTP %d %v", res.StatusCode, b)
	}
	e.waitForTypes("c-a", with(scheduled, "SurveyAnswered", "ComplaintClosed")...)
}

// An answer left alone in the stream, as when NATS dies after storing it and
// before acknowledging it (the answer's close is the next publish, and a
// survey takes no second answer): the reaction to the answer closes the
// complaint, with the return visit its severity asks for.
func TestScenarioAnswerStoredWithoutItsClose(t *testing.T) {
	e := newEnv(t)
	e.startService()
	e.emit("c-cut", received, l3, resolved())
	got := e.waitForTypes("c-cut", scheduled...)
	e.emit("c-cut", &eventsv1.SurveyAnswered{
		SurveyId: got[5].GetSurveySent().GetSurveyId(), Satisfaction: 4, Resolved: true,
		Via: eventsv1.SurveyVia_SURVEY_VIA_PHONE, RecordedBy: "agent-1",
	})
	got = e.waitForTypes("c-cut", with(scheduled, "SurveyAnswered", "ComplaintClosed", "ReturnVisitScheduled")...)
	if c := got[7].GetComplaintClosed(); c.GetOutcome() != eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED || c.GetClosedBy() != "agent-1" || c.GetSurveyId() != got[5].GetSurveySent().GetSurveyId() {
		t.Fatalf("closed %v", c)
	}
}

// A complaint closed by its survey answer leaves the agents' due list: its
// undelivered feedback tasks are a closed loop's, nobody must do them. An
// open complaint's tasks stay.
func TestScenarioClosedComplaintLeavesTheDueList(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.emit("c-closes", received, l1, resolved())
	e.emit("c-open", received, l1, resolved())
	e.waitForTypes("c-closes", scheduled...)
	e.waitForTypes("c-open", scheduled...)

	dueTasks := func() map[string]int {
		resp := &followupv1.ListDueTasksResponse{}
		req := &followupv1.ListDueTasksRequest{DueBy: timestamppb.New(e.clk.Now().Add(30 * day))}
		if code := call(t, r, "ListDueTasks", req, resp); code != http.StatusOK {
			t.Fatalf("ListDueTasks: HTTP %d", code)
		}
		n := map[string]int{}
		for _, task := range resp.GetTasks() {
			n[task.GetComplaintId()]++
		}
		return n
	}
	checkFor(t, 10*time.Second, func() error {
		if n := dueTasks(); n["c-closes"] != 2 || n["c-open"] != 2 {
			return fmt.Errorf("due tasks per complaint %v, want two feedback tasks each", n)
		}
		return nil
	})

	if code, page := answerByLink(t, surveyURL(t, r, "c-closes"), 5, true, ""); code != http.StatusOK {
		t.Fatalf("answer: HTTP %d\n%s", code, page)
	}
	e.waitForTypes("c-closes", with(scheduled, "SurveyAnswered", "ComplaintClosed")...)
	checkFor(t, 10*time.Second, func() error {
		if n := dueTasks(); n["c-closes"] != 0 || n["c-open"] != 2 {
			return fmt.Errorf("due tasks per complaint %v, want none of the closed c-closes, two of c-open", n)
		}
		return nil
	})
	// The follow-up itself still shows the tasks, undelivered.
	if tasks := followUp(t, r, "c-closes").GetFeedbackTasks(); len(tasks) != 2 || tasks[0].GetDelivered() {
		t.Fatalf("feedback tasks of the closed complaint: %v", tasks)
	}
}
