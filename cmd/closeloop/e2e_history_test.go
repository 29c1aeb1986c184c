package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A complaint's expected history is a list of steps. A step is one or more
// lanes; each lane is a sequence of events one producer writes in that order.
// A step of one lane is a strict sequence. A step of several lanes stands for
// events that different services write concurrently in reaction to the same
// cause: the stream must hold exactly those events next, in any interleaving
// that keeps each lane's own order. The step boundaries carry the
// cross-service causal order (a lane's events never come before the step that
// caused them), and the driver waits for each step before acting again, so
// every other ordering in the list is fixed.

// want is one expected event: its type, and a check of its key fields.
type want struct {
	typ   string
	desc  string
	check func(*eventsv1.Envelope) error
	// after names an event of another lane of the same step that must come
	// first (the cause of this one).
	after string
}

// afterEvent adds a cross-lane causal constraint.
func (w want) afterEvent(typ string) want { w.after = typ; return w }

func (w want) String() string {
	s := w.typ
	if w.desc != "" {
		s += "{" + w.desc + "}"
	}
	if w.after != "" {
		s += " (after " + w.after + ")"
	}
	return s
}

func (w want) match(e *eventsv1.Envelope) error {
	if e.GetType() != w.typ {
		return fmt.Errorf("type %s, want %s", e.GetType(), w.typ)
	}
	if p := producerOf[w.typ]; p != "" && e.GetProducer() != p {
		return fmt.Errorf("%s written by %q, want %q", w.typ, e.GetProducer(), p)
	}
	if w.check != nil {
		return w.check(e)
	}
	return nil
}

// producerOf: the only service allowed to write each event (README table).
var producerOf = map[string]string{}

func init() {
	for p, types := range map[string][]string{
		"intake":   {"ComplaintReceived", "ComplaintAccepted", "DuplicateLinked", "CustomerDetailsAmended", "EvidenceAttached", "ComplaintWithdrawn", "CustomerErased"},
		"routing":  {"ComplaintClassified", "RepeatComplaintFlagged", "ComplaintAssigned", "AssignmentAccepted", "ComplaintEscalated", "StakeholdersNotified", "ResponseRecorded", "SolutionProposed", "SolutionReviewed", "DispatchRequested", "RootCauseRecorded", "ComplaintPutOnHold", "ComplaintTakenOffHold", "ComplaintResolved"},
		"slaclock": {"SlaClockStarted", "SlaClockPaused", "SlaClockResumed", "SlaClockRetermed", "SlaWarning", "SlaBreached", "SlaBreachWithdrawn", "SlaMet", "SlaClockCancelled"},
		"dispatch": {"WorkOrderOpened", "TechnicianAssigned", "WorkOrderUnassignable", "TechnicianAccepted", "TechnicianDeclined", "CustomerContacted", "TechnicianEnRoute", "TechnicianArrived", "RemoteSessionStarted", "WorkCompleted", "RemoteResolved", "EscalatedToOnSite", "WorkOrderFailed", "WorkOrderCancelled"},
		"followup": {"FeedbackTaskScheduled", "FeedbackDelivered", "SurveySent", "SurveyAnswered", "ComplaintReopened", "ComplaintClosed", "ReturnVisitScheduled", "ReturnVisitCompleted"},
	} {
		for _, t := range types {
			producerOf[t] = p
		}
	}
}

type step [][]want

// seq is a strict sequence: one step per event.
func seq(ws ...want) []step {
	out := make([]step, len(ws))
	for i, w := range ws {
		out[i] = step{{w}}
	}
	return out
}

// par is events written concurrently by several producers (one lane each).
func par(lanes ...[]want) []step { return []step{lanes} }

func lane(ws ...want) []want { return ws }

func (s step) size() int {
	n := 0
	for _, l := range s {
		n += len(l)
	}
	return n
}

func (s step) String() string {
	if len(s) == 1 {
		return s[0][0].String()
	}
	var lanes []string
	for _, l := range s {
		var ws []string
		for _, w := range l {
			ws = append(ws, w.String())
		}
		lanes = append(lanes, "["+strings.Join(ws, ", ")+"]")
	}
	return "concurrently " + strings.Join(lanes, " || ")
}

