package app_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/adapters"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
)

type noSealer struct{}

func (noSealer) Seal(context.Context, string, *eventsv1.PersonalData) (*eventsv1.SealedPersonalData, error) {
	return nil, nil
}

// BenchmarkTechnicianCommand is one technician command (a status change)
// on a technician whose stream holds 10,000 events, with a caught-up view:
// ns/op and the records its reads return (recs/op).
//
//	go test -run '^$' -bench TechnicianCommand -benchtime 200x ./internal/app/
func BenchmarkTechnicianCommand(b *testing.B) {
	b.Run("memstore", func(b *testing.B) { benchTechnicianCommand(b, memstore.New(clock.NewFake(start))) })
	b.Run("jsstore", func(b *testing.B) {
		srv, err := natsembed.Start(natsembed.Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		defer srv.Shutdown()
		nc, err := srv.Connect("dispatch-bench", true)
		if err != nil {
			b.Fatal(err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			b.Fatal(err)
		}
		store, err := jsstore.New(context.Background(), js, jsstore.Config{Clock: clock.NewFake(start)})
		if err != nil {
			b.Fatal(err)
		}
		benchTechnicianCommand(b, store)
	})
}

func benchTechnicianCommand(b *testing.B, log eventlog.Store) {
	ctx := context.Background()
	recs := longHistory(b, log, "t-long", 10_000)
	cals, err := calendar.Default()
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	view := app.NewView(adapters.NewCalendarSchedules(cals), logger)
	for _, r := range recs {
		if err := view.Apply(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	store := &countingStore{Store: log}
	a, err := app.New(app.Deps{
		Log: store, Clock: clock.NewFake(start), TracerProvider: noop.NewTracerProvider(), View: view, Sealer: noSealer{},
		Logger: logger, NewID: func() string { return uuid.Must(uuid.NewV7()).String() },
	}, app.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	status := []eventsv1.TechnicianStatus{eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ON_LEAVE, eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ACTIVE}
	store.take()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.SetTechnicianStatus(ctx, "admin", "t-long", status[i%2]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_, n := store.take()
	b.ReportMetric(float64(n)/float64(b.N), "recs/op")
}
