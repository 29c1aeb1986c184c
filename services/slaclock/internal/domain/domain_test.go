package domain

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	policydata "github.com/closeloop/closeloop/services/slaclock/policy"
)

var t0 = time.Date(2026, 3, 2, 1, 0, 0, 0, time.UTC) // Mon 09:00 Shanghai

func testEnv(t *testing.T, now time.Time) Env {
	t.Helper()
	p, err := policy.Parse(policydata.Default)
	if err != nil {
		t.Fatal(err)
	}
	cals, err := calendar.Default()
	if err != nil {
		t.Fatal(err)
	}
	return Env{Now: now, Policies: policy.NewBook(p), Calendars: cals}
}

// history is a complaint's stream under construction.
type history struct {
	t      *testing.T
	events []*ev.Envelope
}

func (h *history) add(at time.Time, payload proto.Message) *history {
	e := &ev.Envelope{ComplaintId: "c1", OccurredAt: timestamppb.New(at), Producer: "routing",
		EventId: fmt.Sprintf("e%d", len(h.events)+1)}
	if err := eventlog.SetPayload(e, payload); err != nil {
		h.t.Fatal(err)
	}
	return h.append(e)
}

func (h *history) append(es ...*ev.Envelope) *history {
	for _, e := range es {
		e.Version = uint64(len(h.events) + 1)
		h.events = append(h.events, e)
	}
	return h
}

// decide folds the history, decides at now, appends what was decided and returns it.
func (h *history) decide(env Env) []*ev.Envelope {
	out := Decide(Fold("c1", h.events), env)
	h.append(out...)
	return out
}

func received(at time.Time) *ev.ComplaintReceived {
	return &ev.ComplaintReceived{ReceivedAt: timestamppb.New(at), Customer: &ev.Customer{Tier: ev.CustomerTier_CUSTOMER_TIER_REGULAR}}
}

// summary renders events as "Type clock detail" lines for readable assertions.
func summary(es []*ev.Envelope) string {
	var b strings.Builder
	for _, e := range es {
		switch p := eventlog.Payload(e).(type) {
		case *ev.SlaClockStarted:
			fmt.Fprintf(&b, "Started %s %s;", p.GetClockId(), p.GetDeadline().AsTime().Sub(p.GetStartedAt().AsTime()))
		case *ev.SlaWarning:
			fmt.Fprintf(&b, "Warning %s %d late %s;", p.GetClockId(), p.GetThresholdPercent(), p.GetLateBy().AsDuration())
		case *ev.SlaBreached:
			fmt.Fprintf(&b, "Breached %s late %s;", p.GetClockId(), p.GetLateBy().AsDuration())
		case *ev.SlaMet:
			fmt.Fprintf(&b, "Met %s margin %s;", p.GetClockId(), p.GetMargin().AsDuration())
		case *ev.SlaClockPaused:
			fmt.Fprintf(&b, "Paused %s left %s;", p.GetClockId(), p.GetRemaining().AsDuration())
		case *ev.SlaClockResumed:
			fmt.Fprintf(&b, "Resumed %s;", p.GetClockId())
		case *ev.SlaClockCancelled:
			fmt.Fprintf(&b, "Cancelled %s %s;", p.GetClockId(), p.GetReason())
		case *ev.SlaClockRetermed:
			fmt.Fprintf(&b, "Retermed %s budget %s;", p.GetClockId(), p.GetTerms().GetBudget().AsDuration())
		case *ev.SlaBreachWithdrawn:
			how := "met"
			if p.GetReopened() {
				how = "reopened"
			}
			fmt.Fprintf(&b, "Withdrawn %s %s;", p.GetClockId(), how)
		}
	}
	return b.String()
}

