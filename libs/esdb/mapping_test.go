package esdb

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestExpectedRevisionMapsVersionCountToLastRevision(t *testing.T) {
	tests := []struct {
		version uint64
		want    kurrent.ExpectedRevision
	}{
		{0, kurrent.NoStream{}},
		{1, kurrent.Revision(0)},
		{2, kurrent.Revision(1)},
		{42, kurrent.Revision(41)},
	}
	for _, tt := range tests {
		if got := ExpectedRevision(tt.version); got != tt.want {
			t.Errorf("ExpectedRevision(%d) = %#v, want %#v", tt.version, got, tt.want)
		}
	}
}

func TestFromVersionStartsAtTheEventsRevision(t *testing.T) {
	tests := []struct {
		version uint64
		want    kurrent.StreamPosition
	}{
		{0, kurrent.Start{}},
		{1, kurrent.Start{}},
		{2, kurrent.Revision(1)},
		{10, kurrent.Revision(9)},
	}
	for _, tt := range tests {
		if got := FromVersion(tt.version); got != tt.want {
			t.Errorf("FromVersion(%d) = %#v, want %#v", tt.version, got, tt.want)
		}
	}
	if VersionOf(0) != 1 || VersionOf(41) != 42 {
		t.Errorf("VersionOf(0), VersionOf(41) = %d, %d; want 1, 42", VersionOf(0), VersionOf(41))
	}
}

// codedError stands in for the client's *Error with a given code: the
// client has no exported constructor for one.
type codedError struct{ code kurrent.ErrorCode }

func (e codedError) Error() string           { return fmt.Sprintf("code %d", e.code) }
func (e codedError) Code() kurrent.ErrorCode { return e.code }

func TestWrongExpectedVersionIsRecognisedEvenWhenWrapped(t *testing.T) {
	wev := codedError{kurrent.ErrorCodeWrongExpectedVersion}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"bare", wev, true},
		{"wrapped like the client does", fmt.Errorf("could not send append request. Reason: %w", wev), true},
		{"another code", codedError{kurrent.ErrorCodeDeadlineExceeded}, false},
		{"plain error", errors.New("boom"), false},
	}
	for _, tt := range tests {
		if got := IsWrongExpectedVersion(tt.err); got != tt.want {
			t.Errorf("%s: IsWrongExpectedVersion = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// The trap the architecture notes: FromError says ok only for nil, so a
// check written as `if e, ok := FromError(err); ok && …` never fires.
func TestClientFromErrorIsOKOnlyForNil(t *testing.T) {
	if _, ok := kurrent.FromError(nil); !ok {
		t.Fatal("FromError(nil): ok = false, want true")
	}
	e, ok := kurrent.FromError(errors.New("wrong expected version"))
	if ok {
		t.Fatal("FromError(non-nil): ok = true, want false")
	}
	if e.Code() != kurrent.ErrorCodeUnknown || IsWrongExpectedVersion(e) {
		t.Fatalf("FromError(plain error) = code %d, conflict %v; want unknown, not a conflict", e.Code(), IsWrongExpectedVersion(e))
	}
	if IsWrongExpectedVersion(&kurrent.Error{}) {
		t.Fatal("a zero client error is not a conflict")
	}
}

func TestConflictWrapsErrConflict(t *testing.T) {
	err := conflict(eventlog.ComplaintStream("c1"), 3, "other events follow it")
	if !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("conflict() = %v, does not wrap eventlog.ErrConflict", err)
	}
	if !strings.Contains(err.Error(), "complaint-c1") || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("conflict() = %q, want the stream and the expected version named", err)
	}
}

func TestEventUUIDIsStableAndNeverNil(t *testing.T) {
	v7 := uuid.Must(uuid.NewV7())
	if got := EventUUID(v7.String()); got != v7 {
		t.Errorf("EventUUID(uuid) = %s, want the same uuid %s", got, v7)
	}
	a1, a2, b := EventUUID("evt-1"), EventUUID("evt-1"), EventUUID("evt-2")
	if a1 != a2 || a1 == b || a1 == uuid.Nil {
		t.Errorf("derived ids: evt-1 -> %s and %s, evt-2 -> %s; want stable, distinct, not nil", a1, a2, b)
	}
	if got := EventUUID(uuid.Nil.String()); got == uuid.Nil {
		t.Error("EventUUID(nil uuid) = nil uuid; the client would replace it with a random id")
	}
}

// sealed returns a complaint event sealed at version 2 of its stream, with
// personal data in the payload and a trace context.
func sealed(t *testing.T) (*eventsv1.Envelope, []byte) {
	t.Helper()
	id := uuid.Must(uuid.NewV7()).String()
	e, err := eventlog.NewEvent(eventlog.Meta{
		ComplaintID:   id,
		Producer:      "intake",
		Actor:         "agent-7",
		CorrelationID: "corr-1",
		CausationID:   "cmd-1",
		Traceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Tracestate:    "vendor=x",
		PolicyVersion: "p3",
		OccurredAt:    time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC),
	}, &eventsv1.ComplaintReceived{
		ChannelRef:  "T-1",
		Description: "Zhang Wei, 13800138000, the fridge is loud",
	})
	if err != nil {
		t.Fatal(err)
	}
	stream := eventlog.ComplaintStream(id)
	raws, err := eventlog.Seal(context.Background(), stream, eventlog.StreamEnd{Version: 1, Hash: eventlog.Hash([]byte("v1"))}, time.Date(2026, 11, 2, 9, 31, 0, 0, time.UTC), []*eventsv1.Envelope{e})
	if err != nil {
		t.Fatal(err)
	}
	return e, raws[0]
}

