package kernel_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 9, 18, 8, 0, 0, 0, time.UTC)

// count folds a stream into its number of events.
func count(recs []eventlog.Record) (int, error) { return len(recs), nil }

// acceptOnce decides one ComplaintAccepted unless the stream holds two
// events already.
func acceptOnce(n int, _ time.Time) ([]proto.Message, error) {
	if n >= 2 {
		return nil, nil
	}
	return []proto.Message{&eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"}}, nil
}

func received(t *testing.T, store eventlog.Store, id string) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", CorrelationID: "corr-1", OccurredAt: t0},
		&eventsv1.ComplaintReceived{ChannelRef: "ref-" + id})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(context.Background(), eventlog.ComplaintStream(id), 0, e); err != nil {
		t.Fatal(err)
	}
	return e
}

func newWriter(t *testing.T, store eventlog.Store, tp *trace.TracerProvider) *kernel.Writer {
	t.Helper()
	w, err := kernel.NewWriter(store, "routing", clock.NewFake(t0), tp)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestExecuteStampsCauseTraceAndTime(t *testing.T) {
	store := memstore.New(clock.NewFake(t0))
	first := received(t, store, "c1")
	spans := tracetest.NewSpanRecorder()
	w := newWriter(t, store, trace.NewTracerProvider(trace.WithSpanProcessor(spans)))

	res, err := kernel.Execute(context.Background(), w, kernel.Command[int]{
		Name: "accept", Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1",
		Cause: kernel.CauseOf(first, true), Fold: count, Decide: acceptOnce,
		Stamp: func(m *eventlog.Meta) { m.PolicyVersion = "p-7" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Version != 2 || len(res.Events) != 1 || res.State != 1 {
		t.Fatalf("result = version %d, %d events, state %d; want 2, 1, 1", res.Version, len(res.Events), res.State)
	}
	e := res.Events[0]
	if e.GetProducer() != "routing" || e.GetActor() != "routing" || e.GetComplaintId() != "c1" || e.GetPolicyVersion() != "p-7" {
		t.Errorf("envelope producer %q actor %q complaint %q policy %q", e.GetProducer(), e.GetActor(), e.GetComplaintId(), e.GetPolicyVersion())
	}
	if e.GetCausationId() != first.GetEventId() || e.GetCorrelationId() != "corr-1" {
		t.Errorf("causation %q correlation %q; want %q and corr-1", e.GetCausationId(), e.GetCorrelationId(), first.GetEventId())
	}
	if !e.GetOccurredAt().AsTime().Equal(t0) {
		t.Errorf("occurred at %s, want the clock's %s", e.GetOccurredAt().AsTime(), t0)
	}
	ended := spans.Ended()
	if len(ended) != 1 || ended[0].Name() != "accept" {
		t.Fatalf("spans = %v, want one named accept", ended)
	}
	if want := ended[0].SpanContext().TraceID().String(); e.GetTraceparent() == "" || e.GetTraceparent()[3:35] != want {
		t.Errorf("traceparent %q is not in the decision's trace %s", e.GetTraceparent(), want)
	}

	// Deciding again finds nothing to do: no events, the version read.
	res, err = kernel.Execute(context.Background(), w, kernel.Command[int]{
		Name: "accept", Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: count, Decide: acceptOnce,
	})
	if err != nil || len(res.Events) != 0 || res.Version != 2 {
		t.Errorf("second decision: %d events, version %d, err %v; want none, 2, nil", len(res.Events), res.Version, err)
	}
}

func TestExecuteStartsACorrelationForACommand(t *testing.T) {
	store := memstore.New(clock.NewFake(t0))
	received(t, store, "c1")
	w := newWriter(t, store, trace.NewTracerProvider())
	res, err := kernel.Execute(context.Background(), w, kernel.Command[int]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Cause: kernel.Cause{Actor: "agent-9"}, Fold: count, Decide: acceptOnce,
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := res.Events[0]; e.GetCorrelationId() == "" || e.GetActor() != "agent-9" || e.GetCausationId() != "" {
		t.Errorf("correlation %q actor %q causation %q", e.GetCorrelationId(), e.GetActor(), e.GetCausationId())
	}
}

// racing appends another writer's event before each of the first n
// appends it passes on.
type racing struct {
	eventlog.Store
	n       int
	refused int
}

func (r *racing) Append(ctx context.Context, s eventlog.StreamID, v uint64, envs ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	if r.n > 0 {
		r.n--
		other, _ := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "sla-clock", OccurredAt: t0}, &eventsv1.ComplaintAccepted{AcceptedBy: "other"})
		if _, err := r.Store.Append(ctx, s, v, other); err != nil {
			return eventlog.AppendResult{}, err
		}
	}
	return r.Store.Append(ctx, s, v, envs...)
}

func TestExecuteRedecidesOnAConflict(t *testing.T) {
	store := &racing{Store: memstore.New(clock.NewFake(t0)), n: 1}
	received(t, store.Store, "c1")
	w := newWriter(t, store, trace.NewTracerProvider())
	var refused int
	decide := func(n int, _ time.Time) ([]proto.Message, error) {
		return []proto.Message{&eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"}}, nil
	}
	res, err := kernel.Execute(context.Background(), w, kernel.Command[int]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: count, Decide: decide,
		Refused: func([]*eventsv1.Envelope) { refused++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != 2 || res.Version != 3 || refused != 1 {
		t.Errorf("decided on %d events, version %d, %d refused; want a re-read of 2, version 3, 1 refused", res.State, res.Version, refused)
	}
}

func TestExecuteGivesUpAfterMaxAttempts(t *testing.T) {
	store := &racing{Store: memstore.New(clock.NewFake(t0)), n: kernel.MaxAttempts}
	received(t, store.Store, "c1")
	w := newWriter(t, store, trace.NewTracerProvider())
	always := func(int, time.Time) ([]proto.Message, error) {
		return []proto.Message{&eventsv1.ComplaintAccepted{}}, nil
	}
	_, err := kernel.Execute(context.Background(), w, kernel.Command[int]{Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: count, Decide: always})
	if !errors.Is(err, kernel.ErrStale) {
		t.Errorf("err = %v, want ErrStale after %d conflicts", err, kernel.MaxAttempts)
	}
}

func TestExecuteRefusesAStaleExpectedVersionWithoutDeciding(t *testing.T) {
	store := memstore.New(clock.NewFake(t0))
	received(t, store, "c1")
	w := newWriter(t, store, trace.NewTracerProvider())
	decided := false
	_, err := kernel.Execute(context.Background(), w, kernel.Command[int]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Expected: 5, Fold: count,
		Decide: func(int, time.Time) ([]proto.Message, error) { decided = true; return nil, nil },
	})
	if !errors.Is(err, kernel.ErrStale) || decided {
		t.Errorf("err = %v, decided %v; want ErrStale before deciding", err, decided)
	}

	// A conflict on a stated version is not retried either.
	racer := &racing{Store: store, n: 1}
	w = newWriter(t, racer, trace.NewTracerProvider())
	_, err = kernel.Execute(context.Background(), w, kernel.Command[int]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Expected: 1, Fold: count, Decide: acceptOnce,
	})
	if !errors.Is(err, kernel.ErrStale) {
		t.Errorf("err = %v, want ErrStale for a conflict on a stated version", err)
	}
}

func TestExecuteRefusesAReadShortOfItsCause(t *testing.T) {
	store := memstore.New(clock.NewFake(t0))
	received(t, store, "c1")
	w := newWriter(t, store, trace.NewTracerProvider())
	_, err := kernel.Execute(context.Background(), w, kernel.Command[int]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Cause: kernel.Cause{EventID: "later", Version: 3}, Fold: count, Decide: acceptOnce,
	})
	if !errors.Is(err, eventlog.ErrShortRead) {
		t.Errorf("err = %v, want ErrShortRead", err)
	}
}

func TestReceived(t *testing.T) {
	store := memstore.New(clock.NewFake(t0))
	received(t, store, "c1")
	other, _ := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c2", Producer: "x", OccurredAt: t0}, &eventsv1.ComplaintAccepted{})
	if _, err := store.Append(context.Background(), eventlog.ComplaintStream("c2"), 0, other); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]error{"c1": nil, "c2": kernel.ErrNotReceived, "c3": kernel.ErrNotFound} {
		recs, err := store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
		if err != nil {
			t.Fatal(err)
		}
		if got := kernel.Received(recs); !errors.Is(got, want) || (want == nil && got != nil) {
			t.Errorf("Received(%s) = %v, want %v", id, got, want)
		}
	}
	if !errors.Is(kernel.ErrNotReceived, kernel.ErrNotFound) {
		t.Error("ErrNotReceived is not a kind of ErrNotFound")
	}
}

func TestTracedContinuesTheCausesTrace(t *testing.T) {
	env := &eventsv1.Envelope{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	w, err := kernel.NewWriter(memstore.New(clock.NewFake(t0)), "sla-clock", clock.NewFake(t0), trace.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	envs, err := w.Envelopes(kernel.Traced(context.Background(), env), "c1", kernel.Cause{}, nil, t0, &eventsv1.ComplaintAccepted{})
	if err != nil {
		t.Fatal(err)
	}
	if got := envs[0].GetTraceparent(); got != env.Traceparent {
		t.Errorf("traceparent %q, want the cause's %q", got, env.Traceparent)
	}
	if _, err := kernel.NewWriter(memstore.New(clock.NewFake(t0)), "", clock.NewFake(t0), noop.NewTracerProvider()); err == nil {
		t.Error("NewWriter without a producer: no error")
	}
}

func TestPreconditionErrorIsErrPrecondition(t *testing.T) {
	err := error(&kernel.PreconditionError{Reason: "resolve needs a response", Missing: []string{"response"}})
	if !errors.Is(err, kernel.ErrPrecondition) {
		t.Error("PreconditionError is not ErrPrecondition")
	}
	if err.Error() != "resolve needs a response (missing: response)" {
		t.Errorf("message %q", err.Error())
	}
}
