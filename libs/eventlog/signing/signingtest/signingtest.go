// Package signingtest helps tests of event signing: keys for a few
// producers, events of a given producer, and forgeries appended straight to
// the EVENTS stream behind the store's back, as someone with publish rights
// could.
package signingtest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Signer makes a new key for producer, named keyID.
func Signer(tb testing.TB, keyID, producer string) *signing.Signer {
	tb.Helper()
	s, err := signing.Generate(keyID, producer)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Keyring holds the public keys of signers.
func Keyring(tb testing.TB, signers ...*signing.Signer) *signing.Keyring {
	tb.Helper()
	keys := make([]signing.Key, len(signers))
	for i, s := range signers {
		keys[i] = s.Public()
	}
	k, err := signing.NewKeyring(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// Event wraps payload for complaint complaintID as written by producer.
func Event(tb testing.TB, producer, complaintID string, payload proto.Message) *eventsv1.Envelope {
	tb.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: complaintID, Producer: producer, Actor: "system",
		OccurredAt: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// Forge appends e to stream directly on JetStream, correctly chained to
// the stream's last event (version, prev_hash, prev_position), signed by
// signer (nil: unsigned), and returns its log position.
func Forge(tb testing.TB, ctx context.Context, js jetstream.JetStream, log eventlog.Store, stream eventlog.StreamID, e *eventsv1.Envelope, signer *signing.Signer) uint64 {
	tb.Helper()
	recs, err := log.ReadStream(ctx, stream, 1)
	if err != nil {
		tb.Fatal(err)
	}
	e.StreamId, e.Version, e.RecordedAt = string(stream), uint64(len(recs))+1, e.OccurredAt
	var last uint64
	if len(recs) > 0 {
		end := recs[len(recs)-1]
		e.PrevHash, e.PrevPosition, last = eventlog.Hash(end.Raw), end.Position, end.Position
	}
	raw, err := proto.Marshal(e)
	if err != nil {
		tb.Fatal(err)
	}
	if signer != nil {
		raw = signer.Sign(raw)
	}
	msg := nats.NewMsg(jsstore.Subject(stream))
	msg.Data = raw
	msg.Header.Set(jsstore.EventTypeHeader, eventlog.TypeOf(e))
	ack, err := js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last))
	if err != nil {
		tb.Fatal(err)
	}
	return ack.Sequence
}