func TestEventDataStoresTheEnvelopeAndItsMetadata(t *testing.T) {
	e, raw := sealed(t)
	d, err := EventData(e, raw)
	if err != nil {
		t.Fatal(err)
	}
	if string(d.Data) != string(raw) {
		t.Error("Data is not the sealed envelope's bytes: the chain would not hold")
	}
	if d.EventID.String() != e.GetEventId() || d.EventType != "ComplaintReceived" || d.ContentType != kurrent.ContentTypeBinary {
		t.Errorf("EventData = id %s type %q content %d; want id %s, ComplaintReceived, binary", d.EventID, d.EventType, d.ContentType, e.GetEventId())
	}
	var m map[string]any
	if err := json.Unmarshal(d.Metadata, &m); err != nil {
		t.Fatalf("metadata is not JSON: %v", err)
	}
	want := map[string]any{
		"eventId":        e.GetEventId(),
		"streamId":       "complaint-" + e.GetComplaintId(),
		"complaintId":    e.GetComplaintId(),
		"version":        float64(2),
		"type":           "ComplaintReceived",
		"producer":       "intake",
		"actor":          "agent-7",
		"$correlationId": "corr-1",
		"$causationId":   "cmd-1",
		"traceparent":    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":     "vendor=x",
		"policyVersion":  "p3",
		"occurredAt":     "2026-11-02T09:30:00Z",
		"recordedAt":     "2026-11-02T09:31:00Z",
		"prevHash":       hex.EncodeToString(eventlog.Hash([]byte("v1"))),
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("metadata[%q] = %v, want %v", k, m[k], v)
		}
	}
	if strings.Contains(string(d.Metadata), "13800138000") || strings.Contains(string(d.Metadata), "fridge") {
		t.Errorf("metadata copies the payload (personal data): %s", d.Metadata)
	}
}

