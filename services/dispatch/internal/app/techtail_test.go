package app_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/adapters"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// countingStore counts the reads of streams and the records they return;
// tails counts those of them that were tail reads after a log position.
type countingStore struct {
	eventlog.Store
	mu    sync.Mutex
	reads int
	recs  int
	tails int
	whole map[eventlog.StreamID]int // ReadStream calls (not tail reads), by stream
}

// ReadStreamAfter makes the store an eventlog.TailReader when the one it
// counts is one, as a wrapper must (else reads fall back to ReadStream).
func (c *countingStore) ReadStreamAfter(ctx context.Context, s eventlog.StreamID, from, after uint64) ([]eventlog.Record, error) {
	recs, err := eventlog.ReadTail(ctx, c.Store, s, from, after)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	c.tails++
	c.recs += len(recs)
	return recs, err
}

// takeTails returns and resets the count of tail reads.
func (c *countingStore) takeTails() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.tails
	c.tails = 0
	return n
}

func (c *countingStore) ReadStream(ctx context.Context, s eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	recs, err := c.Store.ReadStream(ctx, s, from)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.whole == nil {
		c.whole = map[eventlog.StreamID]int{}
	}
	c.whole[s]++
	c.reads++
	c.recs += len(recs)
	return recs, err
}

func (c *countingStore) take() (reads, recs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	reads, recs, c.reads, c.recs = c.reads, c.recs, 0, 0
	return reads, recs
}

// longHistory appends a registration and then jobs booked and released
// until the technician's stream holds n events; it returns the records.
func longHistory(tb testing.TB, store eventlog.Store, id string, n int) []eventlog.Record {
	tb.Helper()
	stream := eventlog.Stream(eventlog.KindTechnician, id)
	at := start.Add(-time.Duration(n) * time.Hour)
	var batch []*eventsv1.Envelope
	add := func(m proto.Message) {
		e, err := eventlog.NewEvent(eventlog.Meta{Producer: app.Producer, Actor: "admin", CorrelationID: "corr", OccurredAt: at}, m)
		if err != nil {
			tb.Fatal(err)
		}
		batch = append(batch, e)
		at = at.Add(time.Hour)
	}
	add(&eventsv1.TechnicianRegistered{
		TechnicianId: id, DisplayName: id, ProductLines: []string{"chiller"}, Services: []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REPAIR},
		ServiceCentre: "sc-east", Region: "east", CalendarId: "always", MaxConcurrentJobs: 2, MaxDailyJobs: 6,
	})
	for i := 0; len(batch) < n; i++ {
		wo := fmt.Sprintf("wo-%d", i)
		add(&eventsv1.TechnicianJobBooked{TechnicianId: id, WorkOrderId: wo, ComplaintId: "c-" + wo, Day: at.Format(time.DateOnly)})
		if len(batch) < n {
			add(&eventsv1.TechnicianJobReleased{TechnicianId: id, WorkOrderId: wo, Reason: domain.ReleaseCompleted})
		}
	}
	for i := 0; i < len(batch); i += 500 { // in batches a JetStream append takes
		if _, err := store.Append(context.Background(), stream, uint64(i), batch[i:min(i+500, len(batch))]...); err != nil {
			tb.Fatal(err)
		}
	}
	recs, err := store.ReadStream(context.Background(), stream, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return recs
}

