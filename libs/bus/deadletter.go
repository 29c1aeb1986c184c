package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// Dead letters live in their own stream, one subject per consumer:
//
//	deadletter.<durable>         a message that consumer could not handle
//	deadletter.<durable>.replay  a request to hand one of them to it again
//
// An entry carries the original payload and headers plus the Hdr* headers
// below. The stream is append-only (DenyDelete, DenyPurge) and kept without
// age limit: an entry is the record that an event was not handled.
//
// Replay does not republish the event onto the event log (it is already
// there, and every other consumer has handled it). It appends a replay
// request to deadletter.<durable>.replay, which every Subscription of that
// durable also consumes: the same handler handles the original payload once
// more, with the same retry and dead-letter rules. The request is durable, so
// a replay asked for while the service is down happens when it comes back.
const (
	DeadLetterStream  = "DEADLETTER"
	deadLetterSubject = "deadletter"
)

// Headers of a dead-letter entry (and of a replay request).
const (
	HdrReason     = "Closeloop-Dlq-Reason"
	HdrStream     = "Closeloop-Dlq-Stream"
	HdrSubject    = "Closeloop-Dlq-Subject"
	HdrSequence   = "Closeloop-Dlq-Sequence"
	HdrConsumer   = "Closeloop-Dlq-Consumer"
	HdrDeliveries = "Closeloop-Dlq-Deliveries"
	HdrTime       = "Closeloop-Dlq-Time"
	// HdrReplayOf names the dead-letter sequence a replay request re-handles.
	HdrReplayOf = "Closeloop-Dlq-Replay-Of"
)

// DeadLetterSubject is where a consumer's dead letters go.
func DeadLetterSubject(durable string) string { return deadLetterSubject + "." + durable }

func replaySubject(durable string) string { return DeadLetterSubject(durable) + ".replay" }

// EnsureDeadLetterStream creates the dead-letter stream if it does not exist.
func EnsureDeadLetterStream(ctx context.Context, js jetstream.JetStream) error {
	if _, err := js.Stream(ctx, DeadLetterStream); err == nil {
		return nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("bus: dead-letter stream: %w", err)
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        DeadLetterStream,
		Description: "messages a consumer could not handle; never deleted",
		Subjects:    []string{deadLetterSubject + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		DenyDelete:  true,
		DenyPurge:   true,
	})
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("bus: create dead-letter stream: %w", err)
	}
	return nil
}

// deadLetter records msg in the dead-letter stream, then terminates it. If
// recording fails the message is left to be redelivered (never dropped).
func (s *Subscription) deadLetter(ctx context.Context, log *slog.Logger, msg jetstream.Msg, meta *jetstream.MsgMetadata, org origin, reason string) {
	out := nats.NewMsg(DeadLetterSubject(s.opts.Durable))
	for k, v := range msg.Headers() {
		// Nats-* headers steer the server (dedup, expectations): they
		// belong to the original publish, not to this one.
		if strings.HasPrefix(k, "Nats-") || strings.HasPrefix(k, "Closeloop-Dlq-") {
			continue
		}
		out.Header[k] = v
	}
	out.Header.Set(HdrReason, reason)
	out.Header.Set(HdrStream, org.stream)
	out.Header.Set(HdrSubject, org.subject)
	out.Header.Set(HdrSequence, strconv.FormatUint(org.seq, 10))
	out.Header.Set(HdrConsumer, s.opts.Durable)
	out.Header.Set(HdrDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
	out.Header.Set(HdrTime, time.Now().UTC().Format(time.RFC3339Nano))
	// The same delivery dead-lettered twice (a Term that got lost) is
	// stored once.
	out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%s-%d-%d", s.opts.Durable, meta.Stream, meta.Sequence.Stream, meta.NumDelivered))
	out.Data = msg.Data()
	pubCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := s.js.PublishMsg(pubCtx, out)
	if err != nil {
		log.Error("bus: dead-letter publish failed, leaving message for redelivery", "reason", reason, "err", err)
		_ = msg.NakWithDelay(s.opts.backoff(meta.NumDelivered))
		return
	}
	if err := msg.TermWithReason("dead-lettered"); err != nil {
		log.Warn("bus: term", "err", err)
	}
	s.m.deadLetters.Add(ctx, 1, s.attrs)
	if org.replayOf != 0 {
		log = log.With("replay_of", org.replayOf)
	}
	log.Error("bus: message dead-lettered", "reason", reason, "dead_letter_seq", ack.Sequence)
}

// DeadLetter is one entry of the dead-letter stream.
type DeadLetter struct {
	// Seq is the entry's sequence in the dead-letter stream (for Replay).
	Seq uint64
	// Consumer that failed, and why.
	Consumer string
	Reason   string
	// Where the original event is: stream, subject and stream sequence.
	Stream         string
	Subject        string
	StreamSequence uint64
	// Deliveries made before giving up.
	Deliveries uint64
	// Time the message was dead-lettered.
	Time time.Time
	// Header and Data of the original message (Data is its payload: it may
	// hold personal data, never log it).
	Header nats.Header
	Data   []byte
}

func parseDeadLetter(seq uint64, subject string, h nats.Header, data []byte) DeadLetter {
	d := DeadLetter{
		Seq:      seq,
		Consumer: h.Get(HdrConsumer),
		Reason:   h.Get(HdrReason),
		Stream:   h.Get(HdrStream),
		Subject:  h.Get(HdrSubject),
		Header:   h,
		Data:     data,
	}
	if d.Consumer == "" {
		d.Consumer = strings.TrimPrefix(subject, deadLetterSubject+".")
	}
	d.StreamSequence, _ = strconv.ParseUint(h.Get(HdrSequence), 10, 64)
	d.Deliveries, _ = strconv.ParseUint(h.Get(HdrDeliveries), 10, 64)
	d.Time, _ = time.Parse(time.RFC3339Nano, h.Get(HdrTime))
	return d
}

// DeadLetterAt returns the dead-letter entry at seq.
func DeadLetterAt(ctx context.Context, js jetstream.JetStream, seq uint64) (DeadLetter, error) {
	st, err := js.Stream(ctx, DeadLetterStream)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("bus: dead-letter stream: %w", err)
	}
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("bus: dead letter %d: %w", seq, err)
	}
	if strings.HasSuffix(m.Subject, ".replay") {
		return DeadLetter{}, fmt.Errorf("bus: dead letter %d: is a replay request, not a dead letter", seq)
	}
	return parseDeadLetter(m.Sequence, m.Subject, m.Header, m.Data), nil
}

