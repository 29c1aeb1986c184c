package domain

import (
	"cmp"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
)

// Calendars resolves calendar ids and owners' calendars (a *calendar.Set).
type Calendars interface {
	Calendar(id string) (*calendar.Calendar, error)
	For(owner string) (*calendar.Calendar, bool)
}

// Env is what a decision needs besides the state.
type Env struct {
	Now       time.Time
	Policies  *policy.Book
	Calendars Calendars
}

// CalendarOf is the calendar a clock counts in: calendar time unless the
// clock is in business time; an unknown calendar id falls back to the default.
func (env Env) CalendarOf(business bool, id string) *calendar.Calendar {
	if !business {
		return calendar.Continuous()
	}
	if c, err := env.Calendars.Calendar(id); err == nil {
		return c
	}
	c, _ := env.Calendars.Calendar("")
	return c
}

// Decide returns the clock events the state is missing at env.Now: it
// handles the pending triggers in stream order (firing, before each, what
// fell due before it happened), then fires every warning and breach due by
// now. Events fired after their due instant carry late_by; a warning or a
// breach is caused by the event that started or last changed its clock.
//
// An append cut short by a crash leaves its triggers pending over a state
// that holds part of what they did. Decide skips those handled whole (before
// State.RedoFrom) and redoes the one it stopped in, which is idempotent: a
// handler starts no clock it started before (Clock.StartedBy), touches none
// it started itself, meets, pauses and cancels only clocks still in the state
// it changes, and replaces a clock by starting the new one before cancelling
// the old. Firing due clocks and reconciling are idempotent as they are
// (reconcile writes only what differs from the facts). The envelopes
// have ComplaintId, Type, OccurredAt, Producer, CausationId, CorrelationId
// (of the cause; empty for an operation's) and the policy and calendar
// versions set; the caller adds ids and appends them.
//
// Before firing what is due at now, it brings every clock to the terms and
// timing the complaint's facts give it (reconcile): a classification or a
// hold that arrived after the clock started re-terms it from its start, so
// the clocks do not depend on the order or the moments sla-clock saw the
// facts in.
func Decide(s State, env Env) []*ev.Envelope {
	d := newDecider(s, env)
	at, cause := d.handlePending(s)
	d.reconcile(at, cause)
	d.fireDue(env.Now)
	return d.out
}

// handlePending handles the pending triggers in stream order, firing before
// each what fell due before it happened, and returns the last one's time
// and id (now and "" when none).
func (d *decider) handlePending(s State) (time.Time, string) {
	at, cause := d.env.Now, ""
	for _, trig := range s.Pending[s.RedoFrom:] {
		at, cause = triggerTime(trig), trig.GetEventId()
		if at.After(d.env.Now) {
			at = d.env.Now
		}
		d.fireDue(at)
		d.on(trig, at)
	}
	return at, cause
}

// DecideReapply moves every open clock to the current policy version (the
// ReapplyPolicy operation): each is cancelled and restarted with the budget
// it has used carried over. Pending triggers and due timers are handled first.
// cause is the operation's id: the clocks it started are not replaced again.
//
// The clocks are reconciled with the facts after the replacement, not
// before: a redo after a cut append finds the replacement as the stored part
// left it and completes it the same way.
func DecideReapply(s State, env Env, reason, cause string) []*ev.Envelope {
	d := newDecider(s, env)
	d.handlePending(s)
	d.fireDue(env.Now)
	cur := env.Policies.Current()
	for i := range d.s.Clocks {
		if c := d.s.Clocks[i]; c.Open() && c.StartedBy != cause {
			d.retarget(i, cur, env.Now, cause, "policy re-applied: "+reason, true)
		}
	}
	d.reconcile(env.Now, cause)
	d.fireDue(env.Now)
	return d.out
}

