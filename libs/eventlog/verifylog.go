package eventlog

import (
	"bytes"
	"context"
	"fmt"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

// LogReport summarises a verification of the whole log.
type LogReport struct {
	Events  int
	Streams int
	// Broken holds the first broken link of each stream that has one, in the
	// order they were found.
	Broken []*BrokenLink
}

// VerifyLog reads the whole log once, in position order, and checks every
// stream's chain as VerifyChain does, keeping only each stream's last version
// and hash in memory. A stream whose chain broke is not checked further.
// With a keyring it also checks signatures, as VerifyChain does.
func VerifyLog(ctx context.Context, s Store, batch int, keys ...*signing.Keyring) (LogReport, error) {
	if batch <= 0 {
		batch = 4096
	}
	type tip struct {
		version  uint64
		hash     []byte
		position uint64
		broken   bool
	}
	tips := map[StreamID]*tip{}
	var rep LogReport
	var from uint64 = 1
	for {
		recs, err := s.ReadAll(ctx, from, batch)
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 {
			rep.Streams = len(tips)
			return rep, nil
		}
		for _, r := range recs {
			from = r.Position + 1
			rep.Events++
			e, err := DecodeEnvelope(r.Raw)
			if err != nil {
				rep.Broken = append(rep.Broken, &BrokenLink{Stream: StreamID(r.Event.GetStreamId()), Position: r.Position, Reason: "stored bytes do not decode: " + err.Error()})
				continue
			}
			id := StreamID(e.GetStreamId())
			t := tips[id]
			if t == nil {
				t = &tip{}
				tips[id] = t
			}
			if t.broken {
				continue
			}
			want := t.version + 1
			if e.GetVersion() > want {
				t.broken = true
				rep.Broken = append(rep.Broken, Missing(id, want, e, r.Position, t.position))
				continue
			}
			var reason string
			switch {
			case e.GetVersion() != want:
				reason = fmt.Sprintf("version %d where %d was expected", e.GetVersion(), want)
			case !bytes.Equal(e.GetPrevHash(), t.hash):
				reason = "prev_hash does not match the hash of the previous event: the previous event was altered, or this one was forged"
			default:
				reason = prevPositionBreak(e.GetPrevPosition(), t.position, r.Position)
			}
			if reason == "" {
				reason = signatureBreak(keys, e, r)
			}
			if reason != "" {
				t.broken = true
				rep.Broken = append(rep.Broken, &BrokenLink{Stream: id, Version: want, Position: r.Position, Reason: reason})
				continue
			}
			t.version, t.hash, t.position = want, Hash(r.Raw), r.Position
		}
	}
}
