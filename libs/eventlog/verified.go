package eventlog

import (
	"bytes"
	"context"
)

// Verified wraps a store so that what a command or a query reads of a
// stream is verified as the bus and the views verify what they apply
// (Verifier): a stream holding an event that fails — unsigned, signed by
// the wrong producer, off its chain — reads as damaged (a *BrokenLink,
// errors.Is ErrDamaged) naming that event, so that no decision is folded
// from it and the APIs answer DATA_LOSS. Appends and whole-log reads pass
// through (the followers verify those themselves).
func Verified(s Store, v *Verifier) Store { return &verified{Store: s, v: v} }

type verified struct {
	Store
	v *Verifier
}

func (s *verified) ReadStream(ctx context.Context, stream StreamID, fromVersion uint64) ([]Record, error) {
	recs, err := s.Store.ReadStream(ctx, stream, fromVersion)
	if err != nil {
		return nil, err
	}
	return recs, s.v.CheckRead(ctx, stream, recs)
}

// ReadStreamAfter implements TailReader, verified.
func (s *verified) ReadStreamAfter(ctx context.Context, stream StreamID, fromVersion, afterPosition uint64) ([]Record, error) {
	recs, err := ReadTail(ctx, s.Store, stream, fromVersion, afterPosition)
	if err != nil {
		return nil, err
	}
	return recs, s.v.CheckRead(ctx, stream, recs)
}

// ReadStreamRaw implements RawStreamReader, unverified: it is what
// verification itself reads.
func (s *verified) ReadStreamRaw(ctx context.Context, stream StreamID) ([]Record, error) {
	if raw, ok := s.Store.(RawStreamReader); ok {
		return raw.ReadStreamRaw(ctx, stream)
	}
	return s.Store.ReadStream(ctx, stream, 1)
}

// CheckRead verifies the records read of one stream, in version order, and
// returns a *BrokenLink for the first that fails (logged and counted as
// Check does). A read from version 1 is checked as a chain; its events up
// to the last one this verifier already vouched for in that stream (the
// cached tip, whose hash the chain reproduces) are not signature-checked
// again, so a command on a stream the service follows pays only for the
// events it has not yet seen. A tail is checked event by event.
func (v *Verifier) CheckRead(ctx context.Context, stream StreamID, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	if recs[0].Event.GetVersion() != 1 {
		for _, r := range recs {
			if err := v.Check(ctx, "read", r); err != nil {
				return asBrokenLink(err)
			}
		}
		return nil
	}
	if b := VerifyChain(stream, recs); b != nil {
		v.logger.ErrorContext(ctx, "eventlog: stream read refused, not applied", "stream", string(b.Stream),
			"version", b.Version, "position", b.Position, "reason", b.Reason)
		return b
	}
	// The furthest tip any reader of this verifier vouched for.
	trusted := 0
	v.mu.Lock()
	for _, tips := range v.tips {
		if t, ok := tips.get(stream); ok && t.version <= uint64(len(recs)) && int(t.version) > trusted &&
			bytes.Equal(Hash(recs[t.version-1].Raw), t.hash) {
			trusted = int(t.version)
		}
	}
	v.mu.Unlock()
	for _, r := range recs[trusted:] {
		if err := v.Check(ctx, "read", r); err != nil {
			return asBrokenLink(err)
		}
	}
	return nil
}

// asBrokenLink turns Check's rejection into the damaged-stream error that
// reads report; other errors (a predecessor not readable) pass as they are.
func asBrokenLink(err error) error {
	if rej, ok := err.(*Rejected); ok {
		return &BrokenLink{Stream: rej.Stream, Version: rej.Version, Position: rej.Position, Reason: "quarantined: " + rej.Reason}
	}
	return err
}
