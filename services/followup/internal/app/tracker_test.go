package app

import (
	"cmp"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
)

// trackerLog interleaves complaints through every path of follow-up:
// A closed satisfied with its return visit made, B reopened then closed
// for no response with a visit open, C withdrawn, D waiting for its
// answer, E closed with a feedback task never delivered.
func trackerLog(t *testing.T) []eventlog.Record {
	t.Helper()
	var recs []eventlog.Record
	versions := map[string]uint64{}
	at := t0
	add := func(id, eventID string, p proto.Message) {
		versions[id]++
		at = at.Add(time.Hour)
		e := &eventsv1.Envelope{StreamId: string(eventlog.ComplaintStream(id)), ComplaintId: id, Version: versions[id], EventId: eventID, OccurredAt: timestamppb.New(at)}
		if err := eventlog.SetPayload(e, p); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, eventlog.Record{Event: e, Position: uint64(len(recs) + 1)})
	}
	due := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(at.Add(d)) }
	resolve := func(id, res string) {
		add(id, res, &eventsv1.ComplaintResolved{})
		add(id, "", &eventsv1.FeedbackTaskScheduled{TaskId: res + "-1", Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_FIRST, DueAt: due(24 * time.Hour), ResolutionEventId: res})
		add(id, "", &eventsv1.FeedbackTaskScheduled{TaskId: res + "-2", Round: eventsv1.FeedbackRound_FEEDBACK_ROUND_SECOND, DueAt: due(72 * time.Hour), ResolutionEventId: res})
		add(id, "", &eventsv1.SurveySent{SurveyId: "sv-" + res, ExpiresAt: due(7 * 24 * time.Hour), ResolutionEventId: res})
	}
	deliver := func(id, task string) { add(id, "", &eventsv1.FeedbackDelivered{TaskId: task}) }
	for _, id := range []string{"A", "B", "C", "D", "E"} {
		add(id, "", &eventsv1.ComplaintReceived{})
	}
	add("B", "", &eventsv1.ComplaintClassified{Severity: eventsv1.Severity_SEVERITY_L3})
	resolve("A", "rA")
	resolve("B", "rB1")
	add("C", "", &eventsv1.ComplaintWithdrawn{})
	deliver("A", "rA-1")
	resolve("D", "rD")
	add("B", "", &eventsv1.SurveyAnswered{SurveyId: "sv-rB1", Satisfaction: 1})
	add("B", "", &eventsv1.ComplaintReopened{})
	deliver("A", "rA-2")
	add("A", "", &eventsv1.SurveyAnswered{SurveyId: "sv-rA", Satisfaction: 5, Resolved: true})
	add("A", "", &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED})
	add("A", "", &eventsv1.ReturnVisitScheduled{VisitId: "rv-A", DueAt: due(30 * 24 * time.Hour)})
	resolve("E", "rE")
	resolve("B", "rB2")
	deliver("B", "rB2-1")
	deliver("B", "rB2-2")
	add("E", "", &eventsv1.SurveyAnswered{SurveyId: "sv-rE", Satisfaction: 4, Resolved: true})
	add("E", "", &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED})
	deliver("E", "rE-1")
	add("A", "", &eventsv1.ReturnVisitCompleted{VisitId: "rv-A"})
	add("B", "", &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE})
	add("B", "", &eventsv1.ReturnVisitScheduled{VisitId: "rv-B", DueAt: due(30 * 24 * time.Hour)})
	return recs
}

// The tracker drops complaints at rest and still lists, after every event,
// the tasks and deadlines the whole fold of every stream gives.
func TestTrackerKeepsOnlyPendingAndAnswersAsTheWholeFold(t *testing.T) {
	recs := trackerLog(t)
	far, now := t0.Add(365*24*time.Hour), t0.Add(48*time.Hour)
	tr := NewTracker()
	streams := map[string][]*eventsv1.Envelope{}
	for i, r := range recs {
		tr.Apply(r)
		id := r.Event.GetComplaintId()
		streams[id] = append(streams[id], r.Event)

		var want []DueTask
		var deadlines []string
		for id, evs := range streams {
			s := domain.Fold(id, evs)
			for _, task := range s.OpenTasks() {
				want = append(want, DueTask{ComplaintID: id, TaskID: task.ID, Round: task.Round, DueAt: task.DueAt, Overdue: task.DueAt.Before(now)})
			}
			for _, v := range s.OpenVisits() {
				want = append(want, DueTask{ComplaintID: id, TaskID: v.ID, Visit: true, DueAt: v.DueAt, Overdue: v.DueAt.Before(now)})
			}
			if _, ok := s.NoResponseDeadline(); ok {
				deadlines = append(deadlines, id)
			}
		}
		slices.SortFunc(want, func(a, b DueTask) int {
			return cmp.Or(a.DueAt.Compare(b.DueAt), cmp.Compare(a.ComplaintID, b.ComplaintID), cmp.Compare(a.TaskID, b.TaskID))
		})
		slices.Sort(deadlines)
		if diff := gocmp.Diff(want, tr.DueTasks(far, now, 0), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("after event %d (%s of %s), due tasks (-whole fold +tracker):\n%s", i+1, r.Event.GetType(), id, diff)
		}
		if diff := gocmp.Diff(deadlines, tr.Due(far), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("after event %d, deadlines (-whole fold +tracker):\n%s", i+1, diff)
		}
	}
	kept := make([]string, 0, len(tr.states))
	for id := range tr.states {
		kept = append(kept, id)
	}
	slices.Sort(kept)
	// E's undelivered task is a closed complaint's: nobody must do it.
	if want := []string{"B", "D"}; !slices.Equal(kept, want) {
		t.Fatalf("tracker keeps %v, want %v (A, C and E are at rest)", kept, want)
	}
}
