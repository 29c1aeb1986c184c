package bus_test

// Poison and hostile input on the event log, published raw past the store's
// checks (as a buggy or compromised publisher could), against a consumer
// whose handler projects complaints the way the services do. Each hostile
// message must end in DEADLETTER with its reason or be ignored as a
// duplicate, leave a metric and a log line, and never stop the consumer:
// a good event published after it is still handled.
//
// The policy the projection follows (mirroring the services):
//   - undecodable bytes, or an envelope without an event id: the bus
//     dead-letters them before any handler runs;
//   - an event of a complaint whose stream does not start with
//     ComplaintReceived (unknown complaint): Permanent, dead-lettered, like
//     routing's ErrNotFound;
//   - a version past the next one (a gap): Permanent, dead-lettered — the
//     stream is corrupt and an operator must look (dispatch's view only logs
//     a warning and ignores it; here it must not be lost silently);
//   - a version already applied (a redelivery, or an old event stored again
//     after the duplicate window): ignored, with a log line and the
//     projection.events.ignored counter; the bus counts it handled;
//   - the same event id again within the duplicate window: stored once by
//     the server, never delivered again;
//   - a message over the stream's size limit: refused at publish.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	otelmetric "go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var errUnknownComplaint = errors.New("unknown complaint: its stream does not start with ComplaintReceived")

// projection folds complaint events the way a service's view does: it
// records the last applied version per complaint and ignores older ones.
type projection struct {
	store   eventlog.Store
	log     *slog.Logger
	ignored otelmetric.Int64Counter

	mu       sync.Mutex
	applied  map[string]uint64   // complaint id -> last applied version
	handled  map[string]int      // event id -> times applied
	loseAck  map[string]bool     // event ids whose first handling "loses" its ack
	seenByID map[string]struct{} // event ids delivered at all
}

func (p *projection) handle(ctx context.Context, rec eventlog.Record) error {
	e := rec.Event
	id, v := e.GetComplaintId(), e.GetVersion()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seenByID[e.GetEventId()] = struct{}{}
	cur := p.applied[id]
	if v <= cur {
		p.log.InfoContext(ctx, "projection: version already applied, ignoring", "complaint_id", id, "version", v, "applied", cur, "event_id", e.GetEventId())
		p.ignored.Add(ctx, 1, otelmetric.WithAttributes(attribute.String("reason", "already_applied")))
		return nil
	}
	if cur == 0 {
		// The first event seen of a complaint: load it as the services do.
		recs, err := p.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			return fmt.Errorf("load complaint %s: %w", id, err)
		}
		if len(recs) == 0 || eventlog.TypeOf(recs[0].Event) != "ComplaintReceived" {
			return bus.Permanent(fmt.Errorf("complaint %s: %w", id, errUnknownComplaint))
		}
	}
	if v != cur+1 {
		return bus.Permanent(fmt.Errorf("complaint %s: version %d follows %d: a gap in the stream", id, v, cur))
	}
	p.applied[id] = v
	p.handled[e.GetEventId()]++
	if p.loseAck[e.GetEventId()] {
		delete(p.loseAck, e.GetEventId())
		return errors.New("projection store did not confirm the write") // applied, but redelivered
	}
	return nil
}

func (p *projection) appliedVersion(id string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied[id]
}

func (p *projection) timesApplied(eventID string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handled[eventID]
}

// hostileEnv is a server, the log on it, and a running projection.
type hostileEnv struct {
	ctx    context.Context
	js     jetstream.JetStream
	store  *jsstore.Store
	proj   *projection
	reader *metric.ManualReader
	logs   *syncBuf
	good   string // a complaint with a proper start, for the good events
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	srv := natstest.Start(t, natsembed.Options{StoreDir: t.TempDir(), NoSync: true})
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	t.Cleanup(cancel)
	store, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	e := &hostileEnv{ctx: ctx, js: js, store: store, reader: metric.NewManualReader(), logs: &syncBuf{}}
	mp := metric.NewMeterProvider(metric.WithReader(e.reader))
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	ignored, err := mp.Meter("hostile-test").Int64Counter("projection.events.ignored")
	if err != nil {
		t.Fatal(err)
	}
	e.proj = &projection{store: store, log: logger, ignored: ignored,
		applied: map[string]uint64{}, handled: map[string]int{}, loseAck: map[string]bool{}, seenByID: map[string]struct{}{}}
	sub, err := bus.Subscribe(ctx, js, bus.Options{
		Durable: "projector", Subjects: []string{jsstore.KindSubjects(eventlog.KindComplaint)},
		MaxDeliver: 3, BackOff: []time.Duration{20 * time.Millisecond},
		Logger: logger, MeterProvider: mp,
	}, e.proj.handle)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	e.good = uuid.NewString()
	e.appendGood(t, e.good, &eventsv1.ComplaintReceived{Description: "first"})
	return e
}

