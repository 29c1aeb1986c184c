package esdb

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// StreamPrefixes are the stream-name prefixes of the closeloop streams, one
// per eventlog kind. ReadAll, Follow and the relay keep only these streams of
// $all (system streams start with '$').
var StreamPrefixes = []string{
	eventlog.KindComplaint + "-",
	eventlog.KindTechnician + "-",
	eventlog.KindTeam + "-",
	eventlog.KindPolicy + "-",
}

// Namespace scopes the closeloop streams of one KurrentDB database: the
// stream of eventlog stream "complaint-<id>" is named "complaint-<id>" in
// the default (empty) namespace, "<ns>:complaint-<id>" in namespace ns.
// Production uses the default; the conformance suite gives each test a
// namespace of its own on a shared server, and two environments (say,
// staging and a load test) could share a database the same way.
type Namespace string

// Validate refuses names that would collide with KurrentDB's system
// streams or with the separator.
func (n Namespace) Validate() error {
	if strings.HasPrefix(string(n), "$") || strings.ContainsAny(string(n), ": \t\n") {
		return fmt.Errorf("esdb: namespace %q: must not start with '$' nor contain ':' or spaces", string(n))
	}
	return nil
}

func (n Namespace) prefix() string {
	if n == "" {
		return ""
	}
	return string(n) + ":"
}

// StreamName is the KurrentDB stream of an eventlog stream.
func (n Namespace) StreamName(id eventlog.StreamID) string { return n.prefix() + string(id) }

// StreamID is the eventlog stream of a KurrentDB stream; ok is false for a
// stream that is not a closeloop stream of this namespace.
func (n Namespace) StreamID(name string) (eventlog.StreamID, bool) {
	rest, ok := strings.CutPrefix(name, n.prefix())
	if !ok {
		return "", false
	}
	for _, p := range StreamPrefixes {
		if strings.HasPrefix(rest, p) {
			return eventlog.StreamID(rest), true
		}
	}
	return "", false
}

// Prefixes are the KurrentDB stream-name prefixes of the namespace's
// closeloop streams, for a server-side subscription filter.
func (n Namespace) Prefixes() []string {
	out := make([]string, len(StreamPrefixes))
	for i, p := range StreamPrefixes {
		out[i] = n.prefix() + p
	}
	return out
}

// ExpectedRevision maps the eventlog's expected version (the number of events
// the writer read) to KurrentDB's expected revision (the 0-based revision of
// the stream's last event): version 0 is "no stream yet", version n is
// revision n-1.
func ExpectedRevision(version uint64) kurrent.ExpectedRevision {
	if version == 0 {
		return kurrent.NoStream{}
	}
	return kurrent.Revision(version - 1)
}

// FromVersion maps a 1-based eventlog version to the stream position a
// forward read starts at (revision version-1; version 0 reads from the start).
func FromVersion(version uint64) kurrent.StreamPosition {
	if version <= 1 {
		return kurrent.Start{}
	}
	return kurrent.Revision(version - 1)
}

// VersionOf is the eventlog version of a stored event: its revision + 1.
func VersionOf(revision uint64) uint64 { return revision + 1 }

// PositionOf is the eventlog position of an event in $all: its prepare
// position, the byte offset of the event's record in the transaction log.
// Prepare positions are unique per event and increase in $all order, whereas
// the events of one append share a commit position. (The first records of a
// KurrentDB log are system records, so no closeloop event has position 0.)
func PositionOf(p kurrent.Position) uint64 { return p.Prepare }

// eventIDNamespace derives KurrentDB event ids for eventlog ids that are not
// UUIDs (see EventUUID).
var eventIDNamespace = uuid.MustParse("5b0b1c1e-8a43-4f5e-9a43-2c1d0c5e7f01")

// EventUUID is the KurrentDB event id of an envelope's event id: the id
// itself when it is a UUID (eventlog.NewEvent makes UUIDv7s), else a UUIDv5
// derived from it. Either way the same event id always maps to the same
// KurrentDB id, which is what makes a retried append idempotent. The nil UUID
// is derived too: the client would replace it with a random one.
func EventUUID(eventID string) uuid.UUID {
	if id, err := uuid.Parse(eventID); err == nil && id != uuid.Nil {
		return id
	}
	return uuid.NewSHA1(eventIDNamespace, []byte(eventID))
}

