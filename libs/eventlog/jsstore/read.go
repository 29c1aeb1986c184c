package jsstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// Reads use JetStream's batched direct get (nats-server >= 2.11; the stream
// has AllowDirect): one request, answered by the stored messages then an
// end-of-batch status, with no consumer to create and delete. That keeps a
// handler that loads a complaint per message to one round trip per load.
// nats.go v1.55's jetstream package only sends single-message direct gets,
// hence the small client below.

const (
	readBatch    = 512     // messages per direct get request
	readMaxBytes = 8 << 20 // bytes per direct get request (the server stops after the message crossing it)
)

// numPendingHeader tells, on a batch's end, how many matching messages follow.
const numPendingHeader = "Nats-Num-Pending"

// directRequest is the body of a $JS.API.DIRECT.GET.<stream> request.
type directRequest struct {
	Seq      uint64 `json:"seq,omitempty"`
	NextFor  string `json:"next_by_subj,omitempty"`
	Batch    int    `json:"batch,omitempty"`
	MaxBytes int    `json:"max_bytes,omitempty"`
}

// ReadStream implements eventlog.Store.
func (s *Store) ReadStream(ctx context.Context, stream eventlog.StreamID, fromVersion uint64) ([]eventlog.Record, error) {
	if err := stream.Validate(); err != nil {
		return nil, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out := []eventlog.Record{}
	req := directRequest{NextFor: StreamSubjects(stream), Batch: readBatch, MaxBytes: readMaxBytes}
	for {
		next, err := s.directGet(ctx, req, func(r eventlog.Record) {
			if r.Event.GetVersion() >= fromVersion {
				out = append(out, r)
			}
		})
		if err != nil {
			return nil, fmt.Errorf("jsstore: read %s: %w", stream, err)
		}
		if next == 0 {
			return out, nil
		}
		req.Seq = next
	}
}

// ReadAll implements eventlog.Store.
func (s *Store) ReadAll(ctx context.Context, fromPosition uint64, max int) ([]eventlog.Record, error) {
	if max <= 0 {
		return nil, fmt.Errorf("jsstore: read all: max %d: must be positive", max)
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out := make([]eventlog.Record, 0, min(max, readBatch))
	req := directRequest{Seq: fromPosition, MaxBytes: readMaxBytes}
	if req.Seq < 1 {
		req.Seq = 1
	}
	for len(out) < max {
		req.Batch = max - len(out)
		next, err := s.directGet(ctx, req, func(r eventlog.Record) { out = append(out, r) })
		if err != nil {
			return nil, fmt.Errorf("jsstore: read log from position %d: %w", req.Seq, err)
		}
		if next == 0 {
			break
		}
		req.Seq = next
	}
	return out, nil
}

// directGet sends one batched direct get and passes each message to fn. It
// returns the sequence to continue from when the server stopped before the
// end (batch or byte limit), or 0 when nothing more matches.
func (s *Store) directGet(ctx context.Context, req directRequest, fn func(eventlog.Record)) (next uint64, err error) {
	req.Batch = min(req.Batch, readBatch)
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
		rec, err := decodeDirect(m)
		if err != nil {
			return 0, err
		}
		fn(rec)
	}
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

// Follow implements eventlog.Store with an ordered consumer: the server pushes
// the stored events then the new ones, and the client recreates the consumer
// from the right place if a message goes missing.
func (s *Store) Follow(ctx context.Context, fromPosition uint64, fn func(eventlog.Record) error) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if fromPosition > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, fromPosition
	}
	cctx, cancel := s.withTimeout(ctx)
	cons, err := s.stream.OrderedConsumer(cctx, cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("jsstore: follow from position %d: %w", fromPosition, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("jsstore: follow from position %d: %w", fromPosition, err)
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
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
}
