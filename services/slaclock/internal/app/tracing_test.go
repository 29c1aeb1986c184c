package app

import (
	"context"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The traces intake's events were written in (one per complaint).
const (
	intakeTrace       = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	intakeTraceBefore = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

// startTraced runs an instance whose decisions are recorded as spans.
func startTraced(t *testing.T, store eventlog.Store, clk clock.Clock) *tracetest.SpanRecorder {
	t.Helper()
	spans := tracetest.NewSpanRecorder()
	a := newTracedApp(t, store, clk, Partition{}, sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-a.Rebuilt():
	case <-time.After(10 * time.Second):
		t.Fatal("the instance never started")
	}
	return spans
}

// writeTraced appends intake's event, written in trace traceparent with
// correlation id corr.
func writeTraced(t *testing.T, store eventlog.Store, id, traceparent, corr string, payload proto.Message) *ev.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", Actor: "adapter-1", CorrelationID: corr,
		Traceparent: traceparent, OccurredAt: t0}, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Append(context.Background(), eventlog.ComplaintStream(id), 0, e); err != nil {
		t.Fatal(err)
	}
	return e
}

// ownEvent waits for slaclock's event of key on a complaint's stream.
func ownEvent(t *testing.T, store eventlog.Store, id, k string) *ev.Envelope {
	t.Helper()
	var found *ev.Envelope
	waitFor(t, k, func() bool {
		for _, e := range own(t, store, id) {
			if key(e) == k {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// spanOf finds the ended span whose context an event's traceparent holds.
func spanOf(t *testing.T, spans *tracetest.SpanRecorder, e *ev.Envelope) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	waitFor(t, "the span of "+key(e), func() bool {
		for _, s := range spans.Ended() {
			sc := s.SpanContext()
			if "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-01" == e.GetTraceparent() {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func traceID(traceparent string) string { return traceparent[3:35] }

// A trigger's decision, the catch-up's, and every timer firing after them
// are spans in the trace of the complaint's events, and each event
// sla-clock appends names its cause and carries the cause's correlation.
func TestDecisionsContinueTheTraceOfTheirCause(t *testing.T) {
	clk := clock.NewFake(t0)
	store := memstore.New(clk)
	// Before the start: decided by the catch-up.
	before := writeTraced(t, store, "c0", intakeTraceBefore, "corr-0", received(t0))
	spans := startTraced(t, store, clk)
	caughtUp := ownEvent(t, store, "c0", "SlaClockStarted acceptance-1")
	if s := spanOf(t, spans, caughtUp); s.Name() != "CatchUp" || s.Parent().SpanID().String() != before.GetTraceparent()[36:52] {
		t.Errorf("catch-up decision: span %q with parent %s, want CatchUp under intake's span %s", s.Name(), s.Parent().SpanID(), before.GetTraceparent())
	}
	if caughtUp.GetCausationId() != before.GetEventId() || caughtUp.GetCorrelationId() != "corr-0" {
		t.Errorf("catch-up: causation %q correlation %q", caughtUp.GetCausationId(), caughtUp.GetCorrelationId())
	}

	// Live: a trigger's decision continues its trace.
	rec := writeTraced(t, store, "c1", intakeTrace, "corr-1", received(t0))
	started := ownEvent(t, store, "c1", "SlaClockStarted acceptance-1")
	s := spanOf(t, spans, started)
	if s.Name() != "DecideOnTrigger" || traceID(started.GetTraceparent()) != traceID(intakeTrace) || s.Parent().SpanID().String() != intakeTrace[36:52] {
		t.Errorf("trigger decision: span %q in trace %s under %s, want DecideOnTrigger under intake's span %s",
			s.Name(), s.SpanContext().TraceID(), s.Parent().SpanID(), intakeTrace)
	}
	if started.GetCausationId() != rec.GetEventId() || started.GetCorrelationId() != "corr-1" {
		t.Errorf("clock start: causation %q correlation %q, want %s and corr-1", started.GetCausationId(), started.GetCorrelationId(), rec.GetEventId())
	}

	// The acceptance clock's 50 % warning falls due at 12 h: the firing is
	// a span under the decision that started the clock.
	clk.Set(t0.Add(12 * time.Hour))
	warned := ownEvent(t, store, "c1", "Warning acceptance-1 50")
	fired := spanOf(t, spans, warned)
	if fired.Name() != "FireDueClocks" || fired.Parent().SpanID() != s.SpanContext().SpanID() || fired.SpanContext().TraceID() != s.SpanContext().TraceID() {
		t.Errorf("firing: span %q under %s in trace %s, want FireDueClocks under the clock start's span %s",
			fired.Name(), fired.Parent().SpanID(), fired.SpanContext().TraceID(), s.SpanContext().SpanID())
	}
	if warned.GetCausationId() != started.GetEventId() || warned.GetCorrelationId() != "corr-1" {
		t.Errorf("warning: causation %q correlation %q, want the clock start %s and corr-1", warned.GetCausationId(), warned.GetCorrelationId(), started.GetEventId())
	}

	// The next firing is caused by the last change of its clock: the warning.
	clk.Set(t0.Add(18 * time.Hour))
	next := ownEvent(t, store, "c1", "Warning acceptance-1 75")
	if s := spanOf(t, spans, next); s.Parent().SpanID() != fired.SpanContext().SpanID() || next.GetCausationId() != warned.GetEventId() || next.GetCorrelationId() != "corr-1" {
		t.Errorf("75 %% warning: span under %s, causation %q correlation %q; want under %s, caused by the 50 %% warning %s",
			s.Parent().SpanID(), next.GetCausationId(), next.GetCorrelationId(), fired.SpanContext().SpanID(), warned.GetEventId())
	}
}
