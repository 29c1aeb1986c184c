package domain

import (
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// ApplyPending evolves the state with events decided but not yet stored, so
// that one reaction can chain decisions (classify, then assign, then
// escalate) into a single append. The version does not move.
func ApplyPending(c *Complaint, msgs []proto.Message, now time.Time) {
	for _, m := range msgs {
		e := &eventsv1.Envelope{Version: c.Version, ComplaintId: c.ID, OccurredAt: timestamppb.New(now)}
		if eventlog.SetPayload(e, m) == nil {
			c.Evolve(e)
		}
	}
}