// interleaves reports whether evs is an interleaving of the lanes that keeps
// each lane's order (backtracking: two lanes may expect the same type).
func interleaves(lanes [][]want, evs []*eventsv1.Envelope, seen map[string]bool) bool {
	if len(evs) == 0 {
		return true
	}
	for i, l := range lanes {
		if len(l) == 0 || l[0].match(evs[0]) != nil || (l[0].after != "" && !seen[l[0].after]) {
			continue
		}
		rest := slices.Clone(lanes)
		rest[i] = l[1:]
		was := seen[l[0].typ]
		seen[l[0].typ] = true
		if interleaves(rest, evs[1:], seen) {
			return true
		}
		seen[l[0].typ] = was
	}
	return false
}

// matchHistory checks recs against steps exactly (no event missing or extra).
func matchHistory(steps []step, recs []eventlog.Record) error {
	evs := make([]*eventsv1.Envelope, len(recs))
	for i, r := range recs {
		evs[i] = r.Event
	}
	at := 0
	for i, s := range steps {
		n := s.size()
		if at+n > len(evs) {
			return fmt.Errorf("step %d (%v): the stream ends at version %d", i+1, s, len(evs))
		}
		got := evs[at : at+n]
		if len(s) == 1 {
			if err := s[0][0].match(got[0]); err != nil {
				return fmt.Errorf("version %d: %w (step %d: %v)", at+1, err, i+1, s)
			}
		} else if !interleaves(s, got, map[string]bool{}) {
			return fmt.Errorf("versions %d–%d are not an interleaving of step %d: %v", at+1, at+n, i+1, s)
		}
		at += n
	}
	if at != len(evs) {
		return fmt.Errorf("%d unexpected event(s) from version %d: %s", len(evs)-at, at+1, describeAll(evs[at:]))
	}
	return nil
}

// history is one complaint's expected stream, built up as the driver goes.
type history struct {
	e     *e2e
	id    string
	steps []step
}

func (e *e2e) history(id string) *history { return &history{e: e, id: id} }

// expect adds steps and waits until the stream holds exactly the expected
// events so far (failing at once on a wrong or extra event, or at the
// deadline on a missing one). It returns the stream.
func (h *history) expect(t *testing.T, steps ...[]step) []eventlog.Record {
	t.Helper()
	for _, s := range steps {
		h.steps = append(h.steps, s...)
	}
	total := 0
	for _, s := range h.steps {
		total += s.size()
	}
	deadline := time.Now().Add(effectTimeout)
	for {
		recs := h.e.stream(t, h.id)
		if len(recs) >= total {
			if err := matchHistory(h.steps, recs); err != nil {
				t.Fatalf("complaint %s: %v\n%s", h.id, err, h.dump(recs))
			}
			return recs
		}
		if time.Now().After(deadline) {
			err := matchHistory(h.steps, recs)
			t.Fatalf("complaint %s: waited %v for %d events, have %d: %v\n%s", h.id, effectTimeout, total, len(recs), err, h.dump(recs))
		}
		time.Sleep(pollEvery)
	}
}

// verify checks the stream once more against the whole expected history.
func (h *history) verify(t *testing.T) {
	t.Helper()
	recs := h.e.stream(t, h.id)
	if err := matchHistory(h.steps, recs); err != nil {
		t.Errorf("complaint %s after the flow settled: %v\n%s", h.id, err, h.dump(recs))
	}
}

func (h *history) dump(recs []eventlog.Record) string {
	var b strings.Builder
	b.WriteString("expected:\n")
	for i, s := range h.steps {
		fmt.Fprintf(&b, "  %2d. %v\n", i+1, s)
	}
	b.WriteString("actual:\n")
	for _, r := range recs {
		fmt.Fprintf(&b, "  v%-3d %-9s %s\n", r.Event.GetVersion(), r.Event.GetProducer(), describe(r.Event))
	}
	return b.String()
}

func describeAll(evs []*eventsv1.Envelope) string {
	var out []string
	for _, e := range evs {
		out = append(out, describe(e))
	}
	return strings.Join(out, ", ")
}

