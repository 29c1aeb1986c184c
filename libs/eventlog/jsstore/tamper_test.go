package jsstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/highwayhash"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
)

// Someone with publish rights bypasses the store and appends a well-formed
// envelope at the next version, without the right prev_hash.
func TestVerifyDetectsAnEventForgedBehindTheStore(t *testing.T) {
	_, js := startServer(t, natsembed.Options{})
	ctx := testContext(t)
	s := newStore(t, js, jsstore.Config{})
	stream, id := newComplaint()
	appendN(t, s, stream, 3)

	forged := response(t, id, "refund approved")
	forged.StreamId, forged.Version, forged.PrevHash = string(stream), 4, eventlog.Hash([]byte("not the previous event"))
	raw, err := proto.Marshal(forged)
	must(t, err)
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: jsstore.Subject(stream), Data: raw})
	must(t, err)

	broken, n, err := eventlog.VerifyStream(ctx, s, stream)
	must(t, err)
	if n != 4 {
		t.Fatalf("verified %d events, want the 3 stored plus the forged one", n)
	}
	if broken == nil || broken.Stream != stream || broken.Version != 4 || broken.Position != ack.Sequence || !strings.Contains(broken.Reason, "prev_hash") {
		t.Fatalf("verify = %v, want the chain broken at version 4, position %d, on prev_hash", broken, ack.Sequence)
	}
	if !strings.Contains(broken.Error(), string(stream)) {
		t.Errorf("report %q does not name the stream", broken)
	}
}

// A forger who gets prev_hash right but points prev_position before the
// previous event: verification reports it, and readers, which place events
// by prev_position, still give every event its true position.
func TestVerifyDetectsAForgedPrevPosition(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	s := newStore(t, js, jsstore.Config{})
	stream, id := newComplaint()
	appendN(t, s, stream, 3)
	stored, err := s.ReadStream(ctx, stream, 1)
	must(t, err)

	forged := response(t, id, "refund approved")
	forged.StreamId, forged.Version = string(stream), 4
	forged.PrevHash, forged.PrevPosition = eventlog.Hash(stored[2].Raw), stored[0].Position
	raw, err := proto.Marshal(forged)
	must(t, err)
	ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: jsstore.Subject(stream), Data: raw})
	must(t, err)

	broken, _, err := eventlog.VerifyStream(ctx, s, stream)
	must(t, err)
	if broken == nil || broken.Version != 4 || broken.Position != ack.Sequence || !strings.Contains(broken.Reason, "prev_position") {
		t.Fatalf("verify = %v, want the chain broken at version 4, position %d, on prev_position", broken, ack.Sequence)
	}
	rep, err := eventlog.VerifyLog(ctx, s, 0)
	must(t, err)
	if len(rep.Broken) != 1 || !strings.Contains(rep.Broken[0].Reason, "prev_position") {
		t.Fatalf("verify of the whole log = %+v, want one break on prev_position", rep.Broken)
	}
	recs, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	for i, r := range recs[:3] {
		if r.Position != stored[i].Position {
			t.Errorf("version %d read at %d, stored at %d", i+1, r.Position, stored[i].Position)
		}
	}
}