// DeadLetters lists the dead letters of one consumer (all consumers when
// durable is empty), oldest first.
func DeadLetters(ctx context.Context, js jetstream.JetStream, durable string) ([]DeadLetter, error) {
	filter := deadLetterSubject + ".*"
	if durable != "" {
		filter = DeadLetterSubject(durable)
	}
	cons, err := js.OrderedConsumer(ctx, DeadLetterStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil // no consumer ever dead-lettered anything
	}
	if err != nil {
		return nil, fmt.Errorf("bus: read dead letters: %w", err)
	}
	var out []DeadLetter
	if cons.CachedInfo().NumPending == 0 {
		return out, nil
	}
	for {
		msg, err := cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("bus: read dead letters: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, fmt.Errorf("bus: read dead letters: %w", err)
		}
		out = append(out, parseDeadLetter(meta.Sequence.Stream, msg.Subject(), msg.Headers(), msg.Data()))
		if meta.NumPending == 0 {
			return out, nil
		}
	}
}

// Replay asks the consumer that dead-lettered entry seq to handle its
// original message once more (see the package's dead-letter notes). It
// returns the sequence of the replay request.
func Replay(ctx context.Context, js jetstream.JetStream, seq uint64) (uint64, error) {
	d, err := DeadLetterAt(ctx, js, seq)
	if err != nil {
		return 0, err
	}
	if d.Consumer == "" {
		return 0, fmt.Errorf("bus: dead letter %d: no consumer recorded", seq)
	}
	out := nats.NewMsg(replaySubject(d.Consumer))
	for k, v := range d.Header {
		out.Header[k] = v
	}
	out.Header.Set(HdrReplayOf, strconv.FormatUint(seq, 10))
	out.Header.Del(jetstream.MsgIDHeader)
	out.Data = d.Data
	ack, err := js.PublishMsg(ctx, out)
	if err != nil {
		return 0, fmt.Errorf("bus: replay dead letter %d: %w", seq, err)
	}
	return ack.Sequence, nil
}

// Quarantine records, among service's dead letters (deadletter.<service>,
// the only ones its NATS identity may write), an event a reader that is not
// a bus consumer (a view following the log) refused to apply: the event's
// bytes with the reason, the reader named as the consumer. The same event
// quarantined again by the same reader (a restart, another instance) is
// stored once within the stream's duplicate window. It is the services'
// eventlog.VerifierOptions.DeadLetter.
func Quarantine(js jetstream.JetStream, service string) func(ctx context.Context, reader string, r eventlog.Record, reason string) error {
	return func(ctx context.Context, reader string, r eventlog.Record, reason string) error {
		if err := EnsureDeadLetterStream(ctx, js); err != nil {
			return err
		}
		out := nats.NewMsg(DeadLetterSubject(service))
		out.Header.Set(HdrReason, reason)
		out.Header.Set(HdrStream, DefaultStream)
		out.Header.Set(HdrSubject, "events."+strings.Replace(r.Event.GetStreamId(), "-", ".", 1))
		out.Header.Set(HdrSequence, strconv.FormatUint(r.Position, 10))
		out.Header.Set(HdrConsumer, reader)
		out.Header.Set(HdrDeliveries, "1")
		out.Header.Set(HdrTime, time.Now().UTC().Format(time.RFC3339Nano))
		out.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("%s-%s-%d-quarantined", reader, DefaultStream, r.Position))
		out.Data = r.Raw
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := js.PublishMsg(pctx, out); err != nil {
			return fmt.Errorf("bus: dead-letter the quarantined event at %d for %s: %w", r.Position, reader, err)
		}
		return nil
	}
}
