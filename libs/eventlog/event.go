package eventlog

import (
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Meta is what a producer says about the events it writes.
type Meta struct {
	ComplaintID   string
	Producer      string
	Actor         string
	CorrelationID string
	CausationID   string
	Traceparent   string
	Tracestate    string
	PolicyVersion string
	CalendarVer   string
	OccurredAt    time.Time
}

// NewEvent wraps a payload (one of the catalogue's messages) in an envelope
// with a fresh UUIDv7 event id and the type named after the payload.
func NewEvent(m Meta, payload proto.Message) (*eventsv1.Envelope, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("eventlog: new event id: %w", err)
	}
	e := &eventsv1.Envelope{
		EventId:         id.String(),
		ComplaintId:     m.ComplaintID,
		Producer:        m.Producer,
		Actor:           m.Actor,
		CorrelationId:   m.CorrelationID,
		CausationId:     m.CausationID,
		Traceparent:     m.Traceparent,
		Tracestate:      m.Tracestate,
		PolicyVersion:   m.PolicyVersion,
		CalendarVersion: m.CalendarVer,
		OccurredAt:      timestamppb.New(m.OccurredAt),
	}
	if err := SetPayload(e, payload); err != nil {
		return nil, err
	}
	return e, nil
}

// SetPayload puts msg into the envelope's payload oneof and sets Type.
func SetPayload(e *eventsv1.Envelope, msg proto.Message) error {
	er := e.ProtoReflect()
	oneof := er.Descriptor().Oneofs().ByName("payload")
	want := msg.ProtoReflect().Descriptor().FullName()
	fields := oneof.Fields()
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		if f.Message() != nil && f.Message().FullName() == want {
			er.Set(f, protoreflect.ValueOfMessage(msg.ProtoReflect()))
			e.Type = string(want.Name())
			return nil
		}
	}
	return fmt.Errorf("%w: %s is not an event of the catalogue", ErrInvalidEvent, want)
}

// Payload returns the envelope's event message, or nil when none is set.
func Payload(e *eventsv1.Envelope) proto.Message {
	er := e.ProtoReflect()
	f := er.WhichOneof(er.Descriptor().Oneofs().ByName("payload"))
	if f == nil {
		return nil
	}
	return er.Get(f).Message().Interface()
}

// TypeOf names the envelope's payload ("ComplaintReceived"), or "" when the
// payload is missing or of a kind this build does not know.
func TypeOf(e *eventsv1.Envelope) string {
	if p := Payload(e); p != nil {
		return string(p.ProtoReflect().Descriptor().Name())
	}
	return ""
}