// fullFold is a technician folded from the whole stream.
func fullFold(tb testing.TB, store eventlog.Store, id string) *domain.Technician {
	tb.Helper()
	recs, err := store.ReadStream(context.Background(), eventlog.Stream(eventlog.KindTechnician, id), 1)
	if err != nil {
		tb.Fatal(err)
	}
	var t *domain.Technician
	for _, r := range recs {
		t = domain.EvolveTechnician(t, r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
		t.Position = r.Position // as the view and the commands keep it
	}
	return t
}

// TestTechnicianCommandReadsOnlyTheTail: a technician with years of jobs
// costs a command what the view has not seen yet, not the history, and
// decides exactly what a fold of the whole stream would.
func TestTechnicianCommandReadsOnlyTheTail(t *testing.T) {
	h := newHarness(t)
	mem := memstore.New(h.clock)
	recs := longHistory(t, mem, "t-long", 5000)
	store := &countingStore{Store: mem}
	// The view saw all but the last 3 events: it lags the log.
	view := app.NewView(adapters.NewCalendarSchedules(h.cals), slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, r := range recs[:len(recs)-3] {
		if err := view.Apply(h.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	seen := view.Technician("t-long")
	a, err := app.New(h.deps(store, view), app.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}

	got, err := a.SetTechnicianStatus(h.ctx, "admin", "t-long", eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ON_LEAVE)
	if err != nil {
		t.Fatal(err)
	}
	if reads, n := store.take(); reads != 1 || n != 3 {
		t.Errorf("the command made %d reads of %d records; want 1 read of the 3 the view had not seen", reads, n)
	}
	if n := store.takeTails(); n != 1 {
		t.Errorf("the command made %d tail reads after the view's position, want its one read to be one", n)
	}
	want := fullFold(t, mem, "t-long")
	if want.Version != 5001 || !reflect.DeepEqual(got, want) {
		t.Errorf("after the command: version %d, %+v\nwant the full fold's version %d, %+v", got.Version, got, want.Version, want)
	}
	if v := view.Technician("t-long"); !reflect.DeepEqual(v, want) {
		t.Errorf("the view holds version %d, want the full fold's %d", v.Version, want.Version)
	}
	if !reflect.DeepEqual(seen, fullFoldOf(recs[:len(recs)-3])) {
		t.Error("the command changed the technician the view held before it")
	}

	// Caught up, the next command and a read read nothing at all.
	if _, err := a.SetTechnicianStatus(h.ctx, "admin", "t-long", eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ACTIVE); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Technician(h.ctx, "t-long"); err != nil {
		t.Fatal(err)
	}
	if reads, n := store.take(); reads != 2 || n != 0 {
		t.Errorf("a command and a read made %d reads of %d records; want 2 of none", reads, n)
	}
	if n := store.takeTails(); n != 2 {
		t.Errorf("a command and a read made %d tail reads after the view's position, want both", n)
	}
	if got := view.Technician("t-long"); !reflect.DeepEqual(got, fullFold(t, mem, "t-long")) {
		t.Errorf("the view's technician (version %d) is not the full fold", got.Version)
	}
}

// Reconciling a booking on a technician with a long history, on JetStream,
// reads the booking event (its cause) and the commands' tails after the
// view's positions, not the history: every read of the technician's stream
// is a tail read, and all of them return a handful of records.
func TestReconcileReadsTheBookingAfterItsPosition(t *testing.T) {
	h := newHarness(t)
	longHistory(t, h.store, "t-long", 2001) // ends with a release: no open job
	store := &countingStore{Store: h.store}
	a := h.newAppOn(store, func(c *app.Config) { c.ReconcileGrace = time.Minute })
	h.receive("c7")
	if err := a.OpenWorkOrder(h.ctx, "c7", "wo7", h.onSiteSpec("east"), kernel.Cause{Actor: "routing"}); err != nil {
		t.Fatal(err)
	}
	bookDirectly(h, "t-long", "c7", "wo7") // a dispatcher that crashed after booking
	checkFor(t, 5*time.Second, func() error {
		b, ok := a.View().Technician("t-long").Open["wo7"]
		if !ok {
			return fmt.Errorf("view has not seen the booking")
		}
		if b.Version != 2002 || b.After == 0 {
			return fmt.Errorf("booking at version %d after position %d, want 2002 after a known position", b.Version, b.After)
		}
		return nil
	})
	h.clock.Advance(2 * time.Minute)
	store.take()
	store.takeTails()
	clear(store.whole)
	if err := a.Reconcile(h.ctx); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c7", "wo7"); o.Status != domain.StatusAssigned || o.TechnicianID != "t-long" {
		t.Fatalf("wo7 after reconcile: %s to %q, want assigned to t-long", o.Status, o.TechnicianID)
	}
	reads, recs := store.take()
	if tails := store.takeTails(); tails == 0 || recs > 20 {
		t.Errorf("reconcile made %d reads (%d of them tail reads) of %d records; want tail reads of a few records, not the 2000 of the history", reads, tails, recs)
	}
	// ReadStream scans a JetStream stream from its first event, whatever
	// version it reads from.
	if n := store.whole[eventlog.Stream(eventlog.KindTechnician, "t-long")]; n != 0 {
		t.Errorf("reconcile read the technician's stream with ReadStream %d times, want tail reads only", n)
	}
	var assigned *eventsv1.Envelope
	for _, r := range h.complaintEvents("c7") {
		if r.Event.GetTechnicianAssigned() != nil {
			assigned = r.Event
		}
	}
	booked, err := h.store.ReadStream(h.ctx, eventlog.Stream(eventlog.KindTechnician, "t-long"), 2002)
	if err != nil || len(booked) == 0 {
		t.Fatalf("read the booking: %d records, %v", len(booked), err)
	}
	if assigned == nil || assigned.GetCausationId() != booked[0].Event.GetEventId() {
		t.Errorf("the assignment is caused by %q, want the booking %q", assigned.GetCausationId(), booked[0].Event.GetEventId())
	}
}

func fullFoldOf(recs []eventlog.Record) *domain.Technician {
	var t *domain.Technician
	for _, r := range recs {
		t = domain.EvolveTechnician(t, r.Event.GetOccurredAt().AsTime(), eventlog.Payload(r.Event))
		t.Position = r.Position // as the view and the commands keep it
	}
	return t
}
