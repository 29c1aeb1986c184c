package eventlog_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// storedEnvelope is an event as Append stores it: every envelope field set.
func storedEnvelope(t testing.TB, payload proto.Message) []byte {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{
		ComplaintID: "0190abcd-0000-7000-8000-000000000001", Producer: "routing", Actor: "agent-7",
		CorrelationID: "0190abcd-0000-7000-8000-000000000002", CausationID: "0190abcd-0000-7000-8000-000000000003",
		Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", Tracestate: "vendor=x",
		PolicyVersion: "sla-2026.1", CalendarVer: "cn-2026", OccurredAt: time.Date(2026, 11, 23, 8, 30, 0, 123, time.UTC),
	}, payload)
	if err != nil {
		t.Fatal(err)
	}
	e.StreamId, e.Version, e.PrevPosition, e.BatchRemaining = "complaint-"+e.GetComplaintId(), 7, 41, 2
	e.RecordedAt = timestamppb.New(time.Date(2026, 11, 23, 8, 30, 1, 0, time.UTC))
	e.PrevHash = make([]byte, 32)
	e.PrevHash[0] = 0xfe
	raw, err := proto.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// sameAsProto fails t unless DecodeEnvelope and DecodeStored agree with
// proto.Unmarshal on raw.
func sameAsProto(t *testing.T, raw []byte) {
	t.Helper()
	want := &eventsv1.Envelope{}
	wantErr := proto.Unmarshal(raw, want)
	for name, decode := range map[string]func([]byte) (*eventsv1.Envelope, error){
		"DecodeEnvelope": eventlog.DecodeEnvelope,
		"DecodeStored":   eventlog.DecodeStored,
	} {
		got, err := decode(raw)
		switch {
		case (err == nil) != (wantErr == nil):
			t.Fatalf("%s error %v, proto.Unmarshal error %v", name, err, wantErr)
		case err == nil && !proto.Equal(got, want):
			t.Fatalf("%s = %v\nproto.Unmarshal = %v", name, got, want)
		}
	}
}

func TestDecodeEnvelopeMatchesProtoUnmarshal(t *testing.T) {
	stored := storedEnvelope(t, &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: eventsv1.Severity_SEVERITY_L4, RulesFired: []string{"safety.fire"}})
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(parts ...[]byte) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	str := func(num protowire.Number, s string) []byte {
		return protowire.AppendString(tag(num, protowire.BytesType), s)
	}
	signer, err := signing.Generate("routing-1", "routing")
	if err != nil {
		t.Fatal(err)
	}
	signed := signer.Sign(stored)
	sig := func(fields ...[]byte) []byte {
		return protowire.AppendBytes(tag(30, protowire.BytesType), cat(fields...))
	}
	for name, raw := range map[string][]byte{
		"as stored":                    stored,
		"signed":                       signed,
		"signature twice":              cat(signed, sig(str(1, "k"))),
		"signature with unknown field": cat(stored, sig(str(1, "k"), str(3, "x"))),
		"signature key id not UTF-8":   cat(stored, sig(str(1, "\xff"))),
		"signature as varint":          cat(stored, protowire.AppendVarint(tag(30, protowire.VarintType), 1)),
		"empty":                        {},
		"no payload":                   str(1, "id-1"),
		"repeated string field":        cat(stored, str(1, "other-id")),
		"repeated payload (merged)":    cat(stored, str(200, "")),
		"second payload of other type": cat(stored, str(206, "")),
		"unknown field":                cat(stored, str(50, "x")),
		"unknown payload number":       cat(stored, str(599, "x")),
		"version as bytes":             cat(str(4, "7"), str(1, "id")),
		"string as varint":             cat(protowire.AppendVarint(tag(1, protowire.VarintType), 1)),
		"invalid UTF-8":                str(8, "\xff\xfe"),
		"truncated":                    stored[:len(stored)-3],
		"timestamp with unknown field": cat(protowire.AppendBytes(tag(5, protowire.BytesType), str(3, "x"))),
		"timestamp repeated seconds":   cat(protowire.AppendBytes(tag(5, protowire.BytesType), cat(protowire.AppendVarint(tag(1, protowire.VarintType), 1), protowire.AppendVarint(tag(1, protowire.VarintType), 2)))),
		"negative nanos":               cat(protowire.AppendBytes(tag(6, protowire.BytesType), protowire.AppendVarint(tag(2, protowire.VarintType), protowire.EncodeZigZag(-1)))),
		"payload that does not parse":  cat(str(1, "id"), protowire.AppendBytes(tag(200, protowire.BytesType), []byte{0xff})),
	} {
		t.Run(name, func(t *testing.T) { sameAsProto(t, raw) })
	}
}

// TestDecodeEnvelopeKeepsNoAliasOfItsInput: the stored bytes stay the audit
// record, so the decoded event must not share memory with them.
func TestDecodeEnvelopeKeepsNoAliasOfItsInput(t *testing.T) {
	raw := storedEnvelope(t, &eventsv1.ResponseRecorded{Summary: "called back", RespondedBy: "agent-7"})
	e, err := eventlog.DecodeEnvelope(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(e)
	for i := range raw {
		raw[i] = 0
	}
	if !proto.Equal(e, want) {
		t.Fatalf("decoded event changed with its input: %v", e)
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	f.Add(storedEnvelope(f, &eventsv1.ResponseRecorded{Summary: "a typical event", RespondedBy: "agent-7"}))
	f.Add(storedEnvelope(f, &eventsv1.SlaClockStarted{ClockId: "acceptance-1"}))
	f.Add([]byte{})
	if signer, err := signing.Generate("routing-1", "routing"); err == nil {
		f.Add(signer.Sign(storedEnvelope(f, &eventsv1.ResponseRecorded{Summary: "signed"})))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { sameAsProto(t, raw) })
}

// BenchmarkDecodeEnvelope against proto.Unmarshal, on a typical stored event:
//
//	go test -run '^$' -bench DecodeEnvelope -benchmem ./libs/eventlog/
func BenchmarkDecodeEnvelope(b *testing.B) {
	raw := storedEnvelope(b, &eventsv1.ResponseRecorded{Summary: "a typical event", RespondedBy: "agent-7"})
	b.Run("DecodeEnvelope", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := eventlog.DecodeEnvelope(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeStored", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := eventlog.DecodeStored(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("proto.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := proto.Unmarshal(raw, &eventsv1.Envelope{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Every envelope field is decoded by the fast path: falling back to
// proto.Unmarshal (an unknown field, say a new one not taught to it) would
// cost more allocations than proto.Unmarshal itself.
func TestDecodeStoredTakesTheFastPath(t *testing.T) {
	signer, err := signing.Generate("routing-1", "routing")
	if err != nil {
		t.Fatal(err)
	}
	raw := signer.Sign(storedEnvelope(t, &eventsv1.ResponseRecorded{Summary: "a typical event", RespondedBy: "agent-7"}))
	fast := testing.AllocsPerRun(100, func() { _, _ = eventlog.DecodeStored(raw) })
	slow := testing.AllocsPerRun(100, func() { _ = proto.Unmarshal(raw, &eventsv1.Envelope{}) })
	if fast >= slow {
		t.Errorf("DecodeStored made %.0f allocations, proto.Unmarshal %.0f: the fast path was not taken", fast, slow)
	}
}
