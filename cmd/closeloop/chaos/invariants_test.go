package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// poison is the message the harness injects on a complaint subject.
type poison struct {
	subject string
	seq     uint64
}

// report collects invariant violations (each one a precise sentence).
type report struct{ problems []string }

func (r *report) add(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// checkLog reads the whole log and checks every invariant. It returns the
// number of events read.
func checkLog(ctx context.Context, store *jsstore.Store, js jetstream.JetStream, items []*item, p poison, r *report) (int, error) {
	// Every hash chain verifies.
	rep, err := eventlog.VerifyLog(ctx, store, 4096)
	if err != nil {
		return 0, fmt.Errorf("verify log: %w", err)
	}
	for _, b := range rep.Broken {
		r.add("hash chain: stream %s broken at version %d (log position %d): %s", b.Stream, b.Version, b.Position, b.Reason)
	}

	// Group the log by stream, in log order.
	streams := map[string][]eventlog.Record{}
	var from uint64 = 1
	events := 0
	for {
		recs, err := store.ReadAll(ctx, from, 4096)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			from = rec.Position + 1
			if rec.Position == p.seq {
				continue // the poison, checked below
			}
			events++
			streams[rec.Event.GetStreamId()] = append(streams[rec.Event.GetStreamId()], rec)
		}
	}

	// Every acknowledged complaint exists exactly once and reached its end.
	byRef := map[string]int{}
	for id, recs := range streams {
		if !strings.HasPrefix(id, "complaint-") {
			continue
		}
		for _, rec := range recs {
			if x, ok := eventlog.Payload(rec.Event).(*eventsv1.ComplaintReceived); ok {
				byRef[x.GetChannelRef()]++
			}
		}
		checkComplaint(id, recs, r)
	}
	for _, it := range items {
		if it.id == "" {
			continue // never acknowledged: nothing is promised
		}
		recs := streams["complaint-"+it.id]
		if n := byRef[it.channelRef]; n != 1 {
			r.add("complaint %d (%s): %d ComplaintReceived for its channel reference, want exactly 1", it.n, it.id, n)
		}
		if len(recs) == 0 {
			r.add("complaint %d (%s): acknowledged but not in the log", it.n, it.id)
			continue
		}
		if msg := expectation(it, fold(recs)); msg != "" {
			r.add("complaint %d (%s, script %s): %s", it.n, it.id, it.script, msg)
		}
	}

	// No technician over capacity at any point, one booking per work order.
	for id, recs := range streams {
		if strings.HasPrefix(id, "technician-") {
			checkTechnician(id, recs, r)
		}
	}

	// The dead-letter stream holds the poison (with its reason) and nothing else.
	dls, err := bus.DeadLetters(ctx, js, "")
	if err != nil {
		return events, err
	}
	if len(dls) == 0 {
		r.add("dead letters: the poison message (log position %d) was not dead-lettered", p.seq)
	}
	for _, dl := range dls {
		if dl.Subject != p.subject || dl.StreamSequence != p.seq || dl.Reason == "" {
			r.add("dead letters: unexpected entry %d from consumer %s: subject %s, position %d, reason %q", dl.Seq, dl.Consumer, dl.Subject, dl.StreamSequence, dl.Reason)
		}
	}
	return events, nil
}