func clone(s State) State {
	s.Clocks = slices.Clone(s.Clocks)
	for i := range s.Clocks {
		s.Clocks[i].Warned = slices.Clone(s.Clocks[i].Warned)
	}
	s.Pending, s.RedoFrom = nil, 0
	return s
}

// triggerTime is when the fact happened: the customer's report time for a
// complaint received, else the event's occurred_at.
func triggerTime(e *ev.Envelope) time.Time {
	at := e.GetOccurredAt().AsTime()
	if r := e.GetComplaintReceived(); r != nil && r.GetReceivedAt() != nil && r.GetReceivedAt().AsTime().Before(at) {
		return r.GetReceivedAt().AsTime()
	}
	return at
}

type decider struct {
	s   State
	env Env
	out []*ev.Envelope
	// corr is the correlation id of each cause: an event carries its
	// cause's, so a complaint's clock events join the trace and the
	// correlation of what started them.
	corr map[string]string
}

func newDecider(s State, env Env) *decider {
	d := &decider{s: clone(s), env: env, corr: map[string]string{}}
	for _, trig := range s.Pending {
		// A cause without a correlation id starts its own (kernel.CauseOf).
		d.corr[trig.GetEventId()] = cmp.Or(trig.GetCorrelationId(), trig.GetEventId())
	}
	return d
}

func (d *decider) emit(payload proto.Message, at time.Time, policyVersion, calendarVersion, cause string) {
	e := &ev.Envelope{
		ComplaintId:     d.s.ComplaintID,
		OccurredAt:      timestamppb.New(at),
		Producer:        Producer,
		Actor:           Producer, // the service's own reaction (libs/kernel)
		CausationId:     cause,
		CorrelationId:   d.corr[cause],
		PolicyVersion:   policyVersion,
		CalendarVersion: calendarVersion,
	}
	if err := eventlog.SetPayload(e, payload); err != nil {
		panic(err) // every payload here is a catalogue event
	}
	d.out = append(d.out, e)
	d.s = Evolve(d.s, e)
}

func (d *decider) cal(c *Clock) *calendar.Calendar { return d.env.CalendarOf(c.Business, c.CalendarID) }

func (d *decider) emitFor(c *Clock, payload proto.Message, at time.Time, cause string) {
	d.emit(payload, at, c.PolicyVersion, d.cal(c).Version(), cause)
}

func late(now, due time.Time) *durationpb.Duration {
	if now.After(due) {
		return durationpb.New(now.Sub(due))
	}
	return durationpb.New(0)
}

// fireDue fires, in time order, every warning and breach due at or before until.
func (d *decider) fireDue(until time.Time) {
	for {
		best, bestDue, bestP := -1, time.Time{}, uint32(0)
		for i := range d.s.Clocks {
			c := &d.s.Clocks[i]
			due, p, ok := c.NextDue(d.cal(c))
			if ok && !due.After(until) && (best < 0 || due.Before(bestDue)) {
				best, bestDue, bestP = i, due, p
			}
		}
		if best < 0 {
			return
		}
		c := &d.s.Clocks[best]
		// A firing is caused by the event that started or last changed
		// the clock.
		cause := c.LastChange.EventID
		if _, ok := d.corr[cause]; !ok && cause != "" {
			d.corr[cause] = cmp.Or(c.LastChange.CorrelationID, cause)
		}
		ts, dl := timestamppb.New(bestDue), timestamppb.New(c.Deadline)
		if bestP > 0 {
			d.emitFor(c, &ev.SlaWarning{ClockId: c.ID, Target: c.Target, ThresholdPercent: bestP, DueAt: ts, Deadline: dl, LateBy: late(d.env.Now, bestDue)}, bestDue, cause)
		} else {
			d.emitFor(c, &ev.SlaBreached{ClockId: c.ID, Target: c.Target, Deadline: dl, LateBy: late(d.env.Now, bestDue)}, bestDue, cause)
		}
	}
}

