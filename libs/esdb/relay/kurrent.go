package relay

import (
	"context"
	"fmt"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// KurrentSource is a Source on a KurrentDB catch-up subscription to $all,
// filtered on the server to the closeloop streams of a namespace (the
// default one in production, see esdb.Namespace).
type KurrentSource struct {
	Conn      *esdb.Conn
	Namespace esdb.Namespace
}

var _ Source = KurrentSource{}

// Subscribe implements Source. KurrentDB starts a subscription after the
// given position; the relay skips anything at or before it regardless.
func (s KurrentSource) Subscribe(ctx context.Context, from *Position, fn func(Event) error) error {
	var start kurrent.AllPosition = kurrent.Start{}
	if from != nil {
		start = kurrentPosition(*from)
	}
	sub, err := s.Conn.SubscribeToAll(ctx, kurrent.SubscribeToAllOptions{
		From:   start,
		Filter: &kurrent.SubscriptionFilter{Type: kurrent.StreamFilterType, Prefixes: s.Namespace.Prefixes()},
	})
	if err != nil {
		return fmt.Errorf("relay: subscribe to $all: %w", err)
	}
	defer sub.Close()
	for {
		msg := sub.Recv()
		switch {
		case msg.SubscriptionDropped != nil:
			return fmt.Errorf("relay: subscription to $all dropped: %w", msg.SubscriptionDropped.Error)
		case msg.EventAppeared != nil:
			e := msg.EventAppeared.OriginalEvent()
			stream, ours := s.Namespace.StreamID(e.StreamID)
			if !ours {
				continue
			}
			ev, err := EventFrom(e)
			if err != nil {
				return err
			}
			ev.Stream = stream
			if err := fn(ev); err != nil {
				return err
			}
		}
	}
}

// EventFrom turns a stored KurrentDB event into the relay's Event. An event
// that does not decode stops the relay rather than being skipped: skipping
// would be a silent gap in every service's view.
func EventFrom(e *kurrent.RecordedEvent) (Event, error) {
	rec, err := esdb.Decode(e)
	if err != nil {
		return Event{}, fmt.Errorf("relay: %w", err)
	}
	env := rec.Event
	typ := env.GetType()
	if typ == "" {
		typ = eventlog.TypeOf(env)
	}
	return Event{
		Position:    Position{Commit: e.Position.Commit, Prepare: e.Position.Prepare},
		Stream:      eventlog.StreamID(e.StreamID),
		EventID:     env.GetEventId(),
		Type:        typ,
		Raw:         rec.Raw,
		Traceparent: env.GetTraceparent(),
		Tracestate:  env.GetTracestate(),
		CommittedAt: e.CreatedDate,
	}, nil
}

// kurrentPosition is the client's form of a Position.
func kurrentPosition(p Position) kurrent.Position {
	return kurrent.Position{Commit: p.Commit, Prepare: p.Prepare}
}
