package kernel

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/closeloop/closeloop/libs/telemetry"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Cause is who or what a write answers: stamped on every event it appends.
type Cause struct {
	// Actor is who acts: a person's id for a command, empty for a
	// service's own reaction (the producer is then the actor).
	Actor string
	// EventID is the event this write reacts to (its causation id); empty
	// for a command.
	EventID string
	// CorrelationID groups everything that follows from one submission or
	// command; empty starts a new one.
	CorrelationID string
	// Version is the causing event's version when it is on the stream
	// being written: the read must reach it (eventlog.Reached), or the
	// decision could find nothing to do. 0 for anything else.
	Version uint64
}

// CauseOf is the cause of a reaction to env. onStream says that env is on
// the stream the reaction writes to.
func CauseOf(env *eventsv1.Envelope, onStream bool) Cause {
	c := Cause{EventID: env.GetEventId(), CorrelationID: env.GetCorrelationId()}
	if c.CorrelationID == "" {
		c.CorrelationID = env.GetEventId()
	}
	if onStream {
		c.Version = env.GetVersion()
	}
	return c
}

// Traced returns ctx continuing the trace env was written in, unless ctx
// already carries a span (a bus delivery does: its headers hold the same
// trace). A reaction the log drives by itself (a timer firing, a catch-up)
// is thus in its cause's trace.
func Traced(ctx context.Context, env *eventsv1.Envelope) context.Context {
	if trace.SpanContextFromContext(ctx).IsValid() || env.GetTraceparent() == "" {
		return ctx
	}
	return telemetry.Propagator.Extract(ctx, propagation.MapCarrier{
		"traceparent": env.GetTraceparent(),
		"tracestate":  env.GetTracestate(),
	})
}
