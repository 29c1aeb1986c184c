package jsstore

import (
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// StreamName is the one JetStream stream holding the whole event log.
const StreamName = "EVENTS"

// subjectRoot prefixes every event subject; the stream captures root+".>".
const subjectRoot = "events"

// Subject is where an event of the given type of an entity's stream is
// published: events.<kind>.<id>.<EventType>, e.g.
// events.complaint.0190….ComplaintReceived.
func Subject(stream eventlog.StreamID, eventType string) string {
	return subjectRoot + "." + stream.Kind() + "." + stream.ID() + "." + eventType
}

// StreamSubjects matches every event of one entity's stream:
// events.<kind>.<id>.*.
func StreamSubjects(stream eventlog.StreamID) string {
	return subjectRoot + "." + stream.Kind() + "." + stream.ID() + ".*"
}

// KindSubjects matches every event of every stream of a kind, e.g.
// "events.complaint.>" for a bus consumer of complaint events.
func KindSubjects(kind string) string { return subjectRoot + "." + kind + ".>" }

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

// decodeDirect turns one message of a batched direct get into a Record.
func decodeDirect(m *nats.Msg) (eventlog.Record, error) {
	seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
	if err != nil {
		return eventlog.Record{}, fmt.Errorf("jsstore: direct get reply without a valid %s header: %w", jetstream.SequenceHeader, err)
	}
	return decode(m.Header.Get(jetstream.SubjectHeader), seq, m.Data)
}

func decode(subject string, position uint64, raw []byte) (eventlog.Record, error) {
	e := &eventsv1.Envelope{}
	if err := proto.Unmarshal(raw, e); err != nil {
		return eventlog.Record{}, fmt.Errorf("jsstore: event at log position %d (%s) does not decode: %w", position, subject, err)
	}
	return eventlog.Record{Event: e, Raw: raw, Position: position}, nil
}