func TestDecodeGivesTheStoredBytesAndThePreparePosition(t *testing.T) {
	e, raw := sealed(t)
	rec, err := Decode(&kurrent.RecordedEvent{
		StreamID: e.GetStreamId(), EventNumber: 1, Data: raw,
		Position: kurrent.Position{Commit: 9000, Prepare: 8800},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Position != 8800 || string(rec.Raw) != string(raw) || !proto.Equal(rec.Event, e) {
		t.Errorf("Decode = position %d, raw equal %v, event equal %v; want 8800, true, true", rec.Position, string(rec.Raw) == string(raw), proto.Equal(rec.Event, e))
	}
	_, err = Decode(&kurrent.RecordedEvent{StreamID: "complaint-x", EventNumber: 4, Data: []byte{0xff, 0xff}, Position: kurrent.Position{Commit: 7, Prepare: 7}})
	if err == nil || !strings.Contains(err.Error(), "complaint-x") || !strings.Contains(err.Error(), "position 7") {
		t.Errorf("Decode(garbage) = %v, want an error naming the stream and position", err)
	}
}

func TestNamespaceNamesAndRecognisesCloseloopStreams(t *testing.T) {
	var none Namespace
	test := Namespace("t42")
	stream := eventlog.ComplaintStream("0190")
	if none.StreamName(stream) != "complaint-0190" || test.StreamName(stream) != "t42:complaint-0190" {
		t.Errorf("StreamName = %q, %q; want complaint-0190, t42:complaint-0190", none.StreamName(stream), test.StreamName(stream))
	}
	for _, tt := range []struct {
		ns   Namespace
		name string
		want eventlog.StreamID
	}{
		{none, "complaint-0190", "complaint-0190"},
		{none, "technician-t1", "technician-t1"},
		{none, "team-north", "team-north"},
		{none, "policy-sla", "policy-sla"},
		{none, "$epoch-information", ""},
		{none, "$$complaint-1", ""},
		{none, "complaints-1", ""},
		{none, "orders-1", ""},
		{none, "t42:complaint-1", ""}, // another namespace's
		{test, "t42:complaint-1", "complaint-1"},
		{test, "complaint-1", ""},
		{test, "t42:orders-1", ""},
	} {
		got, ok := tt.ns.StreamID(tt.name)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("Namespace(%q).StreamID(%q) = %q, %v; want %q", tt.ns, tt.name, got, ok, tt.want)
		}
	}
	if got := test.Prefixes(); len(got) != len(StreamPrefixes) || got[0] != "t42:complaint-" {
		t.Errorf("Prefixes = %v, want t42:<kind>- for every kind", got)
	}
	for _, bad := range []Namespace{"$sys", "a:b", "a b"} {
		if bad.Validate() == nil {
			t.Errorf("Namespace(%q) accepted", bad)
		}
	}
	if none.Validate() != nil || test.Validate() != nil {
		t.Error("valid namespaces refused")
	}
}

func TestPositionsResumeStrictlyBeforeTheAskedPosition(t *testing.T) {
	p := newPositions(3)
	if got := p.before(100); got != (kurrent.Start{}) {
		t.Fatalf("before with nothing remembered = %#v, want Start", got)
	}
	for _, pos := range []kurrent.Position{{Commit: 100, Prepare: 100}, {Commit: 300, Prepare: 200}, {Commit: 300, Prepare: 250}} {
		p.remember(pos)
	}
	tests := []struct {
		from uint64
		want kurrent.AllPosition
	}{
		{50, kurrent.Start{}},
		{100, kurrent.Start{}}, // the event at 100 itself must not be missed
		{101, kurrent.Position{Commit: 100, Prepare: 100}},
		{250, kurrent.Position{Commit: 300, Prepare: 200}},
		{251, kurrent.Position{Commit: 300, Prepare: 250}},
	}
	for _, tt := range tests {
		if got := p.before(tt.from); got != tt.want {
			t.Errorf("before(%d) = %#v, want %#v", tt.from, got, tt.want)
		}
	}
	p.remember(kurrent.Position{Commit: 400, Prepare: 400}) // over the bound: forgets, stays correct
	if got := p.before(251); got != (kurrent.Start{}) {
		t.Errorf("after forgetting, before(251) = %#v, want Start (a longer scan, never a gap)", got)
	}
}

func TestParseURLAcceptsTheClientSyntaxAndHidesPasswords(t *testing.T) {
	conf, err := ParseURL("esdb://localhost:2113?tls=false")
	if err != nil {
		t.Fatal(err)
	}
	if conf.Address != "localhost:2113" || !conf.DisableTLS {
		t.Errorf("ParseURL = address %q, TLS disabled %v; want localhost:2113, true", conf.Address, conf.DisableTLS)
	}
	for _, bad := range []string{"", "http://admin:s3cret@localhost:2113", "esdb://admin:s3cret@local host:2113", "esdb://admin:s3cret@localhost:2113/path"} {
		_, err := ParseURL(bad)
		if err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseURL(%q) error repeats the password: %v", bad, err)
		}
	}
}