// expectation says what is wrong with c for it's script ("" when nothing).
func expectation(it *item, c *complaint) string {
	switch it.script {
	case scriptNoResponse:
		if !c.closed || c.outcome != eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE {
			return fmt.Sprintf("want closed NO_RESPONSE, got closed=%v outcome=%v", c.closed, c.outcome)
		}
	case scriptBreach:
		if !c.accepted || c.owner == "" {
			return fmt.Sprintf("never accepted and assigned (accepted=%v, owner %q)", c.accepted, c.owner)
		}
		if c.resolves != 0 || c.closed {
			return "left alone, yet resolved or closed"
		}
		if c.breaches[eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE] != 1 || c.breaches[eventsv1.SlaTarget_SLA_TARGET_RESOLUTION] != 1 {
			return fmt.Sprintf("want one first-response and one resolution breach, got %v", c.breaches)
		}
		if c.escalated == 0 {
			return "breached but never escalated"
		}
	default:
		want := eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED
		if !c.closed || c.outcome != want {
			return fmt.Sprintf("want closed %v, got closed=%v outcome=%v", want, c.closed, c.outcome)
		}
		wantReopens, wantResolves := 0, 1
		if it.script == scriptReopen {
			wantReopens, wantResolves = 1, 2
		}
		if c.reopens != wantReopens || c.resolves != wantResolves {
			return fmt.Sprintf("want %d reopen(s) and %d resolution(s), got %d and %d", wantReopens, wantResolves, c.reopens, c.resolves)
		}
		if it.script == scriptRepair || it.script == scriptRemote {
			done := 0
			for _, o := range c.orders {
				if o.done {
					done++
				}
			}
			if done != 1 {
				return fmt.Sprintf("want one finished work order, got %d", done)
			}
		}
	}
	return ""
}

// checkComplaint finds effects recorded twice in one complaint's history,
// and clocks that sla-clock never started.
func checkComplaint(id string, recs []eventlog.Record, r *report) {
	seen := map[string]int{}
	once := func(key string) {
		seen[key]++
		if seen[key] == 2 {
			r.add("%s: effect recorded twice: %s", id, key)
		}
	}
	owner, team := "", ""
	resolutions := map[string]bool{}
	surveys := map[string]int{}
	received, reopens := false, 0
	clocks := map[eventsv1.SlaTarget]int{} // clocks started, per target
	for _, rec := range recs {
		switch p := eventlog.Payload(rec.Event).(type) {
		case *eventsv1.ComplaintReceived:
			once("ComplaintReceived")
			received = true
		case *eventsv1.ComplaintAccepted:
			once("ComplaintAccepted")
		case *eventsv1.ComplaintAssigned:
			if p.GetOwner() == owner && p.GetTeam() == team {
				r.add("%s: ComplaintAssigned at version %d repeats the current owner %s of team %s", id, rec.Event.GetVersion(), owner, team)
			}
			owner, team = p.GetOwner(), p.GetTeam()
		case *eventsv1.ComplaintEscalated:
			once(fmt.Sprintf("ComplaintEscalated cause=%v cause_event=%s", p.GetCause(), p.GetCauseEventId()))
		case *eventsv1.StakeholdersNotified:
			once("StakeholdersNotified cause_event=" + p.GetCauseEventId())
		case *eventsv1.SlaClockStarted:
			once("SlaClockStarted " + p.GetClockId())
			clocks[p.GetTarget()]++
		case *eventsv1.SlaWarning:
			once(fmt.Sprintf("SlaWarning %s at %d%%", p.GetClockId(), p.GetThresholdPercent()))
		case *eventsv1.SlaBreached:
			once("SlaBreached " + p.GetClockId())
		case *eventsv1.SlaMet:
			once("SlaMet " + p.GetClockId())
		case *eventsv1.DispatchRequested:
			once("DispatchRequested " + p.GetWorkOrderId())
		case *eventsv1.WorkOrderOpened:
			once("WorkOrderOpened " + p.GetWorkOrderId())
		case *eventsv1.WorkCompleted:
			once("WorkCompleted " + p.GetWorkOrderId())
		case *eventsv1.RemoteResolved:
			once("RemoteResolved " + p.GetWorkOrderId())
		case *eventsv1.ComplaintResolved:
			resolutions[rec.Event.GetEventId()] = true
		case *eventsv1.FeedbackTaskScheduled:
			once("FeedbackTaskScheduled " + p.GetTaskId())
		case *eventsv1.SurveySent:
			once("SurveySent for resolution " + p.GetResolutionEventId())
			surveys[p.GetResolutionEventId()]++
		case *eventsv1.SurveyAnswered:
			once("SurveyAnswered " + p.GetSurveyId())
		case *eventsv1.ComplaintReopened:
			once("ComplaintReopened " + p.GetSurveyId())
			reopens++
		case *eventsv1.ComplaintClosed:
			once("ComplaintClosed")
		}
	}
	// Every received complaint gets its acceptance, first-response and
	// resolution clocks, a new resolution clock per reopening and feedback
	// clocks per resolution (reclassification may start more).
	if received {
		for target, want := range map[eventsv1.SlaTarget]int{
			eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE:      1,
			eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE:  1,
			eventsv1.SlaTarget_SLA_TARGET_RESOLUTION:      1 + reopens,
			eventsv1.SlaTarget_SLA_TARGET_FIRST_FEEDBACK:  len(resolutions),
			eventsv1.SlaTarget_SLA_TARGET_SECOND_FEEDBACK: len(resolutions),
		} {
			if clocks[target] < want {
				r.add("%s: %d %v clock(s) started, want at least %d", id, clocks[target], target, want)
			}
		}
	}
	for res := range resolutions {
		if surveys[res] != 1 {
			r.add("%s: resolution %s has %d surveys, want 1", id, res, surveys[res])
		}
	}
	for res := range surveys {
		if !resolutions[res] {
			r.add("%s: survey for an unknown resolution %s", id, res)
		}
	}
}

