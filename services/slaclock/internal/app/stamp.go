package app

import (
	"context"

	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// One append of sla-clock holds the events of several causes: the
// triggers a decision handles and the clocks that fell due, each event
// with its own cause, correlation, time, and policy and calendar versions
// (a clock keeps the versions it started under). The domain's redo of an
// append cut short depends on those causes (domain.State.RedoFrom,
// Clock.StartedBy). The kernel stamps one Meta on every event of an
// append (kernel.Writer.Envelopes), so eachEventStore, the store the
// kernel writes to, completes each event with what the decision said of
// it. It goes once the kernel takes a stamp per event (README).

// eachEvent is what a decision said of each event it decided, in order.
type eachEvent struct{ decided []*ev.Envelope }

type eachEventKey struct{}

// eachEventStore is the log as the kernel writer sees it.
type eachEventStore struct{ eventlog.Store }

func (s eachEventStore) Append(ctx context.Context, stream eventlog.StreamID, expected uint64, envs ...*ev.Envelope) (eventlog.AppendResult, error) {
	if each, ok := ctx.Value(eachEventKey{}).(*eachEvent); ok && len(each.decided) == len(envs) {
		for i, e := range envs {
			d := each.decided[i]
			e.OccurredAt, e.PolicyVersion, e.CalendarVersion = d.GetOccurredAt(), d.GetPolicyVersion(), d.GetCalendarVersion()
			if d.GetCausationId() != "" {
				e.CausationId = d.GetCausationId()
			}
			if d.GetCorrelationId() != "" {
				e.CorrelationId = d.GetCorrelationId()
			}
		}
	}
	return s.Store.Append(ctx, stream, expected, envs...)
}
