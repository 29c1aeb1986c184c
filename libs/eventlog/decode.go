package eventlog

import (
	"unicode/utf8"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// DecodeEnvelope is proto.Unmarshal into a new Envelope: same result, same
// errors, with 8 allocations instead of 20 on what Append stores.
//
// Replays decode every event of the log, and proto.Unmarshal spent most of
// its time allocating the envelope's dozen strings one by one. The fast path
// copies the bytes once (DecodeStored not even once), takes every string
// field as a substring of that copy, and leaves only the payload to
// proto.Unmarshal. It takes the envelope's own fields as Append writes them
// (each once, with its declared wire type) and gives anything else (an
// unknown or repeated field, a second payload, bytes that do not parse) to
// proto.Unmarshal, whose answer is then the answer; FuzzDecodeEnvelope holds
// the two to the same result.
func DecodeEnvelope(raw []byte) (*eventsv1.Envelope, error) {
	return decode(raw, string(raw))
}

// DecodeStored is DecodeEnvelope for bytes nobody changes afterwards, such as
// a Record's Raw: the event's string fields share their memory instead of a
// copy of them, which saves a replay an allocation and a copy per event.
func DecodeStored(raw []byte) (*eventsv1.Envelope, error) {
	return decode(raw, unsafe.String(unsafe.SliceData(raw), len(raw)))
}

// decode decodes raw, whose text is the string the fast path cuts string
// fields from.
func decode(raw []byte, text string) (*eventsv1.Envelope, error) {
	if e := decodeFast(raw, text); e != nil {
		return e, nil
	}
	e := &eventsv1.Envelope{}
	if err := proto.Unmarshal(raw, e); err != nil {
		return nil, err
	}
	return e, nil
}

// Field numbers of the Envelope's own fields (payloads are 100 and above).
const (
	fieldVersion      = 4
	fieldOccurredAt   = 5
	fieldRecordedAt   = 6
	fieldPrevHash     = 16
	fieldPrevPosition = 17
	fieldBatchRemain  = 18
	lastOwnField      = 18
	fieldSignature    = 30 // signing.FieldNumber
)

var payloadFields = (&eventsv1.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("payload").Fields()

// decodeFast decodes raw, with text holding the same bytes, or returns nil
// for decode to fall back.
func decodeFast(raw []byte, text string) *eventsv1.Envelope {
	e := &eventsv1.Envelope{}
	var seen uint32    // own fields met so far
	var payload []byte // the payload field, tag included
	var times *[2]timestamppb.Timestamp
	for at := 0; at < len(raw); {
		field := at
		num, typ, n := protowire.ConsumeTag(raw[at:])
		if n < 0 {
			return nil
		}
		at += n
		if num <= lastOwnField {
			if seen&(1<<num) != 0 {
				return nil // proto merges repeats: its rules, not ours
			}
			seen |= 1 << num
		}
		if num == fieldVersion || num == fieldPrevPosition || num == fieldBatchRemain {
			if typ != protowire.VarintType {
				return nil
			}
			v, n := protowire.ConsumeVarint(raw[at:])
			if n < 0 {
				return nil
			}
			switch num {
			case fieldVersion:
				e.Version = v
			case fieldPrevPosition:
				e.PrevPosition = v
			default:
				e.BatchRemaining = uint32(v) // proto truncates a uint32 the same way
			}
			at += n
			continue
		}
		if typ != protowire.BytesType {
			return nil
		}
		v, n := protowire.ConsumeBytes(raw[at:])
		if n < 0 {
			return nil
		}
		start := at + n - len(v)
		at += n
		s := text[start : start+len(v)]
		switch {
		case num == fieldOccurredAt || num == fieldRecordedAt:
			if times == nil {
				times = new([2]timestamppb.Timestamp) // one allocation for both
			}
			ts := &times[0]
			if num == fieldRecordedAt {
				ts = &times[1]
			}
			if !decodeTimestamp(v, ts) {
				return nil
			}
			if num == fieldOccurredAt {
				e.OccurredAt = ts
			} else {
				e.RecordedAt = ts
			}
		case num == fieldPrevHash:
			e.PrevHash = []byte(s)
		case num == fieldSignature:
			if e.Signature != nil || !decodeSignature(v, text[start:start+len(v)], e) {
				return nil
			}
		case num >= 1 && num < fieldPrevHash:
			if !utf8.ValidString(s) || !setString(e, num, s) {
				return nil
			}
		default:
			if payloadFields.ByNumber(num) == nil || payload != nil {
				return nil
			}
			payload = raw[field:at]
		}
	}
	if payload != nil && (proto.UnmarshalOptions{Merge: true}).Unmarshal(payload, e) != nil {
		return nil
	}
	return e
}

// setString sets the string field num, reporting whether there is one.
func setString(e *eventsv1.Envelope, num protowire.Number, s string) bool {
	switch num {
	case 1:
		e.EventId = s
	case 2:
		e.StreamId = s
	case 3:
		e.ComplaintId = s
	case 7:
		e.Type = s
	case 8:
		e.Producer = s
	case 9:
		e.Actor = s
	case 10:
		e.CorrelationId = s
	case 11:
		e.CausationId = s
	case 12:
		e.Traceparent = s
	case 13:
		e.Tracestate = s
	case 14:
		e.PolicyVersion = s
	case 15:
		e.CalendarVersion = s
	default:
		return false
	}
	return true
}

// decodeTimestamp decodes a google.protobuf.Timestamp of seconds (1) and
// nanos (2), each at most once, into ts; false for anything else.
func decodeTimestamp(b []byte, ts *timestamppb.Timestamp) bool {
	var seen [3]bool
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || typ != protowire.VarintType || (num != 1 && num != 2) || seen[num] {
			return false
		}
		seen[num] = true
		v, m := protowire.ConsumeVarint(b[n:])
		if m < 0 {
			return false
		}
		b = b[n+m:]
		if num == 1 {
			ts.Seconds = int64(v)
		} else {
			ts.Nanos = int32(v)
		}
	}
	return true
}

// decodeSignature decodes a Signature of key_id (1) and sig (2), each at
// most once, into e.Signature; false for anything else. text holds b.
func decodeSignature(b []byte, text string, e *eventsv1.Envelope) bool {
	sig := &eventsv1.Signature{}
	var seen [3]bool
	for at := 0; at < len(b); {
		num, typ, n := protowire.ConsumeTag(b[at:])
		if n < 0 || typ != protowire.BytesType || (num != 1 && num != 2) || seen[num] {
			return false
		}
		seen[num] = true
		v, m := protowire.ConsumeBytes(b[at+n:])
		if m < 0 {
			return false
		}
		start := at + n + m - len(v)
		if num == 1 {
			s := text[start : start+len(v)]
			if !utf8.ValidString(s) {
				return false
			}
			sig.KeyId = s
		} else {
			sig.Sig = []byte(text[start : start+len(v)])
		}
		at += n + m
	}
	e.Signature = sig
	return true
}