// releaseGivesDayBack lists the release reasons that hand the day's slot back
// (the others still count against the day: dispatch README).
var releaseGivesDayBack = map[string]bool{"declined": true, "cancelled": true, "reassigned": true, "reconciled": true}

// checkTechnician folds a technician's stream in order and checks capacity
// after every event, and one booking per work order.
func checkTechnician(id string, recs []eventlog.Record, r *report) {
	var maxOpen, maxDaily uint32
	open := map[string]string{} // work order → day
	daily := map[string]int{}
	booked := map[string]bool{}
	for _, rec := range recs {
		switch p := eventlog.Payload(rec.Event).(type) {
		case *eventsv1.TechnicianRegistered:
			maxOpen, maxDaily = p.GetMaxConcurrentJobs(), p.GetMaxDailyJobs()
		case *eventsv1.TechnicianProfileUpdated:
			maxOpen, maxDaily = p.GetMaxConcurrentJobs(), p.GetMaxDailyJobs()
		case *eventsv1.TechnicianJobBooked:
			if booked[p.GetWorkOrderId()] {
				r.add("%s: work order %s booked twice (version %d)", id, p.GetWorkOrderId(), rec.Event.GetVersion())
			}
			booked[p.GetWorkOrderId()] = true
			open[p.GetWorkOrderId()] = p.GetDay()
			daily[p.GetDay()]++
		case *eventsv1.TechnicianJobReleased:
			day, ok := open[p.GetWorkOrderId()]
			if !ok {
				r.add("%s: work order %s released without being held (version %d)", id, p.GetWorkOrderId(), rec.Event.GetVersion())
				continue
			}
			delete(open, p.GetWorkOrderId())
			if releaseGivesDayBack[p.GetReason()] {
				daily[day]--
			}
		default:
			continue
		}
		if maxOpen > 0 && uint32(len(open)) > maxOpen {
			r.add("%s: %d open jobs after version %d, over the limit of %d", id, len(open), rec.Event.GetVersion(), maxOpen)
		}
		for day, n := range daily {
			if maxDaily > 0 && n > int(maxDaily) {
				r.add("%s: %d jobs on %s after version %d, over the daily limit of %d", id, n, day, rec.Event.GetVersion(), maxDaily)
			}
		}
	}
	if len(open) > 0 {
		var ids []string
		for wo := range open {
			ids = append(ids, wo)
		}
		sort.Strings(ids)
		r.add("%s: still holds work orders %v at the end (every script finished its orders)", id, ids)
	}
}
