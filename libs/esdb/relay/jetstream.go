package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

// PositionHeader carries a relayed event's KurrentDB position
// ("<commit>/<prepare>") on its JetStream message: the relay's checkpoint.
const PositionHeader = "Closeloop-Kurrent-Position"

// ErrFenced is returned by Publish when the EVENTS stream grew behind this
// sink's back: another relay is running, or someone else publishes there.
// The run stops; the next one reloads the checkpoint.
var ErrFenced = errors.New("relay: EVENTS stream was written by another writer")

// ErrForeignTail is returned by Checkpoint when the last message of EVENTS
// was not published by a relay: the position to resume from is unknown.
var ErrForeignTail = errors.New("relay: the last message of EVENTS carries no " + PositionHeader + " header")

// JetStreamSink publishes to the EVENTS stream of the JetStream event log,
// each message expecting the stream's last sequence to be the one this sink
// last saw, so that two relays never interleave: the checkpoint (the last
// message's header) always belongs to the events before it.
type JetStreamSink struct {
	js     jetstream.JetStream
	stream jetstream.Stream

	mu      sync.Mutex
	loaded  bool
	lastSeq uint64
}

var _ Sink = (*JetStreamSink)(nil)

// NewJetStreamSink makes sure the EVENTS stream exists as the JetStream
// event log configures it (the services' bus consumers read it) and returns
// a sink on it.
func NewJetStreamSink(ctx context.Context, js jetstream.JetStream, cfg jsstore.Config) (*JetStreamSink, error) {
	if _, err := jsstore.New(ctx, js, cfg); err != nil {
		return nil, fmt.Errorf("relay: EVENTS stream: %w", err)
	}
	s, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		return nil, fmt.Errorf("relay: EVENTS stream: %w", err)
	}
	return &JetStreamSink{js: js, stream: s}, nil
}

// Checkpoint implements Sink: the position in the header of the last
// message of EVENTS.
func (s *JetStreamSink) Checkpoint(ctx context.Context) (Position, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	info, err := s.stream.Info(ctx)
	if err != nil {
		return Position{}, false, fmt.Errorf("relay: EVENTS stream info: %w", err)
	}
	last := info.State.LastSeq
	if last == 0 {
		s.loaded, s.lastSeq = true, 0
		return Position{}, false, nil
	}
	m, err := s.stream.GetMsg(ctx, last)
	if err != nil {
		return Position{}, false, fmt.Errorf("relay: last message of EVENTS (sequence %d): %w", last, err)
	}
	h := m.Header.Get(PositionHeader)
	if h == "" {
		return Position{}, false, fmt.Errorf("%w (sequence %d, subject %s): EVENTS must be written by the relay alone when KurrentDB is the system of record", ErrForeignTail, last, m.Subject)
	}
	p, err := ParsePosition(h)
	if err != nil {
		return Position{}, false, fmt.Errorf("relay: last message of EVENTS (sequence %d): %w", last, err)
	}
	s.loaded, s.lastSeq = true, last
	return p, true, nil
}

// Publish implements Sink. The event's id is the message id, so JetStream
// also drops a repeat within its duplicate window.
func (s *JetStreamSink) Publish(ctx context.Context, ev Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		return errors.New("relay: Publish before Checkpoint: the sink does not know the stream's last sequence")
	}
	if ev.EventID == "" || ev.Type == "" || ev.Stream.Kind() == "" || ev.Stream.ID() == "" {
		return fmt.Errorf("relay: event at %s: event id, type and a <kind>-<id> stream are required", ev.Position)
	}
	msg := nats.NewMsg(jsstore.Subject(ev.Stream))
	msg.Data = ev.Raw
	msg.Header.Set(jsstore.EventTypeHeader, ev.Type)
	msg.Header.Set(PositionHeader, ev.Position.String())
	if ev.Traceparent != "" {
		msg.Header.Set("traceparent", ev.Traceparent)
		if ev.Tracestate != "" {
			msg.Header.Set("tracestate", ev.Tracestate)
		}
	}
	ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.EventID), jetstream.WithExpectLastSequence(s.lastSeq))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
			s.loaded = false
			return fmt.Errorf("%w: expected last sequence %d: %w", ErrFenced, s.lastSeq, err)
		}
		return err
	}
	if !ack.Duplicate {
		s.lastSeq = ack.Sequence
	}
	return nil
}
