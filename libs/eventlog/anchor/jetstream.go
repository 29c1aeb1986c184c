package anchor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// The anchors' JetStream stream: one subject, the last KeepAnchors kept.
const (
	StreamName  = "ANCHORS"
	Subject     = "closeloop.anchor"
	KeepAnchors = 10_000
)

// JetStream keeps anchors in the ANCHORS stream, beside EVENTS (a stream
// of its own: deleting or losing EVENTS leaves it).
type JetStream struct{ JS jetstream.JetStream }

// EnsureStream creates the ANCHORS stream, or updates it to this
// configuration: deletes and purges denied, the last KeepAnchors anchors.
func EnsureStream(ctx context.Context, js jetstream.JetStream, replicas int) error {
	_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Closeloop: anchors of the EVENTS log's head (libs/eventlog/anchor)",
		Subjects:    []string{Subject},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		MaxMsgs:     KeepAnchors,
		Storage:     jetstream.FileStorage,
		Replicas:    max(replicas, 1),
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
	})
	if err != nil {
		return fmt.Errorf("anchor: create stream %s: %w", StreamName, err)
	}
	return nil
}

// Name implements Store.
func (j JetStream) Name() string { return "stream " + StreamName }

// Save implements Store.
func (j JetStream) Save(ctx context.Context, a Anchor) error {
	b, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := j.JS.Publish(ctx, Subject, b); err != nil {
		return fmt.Errorf("anchor: publish to %s: %w", StreamName, err)
	}
	return nil
}

// Latest implements Store: no stream or no message is no anchor.
func (j JetStream) Latest(ctx context.Context) (Anchor, bool, error) {
	s, err := j.JS.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	m, err := s.GetLastMsgForSubject(ctx, Subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	var a Anchor
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return Anchor{}, false, fmt.Errorf("the anchor at %s sequence %d does not parse: %w", StreamName, m.Sequence, err)
	}
	return a, true, nil
}
