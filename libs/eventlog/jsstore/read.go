package jsstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// Reads use JetStream's batched direct get (nats-server >= 2.11; the stream
// has AllowDirect): one request, answered by the stored messages then an
// end-of-batch status, with no consumer to create and delete. nats.go v1.55's
// jetstream package only sends single-message direct gets, hence the small
// client below.
//
// The fast way asks for the messages without headers (no_hdr): the server
// then sends each stored payload as it is, where with headers it rebuilds
// every message's headers (six rewrites through net/http.Header, 13 µs of
// CPU per event against 3) and nats.go parses them into a map. Without
// headers a message comes without its position, which the reader works out
// (see place): in the whole log by counting, as positions have no gaps (the
// stream denies deletes); in one stream from the events themselves, each
// carrying the position of the one before it (prev_position, which the
// server checked when it stored the event), the last one's from the end of
// the batch. A batch that cannot be placed that way (a message that is not
// an event, an event stored before prev_position existed, a gap where old
// messages expired) is read again the slow way: direct get with headers for
// the first directBatch messages, then an ephemeral consumer, which sends
// the stored headers unchanged (2-3x less CPU than a direct get with
// headers, for about 1 ms to create and delete it). Figures in README.md.

const readMaxBytes = 8 << 20 // bytes per direct get request (the server stops after the message crossing it)

// Batch sizes of reads; variables so that tests can cross every boundary with
// few events.
var (
	fastBatch   = 1024   // messages per direct get without headers (0: always the slow way)
	directBatch = 128    // slow way: messages read by direct get before switching to a consumer
	pullBatch   = 4096   // slow way: messages per pull request of a consumer
	followBatch = 10_000 // events per ReadAll while Follow catches up
)

// numPendingHeader tells, on a batch's end, how many matching messages follow.
const numPendingHeader = "Nats-Num-Pending"

// directRequest is the body of a $JS.API.DIRECT.GET.<stream> request.
type directRequest struct {
	Seq       uint64 `json:"seq,omitempty"`
	NextFor   string `json:"next_by_subj,omitempty"`
	Batch     int    `json:"batch,omitempty"`
	MaxBytes  int    `json:"max_bytes,omitempty"`
	NoHeaders bool   `json:"no_hdr,omitempty"`
}

// ReadStream implements eventlog.Store. It leaves out what is not an event
// and an event repeating a version already read (see skip.go).
//
// A stream missing a version (a message the server can no longer read: the
// file store drops a record whose checksum fails) is refused with the
// *eventlog.BrokenLink (errors.Is eventlog.ErrDamaged) naming the missing
// version at its own position: folding the rest would answer with a
// different history (a complaint "not found" without its first event).
func (s *Store) ReadStream(ctx context.Context, stream eventlog.StreamID, fromVersion uint64) ([]eventlog.Record, error) {
	var top, at uint64 // highest version read, and its position
	var gap *eventlog.BrokenLink
	recs, err := s.readStream(ctx, stream, 1, func(r eventlog.Record) bool {
		v := r.Event.GetVersion()
		if v <= top {
			s.odd.repeat(ctx, stream, r, top)
			return false
		}
		if v > top+1 && gap == nil {
			gap = eventlog.Missing(stream, top+1, r.Event, r.Position, at)
		}
		top, at = v, r.Position
		return v >= fromVersion
	})
	if err == nil && gap != nil {
		return nil, fmt.Errorf("jsstore: read %s: %w", stream, gap)
	}
	return recs, err
}

// ReadStreamRaw implements eventlog.RawStreamReader: every event stored on
// the stream's subject, repeated versions included, for verification.
func (s *Store) ReadStreamRaw(ctx context.Context, stream eventlog.StreamID) ([]eventlog.Record, error) {
	return s.readStream(ctx, stream, 1, nil)
}