func TestDecide(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name  string
		given func(h *history, env func(time.Time) Env) // builds the history (and may decide along the way)
		now   time.Duration
		want  string
	}{
		{
			name:  "received starts acceptance, first response and resolution",
			given: func(x *history, _ func(time.Time) Env) { x.add(t0, received(t0)) },
			now:   0,
			want:  "Started acceptance-1 24h0m0s;Started first_response-1 24h0m0s;Started resolution-1 48h0m0s;",
		},
		{
			// sla-clock behind the log: the clocks start 22 h late. Past 90 %
			// and not yet due, each warns once, at 90 %, not in a burst.
			name:  "clocks started late warn once, at the highest threshold passed",
			given: func(x *history, _ func(time.Time) Env) { x.add(t0, received(t0)) },
			now:   22 * h,
			want:  "Started acceptance-1 24h0m0s;Started first_response-1 24h0m0s;Started resolution-1 48h0m0s;Warning acceptance-1 90 late 24m0s;Warning first_response-1 90 late 24m0s;",
		},
		{
			name: "warnings then breach, in time order, late when fired late",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.decide(env(t0))
				x.add(t0, &ev.ResponseRecorded{})
				x.add(t0, &ev.ComplaintResolved{})
			},
			now: 25 * h,
			// acceptance-1 is intake's (never recorded here): its warnings
			// fire, late.
			want: "Met first_response-1 margin 24h0m0s;Met resolution-1 margin 48h0m0s;Started first_feedback-1 24h0m0s;Started second_feedback-1 72h0m0s;" +
				"Warning acceptance-1 50 late 13h0m0s;Warning acceptance-1 75 late 7h0m0s;Warning acceptance-1 90 late 3h24m0s;Breached acceptance-1 late 1h0m0s;" +
				// first_feedback-1 starts now, past its warnings: only its breach.
				"Breached first_feedback-1 late 1h0m0s;",
		},
		{
			name: "resolved without a response: the resolution meets the response clock, not left to breach",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.add(t0, &ev.ComplaintAccepted{})
				x.decide(env(t0))
				x.add(t0.Add(h), &ev.ComplaintResolved{})
			},
			now: 30 * h,
			want: "Met first_response-1 margin 23h0m0s;Met resolution-1 margin 47h0m0s;Started first_feedback-1 24h0m0s;Started second_feedback-1 72h0m0s;" +
				"Breached first_feedback-1 late 5h0m0s;",
		},
		{
			name: "a met that happened after the deadline comes after the breach",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.decide(env(t0))
				x.decide(env(t0.Add(21 * h))) // 50, 75 percent warnings of acceptance and first response
				x.add(t0.Add(30*h), &ev.ComplaintAccepted{})
			},
			now:  31 * h,
			want: "Warning acceptance-1 90 late 9h24m0s;Warning first_response-1 90 late 9h24m0s;Breached acceptance-1 late 7h0m0s;Breached first_response-1 late 7h0m0s;Warning resolution-1 50 late 7h0m0s;Met acceptance-1 margin -6h0m0s;",
		},
		{
			name: "hold pauses the clocks configured to pause, off-hold resumes them",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.add(t0, &ev.ComplaintAccepted{})
				x.decide(env(t0))
				x.add(t0.Add(10*h), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
				x.add(t0.Add(40*h), &ev.ComplaintTakenOffHold{})
			},
			now:  40 * h,
			want: "Paused resolution-1 left 38h0m0s;Warning first_response-1 50 late 28h0m0s;Warning first_response-1 75 late 22h0m0s;Warning first_response-1 90 late 18h24m0s;Breached first_response-1 late 16h0m0s;Resumed resolution-1;",
		},
		{
			name: "major classification re-terms resolution to 2 working days of business time, in place",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.decide(env(t0))
				x.add(t0.Add(h), &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
			},
			now:  h,
			want: "Retermed first_response-1 budget 48h0m0s;Retermed resolution-1 budget 16h0m0s;",
		},
		{
			name: "reopen starts a fresh resolution clock that does not breach at once",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.add(t0, &ev.ComplaintAccepted{})
				x.add(t0, &ev.ResponseRecorded{})
				x.add(t0.Add(h), &ev.ComplaintResolved{})
				x.add(t0.Add(2*h), &ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_FIRST})
				x.decide(env(t0.Add(2 * h)))
				x.add(t0.Add(100*h), &ev.ComplaintReopened{})
			},
			now:  100 * h,
			want: "Warning second_feedback-1 50 late 63h0m0s;Warning second_feedback-1 75 late 45h0m0s;Warning second_feedback-1 90 late 34h12m0s;Breached second_feedback-1 late 27h0m0s;Started resolution-2 48h0m0s;",
		},
		{
			name: "dispatch: technician contact within 15 minutes, on-site arrival",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, &ev.WorkOrderOpened{WorkOrderId: "wo1", Spec: &ev.WorkOrderSpec{Mode: ev.ServiceMode_SERVICE_MODE_ON_SITE}})
				x.add(t0, &ev.TechnicianAssigned{WorkOrderId: "wo1", TechnicianId: "t1"})
				x.add(t0.Add(10*time.Minute), &ev.CustomerContacted{WorkOrderId: "wo1"})
				x.add(t0.Add(5*h), &ev.TechnicianArrived{WorkOrderId: "wo1"})
			},
			now: 5 * h,
			// Decided 5 h later: the contact clock's warnings were past when it started.
			want: "Started onsite_arrival-1 24h0m0s;Started technician_contact-1 15m0s;Met technician_contact-1 margin 5m0s;Met onsite_arrival-1 margin 19h0m0s;",
		},
		{
			name: "withdrawn cancels every open clock",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.add(t0, &ev.ComplaintAccepted{})
				x.decide(env(t0))
				x.add(t0.Add(h), &ev.ComplaintWithdrawn{})
			},
			now:  h,
			want: "Cancelled first_response-1 withdrawn;Cancelled resolution-1 withdrawn;",
		},
		{
			name: "nothing twice: a decided history decides nothing more",
			given: func(x *history, env func(time.Time) Env) {
				x.add(t0, received(t0))
				x.decide(env(t0.Add(30 * h)))
			},
			now:  30 * h,
			want: "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := &history{t: t}
			tc.given(x, func(now time.Time) Env { return testEnv(t, now) })
			got := summary(x.decide(testEnv(t, t0.Add(tc.now))))
			if got != tc.want {
				t.Fatalf("got\n  %s\nwant\n  %s", got, tc.want)
			}
		})
	}
}