func event(t *testing.T, complaintID string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	ev, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: complaintID, Producer: "hostile-test", Actor: "system", OccurredAt: time.Unix(1_700_000_000, 0)}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// appendGood appends an event through the store and waits until the
// projection has applied it: the consumer is still running.
func (e *hostileEnv) appendGood(t *testing.T, complaintID string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := e.store.ReadStream(e.ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	ev := event(t, complaintID, payload)
	res, err := e.store.Append(e.ctx, stream, uint64(len(recs)), ev)
	if err != nil {
		t.Fatal(err)
	}
	checkFor(t, 10*time.Second, func() error {
		if v := e.proj.appliedVersion(complaintID); v < res.Version {
			return fmt.Errorf("projection of %s at version %d, want %d: the consumer stopped", complaintID, v, res.Version)
		}
		return nil
	})
	return ev
}

// goodEventStillHandled: after a hostile message, the next good one is.
func (e *hostileEnv) goodEventStillHandled(t *testing.T) {
	t.Helper()
	e.appendGood(t, e.good, &eventsv1.ResponseRecorded{Summary: "still handled", RespondedBy: "agent-1"})
}

// publishRaw publishes bytes on a subject of the log, bypassing the store.
func (e *hostileEnv) publishRaw(subject string, data []byte, msgID string) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(subject)
	msg.Data = data
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	return e.js.PublishMsg(e.ctx, msg, opts...)
}

// sealed is what the store would store for ev at version v of its stream.
func sealed(t *testing.T, ev *eventsv1.Envelope, v uint64) []byte {
	t.Helper()
	ev = proto.Clone(ev).(*eventsv1.Envelope)
	ev.StreamId = string(eventlog.ComplaintStream(ev.GetComplaintId()))
	ev.Version = v
	b, err := proto.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *hostileEnv) collect(t *testing.T) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

// deadLettered waits for the dead letter of subject and checks its reason,
// the metric and the log line.
func (e *hostileEnv) deadLettered(t *testing.T, subject, reason string, before int64) {
	t.Helper()
	var found bus.DeadLetter
	checkFor(t, 10*time.Second, func() error {
		dl, err := bus.DeadLetters(e.ctx, e.js, "projector")
		if err != nil {
			return err
		}
		for _, d := range dl {
			if d.Subject == subject {
				found = d
				return nil
			}
		}
		return fmt.Errorf("no dead letter for %s among %d", subject, len(dl))
	})
	if !strings.Contains(found.Reason, reason) {
		t.Errorf("dead letter reason %q, want it to say %q", found.Reason, reason)
	}
	// The consumer counts and logs right after it published the dead
	// letter: wait for them, then hold the count to exactly one more.
	checkFor(t, 10*time.Second, func() error {
		if v := counterValue(e.collect(t), "bus.messages.dead_lettered"); v < before+1 {
			return fmt.Errorf("bus.messages.dead_lettered = %d, want %d", v, before+1)
		}
		return e.logged("bus: message dead-lettered", subject)
	})
	if v := counterValue(e.collect(t), "bus.messages.dead_lettered"); v != before+1 {
		t.Errorf("bus.messages.dead_lettered = %d, want %d", v, before+1)
	}
}

