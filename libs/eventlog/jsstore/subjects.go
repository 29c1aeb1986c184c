package jsstore

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// StreamName is the one JetStream stream holding the whole event log.
const StreamName = "EVENTS"

// subjectRoot prefixes every event subject; the stream captures
// root+".*.*": exactly the layout below, so a writer still using the old
// one (events.<kind>.<id>.<EventType>) gets no stream rather than writing
// on a subject no reader looks at.
const subjectRoot = "events"

// EventTypeHeader carries the event's type on every stored message, for
// operators and consumers filtering on headers: the subject no longer names
// it. Readers take the type from the payload.
const EventTypeHeader = "Closeloop-Event-Type"

// Subject is the one literal subject of an entity's stream, where each of
// its events is published: events.<kind>.<id>, e.g. events.complaint.0190….
// One literal subject per stream lets the server find a stream's messages
// through its per-subject index, whatever the size of the log (README.md).
func Subject(stream eventlog.StreamID) string {
	return subjectRoot + "." + stream.Kind() + "." + stream.ID()
}

// KindSubjects matches every event of every stream of a kind, e.g.
// "events.complaint.>" for a bus consumer of complaint events.
func KindSubjects(kind string) string { return subjectRoot + "." + kind + ".>" }

// Layout metadata: the EVENTS stream records which subject layout it holds,
// so that a log written with the old one is never mixed with the new.
const (
	LayoutMetadataKey = "closeloop.subjects"
	// LayoutV2 is one literal subject per entity stream, events.<kind>.<id>.
	LayoutV2 = "v2"
)

// DecodeMsg turns a message consumed from the EVENTS stream into a Record.
func DecodeMsg(m jetstream.Msg) (eventlog.Record, error) {
	md, err := m.Metadata()
	if err != nil {
		return eventlog.Record{}, fmt.Errorf("jsstore: message on %s: %w", m.Subject(), err)
	}
	return decode(m.Subject(), md.Sequence.Stream, m.Data())
}

// DecodeRawMsg turns a message read by sequence or subject (Stream.GetMsg,
// Stream.GetLastMsgForSubject) into a Record.
func DecodeRawMsg(m *jetstream.RawStreamMsg) (eventlog.Record, error) {
	return decode(m.Subject, m.Sequence, m.Data)
}

// directSeq is the stream sequence of a direct get reply.
func directSeq(m *nats.Msg) (uint64, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("jsstore: direct get reply without a valid %s header: %w", jetstream.SequenceHeader, err)
	}
	return seq, nil
}

// decode turns a stored message into a Record. A message that is not an
// event (see skip.go) fails with an error wrapping ErrNotAnEvent.
func decode(subject string, position uint64, raw []byte) (eventlog.Record, error) {
	notEvent := func(why string) (eventlog.Record, error) {
		return eventlog.Record{}, fmt.Errorf("jsstore: message at log position %d (%s): %w: %s", position, subject, ErrNotAnEvent, why)
	}
	if len(raw) > eventlog.MaxEventSize {
		return notEvent(fmt.Sprintf("%d bytes, more than the %d an event may have", len(raw), eventlog.MaxEventSize))
	}
	e, err := eventlog.DecodeStored(raw)
	if err != nil {
		return notEvent("does not decode: " + err.Error())
	}
	if e.GetEventId() == "" {
		return notEvent("event_id missing")
	}
	if e.GetPayload() == nil {
		return notEvent("payload missing (or of a type this build does not know)")
	}
	return eventlog.Record{Event: e, Raw: raw, Position: position}, nil
}
