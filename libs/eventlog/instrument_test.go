package eventlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestInstrumentCountsAppendsDuplicatesAndConflicts(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	s, err := eventlog.Instrument(memstore.New(clock.NewFake(time.Unix(0, 0))), sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := eventlog.ComplaintStream("c1")
	event := func() *eventsv1.Envelope {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "test"}, &eventsv1.ComplaintAccepted{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	a, b := event(), event()
	if _, err := s.Append(ctx, stream, 0, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, 0, a, b); err != nil { // the same batch again: duplicates
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, stream, 0, event()); !errors.Is(err, eventlog.ErrConflict) {
		t.Fatalf("stale append: %v", err)
	}
	if _, err := s.Append(ctx, stream, 2, &eventsv1.Envelope{}); !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("invalid append: %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				key := m.Name
				if r, ok := dp.Attributes.Value("reason"); ok {
					key += "/" + r.AsString()
				}
				got[key] += dp.Value
			}
		}
	}
	want := map[string]int64{
		"closeloop.eventlog.appended":                 2,
		"closeloop.eventlog.duplicates":               2,
		"closeloop.eventlog.append_failures/conflict": 1,
		"closeloop.eventlog.append_failures/invalid":  1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// tailSpy is a store whose tail reads can be told from its ReadStream.
type tailSpy struct {
	*memstore.Store
	after []uint64 // the afterPosition of each ReadStreamAfter
}

func (s *tailSpy) ReadStreamAfter(ctx context.Context, stream eventlog.StreamID, fromVersion, afterPosition uint64) ([]eventlog.Record, error) {
	s.after = append(s.after, afterPosition)
	return s.Store.ReadStreamAfter(ctx, stream, fromVersion, afterPosition)
}

// A wrapper that hid the backend's tail read would have every service read
// every tail from the stream's first event, silently.
func TestInstrumentForwardsTailReads(t *testing.T) {
	spy := &tailSpy{Store: memstore.New(clock.NewFake(time.Unix(0, 0)))}
	s, err := eventlog.Instrument(spy, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream := eventlog.ComplaintStream("c1")
	for v := range uint64(3) {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "test"}, &eventsv1.ComplaintAccepted{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, stream, v, e); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := s.(eventlog.TailReader); !ok {
		t.Fatal("the instrumented store is not a TailReader")
	}
	recs, err := eventlog.ReadTail(ctx, s, stream, 3, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Event.GetVersion() != 3 {
		t.Fatalf("tail from version 3 after position 2 = %d records, want version 3 alone", len(recs))
	}
	if len(spy.after) != 1 || spy.after[0] != 2 {
		t.Fatalf("backend's ReadStreamAfter saw positions %v, want [2]", spy.after)
	}
	// Position unknown: ReadStream.
	if _, err := eventlog.ReadTail(ctx, s, stream, 3, 0); err != nil || len(spy.after) != 1 {
		t.Fatalf("tail with no position went to ReadStreamAfter (%v, %v)", spy.after, err)
	}
}
