package jsstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestAckSequences(t *testing.T) {
	for _, c := range []struct {
		reply            string
		stream, consumer uint64
		ok               bool
	}{
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000.99", 4021, 17, true},
		{"$JS.ACK.hub.ACCHASH.EVENTS.read1.1.4021.17.1732329600000000000.99.rnd", 4021, 17, true},
		{"$JS.ACK.hub.ACCHASH.EVENTS.read1.1.4021.17.1732329600000000000.99", 4021, 17, true},
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000", 0, 0, false},      // 8 tokens
		{"$JS.ACK.EVENTS.read1.1.4021.17.1732329600000000000.99.x", 0, 0, false}, // 10 tokens
		{"$JS.ACK.EVENTS.read1.1.x.17.1732329600000000000.99", 0, 0, false},
		{"_INBOX.abc.1.2.3.4.5.6.7", 0, 0, false},
		{"", 0, 0, false},
	} {
		stream, consumer, ok := ackSequences(c.reply)
		if ok != c.ok || (ok && (stream != c.stream || consumer != c.consumer)) {
			t.Errorf("ackSequences(%q) = %d, %d, %v; want %d, %d, %v", c.reply, stream, consumer, ok, c.stream, c.consumer, c.ok)
		}
	}
}

// storedBatch seals n events of stream as the store would, the first at
// version 1 after position prev, each later one at the given positions, and
// returns their bytes (a batch read without headers) with the last position.
func storedBatch(t *testing.T, stream eventlog.StreamID, prev uint64, positions []uint64) batch {
	t.Helper()
	var b batch
	end := eventlog.StreamEnd{Position: prev}
	for _, pos := range positions {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: stream.ID(), Producer: "test", Actor: "system"}, &eventsv1.ResponseRecorded{Summary: "x"})
		if err != nil {
			t.Fatal(err)
		}
		raws, err := eventlog.Seal(context.Background(), stream, end, time.Unix(1, 0), []*eventsv1.Envelope{e})
		if err != nil {
			t.Fatal(err)
		}
		b.raws = append(b.raws, raws[0])
		end = eventlog.StreamEnd{Version: end.Version + 1, Hash: eventlog.Hash(raws[0]), Position: pos}
	}
	b.last = positions[len(positions)-1]
	return b
}

func TestPlaceWorksOutPositionsOrRefuses(t *testing.T) {
	stream := eventlog.ComplaintStream("0190abcd-0000-7000-8000-00000000000a")
	other := eventlog.ComplaintStream("0190abcd-0000-7000-8000-00000000000b")
	positions := func(recs []eventlog.Record) []uint64 {
		var out []uint64
		for _, r := range recs {
			out = append(out, r.Position)
		}
		return out
	}
	interleaved := storedBatch(t, stream, 0, []uint64{3, 7, 8, 20})

	recs, ok := place(stream, 1, interleaved, nil)
	if !ok || !slices.Equal(positions(recs), []uint64{3, 7, 8, 20}) {
		t.Fatalf("one stream: placed %v (ok %v), want [3 7 8 20]", positions(recs), ok)
	}
	if _, ok := place(stream, 4, interleaved, nil); ok {
		t.Error("one stream: placed an event before the position the read started at")
	}
	if _, ok := place(other, 1, interleaved, nil); ok {
		t.Error("placed events of another stream")
	}
	junk := interleaved
	junk.raws = append(slices.Clone(junk.raws[:2]), []byte{0xff, 0x01}, junk.raws[2])
	if _, ok := place(stream, 1, junk, nil); ok {
		t.Error("placed a batch holding a message that is not an event")
	}
	repeat := interleaved
	repeat.raws = [][]byte{interleaved.raws[0], interleaved.raws[1], interleaved.raws[1], interleaved.raws[3]}
	if _, ok := place(stream, 1, repeat, nil); ok {
		t.Error("placed a batch whose versions do not follow one another")
	}
	old := interleaved // stored before prev_position: all zero
	old.raws = slices.Clone(old.raws)
	for i, raw := range old.raws {
		e, err := eventlog.DecodeEnvelope(raw)
		if err != nil {
			t.Fatal(err)
		}
		e.PrevPosition = 0
		if old.raws[i], err = proto.Marshal(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := place(stream, 1, old, nil); ok {
		t.Error("placed events that carry no prev_position")
	}

	whole := storedBatch(t, stream, 0, []uint64{5, 6, 7})
	recs, ok = place("", 5, whole, nil)
	if !ok || !slices.Equal(positions(recs), []uint64{5, 6, 7}) {
		t.Fatalf("whole log: placed %v (ok %v), want [5 6 7]", positions(recs), ok)
	}
	if _, ok := place("", 4, whole, nil); ok { // 3 messages for positions 4 to 7: one is missing
		t.Error("whole log: placed a batch with a gap")
	}
}

func TestMoreAfterABatchWithoutHeaders(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
		pending   uint64
		size      int
		more      bool
	}{
		{"full batch", 10, 10, 10, 1000, true},
		{"the end: pending counts the batch", 4, 10, 4, 400, false},
		{"the end, the stream grew: nothing follows", 4, 10, 0, 400, false},
		{"cut by the byte limit", 4, 10, 9, 400, true},
		{"the stream grew, more follows", 4, 10, 2, 400, true},
		{"payloads near the byte limit", 4, 10, 4, readMaxBytes / 4, true},
	} {
		if more := moreAfter(c.got, c.want, c.pending, c.size); more != c.more {
			t.Errorf("%s: moreAfter(%d, %d, %d, %d) = %v, want %v", c.name, c.got, c.want, c.pending, c.size, more, c.more)
		}
	}
}