// ReadStreamAfter implements eventlog.TailReader: the batched direct get
// starts at afterPosition+1 rather than at the log's first message, so a
// tail costs what it holds, not the stream's history. It leaves out what
// ReadStream does, the guard against repeated versions starting at
// fromVersion-1; an event below fromVersion (afterPosition was earlier
// than needed) is simply not wanted. When the first event at fromVersion
// or above is above it, afterPosition was past the wanted version (or old
// messages expired): the stream is read as ReadStream does.
func (s *Store) ReadStreamAfter(ctx context.Context, stream eventlog.StreamID, fromVersion, afterPosition uint64) ([]eventlog.Record, error) {
	fromVersion = max(fromVersion, 1)
	if err := stream.Validate(); err != nil {
		return nil, err
	}
	if recs, ok, err := s.walkBack(ctx, stream, fromVersion, afterPosition); err != nil || ok {
		return recs, err
	}
	top, at := fromVersion-1, afterPosition // highest version read, and its position
	past := false
	var gap *eventlog.BrokenLink
	recs, err := s.readStream(ctx, stream, afterPosition+1, func(r eventlog.Record) bool {
		v := r.Event.GetVersion()
		switch {
		case v < fromVersion:
			return false
		case v <= top:
			s.odd.repeat(ctx, stream, r, top)
			return false
		case top == fromVersion-1 && v != fromVersion:
			past = true
		case v > top+1 && gap == nil:
			gap = eventlog.Missing(stream, top+1, r.Event, r.Position, at)
		}
		top, at = v, r.Position
		return true
	})
	if err == nil && gap != nil && !past {
		return nil, fmt.Errorf("jsstore: read %s: %w", stream, gap)
	}
	if err != nil || !past {
		return recs, err
	}
	return s.ReadStream(ctx, stream, fromVersion)
}

// tailWalk bounds the events a tail read fetches one by one (walkBack).
const tailWalk = 16

// walkBack reads a short tail from the stream's end: its last event, which
// the server finds through its per-subject index, then each event before it
// at its prev_position, down to fromVersion, all above afterPosition. A
// ranged read starting mid-log would make the server count the stream's
// messages from there on (the batch's pending count), which scans the file
// block holding the start message by message: a cost that grows with the
// log up to a block's size, paid by every service reacting to an event of
// an old complaint. ok is false when the tail is not a run of at most
// tailWalk events found that way (a gap, a message that is not an event, a
// position at or below afterPosition): the caller reads it as a range.
func (s *Store) walkBack(ctx context.Context, stream eventlog.StreamID, fromVersion, afterPosition uint64) (_ []eventlog.Record, ok bool, err error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	m, err := s.stream.GetLastMsgForSubject(ctx, Subject(stream))
	if err != nil {
		return nil, false, nil
	}
	last, err := DecodeRawMsg(m)
	switch {
	case err != nil || eventlog.StreamID(last.Event.GetStreamId()) != stream:
		return nil, false, nil
	case last.Event.GetVersion() < fromVersion:
		return []eventlog.Record{}, true, nil
	case last.Position <= afterPosition:
		return nil, false, nil
	}
	recs := []eventlog.Record{last}
	for r := last; r.Event.GetVersion() > fromVersion; {
		prev := r.Event.GetPrevPosition()
		if len(recs) == tailWalk || prev <= afterPosition || prev >= r.Position {
			return nil, false, nil
		}
		m, err := s.stream.GetMsg(ctx, prev)
		if err != nil {
			return nil, false, nil
		}
		if r, err = DecodeRawMsg(m); err != nil || eventlog.StreamID(r.Event.GetStreamId()) != stream ||
			r.Event.GetVersion() != recs[len(recs)-1].Event.GetVersion()-1 {
			return nil, false, nil
		}
		recs = append(recs, r)
	}
	slices.Reverse(recs)
	return recs, true, nil
}

func (s *Store) readStream(ctx context.Context, stream eventlog.StreamID, from uint64, keep func(eventlog.Record) bool) ([]eventlog.Record, error) {
	if err := stream.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	c := s.collector(ctx, keep)
	if err := s.read(ctx, stream, from, 0, c); err != nil {
		return nil, fmt.Errorf("jsstore: read %s: %w", stream, err)
	}
	return c.records(), nil
}

// ReadAll implements eventlog.Store. It leaves out what is not an event
// (see skip.go), so it may return fewer than max events before the end.
func (s *Store) ReadAll(ctx context.Context, fromPosition uint64, max int) ([]eventlog.Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("jsstore: read all: max %d: must be positive", max)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	for {
		c := s.collector(ctx, nil)
		if err := s.read(ctx, "", fromPosition, max, c); err != nil {
			return nil, fmt.Errorf("jsstore: read log from position %d: %w", fromPosition, err)
		}
		// Only skipped messages: an empty answer would say "caught up".
		if len(c.recs) > 0 || c.skipped == 0 {
			return c.records(), nil
		}
		fromPosition = c.last + 1
	}
}