const (
	acceptance        = ev.SlaTarget_SLA_TARGET_ACCEPTANCE
	firstResponse     = ev.SlaTarget_SLA_TARGET_FIRST_RESPONSE
	technicianContact = ev.SlaTarget_SLA_TARGET_TECHNICIAN_CONTACT
	onsiteArrival     = ev.SlaTarget_SLA_TARGET_ONSITE_ARRIVAL
	remoteSupport     = ev.SlaTarget_SLA_TARGET_REMOTE_SUPPORT
	resolution        = ev.SlaTarget_SLA_TARGET_RESOLUTION
	firstFeedback     = ev.SlaTarget_SLA_TARGET_FIRST_FEEDBACK
	secondFeedback    = ev.SlaTarget_SLA_TARGET_SECOND_FEEDBACK
)

func (d *decider) on(e *ev.Envelope, at time.Time) {
	cause := e.GetEventId()
	switch p := eventlog.Payload(e).(type) {
	case *ev.ComplaintReceived:
		for _, t := range []ev.SlaTarget{acceptance, firstResponse, resolution} {
			if d.count(t) == 0 {
				d.start(t, "", "", at, cause)
			}
		}
	case *ev.ComplaintAccepted:
		d.met(acceptance, "", at, cause)
	case *ev.ResponseRecorded:
		d.met(firstResponse, "", at, cause)
	case *ev.ComplaintPutOnHold:
		for i := range d.s.Clocks {
			c := &d.s.Clocks[i]
			if c.Status != Running {
				continue
			}
			terms, _ := d.env.Policies.Version(c.PolicyVersion).Terms(c.Target, d.s.Facts.Facts)
			if terms.Pauses(p.GetReason()) {
				d.emitFor(c, &ev.SlaClockPaused{ClockId: c.ID, Target: c.Target, PausedAt: timestamppb.New(at),
					Remaining: durationpb.New(d.cal(c).Between(at, c.Deadline)), Reason: p.GetReason().String()}, at, cause)
			}
		}
	case *ev.ComplaintTakenOffHold:
		for i := range d.s.Clocks {
			if c := &d.s.Clocks[i]; c.Status == Paused {
				d.emitFor(c, &ev.SlaClockResumed{ClockId: c.ID, Target: c.Target, ResumedAt: timestamppb.New(at),
					NewDeadline: timestamppb.New(d.cal(c).Add(at, c.Remaining))}, at, cause)
			}
		}
	case *ev.ComplaintResolved:
		// Resolving answers the customer: a first-response clock still
		// running (no response recorded, as routing allowed before it
		// required one) is met by the resolution, never left to breach.
		// Met, not cancelled: whether it was late is then a fact reconcile
		// checks against the terms, whatever order the facts came in.
		// Acceptance is intake's, recorded before anything else happens;
		// work orders' clocks end with their orders.
		d.met(firstResponse, "", at, cause)
		d.met(resolution, "", at, cause)
		d.start(firstFeedback, "", "", at, cause)
		d.start(secondFeedback, "", "", at, cause)
	case *ev.FeedbackDelivered:
		switch p.GetRound() {
		case ev.FeedbackRound_FEEDBACK_ROUND_FIRST:
			d.met(firstFeedback, "", at, cause)
		case ev.FeedbackRound_FEEDBACK_ROUND_SECOND:
			d.met(secondFeedback, "", at, cause)
		}
	case *ev.ComplaintReopened:
		d.cancel(func(c *Clock) bool { return c.Target == firstFeedback || c.Target == secondFeedback }, at, cause, "reopened")
		d.start(resolution, "", "", at, cause)
	case *ev.ComplaintWithdrawn:
		d.cancel(func(*Clock) bool { return true }, at, cause, "withdrawn")
	case *ev.ComplaintClosed:
		d.cancel(func(*Clock) bool { return true }, at, cause, "closed")
	case *ev.WorkOrderOpened:
		remote := p.GetSpec().GetMode() == ev.ServiceMode_SERVICE_MODE_REMOTE ||
			(p.GetSpec().GetMode() == ev.ServiceMode_SERVICE_MODE_UNSPECIFIED && d.s.Facts.Software)
		t := onsiteArrival
		if remote {
			t = remoteSupport
		}
		d.start(t, p.GetWorkOrderId(), "", at, cause)
	case *ev.TechnicianAssigned:
		wo := p.GetWorkOrderId()
		d.cancel(func(c *Clock) bool { return c.Target == technicianContact && c.Subject == wo }, at, cause, "reassigned")
		d.start(technicianContact, wo, "technician-"+p.GetTechnicianId(), at, cause)
	case *ev.TechnicianDeclined:
		wo := p.GetWorkOrderId()
		d.cancel(func(c *Clock) bool { return c.Target == technicianContact && c.Subject == wo }, at, cause, "declined")
	case *ev.CustomerContacted:
		d.met(technicianContact, p.GetWorkOrderId(), at, cause)
	case *ev.TechnicianArrived:
		d.met(onsiteArrival, p.GetWorkOrderId(), at, cause)
	case *ev.RemoteSessionStarted:
		d.met(remoteSupport, p.GetWorkOrderId(), at, cause)
	case *ev.RemoteResolved:
		d.met(remoteSupport, p.GetWorkOrderId(), at, cause)
	case *ev.WorkOrderCancelled:
		d.cancelWorkOrder(p.GetWorkOrderId(), at, cause, "work order cancelled")
	case *ev.WorkOrderFailed:
		d.cancelWorkOrder(p.GetWorkOrderId(), at, cause, "work order failed")
	case *ev.EscalatedToOnSite:
		d.cancelWorkOrder(p.GetWorkOrderId(), at, cause, "escalated to on-site")
	}
}