// describe prints an event with the fields the expectations look at.
func describe(e *eventsv1.Envelope) string {
	var d string
	switch p := eventlog.Payload(e).(type) {
	case *eventsv1.ComplaintClassified:
		d = fmt.Sprintf("%v %v %v", p.GetSeverity(), p.GetCategory(), p.GetPriority())
	case *eventsv1.ComplaintAssigned:
		d = p.GetTeam() + " " + p.GetOwner()
	case *eventsv1.ComplaintEscalated:
		d = fmt.Sprintf("%v→%v %v", p.GetFromLevel(), p.GetToLevel(), p.GetCause())
	case *eventsv1.StakeholdersNotified:
		d = fmt.Sprintf("%v %q", p.GetRecipients(), p.GetReason())
	case *eventsv1.SlaClockStarted:
		d = fmt.Sprintf("%v %s", p.GetTarget(), p.GetClockId())
	case *eventsv1.SlaMet:
		d = p.GetTarget().String()
	case *eventsv1.SlaWarning:
		d = fmt.Sprintf("%v %d%%", p.GetTarget(), p.GetThresholdPercent())
	case *eventsv1.SlaBreached:
		d = p.GetTarget().String()
	case *eventsv1.SlaClockCancelled:
		d = fmt.Sprintf("%v %q", p.GetTarget(), p.GetReason())
	case *eventsv1.FeedbackTaskScheduled:
		d = p.GetRound().String()
	case *eventsv1.FeedbackDelivered:
		d = p.GetRound().String()
	case *eventsv1.SurveyAnswered:
		d = fmt.Sprintf("%d resolved=%v %v", p.GetSatisfaction(), p.GetResolved(), p.GetVia())
	case *eventsv1.ComplaintClosed:
		d = p.GetOutcome().String()
	case *eventsv1.ComplaintReopened:
		d = fmt.Sprintf("count=%d", p.GetReopenCount())
	case *eventsv1.ComplaintResolved:
		d = fmt.Sprintf("%s by %s first_contact=%v", p.GetResolutionCode(), p.GetResolvedBy(), p.GetFirstContact())
	case *eventsv1.DuplicateLinked:
		d = p.GetChannel().String()
	}
	if d == "" {
		return e.GetType()
	}
	return e.GetType() + "{" + d + "}"
}

// ---- expected events ------------------------------------------------------

func ev(typ string) want { return want{typ: typ} }

func payloadCheck[T any](typ, desc string, ok func(T) error) want {
	return want{typ: typ, desc: desc, check: func(e *eventsv1.Envelope) error {
		p, is := eventlog.Payload(e).(T)
		if !is {
			return fmt.Errorf("payload %T", eventlog.Payload(e))
		}
		if err := ok(p); err != nil {
			return fmt.Errorf("%s: %w", describe(e), err)
		}
		return nil
	}}
}

func expectf(cond bool, format string, args ...any) error {
	if cond {
		return nil
	}
	return fmt.Errorf(format, args...)
}

func acceptedAutomatically() want {
	return payloadCheck("ComplaintAccepted", "automatic", func(p *eventsv1.ComplaintAccepted) error {
		return expectf(p.GetAutomatic() && p.GetAcceptedBy() == "system", "want automatic acceptance by system")
	})
}

func classified(sev eventsv1.Severity, cat eventsv1.Category) want {
	return payloadCheck("ComplaintClassified", sev.String()+" "+cat.String(), func(p *eventsv1.ComplaintClassified) error {
		return expectf(p.GetSeverity() == sev && p.GetCategory() == cat, "want %v %v", sev, cat)
	})
}

func assigned(team, owner string) want {
	return payloadCheck("ComplaintAssigned", team+" "+owner, func(p *eventsv1.ComplaintAssigned) error {
		return expectf(p.GetTeam() == team && p.GetOwner() == owner, "want team %s owner %s", team, owner)
	})
}

func escalated(from, to eventsv1.EscalationLevel, cause eventsv1.EscalationCause, notified ...string) want {
	return payloadCheck("ComplaintEscalated", fmt.Sprintf("%v→%v %v", from, to, cause), func(p *eventsv1.ComplaintEscalated) error {
		if err := expectf(p.GetFromLevel() == from && p.GetToLevel() == to && p.GetCause() == cause, "want %v→%v %v", from, to, cause); err != nil {
			return err
		}
		return expectf(slices.Equal(p.GetNotified(), notified), "notified %v, want %v", p.GetNotified(), notified)
	})
}