// logged reports whether some log line holds every part.
func (e *hostileEnv) logged(parts ...string) error {
	for _, line := range strings.Split(e.logs.String(), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(line, p)
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("no log line with %q", parts)
}

func TestHostileInputNeverStopsTheConsumer(t *testing.T) {
	e := startHostile(t)
	dead := func() int64 { return counterValue(e.collect(t), "bus.messages.dead_lettered") }

	t.Run("MalformedProtobuf", func(t *testing.T) {
		subject := jsstore.Subject(eventlog.ComplaintStream(uuid.NewString()))
		before := dead()
		if _, err := e.publishRaw(subject, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, ""); err != nil {
			t.Fatal(err)
		}
		e.deadLettered(t, subject, "undecodable event envelope", before)
		e.goodEventStillHandled(t)
	})

	t.Run("NotAnEnvelope", func(t *testing.T) {
		subject := jsstore.Subject(eventlog.ComplaintStream(uuid.NewString()))
		before := dead()
		data, err := proto.Marshal(&eventsv1.ComplaintAccepted{AcceptedBy: "nobody"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.publishRaw(subject, data, ""); err != nil {
			t.Fatal(err)
		}
		e.deadLettered(t, subject, "not an event envelope: payload missing", before)
		e.goodEventStillHandled(t)
	})

	t.Run("UnknownComplaint", func(t *testing.T) {
		// A well-formed ComplaintAccepted for a complaint never received.
		ev := event(t, uuid.NewString(), &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"})
		subject := jsstore.Subject(eventlog.ComplaintStream(ev.GetComplaintId()))
		before := dead()
		if _, err := e.publishRaw(subject, sealed(t, ev, 1), ev.GetEventId()); err != nil {
			t.Fatal(err)
		}
		e.deadLettered(t, subject, "permanent: complaint "+ev.GetComplaintId()+": unknown complaint", before)
		if v := e.proj.appliedVersion(ev.GetComplaintId()); v != 0 {
			t.Errorf("unknown complaint projected at version %d", v)
		}
		e.goodEventStillHandled(t)
	})

	t.Run("VersionSkipsAhead", func(t *testing.T) {
		id := uuid.NewString()
		e.appendGood(t, id, &eventsv1.ComplaintReceived{Description: "second"})
		e.appendGood(t, id, &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"})
		ev := event(t, id, &eventsv1.ResponseRecorded{Summary: "forged", RespondedBy: "agent-1"})
		subject := jsstore.Subject(eventlog.ComplaintStream(id))
		before := dead()
		if _, err := e.publishRaw(subject, sealed(t, ev, 5), ev.GetEventId()); err != nil {
			t.Fatal(err)
		}
		e.deadLettered(t, subject, "version 5 follows 2: a gap", before)
		if v := e.proj.appliedVersion(id); v != 2 {
			t.Errorf("projection of the gapped complaint at version %d, want 2", v)
		}
		e.goodEventStillHandled(t)
	})

	t.Run("Oversized", func(t *testing.T) {
		st, err := e.js.Stream(e.ctx, jsstore.StreamName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		subject := jsstore.Subject(eventlog.ComplaintStream(uuid.NewString()))
		_, err = e.publishRaw(subject, bytes.Repeat([]byte{'x'}, eventlog.MaxEventSize+64<<10), "")
		if !errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
			t.Fatalf("publish over the limit: %v, want %v", err, jetstream.ErrStreamMessageExceedsMaximum)
		}
		after, err := st.Info(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after.State.Msgs != info.State.Msgs {
			t.Fatalf("stream went from %d to %d messages: the oversized one was stored", info.State.Msgs, after.State.Msgs)
		}
		e.goodEventStillHandled(t)
	})

	t.Run("OverTheEventLimitButUnderTheStreamLimit", func(t *testing.T) {
		// The stream leaves room for headers above the event limit: a raw
		// publish in that gap is stored, and is still no event.
		subject := jsstore.Subject(eventlog.ComplaintStream(uuid.NewString()))
		before := dead()
		if _, err := e.publishRaw(subject, bytes.Repeat([]byte{'x'}, eventlog.MaxEventSize+1024), ""); err != nil {
			t.Fatal(err)
		}
		e.deadLettered(t, subject, "over the", before)
		e.goodEventStillHandled(t)
	})

	t.Run("SameEventIDWithinDuplicateWindow", func(t *testing.T) {
		ev := e.appendGood(t, e.good, &eventsv1.ResponseRecorded{Summary: "once", RespondedBy: "agent-1"})
		recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(e.good), 1)
		if err != nil {
			t.Fatal(err)
		}
		last := recs[len(recs)-1]
		ack, err := e.publishRaw(jsstore.Subject(eventlog.ComplaintStream(e.good)), last.Raw, ev.GetEventId())
		if err != nil {
			t.Fatal(err)
		}
		if !ack.Duplicate || ack.Sequence != last.Position {
			t.Fatalf("republished event id: ack %+v, want a duplicate of position %d", ack, last.Position)
		}
		e.goodEventStillHandled(t)
		if n := e.proj.timesApplied(ev.GetEventId()); n != 1 {
			t.Fatalf("event applied %d times, want once", n)
		}
	})

	t.Run("AlreadyAppliedVersionStoredAgain", func(t *testing.T) {
		// The same bytes again after the duplicate window (a fresh msg id):
		// stored, delivered, and ignored by the projection.
		// The store's readers leave it out of the stream and its writers
		// still append after the real last version (issue 10).
		id := uuid.NewString()
		e.appendGood(t, id, &eventsv1.ComplaintReceived{Description: "third"})
		e.appendGood(t, id, &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"})
		recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		old := recs[0]
		ignoredBefore := counterValue(e.collect(t), "projection.events.ignored")
		if _, err := e.publishRaw(jsstore.Subject(eventlog.ComplaintStream(id)), old.Raw, uuid.NewString()); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() error {
			if v := counterValue(e.collect(t), "projection.events.ignored"); v != ignoredBefore+1 {
				return fmt.Errorf("projection.events.ignored = %d, want %d", v, ignoredBefore+1)
			}
			return nil
		})
		if err := e.logged("projection: version already applied, ignoring", old.Event.GetEventId()); err != nil {
			t.Error(err)
		}
		if n := e.proj.timesApplied(old.Event.GetEventId()); n != 1 {
			t.Fatalf("old event applied %d times, want once", n)
		}
		// The complaint is not blocked: its next event lands at version 3.
		next := e.appendGood(t, id, &eventsv1.ResponseRecorded{Summary: "after the replay", RespondedBy: "agent-1"})
		recs, err = e.store.ReadStream(e.ctx, eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 3 || recs[2].Event.GetEventId() != next.GetEventId() || recs[2].Event.GetVersion() != 3 {
			t.Fatalf("stream after the replay holds %d events, want the new one at version 3", len(recs))
		}
		if broken := eventlog.VerifyChain(eventlog.ComplaintStream(id), recs); broken != nil {
			t.Fatalf("the new event does not chain on version 2: %v", broken)
		}
		e.goodEventStillHandled(t)
	})

	t.Run("RedeliveryOfAppliedVersion", func(t *testing.T) {
		// The handler applies the event but its ack is lost: the bus
		// delivers it again and the projection ignores it.
		rm := e.collect(t)
		redelivered, ignored := counterValue(rm, "bus.messages.redelivered"), counterValue(rm, "projection.events.ignored")
		ev := event(t, e.good, &eventsv1.ResponseRecorded{Summary: "ack lost", RespondedBy: "agent-1"})
		e.proj.mu.Lock()
		e.proj.loseAck[ev.GetEventId()] = true
		e.proj.mu.Unlock()
		recs, err := e.store.ReadStream(e.ctx, eventlog.ComplaintStream(e.good), 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Append(e.ctx, eventlog.ComplaintStream(e.good), uint64(len(recs)), ev); err != nil {
			t.Fatal(err)
		}
		checkFor(t, 10*time.Second, func() error {
			rm := e.collect(t)
			if v := counterValue(rm, "bus.messages.redelivered"); v != redelivered+1 {
				return fmt.Errorf("bus.messages.redelivered = %d, want %d", v, redelivered+1)
			}
			if v := counterValue(rm, "projection.events.ignored"); v != ignored+1 {
				return fmt.Errorf("projection.events.ignored = %d, want %d", v, ignored+1)
			}
			return nil
		})
		for _, parts := range [][]string{{"bus: handler failed, will retry"}, {"projection: version already applied, ignoring", ev.GetEventId()}} {
			if err := e.logged(parts...); err != nil {
				t.Error(err)
			}
		}
		if n := e.proj.timesApplied(ev.GetEventId()); n != 1 {
			t.Fatalf("event applied %d times, want once", n)
		}
		e.goodEventStillHandled(t)
	})

	// Nothing good was dead-lettered; nothing is left unacknowledged.
	checkFor(t, 10*time.Second, func() error { return bus.CaughtUp(e.ctx, e.js, jsstore.StreamName, "projector") })
	dl, err := bus.DeadLetters(e.ctx, e.js, "projector")
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 5 {
		for _, d := range dl {
			t.Logf("dead letter: %s: %s", d.Subject, d.Reason)
		}
		t.Fatalf("%d dead letters, want 5 (malformed, not an envelope, over the event limit, unknown complaint, gap)", len(dl))
	}
}