func (d *decider) count(t ev.SlaTarget) int {
	n := 0
	for _, c := range d.s.Clocks {
		if c.Target == t {
			n++
		}
	}
	return n
}

// calendarFor picks a business-time clock's calendar: the owner's (the
// technician, else the complaint's team) when one is assigned, else the policy's.
func (d *decider) calendarFor(terms policy.Terms, owner string) *calendar.Calendar {
	if terms.Business {
		for _, o := range []string{owner, "team-" + d.s.Facts.Team} {
			if o == "" || o == "team-" {
				continue
			}
			if c, ok := d.env.Calendars.For(o); ok {
				return c
			}
		}
	}
	return d.env.CalendarOf(terms.Business, terms.CalendarID)
}

// start starts a clock of the target for the subject, unless cause started
// one already.
func (d *decider) start(t ev.SlaTarget, subject, owner string, at time.Time, cause string) {
	if d.startedBy(t, subject, cause) != nil {
		return
	}
	pol := d.env.Policies.Current()
	terms, ok := pol.Terms(t, d.s.Facts.Facts)
	if !ok {
		return
	}
	cal := d.calendarFor(terms, owner)
	calID := ""
	if terms.Business {
		calID = cal.ID()
	}
	deadline := cal.Add(at, terms.Budget)
	d.emit(&ev.SlaClockStarted{
		ClockId: ClockID(t, d.count(t)+1), Target: t, StartedAt: timestamppb.New(at),
		Deadline: timestamppb.New(deadline), Budget: durationpb.New(terms.Budget),
		BusinessTime: terms.Business, CalendarId: calID, WarnPercents: terms.WarnPercents, SubjectId: subject,
		PastWarnings: d.pastWarnings(cal, deadline, terms.Budget, terms.WarnPercents),
	}, at, pol.Version, cal.Version(), cause)
}