// collector gathers the records of one read.
type collector struct {
	recs    []eventlog.Record
	read    int                        // messages read, kept, left out or skipped
	skipped int                        // messages that are not events
	last    uint64                     // position of the last message read
	keep    func(eventlog.Record) bool // nil keeps all
	skip    func(subject string, position uint64, err error)
}

func (s *Store) collector(ctx context.Context, keep func(eventlog.Record) bool) *collector {
	return &collector{keep: keep, skip: func(subject string, position uint64, err error) {
		s.odd.notAnEvent(ctx, subject, position, err)
	}}
}

// add decodes one stored message and keeps it, or skips it when it is not
// an event.
func (c *collector) add(subject string, position uint64, raw []byte) {
	r, err := decode(subject, position, raw)
	if err != nil {
		c.read++
		c.last = position
		c.skipped++
		c.skip(subject, position, err)
		return
	}
	c.addRecord(r)
}

// addRecord keeps an event read and placed.
func (c *collector) addRecord(r eventlog.Record) {
	c.read++
	c.last = r.Position
	if c.keep == nil || c.keep(r) {
		c.recs = append(c.recs, r)
	}
}

// records returns what was kept, an empty slice rather than nil.
func (c *collector) records() []eventlog.Record {
	if c.recs == nil {
		return []eventlog.Record{}
	}
	return c.recs
}

// read collects, in order, the events of stream ("" for the whole log) at
// position from or later, up to max messages (0: all there are), the fast
// way batch by batch, each batch the fast way can not place the slow way.
// The next batch is asked for before this one is decoded, so that the server
// reads it meanwhile.
func (s *Store) read(ctx context.Context, stream eventlog.StreamID, from uint64, max int, c *collector) error {
	filter := ""
	if stream != "" {
		filter = Subject(stream)
	}
	from = cmp.Or(from, 1)
	if fastBatch == 0 { // tests of the slow way
		return s.readSlow(ctx, filter, from, max, c)
	}
	type answer struct {
		b   batch
		err error
	}
	fetch := func(from uint64, n int) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			b, err := s.directGetNoHeaders(ctx, filter, from, n)
			ch <- answer{b, err}
		}()
		return ch
	}
	// Each request costs the server a count of what matches from there on:
	// a long read asks for more at a time as it goes.
	ask := fastBatch
	if max > 0 {
		ask = min(ask, max)
	}
	fetched := 0 // messages asked for and answered so far
	next := fetch(from, ask)
	var placed []eventlog.Record // reused by place from batch to batch
	for next != nil {
		a := <-next
		if a.err != nil || len(a.b.raws) == 0 {
			return a.err
		}
		if fetched == 0 {
			// The first end of batch tells how many match (as of the
			// request): room for them all at once.
			room := min(a.b.pending, 1<<20)
			if max > 0 {
				room = min(room, uint64(max))
			}
			c.recs = slices.Grow(c.recs, int(room))
		}
		start := from
		fetched += len(a.b.raws)
		next = nil
		if a.b.more && (max == 0 || fetched < max) {
			ask = min(2*ask, 16*fastBatch)
			if max > 0 {
				ask = min(ask, max-fetched)
			}
			from = a.b.last + 1
			next = fetch(from, ask)
		}
		var ok bool
		if placed, ok = place(stream, start, a.b, placed); ok {
			for _, r := range placed {
				c.addRecord(r)
			}
		} else if err := s.readSlow(ctx, filter, start, len(a.b.raws), c); err != nil {
			return err
		}
	}
	return nil
}

// batch is the answer to a direct get without headers.
type batch struct {
	raws    [][]byte // the stored payloads, in position order
	last    uint64   // position of the last one
	pending uint64   // what the end of batch says matches (see moreAfter)
	more    bool     // whether more may follow (false: the end, as of the request)
}

