package chaos

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// history builds a stream's records from payloads, versions from 1.
func history(t *testing.T, stream string, payloads ...proto.Message) []eventlog.Record {
	t.Helper()
	var out []eventlog.Record
	for i, p := range payloads {
		e, err := eventlog.NewEvent(eventlog.Meta{}, p)
		if err != nil {
			t.Fatal(err)
		}
		e.StreamId, e.Version = stream, uint64(i+1)
		out = append(out, eventlog.Record{Event: e, Position: uint64(i + 1)})
	}
	return out
}

func problems(r *report) string { return strings.Join(r.problems, "\n") }

// The checks find what they are there to find: a duplicate warning, breach
// or survey, an assignment that changes nothing, a technician over capacity
// or booked twice for one order.
func TestInvariantChecksCatchDuplicates(t *testing.T) {
	warn := &eventsv1.SlaWarning{ClockId: "resolution-1", ThresholdPercent: 50}
	breach := &eventsv1.SlaBreached{ClockId: "resolution-1"}
	assigned := &eventsv1.ComplaintAssigned{Team: "customer-service", Owner: "a1"}
	started := func(t eventsv1.SlaTarget, id string) *eventsv1.SlaClockStarted {
		return &eventsv1.SlaClockStarted{ClockId: id, Target: t}
	}
	clean := []proto.Message{&eventsv1.ComplaintReceived{ChannelRef: "x"},
		started(eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE, "acceptance-1"),
		started(eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, "first_response-1"),
		started(eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, "resolution-1"),
		assigned, warn, &eventsv1.SlaWarning{ClockId: "resolution-1", ThresholdPercent: 75}, breach}

	var r report
	checkComplaint("complaint-ok", history(t, "complaint-ok", clean...), &r)
	if len(r.problems) != 0 {
		t.Fatalf("a clean history was flagged:\n%s", problems(&r))
	}

	for name, extra := range map[string]proto.Message{
		"SlaWarning resolution-1 at 50%": warn,
		"SlaBreached resolution-1":       breach,
		"repeats the current owner":      assigned,
	} {
		var r report
		checkComplaint("complaint-dup", history(t, "complaint-dup", append(clean, extra)...), &r)
		if !strings.Contains(problems(&r), name) {
			t.Errorf("duplicate %q not reported; got %q", name, problems(&r))
		}
	}

	// A received complaint whose resolution clock never started.
	var rc report
	checkComplaint("complaint-nc", history(t, "complaint-nc", clean[:3]...), &rc)
	if !strings.Contains(problems(&rc), "0 SLA_TARGET_RESOLUTION clock(s) started, want at least 1") {
		t.Errorf("a missing resolution clock was not reported: %q", problems(&rc))
	}

	// One survey per resolution: the survey must name a resolution in the stream.
	recs := history(t, "complaint-s", &eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{ResolutionCode: "fixed"})
	res := recs[1].Event.GetEventId()
	var r2 report
	checkComplaint("complaint-s", recs, &r2)
	if !strings.Contains(problems(&r2), "has 0 surveys") {
		t.Errorf("a resolution without a survey was not reported: %q", problems(&r2))
	}
	recs = append(recs, history(t, "complaint-s", &eventsv1.SurveySent{SurveyId: "sv-1", ResolutionEventId: res}, &eventsv1.SurveySent{SurveyId: "sv-1", ResolutionEventId: res})...)
	var r3 report
	checkComplaint("complaint-s", recs, &r3)
	if !strings.Contains(problems(&r3), "has 2 surveys") {
		t.Errorf("two surveys for one resolution not reported: %q", problems(&r3))
	}

	reg := &eventsv1.TechnicianRegistered{TechnicianId: "t1", MaxConcurrentJobs: 1, MaxDailyJobs: 5}
	book := func(wo string) *eventsv1.TechnicianJobBooked {
		return &eventsv1.TechnicianJobBooked{TechnicianId: "t1", WorkOrderId: wo, Day: "2026-11-02"}
	}
	release := func(wo, reason string) *eventsv1.TechnicianJobReleased {
		return &eventsv1.TechnicianJobReleased{TechnicianId: "t1", WorkOrderId: wo, Reason: reason}
	}
	var ok report
	checkTechnician("technician-t1", history(t, "technician-t1", reg, book("w1"), release("w1", "completed"), book("w2"), release("w2", "completed")), &ok)
	if len(ok.problems) != 0 {
		t.Fatalf("a technician within capacity was flagged:\n%s", problems(&ok))
	}
	var over report
	checkTechnician("technician-t1", history(t, "technician-t1", reg, book("w1"), book("w2"), release("w1", "completed"), release("w2", "completed")), &over)
	if !strings.Contains(problems(&over), "over the limit of 1") {
		t.Errorf("two open jobs over a limit of one not reported: %q", problems(&over))
	}
	var twice report
	checkTechnician("technician-t1", history(t, "technician-t1", reg, book("w1"), release("w1", "declined"), book("w1"), release("w1", "completed")), &twice)
	if !strings.Contains(problems(&twice), "booked twice") {
		t.Errorf("a work order booked twice not reported: %q", problems(&twice))
	}
}

// A complaint that did not reach its script's end is reported.
func TestExpectationNamesTheMiss(t *testing.T) {
	open := fold(history(t, "complaint-1", &eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{}))
	if msg := expectation(&item{script: scriptSatisfied}, open); !strings.Contains(msg, "want closed") {
		t.Errorf("unclosed complaint: %q", msg)
	}
	closed := fold(history(t, "complaint-1", &eventsv1.ComplaintReceived{}, &eventsv1.ComplaintResolved{},
		&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED}))
	if msg := expectation(&item{script: scriptSatisfied}, closed); msg != "" {
		t.Errorf("closed satisfied complaint flagged: %q", msg)
	}
	if msg := expectation(&item{script: scriptReopen}, closed); !strings.Contains(msg, "reopen") {
		t.Errorf("a reopen script that never reopened: %q", msg)
	}
	if msg := expectation(&item{script: scriptBreach}, closed); msg == "" {
		t.Error("a breach script that was resolved and closed passed")
	}
}