// Metadata is the JSON stored as a KurrentDB event's metadata: the envelope
// without its payload, readable in the KurrentDB UI and by its projections
// ($correlationId and $causationId are the names KurrentDB's own
// $by_correlation_id projection reads). It is a copy for operators: the
// stored envelope (the event's data) stays the source of truth and the only
// thing the hash chain covers. It carries no personal data: payloads are
// not copied.
type Metadata struct {
	EventID         string `json:"eventId"`
	StreamID        string `json:"streamId"`
	ComplaintID     string `json:"complaintId,omitempty"`
	Version         uint64 `json:"version"`
	Type            string `json:"type"`
	Producer        string `json:"producer,omitempty"`
	Actor           string `json:"actor,omitempty"`
	CorrelationID   string `json:"$correlationId,omitempty"`
	CausationID     string `json:"$causationId,omitempty"`
	Traceparent     string `json:"traceparent,omitempty"`
	Tracestate      string `json:"tracestate,omitempty"`
	PolicyVersion   string `json:"policyVersion,omitempty"`
	CalendarVersion string `json:"calendarVersion,omitempty"`
	OccurredAt      string `json:"occurredAt,omitempty"`
	RecordedAt      string `json:"recordedAt,omitempty"`
	PrevHash        string `json:"prevHash,omitempty"` // hex
}

// MetadataOf builds the metadata of a sealed envelope.
func MetadataOf(e *eventsv1.Envelope) Metadata {
	m := Metadata{
		EventID:         e.GetEventId(),
		StreamID:        e.GetStreamId(),
		ComplaintID:     e.GetComplaintId(),
		Version:         e.GetVersion(),
		Type:            e.GetType(),
		Producer:        e.GetProducer(),
		Actor:           e.GetActor(),
		CorrelationID:   e.GetCorrelationId(),
		CausationID:     e.GetCausationId(),
		Traceparent:     e.GetTraceparent(),
		Tracestate:      e.GetTracestate(),
		PolicyVersion:   e.GetPolicyVersion(),
		CalendarVersion: e.GetCalendarVersion(),
	}
	if len(e.GetPrevHash()) > 0 {
		m.PrevHash = hex.EncodeToString(e.GetPrevHash())
	}
	if e.GetOccurredAt() != nil {
		m.OccurredAt = e.GetOccurredAt().AsTime().UTC().Format(time.RFC3339Nano)
	}
	if e.GetRecordedAt() != nil {
		m.RecordedAt = e.GetRecordedAt().AsTime().UTC().Format(time.RFC3339Nano)
	}
	return m
}

// EventData is what Append stores for a sealed envelope and its bytes: the
// bytes as the event's data (binary content), the type as the event type,
// the metadata as JSON.
func EventData(e *eventsv1.Envelope, raw []byte) (kurrent.EventData, error) {
	md, err := json.Marshal(MetadataOf(e))
	if err != nil {
		return kurrent.EventData{}, fmt.Errorf("esdb: metadata of event %s: %w", e.GetEventId(), err)
	}
	return kurrent.EventData{
		EventID:     EventUUID(e.GetEventId()),
		EventType:   e.GetType(),
		ContentType: kurrent.ContentTypeBinary,
		Data:        raw,
		Metadata:    md,
	}, nil
}

// Decode turns a stored KurrentDB event into a Record: the data is the
// stored envelope (Record.Raw, what the chain hashes), the position its
// prepare position (see PositionOf).
func Decode(ev *kurrent.RecordedEvent) (eventlog.Record, error) {
	e, err := eventlog.DecodeEnvelope(ev.Data)
	if err != nil {
		return eventlog.Record{}, fmt.Errorf("esdb: event %d of stream %s (log position %d) does not decode: %w",
			ev.EventNumber, ev.StreamID, PositionOf(ev.Position), err)
	}
	return eventlog.Record{Event: e, Raw: ev.Data, Position: PositionOf(ev.Position)}, nil
}

// errorCoder is what a KurrentDB client error offers; matched with
// errors.As because the client wraps its *Error in fmt.Errorf on some paths.
type errorCoder interface {
	error
	Code() kurrent.ErrorCode
}

// hasCode tells whether err is, or wraps, a client error with that code.
// (kurrent.FromError is no help: it reports ok=true only for a nil error and
// does not unwrap.)
func hasCode(err error, code kurrent.ErrorCode) bool {
	var ce errorCoder
	return errors.As(err, &ce) && ce.Code() == code
}

// IsWrongExpectedVersion tells whether an append failed KurrentDB's
// optimistic concurrency check.
func IsWrongExpectedVersion(err error) bool {
	return hasCode(err, kurrent.ErrorCodeWrongExpectedVersion)
}

// isStreamNotFound tells whether a read found no such stream.
func isStreamNotFound(err error) bool { return hasCode(err, kurrent.ErrorCodeResourceNotFound) }