// directGetNoHeaders asks for up to n messages on filter ("" for all) at
// position from or later, without their headers.
func (s *Store) directGetNoHeaders(ctx context.Context, filter string, from uint64, n int) (batch, error) {
	body, err := json.Marshal(directRequest{Seq: from, NextFor: filter, Batch: n, MaxBytes: readMaxBytes, NoHeaders: true})
	if err != nil {
		return batch{}, err
	}
	inbox, replies, done := s.replies.open(n + 1) // the messages, then the end of batch
	defer done()
	if err := s.js.Conn().PublishRequest(s.apiPrefix+"DIRECT.GET."+StreamName, inbox, body); err != nil {
		return batch{}, err
	}
	var b batch
	size := 0
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return batch{}, ctx.Err()
		}
		if status := m.Header.Get("Status"); status != "" && len(m.Data) == 0 {
			switch status {
			case "204": // end of batch
				b.pending, _ = strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
				b.last, _ = strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
				b.more = moreAfter(len(b.raws), n, b.pending, size)
				return b, nil
			case "404": // nothing at or after from
				return batch{}, nil
			default:
				return batch{}, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
			}
		}
		b.raws = append(b.raws, m.Data)
		size += len(m.Data)
	}
}

// moreAfter tells whether messages may follow a batch of got messages, asked
// for want, whose end says pending. Without headers the server does not count
// down the pending messages as it sends them: pending is the count at the
// request (got included) unless the stream grew meanwhile, when it is what
// follows the batch. Either way 0 or got means the end. A batch cut short by
// the byte limit (which counts headers this side does not see) is assumed
// whenever the payloads alone come near it.
func moreAfter(got, want int, pending uint64, size int) bool {
	return got == want || (pending != 0 && pending != uint64(got)) || size >= readMaxBytes/4
}

// place decodes a batch read without headers and works out each event's
// position: for the whole log (stream ""), as from, from+1, …, which holds
// when the batch has no gap (as many messages as positions from from to
// its last); for one stream, from the next event's prev_position and, for
// the last event, the batch's last position, which holds when every message
// is an event of the stream, versions follow one another and positions
// rise. ok is false when the batch must be read the slow way.
// The records go into recs[:0], reused from batch to batch.
func place(stream eventlog.StreamID, from uint64, b batch, recs []eventlog.Record) (_ []eventlog.Record, ok bool) {
	n := uint64(len(b.raws))
	if stream == "" && b.last-from+1 != n {
		return recs, false
	}
	recs = recs[:0]
	for _, raw := range b.raws {
		r, err := decode("", 0, raw)
		if err != nil {
			return recs, false
		}
		recs = append(recs, r)
	}
	if stream == "" {
		for i := range recs {
			recs[i].Position = from + uint64(i)
		}
		return recs, true
	}
	recs[len(recs)-1].Position = b.last
	for i := len(recs) - 2; i >= 0; i-- {
		e, next := recs[i].Event, recs[i+1].Event
		recs[i].Position = next.GetPrevPosition()
		if next.GetVersion() != e.GetVersion()+1 || recs[i].Position >= recs[i+1].Position {
			return recs, false
		}
	}
	for _, r := range recs {
		if eventlog.StreamID(r.Event.GetStreamId()) != stream {
			return recs, false
		}
	}
	return recs, recs[0].Position >= from
}

// readSlow collects, in order, the events on filter ("" for all) at
// position from or later, n messages of them (0: all there are): by direct
// get with headers when they are few, through a consumer for the rest.
func (s *Store) readSlow(ctx context.Context, filter string, from uint64, n int, c *collector) error {
	start := c.read
	req := directRequest{Seq: from, NextFor: filter, Batch: directBatch, MaxBytes: readMaxBytes}
	if n > 0 {
		req.Batch = min(n, directBatch)
	}
	next, err := s.directGet(ctx, req, c)
	read := c.read - start
	if err != nil || next == 0 || (n > 0 && read >= n) {
		return err
	}
	rest := 0
	if n > 0 {
		rest = n - read
	}
	return s.consume(ctx, filter, next, rest, c)
}

// directGet sends one batched direct get and collects its messages. It
// returns the sequence to continue from when the server stopped before the
// end (batch or byte limit), or 0 when nothing more matches.
func (s *Store) directGet(ctx context.Context, req directRequest, c *collector) (next uint64, err error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	inbox, replies, done := s.replies.open(req.Batch + 1) // the messages, then the end of batch
	defer done()
	if err := s.js.Conn().PublishRequest(s.apiPrefix+"DIRECT.GET."+StreamName, inbox, body); err != nil {
		return 0, err
	}
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		if status := m.Header.Get("Status"); status != "" && len(m.Data) == 0 {
			switch status {
			case "204": // end of batch
				pending, _ := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
				last, _ := strconv.ParseUint(m.Header.Get(jetstream.LastSequenceHeader), 10, 64)
				if pending == 0 || last == 0 {
					return 0, nil
				}
				return last + 1, nil
			case "404": // nothing at or after the requested place
				return 0, nil
			default:
				return 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
			}
		}
		seq, err := directSeq(m)
		if err != nil {
			return 0, err
		}
		c.add(m.Header.Get(jetstream.SubjectHeader), seq, m.Data)
	}
}

