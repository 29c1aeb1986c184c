package followup_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// The KPI model fed live through the bus and the one rebuilt from ReadAll
// give the same numbers, and the service's own (fed by Follow) exports the
// same CSV.
func TestKPILiveEqualsRebuilt(t *testing.T) {
	e := newEnv(t)
	r := e.startService()

	live := kpi.New()
	sub, err := bus.Subscribe(context.Background(), e.js, bus.Options{Durable: "kpi_live_test"}, func(_ context.Context, rec eventlog.Record) error {
		live.Apply(rec)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()

	// c1: accepted, responded, resolved at first contact, satisfied by link.
	e.emit("c1", received)
	e.clk.Advance(time.Hour)
	e.emit("c1", &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"}, l1, &eventsv1.ComplaintAssigned{Team: "cs", Owner: "u1"},
		&eventsv1.SlaMet{ClockId: "k1", Target: eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE})
	e.clk.Advance(time.Hour)
	e.emit("c1", &eventsv1.ResponseRecorded{Channel: eventsv1.Channel_CHANNEL_PHONE})
	e.clk.Advance(2 * time.Hour)
	e.emit("c1", &eventsv1.ComplaintResolved{FirstContact: true})
	e.waitForTypes("c1", "ComplaintReceived", "ComplaintAccepted", "ComplaintClassified", "ComplaintAssigned", "SlaMet", "ResponseRecorded",
		"ComplaintResolved", "FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent")
	if code, _ := answerByLink(t, surveyURL(t, r, "c1"), 5, true, ""); code != http.StatusOK {
		t.Fatalf("c1 answer: HTTP %d", code)
	}

	// c2: a repeat, with a technician, breached, dissatisfied by phone,
	// reopened, resolved again, then no answer → NO_RESPONSE (+ return visit, L3).
	e.emit("c2", received, l3, &eventsv1.ComplaintAssigned{Team: "tech", Owner: "u2"}, &eventsv1.RepeatComplaintFlagged{},
		&eventsv1.TechnicianAccepted{WorkOrderId: "w1", TechnicianId: "t1"})
	e.clk.Advance(30 * time.Hour)
	e.emit("c2", &eventsv1.SlaBreached{ClockId: "k2", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION}, resolved())
	got := e.waitForTypes("c2", "ComplaintReceived", "ComplaintClassified", "ComplaintAssigned", "RepeatComplaintFlagged", "TechnicianAccepted",
		"SlaBreached", "ComplaintResolved", "FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent")
	if code := call(t, r, "RecordSurveyAnswer", &followupv1.RecordSurveyAnswerRequest{
		ComplaintId: "c2", SurveyId: got[9].GetSurveySent().GetSurveyId(), Satisfaction: 1, Resolved: false, RecordedBy: "agent-2",
	}, nil); code != http.StatusOK {
		t.Fatalf("c2 phone answer: HTTP %d", code)
	}
	checkFor(t, 10*time.Second, func() error {
		if n := len(e.stream("c2")); n != 12 {
			return errString("c2 not reopened yet")
		}
		return nil
	})
	e.emit("c2", resolved())
	checkFor(t, 10*time.Second, func() error {
		if n := len(e.stream("c2")); n != 16 {
			return errString("c2's second follow-up not scheduled yet")
		}
		return nil
	})
	e.waitArmed(1)
	e.clk.Advance(7 * day)
	checkFor(t, 10*time.Second, func() error {
		if n := len(e.stream("c2")); n != 18 { // + ComplaintClosed NO_RESPONSE, ReturnVisitScheduled
			return errString("c2 not closed for no response yet")
		}
		return nil
	})

	// c3: withdrawn.
	e.emit("c3", received, &eventsv1.ComplaintWithdrawn{Reason: "changed mind"})

	last := e.lastPosition()
	checkFor(t, 10*time.Second, func() error {
		if live.Position() < last || r.svc.KPIPosition() < last {
			return errString("projections not caught up")
		}
		return nil
	})
	rebuilt := kpi.New()
	for from := uint64(1); ; {
		recs, err := e.log.ReadAll(context.Background(), from, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			rebuilt.Apply(rec)
		}
		from = recs[len(recs)-1].Position + 1
	}

	// The numbers are not trivially empty: 3 received, 1 withdrawn, both
	// others resolved, 1 reopened, CSI (5 + 1) / 2 = 3.
	all := rebuilt.Query(kpi.Query{})
	if len(all) != 1 || all[0].Received != 3 || all[0].Withdrawn != 1 || all[0].Resolved != 2 || all[0].Reopened != 1 ||
		all[0].CSIAverage != 3 || all[0].ClosedSatisfied != 1 || all[0].ClosedNoResponse != 1 || all[0].Repeats != 1 {
		t.Fatalf("rebuilt KPIs: %+v", all)
	}

	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	groups := map[string]kpi.Group{"all": kpi.GroupAll, "team": kpi.GroupTeam, "owner": kpi.GroupOwner, "technician": kpi.GroupTechnician, "category": kpi.GroupCategory}
	periods := map[string]kpi.Period{"all": kpi.PeriodAll, "day": kpi.PeriodDay, "week": kpi.PeriodWeek, "month": kpi.PeriodMonth}
	for gname, g := range groups {
		for pname, p := range periods {
			q := kpi.Query{Group: g, Period: p, Location: shanghai}
			want := rebuilt.Query(q)
			if diff := cmp.Diff(want, live.Query(q)); diff != "" {
				t.Errorf("%s/%s: live (bus) differs from rebuilt (-rebuilt +live):\n%s", gname, pname, diff)
			}
			var csv bytes.Buffer
			if err := kpi.WriteCSV(&csv, want); err != nil {
				t.Fatal(err)
			}
			res, err := http.Get("http://" + r.svc.HTTPAddr() + "/v1/kpi/export.csv?group=" + gname + "&period=" + pname)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !bytes.Equal(body, csv.Bytes()) {
				t.Errorf("%s/%s: service CSV (HTTP %d) differs from rebuilt:\n%s\nwant:\n%s", gname, pname, res.StatusCode, body, csv.Bytes())
			}
		}
	}

	// The gRPC/JSON query agrees too, on one grouping.
	resp := &followupv1.QueryKpisResponse{}
	if code := call(t, r, "QueryKpis", &followupv1.QueryKpisRequest{Group: followupv1.KpiGroup_KPI_GROUP_TEAM}, resp); code != http.StatusOK {
		t.Fatalf("QueryKpis: HTTP %d", code)
	}
	if len(resp.GetRows()) != 3 { // cs (c1), tech (c2), "" (c3, never assigned)
		t.Fatalf("QueryKpis by team: %d rows", len(resp.GetRows()))
	}
	// A bad export query names the field.
	res, err := http.Get("http://" + r.svc.HTTPAddr() + "/v1/kpi/export.csv?group=planet")
	if err != nil {
		t.Fatal(err)
	}
	if b := jsonBody(t, res); res.StatusCode != http.StatusBadRequest || b["violations"].([]any)[0].(map[string]any)["field"] != "group" {
		t.Fatalf("bad group: HTTP %d %v", res.StatusCode, b)
	}
}

// A complaint typed in two days after the customer reported it (its
// received_at) is in the KPIs of the week it was reported, and its
// automatic acceptance, written on entry, took two days, as its SLA clocks
// count it.
func TestKPIOfALateEntryCountsFromReceivedAt(t *testing.T) {
	e := newEnv(t)
	r := e.startService()
	e.clk.Advance(8 * day) // Tuesday 10 March 09:00 UTC
	reported := e.clk.Now().Add(-48 * time.Hour)
	e.emit("c-late", &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_EMAIL, ChannelRef: "l-1", ReceivedAt: timestamppb.New(reported)},
		&eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})

	shanghai, _ := time.LoadLocation("Asia/Shanghai")
	week := time.Date(2026, 3, 2, 0, 0, 0, 0, shanghai) // the Monday before Sunday 8 March
	checkFor(t, 10*time.Second, func() error {
		resp := &followupv1.QueryKpisResponse{}
		if code := call(t, r, "QueryKpis", &followupv1.QueryKpisRequest{Group: followupv1.KpiGroup_KPI_GROUP_ALL, Period: followupv1.KpiPeriod_KPI_PERIOD_WEEK}, resp); code != http.StatusOK {
			return fmt.Errorf("QueryKpis: HTTP %d", code)
		}
		rows := resp.GetRows()
		if len(rows) != 1 {
			return fmt.Errorf("rows %v, want one", rows)
		}
		row := rows[0]
		if !row.GetPeriodStart().AsTime().Equal(week) || row.GetReceived() != 1 {
			return fmt.Errorf("row of week %v with %d received; want the week of %v", row.GetPeriodStart().AsTime(), row.GetReceived(), week)
		}
		if a := row.GetTimeToAccept(); a.GetCount() != 1 || a.GetMean().AsDuration() != 48*time.Hour {
			return fmt.Errorf("time to accept %v, want 48h", a)
		}
		return nil
	})
}
