package eventlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Hash is the SHA-256 of an event's stored bytes: what the next event of the
// stream carries as PrevHash.
func Hash(raw []byte) []byte {
	h := sha256.Sum256(raw)
	return h[:]
}

// BrokenLink names the first place a stream's chain does not hold.
type BrokenLink struct {
	Stream   StreamID
	Version  uint64 // the event whose check failed
	Position uint64
	Reason   string
}

func (b *BrokenLink) Error() string {
	return fmt.Sprintf("stream %s: chain broken at version %d (log position %d): %s", b.Stream, b.Version, b.Position, b.Reason)
}

// ErrDamaged is what a *BrokenLink is (errors.Is): a stream whose stored
// history does not hold, which no retry will mend.
var ErrDamaged = errors.New("eventlog: stream damaged")

// Is makes errors.Is(err, ErrDamaged) hold for a broken link.
func (b *BrokenLink) Is(target error) bool { return target == ErrDamaged }

// Missing reports the versions want … next.Version-1 of stream as missing:
// a read got the event next (at log position at) where version want was
// expected, the one before being at prev (0: none). The server leaves out
// a message it can no longer read (a block file altered on disk), so the
// event is reported at its own position, which next's prev_position
// records, rather than as a break at next.
func Missing(stream StreamID, want uint64, next *eventsv1.Envelope, at, prev uint64) *BrokenLink {
	v := next.GetVersion()
	if v > want+1 {
		return &BrokenLink{stream, want, at, fmt.Sprintf("versions %d to %d are missing from the log (altered or lost on disk): version %d where %d was expected", want, v-1, v, want)}
	}
	if p := next.GetPrevPosition(); p != 0 && p > prev && p < at {
		return &BrokenLink{stream, want, p, fmt.Sprintf("version %d is missing from the log: the message at this position is unreadable or gone "+
			"(altered or lost on disk); version %d, at log position %d, points at it", want, v, at)}
	}
	return &BrokenLink{stream, want, at, fmt.Sprintf("version %d is missing from the log (altered or lost on disk): version %d, at this position, "+
		"does not record where it was", want, v)}
}

// VerifyChain checks one stream's records, in order from version 1: the
// stored bytes decode, versions run 1, 2, 3…, each event's PrevHash is the
// hash of the previous event's stored bytes, and its PrevPosition, when the
// log recorded one, lies between the previous event's position and its own.
// It returns the first broken link, or nil when the chain holds. With a
// keyring (keys, nil or left out: none) it also checks every event's
// signature and its producer's right to its type (CheckSignature).
func VerifyChain(stream StreamID, recs []Record, keys ...*signing.Keyring) *BrokenLink {
	var prev []byte
	var prevPosition uint64
	for i, r := range recs {
		want := uint64(i + 1)
		e, err := DecodeEnvelope(r.Raw)
		if err != nil {
			return &BrokenLink{stream, want, r.Position, "stored bytes do not decode: " + err.Error()}
		}
		if e.GetVersion() > want {
			return Missing(stream, want, e, r.Position, prevPosition)
		}
		if e.GetVersion() != want {
			return &BrokenLink{stream, want, r.Position, fmt.Sprintf("version %d where %d was expected", e.GetVersion(), want)}
		}
		if StreamID(e.GetStreamId()) != stream {
			return &BrokenLink{stream, want, r.Position, fmt.Sprintf("event claims stream %q", e.GetStreamId())}
		}
		if !bytes.Equal(e.GetPrevHash(), prev) {
			reason := "prev_hash does not match the hash of the previous event: the previous event was altered, or this one was forged"
			if want == 1 {
				reason = "first event carries a prev_hash"
			}
			return &BrokenLink{stream, want, r.Position, reason}
		}
		if reason := prevPositionBreak(e.GetPrevPosition(), prevPosition, r.Position); reason != "" {
			return &BrokenLink{stream, want, r.Position, reason}
		}
		if reason := signatureBreak(keys, e, r); reason != "" {
			return &BrokenLink{stream, want, r.Position, reason}
		}
		prev, prevPosition = Hash(r.Raw), r.Position
	}
	return nil
}

// prevPositionBreak says what is wrong with the PrevPosition got of an event
// at log position at, whose predecessor in its stream is at prev (0 for
// none); "" when nothing is. The log leaves out messages that are not events,
// so PrevPosition may point past the predecessor (at such a message), never
// before it nor at or past the event itself; 0 means it was not recorded.
func prevPositionBreak(got, prev, at uint64) string {
	if got == 0 || (got >= prev && got < at) {
		return ""
	}
	return fmt.Sprintf("prev_position %d, but the previous event is at log position %d and this one at %d: this event was forged or moved", got, prev, at)
}

// RawStreamReader is implemented by a store whose ReadStream leaves out
// events that repeat a version already read (jsstore: an old event published
// again past the store). ReadStreamRaw returns every stored event of the
// stream, so that verification sees them.
type RawStreamReader interface {
	ReadStreamRaw(ctx context.Context, stream StreamID) ([]Record, error)
}

// signatureBreak says what is wrong with e's signature ("" when nothing is,
// or when keys holds no keyring).
func signatureBreak(keys []*signing.Keyring, e *eventsv1.Envelope, r Record) string {
	if len(keys) == 0 || keys[0] == nil {
		return ""
	}
	if err := CheckSignature(keys[0], Record{Event: e, Raw: r.Raw, Position: r.Position}); err != nil {
		return "signature: " + err.Error()
	}
	return ""
}

// VerifyStream reads a stream from the store (every stored event, when the
// store is a RawStreamReader) and verifies its chain (and with a keyring
// its signatures, as VerifyChain does).
func VerifyStream(ctx context.Context, s Store, stream StreamID, keys ...*signing.Keyring) (*BrokenLink, int, error) {
	read := func() ([]Record, error) { return s.ReadStream(ctx, stream, 1) }
	if raw, ok := s.(RawStreamReader); ok {
		read = func() ([]Record, error) { return raw.ReadStreamRaw(ctx, stream) }
	}
	recs, err := read()
	if err != nil {
		return nil, 0, err
	}
	return VerifyChain(stream, recs, keys...), len(recs), nil
}
