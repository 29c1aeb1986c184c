package app_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/adapters"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// start is a Tuesday, 10:00 in Shanghai (a working day of cn-field).
var start = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)

const customerRef = "cr_0123456789abcdef0123456789abcdef"

// harness is a real embedded NATS with the JetStream event log and the PII
// key store, on a fake clock.
type harness struct {
	t     *testing.T
	ctx   context.Context
	js    jetstream.JetStream
	store *jsstore.Store
	keys  *pii.Keystore
	clock *clock.Fake
	cals  *calendar.Set
	// spans records every span the apps start (their tracer provider).
	spans *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	srv := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fake := clock.NewFake(start)
	store, err := jsstore.New(ctx, js, jsstore.Config{Clock: fake})
	if err != nil {
		t.Fatal(err)
	}
	keks, err := pii.ParseKeyring(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := pii.New(ctx, js, pii.Config{KEKs: keks})
	if err != nil {
		t.Fatal(err)
	}
	cals, err := calendar.Default()
	if err != nil {
		t.Fatal(err)
	}
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	return &harness{t: t, ctx: ctx, js: js, store: store, keys: keys, clock: fake, cals: cals, spans: spans, tp: tp}
}

// deps are an app's dependencies on store with view.
func (h *harness) deps(store eventlog.Store, view *app.View) app.Deps {
	return app.Deps{
		Log: store, Clock: h.clock, TracerProvider: h.tp, View: view, Sealer: h.keys,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), NewID: func() string { return uuid.Must(uuid.NewV7()).String() },
	}
}

// newApp starts one dispatch instance: its own view following the log.
func (h *harness) newApp(mod ...func(*app.Config)) *app.App {
	h.t.Helper()
	return h.newAppOn(h.store, mod...)
}

// newAppOn is newApp reading and writing through store (which wraps h.store).
func (h *harness) newAppOn(store eventlog.Store, mod ...func(*app.Config)) *app.App {
	h.t.Helper()
	cfg := app.DefaultConfig()
	for _, m := range mod {
		m(&cfg)
	}
	view := app.NewView(adapters.NewCalendarSchedules(h.cals), slog.New(slog.NewTextHandler(io.Discard, nil)))
	a, err := app.New(h.deps(store, view), cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = h.store.Follow(h.ctx, 1, func(r eventlog.Record) error { return view.Apply(h.ctx, r) }) }()
	return a
}

type techOpt func(*domain.TechnicianProfile)

func (h *harness) register(a *app.App, id, region string, opts ...techOpt) {
	h.t.Helper()
	p := domain.TechnicianProfile{
		DisplayName: id, ProductLines: []string{"chiller"}, Services: []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REPAIR},
		ServiceCentre: "sc-" + region, Region: region, CalendarID: "always", MaxConcurrent: 2, MaxDaily: 6,
	}
	for _, o := range opts {
		o(&p)
	}
	if _, err := a.RegisterTechnician(h.ctx, "admin", id, p); err != nil {
		h.t.Fatalf("register %s: %v", id, err)
	}
}