// Someone with access to the server's disk rewrites a stored event in place
// (same length), with or without recomputing the file store's per-record
// checksum. Either way the altered history must not pass verification.
func TestVerifyDetectsAnEventRewrittenOnDisk(t *testing.T) {
	for _, fixChecksum := range []bool{true, false} {
		t.Run(fmt.Sprintf("checksum fixed %v", fixChecksum), func(t *testing.T) {
			dir := t.TempDir()
			srv, err := natsembed.Start(natsembed.Options{StoreDir: dir})
			must(t, err)
			js := connect(t, srv)
			s := newStore(t, js, jsstore.Config{})
			ctx := testContext(t)
			stream, id := newComplaint()
			for v, summary := range []string{"diagnosis: pump", "refund: 100 EUR", "visit booked", "closed"} {
				_, err := s.Append(ctx, stream, uint64(v), response(t, id, summary))
				must(t, err)
			}
			before, err := s.ReadStream(ctx, stream, 1)
			must(t, err)
			srv.Shutdown()

			patchBlocks(t, dir, []byte("refund: 100 EUR"), []byte("refund: 900 EUR"), fixChecksum)

			srv, err = natsembed.Start(natsembed.Options{StoreDir: dir})
			must(t, err)
			t.Cleanup(srv.Shutdown)
			s = newStore(t, connect(t, srv), jsstore.Config{})
			after, err := s.ReadStream(ctx, stream, 1)
			if !fixChecksum {
				// The server drops the record whose checksum fails: the
				// read reports version 2 missing at its own position.
				var link *eventlog.BrokenLink
				if !errors.As(err, &link) || !errors.Is(err, eventlog.ErrDamaged) || link.Version != 2 || link.Position != before[1].Position {
					t.Fatalf("read after the rewrite: %v %v, want version 2 missing at position %d", summaries(after), err, before[1].Position)
				}
				broken, _, err := eventlog.VerifyStream(ctx, s, stream)
				must(t, err)
				if broken == nil || broken.Version != 2 || broken.Position != before[1].Position || !strings.Contains(broken.Reason, "missing") {
					t.Fatalf("verify = %v, want version 2 missing at position %d", broken, before[1].Position)
				}
				return
			}
			if err != nil {
				t.Fatalf("read after the rewrite: %v", err)
			}
			broken := eventlog.VerifyChain(stream, after)
			if broken == nil {
				t.Fatalf("verify passed over a rewritten history: %v", summaries(after))
			}
			t.Logf("server served %v; verify: %v", summaries(after), broken)
			if broken.Stream != stream {
				t.Errorf("report names stream %s, want %s", broken.Stream, stream)
			}
			if len(after) == len(before) && after[1].Event.GetResponseRecorded().GetSummary() == "refund: 900 EUR" {
				// The rewritten event was served: the link after it breaks.
				if broken.Version != 3 || broken.Position != before[2].Position || !strings.Contains(broken.Reason, "prev_hash") {
					t.Fatalf("verify = %v, want the link at version 3 (position %d) broken on prev_hash", broken, before[2].Position)
				}
				return
			}
			// The server dropped the corrupt record: the version it held is missing.
			if broken.Version != 2 {
				t.Fatalf("verify = %v, want version 2 reported missing", broken)
			}
		})
	}
}

// patchBlocks replaces old with new (same length) inside the message records
// of the EVENTS stream's block files, optionally recomputing each touched
// record's checksum the way nats-server's file store does (HighwayHash-64
// keyed by SHA-256 of "<stream>-<block index>", over sequence, timestamp,
// subject, headers and payload).
func patchBlocks(t *testing.T, dir string, old, new []byte, fixChecksum bool) {
	t.Helper()
	blocks, err := filepath.Glob(filepath.Join(dir, "jetstream", "*", "streams", jsstore.StreamName, "msgs", "*.blk"))
	must(t, err)
	if len(blocks) == 0 {
		t.Fatalf("no message blocks under %s", dir)
	}
	const (
		hdrSize  = 22
		sumSize  = 8
		hasHdrs  = 1 << 31
		lenField = 4
	)
	le := binary.LittleEndian
	patched := 0
	for _, path := range blocks {
		buf, err := os.ReadFile(path)
		must(t, err)
		var index uint32
		_, err = fmt.Sscanf(filepath.Base(path), "%d.blk", &index)
		must(t, err)
		for off := 0; off+hdrSize <= len(buf); {
			rl := le.Uint32(buf[off:])
			withHdrs := rl&hasHdrs != 0
			rl &^= hasHdrs
			rec := buf[off : off+int(rl)]
			if i := bytes.Index(rec, old); i >= 0 {
				copy(rec[i:], new)
				patched++
				if fixChecksum {
					slen := int(le.Uint16(rec[20:]))
					body := rec[hdrSize+slen : len(rec)-sumSize]
					key := sha256.Sum256(fmt.Appendf(nil, "%s-%d", jsstore.StreamName, index))
					hh, err := highwayhash.New64(key[:])
					must(t, err)
					hh.Write(rec[4:20])
					hh.Write(rec[hdrSize : hdrSize+slen])
					if withHdrs {
						hlen := int(le.Uint32(body))
						hh.Write(body[lenField : lenField+hlen])
						body = body[lenField+hlen:]
					}
					hh.Write(body)
					copy(rec[len(rec)-sumSize:], hh.Sum(nil))
				}
			}
			off += int(rl)
		}
		must(t, os.WriteFile(path, buf, 0o600))
	}
	if patched != 1 {
		t.Fatalf("patched %d records, want 1", patched)
	}
}

func summaries(recs []eventlog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = fmt.Sprintf("v%d %q", r.Event.GetVersion(), r.Event.GetResponseRecorded().GetSummary())
	}
	return out
}