// pastWarnings are the thresholds whose moment is already past at the
// decision: a complaint entered late does not fire a burst of them. While
// the deadline is still ahead the highest of them is left out, so that it
// fires: a clock started or re-termed late (sla-clock behind the log) still
// warns once that it is, say, past 90 %.
func (d *decider) pastWarnings(cal *calendar.Calendar, deadline time.Time, budget time.Duration, percents []uint32) []uint32 {
	var past []uint32
	highest := -1
	for _, p := range percents {
		if WarningDue(cal, deadline, budget, p).Before(d.env.Now) {
			past = append(past, p)
			if highest < 0 || p > past[highest] {
				highest = len(past) - 1
			}
		}
	}
	if highest >= 0 && deadline.After(d.env.Now) {
		past = append(past[:highest], past[highest+1:]...)
	}
	return past
}

func (d *decider) met(t ev.SlaTarget, subject string, at time.Time, cause string) {
	for i := range d.s.Clocks {
		c := &d.s.Clocks[i]
		if c.Target != t || c.Subject != subject || !(c.Open() || c.Status == Breached) {
			continue
		}
		margin := d.cal(c).Between(at, c.Deadline)
		if c.Status == Paused {
			margin = c.Remaining
		}
		d.emitFor(c, &ev.SlaMet{ClockId: c.ID, Target: t, MetAt: timestamppb.New(at),
			Deadline: timestamppb.New(c.Deadline), Margin: durationpb.New(margin)}, at, cause)
	}
}

// startedBy returns the clock of the target and subject that cause started, or nil.
func (d *decider) startedBy(t ev.SlaTarget, subject, cause string) *Clock {
	for i := range d.s.Clocks {
		if c := &d.s.Clocks[i]; c.Target == t && c.Subject == subject && c.StartedBy == cause && cause != "" {
			return c
		}
	}
	return nil
}

// cancel cancels the open clocks that match, except those cause started.
func (d *decider) cancel(match func(*Clock) bool, at time.Time, cause, reason string) {
	for i := range d.s.Clocks {
		if c := &d.s.Clocks[i]; c.Open() && c.StartedBy != cause && match(c) {
			d.emitFor(c, &ev.SlaClockCancelled{ClockId: c.ID, Target: c.Target, Reason: reason}, at, cause)
		}
	}
}

func (d *decider) cancelWorkOrder(wo string, at time.Time, cause, reason string) {
	d.cancel(func(c *Clock) bool { return c.Subject == wo && wo != "" }, at, cause, reason)
}

// retarget replaces clock i when its terms under pol differ (or always when
// force): a new clock is started with the budget already used carried over,
// paused if the old one was paused, and then the old one is cancelled. In
// that order a redo after a crash finds the old clock still open and the new
// one (started by cause) there, and completes the replacement.
func (d *decider) retarget(i int, pol *policy.Policy, at time.Time, cause, reason string, force bool) {
	old := d.s.Clocks[i]
	terms, ok := pol.Terms(old.Target, d.s.Facts.Facts)
	if !ok {
		d.emitFor(&old, &ev.SlaClockCancelled{ClockId: old.ID, Target: old.Target, Reason: reason + ": target disabled"}, at, cause)
		return
	}
	repl := d.startedBy(old.Target, old.Subject, cause)
	if repl == nil {
		if !force && terms.Budget == old.Budget && terms.Business == old.Business && slices.Equal(terms.WarnPercents, old.WarnPercents) {
			return
		}
		repl = d.replace(&old, pol, terms, at, cause)
	}
	if old.Status == Paused && repl.Status == Running {
		remaining := d.cal(repl).Between(at, repl.Deadline)
		d.emitFor(repl, &ev.SlaClockPaused{ClockId: repl.ID, Target: repl.Target, PausedAt: timestamppb.New(at),
			Remaining: durationpb.New(remaining), Reason: "carried over from " + old.ID}, at, cause)
	}
	d.emitFor(&old, &ev.SlaClockCancelled{ClockId: old.ID, Target: old.Target, Reason: reason}, at, cause)
}