// count is how many messages are stored on filter: one direct get of the
// first, whose end of batch tells how many follow.
func (s *Store) count(ctx context.Context, filter string) (uint64, error) {
	body, err := json.Marshal(directRequest{Seq: 1, NextFor: filter, Batch: 1, MaxBytes: readMaxBytes})
	if err != nil {
		return 0, err
	}
	inbox, replies, done := s.replies.open(2) // the first message, then the end of batch
	defer done()
	if err := s.js.Conn().PublishRequest(s.apiPrefix+"DIRECT.GET."+StreamName, inbox, body); err != nil {
		return 0, err
	}
	var n uint64
	for {
		var m *nats.Msg
		select {
		case m = <-replies:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		status := m.Header.Get("Status")
		switch {
		case status == "" || len(m.Data) > 0:
			n++
		case status == "204":
			pending, err := strconv.ParseUint(m.Header.Get(numPendingHeader), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("direct get: end of batch without a valid %s header", numPendingHeader)
			}
			return n + pending, nil
		case status == "404":
			return 0, nil
		default:
			return 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get("Description"))
		}
	}
}

// consume collects, in order, the events on filter ("" for all) at position
// from or later, up to max (0: all there are now), through an ephemeral
// consumer: acknowledgement-free, in memory, deleted at the end (and by the
// server after consumerIdle if this process dies first). It pulls batches of
// pullBatch with no wait, on its own inbox: consumed messages keep their own
// subject, so they cannot be routed by replyMux.
func (s *Store) consume(ctx context.Context, filter string, from uint64, max int, c *collector) error {
	cons, err := s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		FilterSubject:     filter,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		Replicas:          1,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		return fmt.Errorf("create read consumer: %w", err)
	}
	info := cons.CachedInfo()
	defer func() {
		// Even when ctx is done: the consumer would linger until consumerIdle.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Timeout)
		_ = s.stream.DeleteConsumer(dctx, info.Name)
		cancel()
	}()
	want := info.NumPending // what exists now; later events are for the next read
	if max > 0 {
		want = min(want, uint64(max))
	}
	if want == 0 {
		return nil
	}
	c.recs = slices.Grow(c.recs, int(want))
	nc := s.js.Conn()
	inbox := nc.NewInbox()
	msgs := make(chan *nats.Msg, min(want, uint64(pullBatch))+1) // a batch and its end: delivery never blocks
	sub, err := nc.ChanSubscribe(inbox, msgs)
	if err != nil {
		return fmt.Errorf("subscribe to read consumer: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	next := s.apiPrefix + "CONSUMER.MSG.NEXT." + StreamName + "." + info.Name
	for got := uint64(0); got < want; {
		batch := min(want-got, uint64(pullBatch))
		if err := nc.PublishRequest(next, inbox, fmt.Appendf(nil, `{"batch":%d,"no_wait":true}`, batch)); err != nil {
			return err
		}
		for end := got + batch; got < end; {
			var m *nats.Msg
			select {
			case m = <-msgs:
			default: // usually one is waiting: look at ctx only when none is
				select {
				case m = <-msgs:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if status := m.Header.Get("Status"); status != "" && len(m.Data) == 0 {
				if status == "404" { // fewer than counted: the oldest ones expired meanwhile
					return nil
				}
				return fmt.Errorf("read consumer: status %s %s", status, m.Header.Get("Description"))
			}
			pos, delivered, ok := ackSequences(m.Reply)
			if !ok {
				return fmt.Errorf("read consumer: message on %s with an unexpected reply subject %q", m.Subject, m.Reply)
			}
			if delivered != got+1 {
				return fmt.Errorf("read consumer: message %d arrived where %d was expected (lost on the way)", delivered, got+1)
			}
			got++
			c.add(m.Subject, pos, m.Data)
		}
	}
	return nil
}

// consumerIdle is how long the server keeps a read consumer nobody reads.
const consumerIdle = time.Minute

// ackSequences reads the stream and consumer sequences from the reply subject
// of a consumed message: $JS.ACK.<stream>.<consumer>.<delivered>.<stream
// seq>.<consumer seq>.<time>.<pending>, or with <domain>.<account hash>
// after $JS.ACK and maybe a random token at the end. It accepts what
// jetstream.Msg.Metadata accepts, without allocating.
func ackSequences(reply string) (stream, consumer uint64, ok bool) {
	var tokens [12]string
	n := 0
	for n < len(tokens) {
		i := strings.IndexByte(reply, '.')
		if i < 0 {
			tokens[n], n = reply, n+1
			break
		}
		tokens[n], n, reply = reply[:i], n+1, reply[i+1:]
	}
	if (n != 9 && n < 11) || tokens[0] != "$JS" || tokens[1] != "ACK" {
		return 0, 0, false
	}
	at := 5 // stream sequence in the 9-token form
	if n >= 11 {
		at = 7
	}
	stream, err1 := strconv.ParseUint(tokens[at], 10, 64)
	consumer, err2 := strconv.ParseUint(tokens[at+1], 10, 64)
	return stream, consumer, err1 == nil && err2 == nil
}

// replyMux routes the replies of concurrent direct gets to the read waiting
// for them, through one subscription for the store's life: subscribing and
// unsubscribing an inbox per read costs several times the read itself.
type replyMux struct {
	prefix string
	sub    *nats.Subscription
	n      atomic.Uint64
	mu     sync.Mutex
	waits  map[string]chan *nats.Msg
}

func newReplyMux(nc *nats.Conn) (*replyMux, error) {
	m := &replyMux{prefix: nc.NewInbox() + ".", waits: make(map[string]chan *nats.Msg)}
	sub, err := nc.Subscribe(m.prefix+"*", m.route)
	if err != nil {
		return nil, fmt.Errorf("jsstore: subscribe to read replies: %w", err)
	}
	m.sub = sub
	return m, nil
}

// open returns a reply subject and the channel its replies arrive on, with
// room for every reply so that routing never blocks; done forgets it.
func (m *replyMux) open(replies int) (subject string, ch <-chan *nats.Msg, done func()) {
	token := strconv.FormatUint(m.n.Add(1), 36)
	c := make(chan *nats.Msg, replies)
	m.mu.Lock()
	m.waits[token] = c
	m.mu.Unlock()
	return m.prefix + token, c, func() {
		m.mu.Lock()
		delete(m.waits, token)
		m.mu.Unlock()
	}
}

func (m *replyMux) route(msg *nats.Msg) {
	m.mu.Lock()
	c := m.waits[strings.TrimPrefix(msg.Subject, m.prefix)]
	m.mu.Unlock()
	if c == nil {
		return // a reply to a read that gave up
	}
	select {
	case c <- msg:
	default: // more replies than asked for: the read will fail on a missing end of batch
	}
}

func (m *replyMux) close() error { return m.sub.Unsubscribe() }

// Follow implements eventlog.Store. It catches up on the stored events by
// ReadAll, the fast way, then follows new ones from where that stopped with
// an ordered consumer: the server pushes them as they are appended and the
// client recreates the consumer from the right place if one goes missing.
func (s *Store) Follow(ctx context.Context, fromPosition uint64, fn func(eventlog.Record) error) error {
	from := max(fromPosition, 1)
	for {
		recs, err := s.ReadAll(ctx, from, followBatch)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jsstore: follow: %w", err)
		}
		for _, r := range recs {
			if err := fn(r); err != nil {
				return err
			}
			from = r.Position + 1
		}
		if len(recs) < followBatch {
			break
		}
	}
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cctx, cancel := s.withTimeout(ctx)
	cons, err := s.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("jsstore: follow from position %d: %w", from, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("jsstore: follow from position %d: %w", from, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("jsstore: follow: %w", err)
		}
		rec, err := DecodeMsg(m)
		if errors.Is(err, ErrNotAnEvent) {
			md, _ := m.Metadata() // DecodeMsg read it already
			s.odd.notAnEvent(ctx, m.Subject(), md.Sequence.Stream, err)
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
