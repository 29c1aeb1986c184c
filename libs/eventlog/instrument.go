package eventlog

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Instrument wraps a store so that every append is counted, whatever the
// backend: events appended, duplicates (idempotent retries), conflicts (a
// stale writer) and refusals. mp nil means the global meter provider.
func Instrument(s Store, mp metric.MeterProvider) (Store, error) {
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	m := mp.Meter("github.com/closeloop/closeloop/libs/eventlog")
	is := &instrumented{Store: s}
	var err error
	if is.appended, err = m.Int64Counter("closeloop.eventlog.appended", metric.WithDescription("events stored by appends")); err != nil {
		return nil, err
	}
	if is.duplicates, err = m.Int64Counter("closeloop.eventlog.duplicates", metric.WithDescription("events of an append already stored (idempotent retries)")); err != nil {
		return nil, err
	}
	if is.failures, err = m.Int64Counter("closeloop.eventlog.append_failures", metric.WithDescription("appends refused, by reason: conflict, invalid, error")); err != nil {
		return nil, err
	}
	return is, nil
}

type instrumented struct {
	Store
	appended, duplicates, failures metric.Int64Counter
}

func (s *instrumented) Append(ctx context.Context, stream StreamID, expectedVersion uint64, events ...*eventsv1.Envelope) (AppendResult, error) {
	res, err := s.Store.Append(ctx, stream, expectedVersion, events...)
	kind := metric.WithAttributes(attribute.String("kind", stream.Kind()))
	switch {
	case err == nil:
		s.appended.Add(ctx, int64(len(events)-res.Duplicates), kind)
		if res.Duplicates > 0 {
			s.duplicates.Add(ctx, int64(res.Duplicates), kind)
		}
	case errors.Is(err, ErrConflict):
		s.failures.Add(ctx, 1, kind, metric.WithAttributes(attribute.String("reason", "conflict")))
	case errors.Is(err, ErrInvalidEvent):
		s.failures.Add(ctx, 1, kind, metric.WithAttributes(attribute.String("reason", "invalid")))
	default:
		s.failures.Add(ctx, 1, kind, metric.WithAttributes(attribute.String("reason", "error")))
	}
	return res, err
}

// ReadStreamRaw implements RawStreamReader: the wrapped store's, or its
// ReadStream when it has none.
func (s *instrumented) ReadStreamRaw(ctx context.Context, stream StreamID) ([]Record, error) {
	if raw, ok := s.Store.(RawStreamReader); ok {
		return raw.ReadStreamRaw(ctx, stream)
	}
	return s.Store.ReadStream(ctx, stream, 1)
}

// ReadStreamAfter implements TailReader: the wrapped store's, or its
// ReadStream when it has none. Without it, a wrapped jsstore would read
// every tail from the stream's first event.
func (s *instrumented) ReadStreamAfter(ctx context.Context, stream StreamID, fromVersion, afterPosition uint64) ([]Record, error) {
	return ReadTail(ctx, s.Store, stream, fromVersion, afterPosition)
}