// replace starts the clock that takes over from old under terms, with the
// budget old has used carried over, and returns it.
func (d *decider) replace(old *Clock, pol *policy.Policy, terms policy.Terms, at time.Time, cause string) *Clock {
	next := Clock{Target: old.Target, Subject: old.Subject, Status: Running, StartedAt: old.StartedAt}
	tm := d.timing(&next, terms)
	deadline := tm.deadline
	if tm.paused {
		deadline = tm.cal.Add(at, tm.remaining) // the caller pauses it again
	}
	calID := ""
	if terms.Business {
		calID = tm.cal.ID()
	}
	id := ClockID(old.Target, d.count(old.Target)+1)
	d.emit(&ev.SlaClockStarted{
		ClockId: id, Target: old.Target, StartedAt: timestamppb.New(old.StartedAt),
		Deadline: timestamppb.New(deadline), Budget: durationpb.New(terms.Budget),
		BusinessTime: terms.Business, CalendarId: calID, WarnPercents: terms.WarnPercents, SubjectId: old.Subject,
	}, at, pol.Version, tm.cal.Version(), cause)
	return d.s.Clock(id)
}

// timing is a clock's deadline, or its budget left while paused, as the
// complaint's facts give it under terms.
type timing struct {
	terms     policy.Terms
	cal       *calendar.Calendar
	deadline  time.Time
	paused    bool
	remaining time.Duration
}

// timing counts the budget from the clock's start through the holds that
// pause it under terms, the way the clock ran live: a hold pauses a
// running clock whose deadline is still ahead, taking it off resumes it
// with the budget left. A met clock is counted up to its met time. The
// calendar is the clock's own when it counts business time already (its
// owner's), else the one the terms give.
func (d *decider) timing(c *Clock, terms policy.Terms) timing {
	cal := d.calendarFor(terms, "")
	if terms.Business && c.Business && c.CalendarID != "" {
		cal = d.env.CalendarOf(true, c.CalendarID)
	}
	t := timing{terms: terms, cal: cal, deadline: cal.Add(c.StartedAt, terms.Budget)}
	marks := slices.Clone(d.s.Facts.Holds)
	slices.SortStableFunc(marks, func(a, b HoldMark) int { return a.At.Compare(b.At) })
	for _, m := range marks {
		if m.At.Before(c.StartedAt) {
			continue
		}
		if c.Status == Met && m.At.After(c.MetAt) {
			break
		}
		switch {
		case m.On && !t.paused && m.At.Before(t.deadline) && terms.Pauses(m.Reason):
			t.paused, t.remaining = true, cal.Between(m.At, t.deadline)
		case !m.On && t.paused:
			t.paused, t.deadline = false, cal.Add(m.At, t.remaining)
		}
	}
	return t
}

// reconcile brings every clock to the terms and timing the complaint's
// facts give it (timing): it re-terms a clock whose terms or timing differ
// (SlaClockRetermed), withdraws a breach the facts do not support
// (SlaBreachWithdrawn) and records one they do that a met clock lacked. An
// open clock whose new deadline has passed is breached by the firing that
// follows, once, with late_by from its deadline. at and cause are the last
// trigger's (cause "": the clock's last change).
func (d *decider) reconcile(at time.Time, cause string) {
	now := d.env.Now
	for i := range d.s.Clocks {
		c := &d.s.Clocks[i]
		if c.Status == Cancelled {
			continue
		}
		by := cause
		if by == "" {
			by = c.LastChange.EventID
			if _, ok := d.corr[by]; !ok && by != "" {
				d.corr[by] = cmp.Or(c.LastChange.CorrelationID, by)
			}
		}
		terms, ok := d.env.Policies.Version(c.PolicyVersion).Terms(c.Target, d.s.Facts.Facts)
		if !ok {
			if c.Open() {
				d.emitFor(c, &ev.SlaClockCancelled{ClockId: c.ID, Target: c.Target, Reason: "facts changed: target disabled"}, at, by)
			}
			continue
		}
		tm := d.timing(c, terms)
		switch c.Status {
		case Met:
			breached := !tm.paused && !tm.deadline.After(c.MetAt)
			switch {
			case c.WasBreached && !breached:
				d.withdraw(c, tm, false, at, by)
			case !d.same(c, tm):
				d.reterm(c, tm, at, by)
				if breached && !c.WasBreached {
					d.emitFor(c, &ev.SlaBreached{ClockId: c.ID, Target: c.Target, Deadline: timestamppb.New(tm.deadline), LateBy: late(now, tm.deadline)}, at, by)
				}
			}
		case Breached:
			if tm.paused || tm.deadline.After(now) {
				d.withdraw(c, tm, true, at, by)
			} else if !d.same(c, tm) {
				d.reterm(c, tm, at, by)
			}
		default:
			if !d.same(c, tm) {
				d.reterm(c, tm, at, by)
			}
		}
	}
}

