package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// viewWait bounds how long a reaction waits for the view to catch up with
// the event it handles before it is retried by the bus.
const viewWait = 10 * time.Second

// HandleEvent is routing's bus handler (durable "routing", the whole log:
// it skips all but complaint and team events). It is idempotent: every decision
// is taken on the complaint's stream, which records what was already done
// for each cause event.
func (a *Application) HandleEvent(ctx context.Context, rec eventlog.Record) error {
	e := rec.Event
	switch e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintAccepted, *eventsv1.Envelope_SlaWarning, *eventsv1.Envelope_SlaBreached,
		*eventsv1.Envelope_ComplaintReopened, *eventsv1.Envelope_WorkOrderUnassignable,
		*eventsv1.Envelope_TeamMemberJoined, *eventsv1.Envelope_TeamMemberUpdated:
	default:
		return nil
	}
	// Decide on a view that has seen everything logged before this event:
	// rosters, earlier complaints of the customer, open loads.
	wctx, cancel := context.WithTimeout(ctx, viewWait)
	err := a.view.WaitFor(wctx, rec.Position)
	cancel()
	if err != nil {
		return fmt.Errorf("view behind position %d: %w", rec.Position, err)
	}
	// A complaint event is on the stream the reaction writes to: the read
	// must reach it. A roster change causes writes to other streams.
	by := kernel.CauseOf(e, eventlog.StreamID(e.GetStreamId()).Kind() == eventlog.KindComplaint)
	id := e.GetComplaintId()
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintAccepted:
		return a.react(ctx, "AssignOnAccepted", id, by, func(c *domain.Complaint, now time.Time) []proto.Message {
			return a.onAccepted(ctx, c, rec.Position, now)
		})
	case *eventsv1.Envelope_SlaWarning:
		w := p.SlaWarning
		reason := fmt.Sprintf("SLA warning: %s at %d%%", w.GetTarget(), w.GetThresholdPercent())
		return a.react(ctx, "NotifyOnSlaWarning", id, by, func(c *domain.Complaint, _ time.Time) []proto.Message {
			return domain.NotifyWarning(c, a.view, by.EventID, reason)
		})
	case *eventsv1.Envelope_SlaBreached:
		reason := fmt.Sprintf("SLA breached: %s", p.SlaBreached.GetTarget())
		return a.escalate(ctx, "EscalateOnSlaBreached", id, by, eventsv1.EscalationCause_ESCALATION_CAUSE_SLA_BREACH, reason)
	case *eventsv1.Envelope_ComplaintReopened:
		reason := fmt.Sprintf("customer dissatisfied (satisfaction %d): complaint reopened", p.ComplaintReopened.GetSatisfaction())
		return a.escalate(ctx, "EscalateOnReopened", id, by, eventsv1.EscalationCause_ESCALATION_CAUSE_DISSATISFACTION, reason)
	case *eventsv1.Envelope_WorkOrderUnassignable:
		reason := "no technician for work order " + p.WorkOrderUnassignable.GetWorkOrderId()
		return a.escalate(ctx, "EscalateOnUnassignable", id, by, eventsv1.EscalationCause_ESCALATION_CAUSE_NO_TECHNICIAN, reason)
	default:
		// A roster change may let complaints waiting for an on-shift member
		// be assigned.
		return a.assignWaiting(ctx, eventlog.StreamID(e.GetStreamId()).ID(), by)
	}
}

// react is a write routing decides by itself, in answer to by.
func (a *Application) react(ctx context.Context, name, complaintID string, by kernel.Cause, decide func(c *domain.Complaint, now time.Time) []proto.Message) error {
	res, err := a.write(ctx, name, Target{ComplaintID: complaintID}, by, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return decide(c, now), nil
	})
	if err != nil || res.Position == 0 {
		return err
	}
	// See our own write before the next decision: open loads count it.
	wctx, cancel := context.WithTimeout(ctx, viewWait)
	defer cancel()
	if err := a.view.WaitFor(wctx, res.Position); err != nil {
		a.log.WarnContext(ctx, "view did not catch up with our own append", "complaint_id", complaintID, "position", res.Position, "error", err)
	}
	return nil
}

func (a *Application) escalate(ctx context.Context, name, complaintID string, by kernel.Cause, why eventsv1.EscalationCause, reason string) error {
	return a.react(ctx, name, complaintID, by, func(c *domain.Complaint, _ time.Time) []proto.Message {
		return domain.Escalate(c, a.view, why, by.EventID, reason)
	})
}

// onAccepted classifies (flagging a repeat), assigns and escalates what
// must be, in one append. Each part is decided only if still missing: the
// log may store the first part of that append and refuse the rest when
// another service appends in between, and the retry must finish it.
func (a *Application) onAccepted(ctx context.Context, c *domain.Complaint, acceptedPos uint64, now time.Time) []proto.Message {
	window := time.Duration(a.policy.RepeatWindowDays) * 24 * time.Hour
	if !a.view.Complete(c.AcceptedAt, window) {
		a.log.WarnContext(ctx, "routing: acceptance handled far behind the log; closed complaints it could repeat may have left the view",
			"complaint_id", c.ID, "accepted_at", c.AcceptedAt)
	}
	out := domain.Classify(c, a.policy, a.view.Earlier(c, acceptedPos, window))
	domain.ApplyPending(c, out, now)
	assigned := domain.AssignNew(c, a.policy, a.view, a.view.Load)
	domain.ApplyPending(c, assigned, now)
	out = append(out, assigned...)
	return append(out, domain.EscalateOnArrival(c, a.view, c.AcceptedEventID)...)
}

// assignWaiting assigns the complaints that wait for a member of a team.
func (a *Application) assignWaiting(ctx context.Context, team string, by kernel.Cause) error {
	// A roster change leaving nobody on shift who can own a complaint (one
	// going off shift, say) would read every waiting complaint's stream
	// for nothing.
	if t := a.view.Team(team); t == nil {
		return nil
	} else if anyone, _ := domain.PickOwner(t, "", a.view.Load, ""); anyone == "" {
		return nil
	}
	for sev := eventsv1.Severity_SEVERITY_L1; sev <= eventsv1.Severity_SEVERITY_L4; sev++ {
		if a.policy.TeamFor(sev) != team {
			continue
		}
		for _, id := range a.view.Waiting(sev) {
			err := a.react(ctx, "AssignOnRosterChange", id, by, func(c *domain.Complaint, _ time.Time) []proto.Message {
				return domain.AssignNew(c, a.policy, a.view, a.view.Load)
			})
			if errors.Is(err, kernel.ErrNotFound) {
				// Not this roster change's fault: the complaint's own event
				// was dead-lettered for it.
				a.log.WarnContext(ctx, "routing: waiting complaint not found; not assigned", "complaint_id", id, "error", err)
				continue
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}