func notified(recipients ...string) want {
	return payloadCheck("StakeholdersNotified", strings.Join(recipients, ","), func(p *eventsv1.StakeholdersNotified) error {
		return expectf(slices.Equal(p.GetRecipients(), recipients), "recipients %v, want %v", p.GetRecipients(), recipients)
	})
}

func slaStarted(target eventsv1.SlaTarget) want {
	return payloadCheck("SlaClockStarted", target.String(), func(p *eventsv1.SlaClockStarted) error {
		return expectf(p.GetTarget() == target, "want %v", target)
	})
}

func slaMet(target eventsv1.SlaTarget) want {
	return payloadCheck("SlaMet", target.String(), func(p *eventsv1.SlaMet) error {
		return expectf(p.GetTarget() == target, "want %v", target)
	})
}

func slaWarning(target eventsv1.SlaTarget, pct uint32) want {
	return payloadCheck("SlaWarning", fmt.Sprintf("%v %d%%", target, pct), func(p *eventsv1.SlaWarning) error {
		return expectf(p.GetTarget() == target && p.GetThresholdPercent() == pct, "want %v at %d%%", target, pct)
	})
}

func slaBreached(target eventsv1.SlaTarget) want {
	return payloadCheck("SlaBreached", target.String(), func(p *eventsv1.SlaBreached) error {
		return expectf(p.GetTarget() == target, "want %v", target)
	})
}

func slaCancelled(target eventsv1.SlaTarget) want {
	return payloadCheck("SlaClockCancelled", target.String(), func(p *eventsv1.SlaClockCancelled) error {
		return expectf(p.GetTarget() == target, "want %v", target)
	})
}

func feedbackScheduled(round eventsv1.FeedbackRound, due time.Time) want {
	return payloadCheck("FeedbackTaskScheduled", round.String(), func(p *eventsv1.FeedbackTaskScheduled) error {
		return expectf(p.GetRound() == round && p.GetDueAt().AsTime().Equal(due), "round %v due %v, want %v due %v", p.GetRound(), p.GetDueAt().AsTime(), round, due)
	})
}

func feedbackDelivered(round eventsv1.FeedbackRound) want {
	return payloadCheck("FeedbackDelivered", round.String(), func(p *eventsv1.FeedbackDelivered) error {
		return expectf(p.GetRound() == round, "want %v", round)
	})
}

func surveyAnswered(satisfaction uint32, resolved bool, via eventsv1.SurveyVia) want {
	return payloadCheck("SurveyAnswered", fmt.Sprintf("%d resolved=%v %v", satisfaction, resolved, via), func(p *eventsv1.SurveyAnswered) error {
		return expectf(p.GetSatisfaction() == satisfaction && p.GetResolved() == resolved && p.GetVia() == via, "want %d resolved=%v %v", satisfaction, resolved, via)
	})
}

func closed(outcome eventsv1.CloseOutcome) want {
	return payloadCheck("ComplaintClosed", outcome.String(), func(p *eventsv1.ComplaintClosed) error {
		return expectf(p.GetOutcome() == outcome, "want %v", outcome)
	})
}

func reopened(count uint32) want {
	return payloadCheck("ComplaintReopened", fmt.Sprintf("count=%d", count), func(p *eventsv1.ComplaintReopened) error {
		return expectf(p.GetReopenCount() == count, "want reopen count %d", count)
	})
}

func resolved(by string, firstContact bool) want {
	return payloadCheck("ComplaintResolved", fmt.Sprintf("by %s first_contact=%v", by, firstContact), func(p *eventsv1.ComplaintResolved) error {
		return expectf(p.GetResolvedBy() == by && p.GetFirstContact() == firstContact, "want by %s first_contact=%v", by, firstContact)
	})
}

func duplicateLinked(ch eventsv1.Channel) want {
	return payloadCheck("DuplicateLinked", ch.String(), func(p *eventsv1.DuplicateLinked) error {
		return expectf(p.GetChannel() == ch, "want %v", ch)
	})
}