// sameTerms reports whether clock c already has the terms of tm.
func sameTerms(c *Clock, tm timing) bool {
	t := tm.terms
	return c.Budget == t.Budget && c.Business == t.Business && slices.Equal(c.WarnPercents, t.WarnPercents) &&
		(!t.Business || c.CalendarID == tm.cal.ID())
}

// why says what moved a clock: its terms, or only its timing (the holds).
func why(c *Clock, tm timing) string {
	if !sameTerms(c, tm) {
		return "the complaint's classification or tier gives other terms"
	}
	return "a hold recorded late moves the deadline"
}

// same reports whether clock c already has the terms and timing tm.
func (d *decider) same(c *Clock, tm timing) bool {
	if !sameTerms(c, tm) {
		return false
	}
	paused := c.Status == Paused || (c.Status == Met && c.MetPaused)
	if paused != tm.paused {
		return false
	}
	if paused {
		return c.Remaining == tm.remaining
	}
	return c.Deadline.Equal(tm.deadline)
}

// termsOf renders tm for an event. The thresholds passed before now are
// marked warned, so a re-term fires no burst of past warnings either.
func (d *decider) termsOf(c *Clock, tm timing) *ev.SlaClockTerms {
	calID := ""
	if tm.terms.Business {
		calID = tm.cal.ID()
	}
	warned := slices.Clone(c.Warned)
	if !tm.paused {
		for _, p := range d.pastWarnings(tm.cal, tm.deadline, tm.terms.Budget, tm.terms.WarnPercents) {
			if !slices.Contains(warned, p) {
				warned = append(warned, p)
			}
		}
	}
	return &ev.SlaClockTerms{
		Budget: durationpb.New(tm.terms.Budget), BusinessTime: tm.terms.Business, CalendarId: calID,
		WarnPercents: tm.terms.WarnPercents, Deadline: timestamppb.New(tm.deadline),
		Paused: tm.paused, Remaining: durationpb.New(tm.remaining), Warned: warned,
	}
}

func (d *decider) reterm(c *Clock, tm timing, at time.Time, cause string) {
	d.emit(&ev.SlaClockRetermed{ClockId: c.ID, Target: c.Target, Terms: d.termsOf(c, tm),
		PreviousDeadline: timestamppb.New(c.Deadline), Reason: why(c, tm)}, at, c.PolicyVersion, tm.cal.Version(), cause)
}

func (d *decider) withdraw(c *Clock, tm timing, reopened bool, at time.Time, cause string) {
	d.emit(&ev.SlaBreachWithdrawn{ClockId: c.ID, Target: c.Target, Terms: d.termsOf(c, tm),
		BreachedDeadline: timestamppb.New(c.Deadline), Reopened: reopened,
		Reason: "not breached after all: " + why(c, tm)}, at, c.PolicyVersion, tm.cal.Version(), cause)
}