// sealedSite seals a site contact the way intake does.
func (h *harness) sealedSite() *eventsv1.SealedPersonalData {
	h.t.Helper()
	s, err := h.keys.Seal(h.ctx, customerRef, &eventsv1.PersonalData{Name: "Li Wei", Phone: "13800138000", Address: "1 Harbour Rd"})
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

func (h *harness) onSiteSpec(region string) *eventsv1.WorkOrderSpec {
	return &eventsv1.WorkOrderSpec{
		CustomerOrganisation: "Harbour Foods", SiteContact: h.sealedSite(), Region: region, EquipmentModel: "CH-200",
		Quantity: 1, SerialNumbers: []string{"SN-1"}, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR,
		Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, RequiredBy: timestamppb.New(start.Add(24 * time.Hour)), ProductLine: "chiller",
	}
}

// requestDispatch appends routing's DispatchRequested and returns it as stored.
func (h *harness) requestDispatch(complaintID, workOrderID string, spec *eventsv1.WorkOrderSpec) eventlog.Record {
	h.t.Helper()
	stream := eventlog.ComplaintStream(complaintID)
	recs, err := h.store.ReadStream(h.ctx, stream, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var events []*eventsv1.Envelope
	if len(recs) == 0 { // intake received the complaint first
		events = append(events, received(h.t, complaintID, h.clock.Now()))
	}
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: complaintID, Producer: "routing", Actor: "agent-1", OccurredAt: h.clock.Now()},
		&eventsv1.DispatchRequested{WorkOrderId: workOrderID, Spec: spec, RequestedBy: "agent-1"})
	if err != nil {
		h.t.Fatal(err)
	}
	events = append(events, e)
	if _, err := h.store.Append(h.ctx, stream, uint64(len(recs)), events...); err != nil {
		h.t.Fatal(err)
	}
	recs, err = h.store.ReadStream(h.ctx, stream, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(recs) == 0 || recs[len(recs)-1].Event.GetEventId() != e.GetEventId() {
		h.t.Fatal("DispatchRequested not read back")
	}
	return recs[len(recs)-1]
}

// receive appends intake's ComplaintReceived, opening a complaint's stream.
func (h *harness) receive(complaintID string) {
	h.t.Helper()
	if _, err := h.store.Append(h.ctx, eventlog.ComplaintStream(complaintID), 0, received(h.t, complaintID, h.clock.Now())); err != nil {
		h.t.Fatal(err)
	}
}

// received is intake's ComplaintReceived for a complaint.
func received(t testing.TB, complaintID string, at time.Time) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: complaintID, Producer: "intake", Actor: "adapter-1", OccurredAt: at},
		&eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: complaintID, Description: "the chiller is down"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// complaintEvents returns the payloads of a complaint's stream, by type.
func (h *harness) complaintEvents(complaintID string) []eventlog.Record {
	h.t.Helper()
	recs, err := h.store.ReadStream(h.ctx, eventlog.ComplaintStream(complaintID), 1)
	if err != nil {
		h.t.Fatal(err)
	}
	return recs
}

// order folds the complaint stream and returns the work order.
func (h *harness) order(complaintID, workOrderID string) *domain.WorkOrder {
	h.t.Helper()
	var c *domain.Complaint
	for _, r := range h.complaintEvents(complaintID) {
		c = domain.EvolveComplaint(c, complaintID, r.Event.GetVersion(), r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
	}
	o := c.Order(workOrderID)
	if o == nil {
		h.t.Fatalf("work order %s not on complaint %s", workOrderID, complaintID)
	}
	return o
}

// technician folds a technician's stream, failing the test if any prefix of
// it holds more open jobs than the capacity.
func (h *harness) technician(id string) *domain.Technician {
	h.t.Helper()
	recs, err := h.store.ReadStream(h.ctx, eventlog.Stream(eventlog.KindTechnician, id), 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var t *domain.Technician
	for _, r := range recs {
		t = domain.EvolveTechnician(t, r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
		if uint32(t.OpenJobs()) > t.MaxConcurrent {
			h.t.Fatalf("technician %s over capacity at version %d: %d open jobs, capacity %d", id, t.Version, t.OpenJobs(), t.MaxConcurrent)
		}
	}
	return t
}

// runAcceptTimeouts runs a's accept timeouts until the test ends, once the
// loop has armed its timer.
func (h *harness) runAcceptTimeouts(a *app.App) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(h.ctx)
	h.t.Cleanup(cancel)
	go func() { _ = a.RunAcceptTimeouts(ctx) }()
	checkFor(h.t, 5*time.Second, func() error {
		if h.clock.Pending() == 0 {
			return errors.New("the timeout loop has not armed its timer")
		}
		return nil
	})
}

// checkFor polls cond until it holds or the deadline passes.
func checkFor(t *testing.T, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func typesOf(recs []eventlog.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Event.GetType()
	}
	return out
}