func TestEventsCarryVersions(t *testing.T) {
	x := &history{t: t}
	x.add(t0, received(t0))
	x.add(t0, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
	out := x.decide(testEnv(t, t0))
	for _, e := range out {
		if e.GetPolicyVersion() != "sla.v1" || e.GetCalendarVersion() == "" || e.GetCausationId() == "" {
			t.Fatalf("%s: policy %q calendar %q cause %q", e.GetType(), e.GetPolicyVersion(), e.GetCalendarVersion(), e.GetCausationId())
		}
	}
	st := Fold("c1", x.events)
	r := st.Clock("resolution-1")
	if r == nil || !r.Business || r.CalendarID != "cn-standard" || !strings.HasPrefix(r.CalendarVersion, "cn-standard@2026") {
		t.Fatalf("resolution clock = %+v", r)
	}
	// Mon 09:00 + 16 working hours = Tue 18:00 Shanghai.
	if want := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC); !r.Deadline.Equal(want) {
		t.Fatalf("deadline %v, want %v", r.Deadline, want)
	}
}

func TestRunningClocksKeepTheirPolicyVersion(t *testing.T) {
	env := testEnv(t, t0)
	x := &history{t: t}
	x.add(t0, received(t0))
	x.decide(env)
	v2, err := policy.Parse([]byte(strings.NewReplacer(`"version": "sla.v1"`, `"version": "sla.v2"`, `"limit": "48h",   "time": "calendar", "pause_on": ["WAITING_FOR_CUSTOMER", "WAITING_FOR_PARTS"]`, `"limit": "36h", "time": "calendar", "pause_on": []`).Replace(string(policydata.Default))))
	if err != nil {
		t.Fatal(err)
	}
	env.Policies.Publish(v2)
	env.Now = t0.Add(time.Hour)
	// A hold pauses under the clock's own version (v1 pauses resolution on parts).
	x.add(t0.Add(time.Hour), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
	if got := summary(x.decide(env)); got != "Paused resolution-1 left 47h0m0s;" {
		t.Fatalf("hold under v1: %s", got)
	}
	x.add(t0.Add(2*time.Hour), &ev.ComplaintTakenOffHold{})
	env.Now = t0.Add(2 * time.Hour)
	x.decide(env)
	// Re-applied on purpose: restarted under v2, counted from the same start
	// under v2's terms (36 h, not paused for parts).
	out := DecideReapply(Fold("c1", x.events), env, "test", "op-1")
	if got := summary(out); !strings.Contains(got, "Started resolution-2 36h0m0s;Cancelled resolution-1 policy re-applied: test;") {
		t.Fatalf("reapply: %s", got)
	}
	for _, e := range out {
		if e.GetSlaClockStarted() != nil && e.GetPolicyVersion() != "sla.v2" {
			t.Fatalf("restarted under %q", e.GetPolicyVersion())
		}
	}
}
