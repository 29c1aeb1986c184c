package app_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// Given 5 technicians with room for 2 jobs each, when 20 orders are
// dispatched at the same moment by two instances (each with its own,
// lagging view), exactly 10 are assigned, the other 10 are unassignable, and
// no technician's stream ever holds more than 2 open jobs.
func TestSimultaneousDispatchesNeverOverbook(t *testing.T) {
	h := newHarness(t)
	instances := []*app.App{h.newApp(), h.newApp()}
	techs := []string{"t1", "t2", "t3", "t4", "t5"}
	for _, id := range techs {
		h.register(instances[0], id, "east", func(p *domain.TechnicianProfile) { p.MaxConcurrent, p.MaxDaily = 2, 10 })
	}
	for _, a := range instances { // both views know the technicians before the race
		checkFor(t, 5*time.Second, func() error {
			if n := len(a.View().Technicians()); n != len(techs) {
				return fmt.Errorf("view knows %d technicians", n)
			}
			return nil
		})
	}
	const orders = 20
	reqs := make([]eventlog.Record, orders)
	for i := range reqs {
		reqs[i] = h.requestDispatch(fmt.Sprintf("cc%02d", i), fmt.Sprintf("wo%02d", i), h.onSiteSpec("east"))
	}
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	begin := make(chan struct{})
	for i, rec := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			errs <- instances[i%2].HandleComplaintEvent(h.ctx, rec)
		}()
	}
	close(begin)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	assigned, unassignable := map[string]string{}, 0
	for i := range orders {
		o := h.order(fmt.Sprintf("cc%02d", i), fmt.Sprintf("wo%02d", i))
		switch o.Status {
		case domain.StatusAssigned:
			assigned[o.ID] = o.TechnicianID
		case domain.StatusUnassignable:
			unassignable++
		default:
			t.Errorf("order %s is %s", o.ID, o.Status)
		}
	}
	if len(assigned) != 10 || unassignable != 10 {
		t.Fatalf("%d assigned, %d unassignable; want 10 and 10", len(assigned), unassignable)
	}
	held := 0
	for _, id := range techs {
		tech := h.technician(id) // fails the test if any prefix is over capacity
		if tech.OpenJobs() != 2 {
			t.Errorf("technician %s holds %d jobs, want 2", id, tech.OpenJobs())
		}
		for wo := range tech.Open {
			held++
			if assigned[wo] != id {
				t.Errorf("technician %s holds %s, which is assigned to %q", id, wo, assigned[wo])
			}
		}
	}
	if held != 10 {
		t.Fatalf("%d bookings held for 10 assignments", held)
	}
}

// bookDirectly appends a booking to a technician's stream as a dispatcher
// would just before crashing (no assignment follows).
func bookDirectly(h *harness, techID, complaintID, workOrderID string) {
	h.t.Helper()
	stream := eventlog.Stream(eventlog.KindTechnician, techID)
	recs, err := h.store.ReadStream(h.ctx, stream, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := eventlog.NewEvent(eventlog.Meta{Producer: "dispatch", Actor: "system", OccurredAt: h.clock.Now()},
		&eventsv1.TechnicianJobBooked{TechnicianId: techID, WorkOrderId: workOrderID, ComplaintId: complaintID, Day: domain.Day(nil, h.clock.Now())})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Append(h.ctx, stream, uint64(len(recs)), e); err != nil {
		h.t.Fatal(err)
	}
}

// Given a dispatcher that crashed between booking a technician and
// recording the assignment, reconciliation after the grace period completes
// the booking into the assignment (no second booking), and releases a
// booking whose order went to someone else.
func TestReconcileAfterCrashBetweenBookingAndAssignment(t *testing.T) {
	h := newHarness(t)
	a := h.newApp(func(c *app.Config) { c.ReconcileGrace = time.Minute })
	h.register(a, "tech-a", "east")
	h.register(a, "tech-b", "east")
	// The order is opened, but the dispatcher died after booking tech-b.
	h.receive("c7")
	if err := a.OpenWorkOrder(h.ctx, "c7", "wo7", h.onSiteSpec("east"), kernel.Cause{Actor: "routing"}); err != nil {
		t.Fatal(err)
	}
	bookDirectly(h, "tech-b", "c7", "wo7")
	// An orphan: tech-a booked for an order already assigned to tech-b.
	h.receive("c8")
	if err := a.OpenWorkOrder(h.ctx, "c8", "wo8", h.onSiteSpec("east"), kernel.Cause{Actor: "routing"}); err != nil {
		t.Fatal(err)
	}
	bookDirectly(h, "tech-b", "c8", "wo8")
	checkFor(t, 5*time.Second, func() error { // the redelivery finds the booking through the view
		if _, ok := a.View().Technician("tech-b").Open["wo8"]; !ok {
			return fmt.Errorf("view has not seen tech-b's booking")
		}
		return nil
	})
	if _, err := a.Dispatch(h.ctx, "c8", "wo8", kernel.Cause{Actor: "routing"}); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c8", "wo8"); o.TechnicianID != "tech-b" {
		t.Fatalf("wo8 should complete the held booking, went to %q", o.TechnicianID)
	}
	bookDirectly(h, "tech-a", "c8", "wo8")
	checkFor(t, 5*time.Second, func() error {
		if _, ok := a.View().Technician("tech-a").Open["wo8"]; !ok {
			return fmt.Errorf("view has not seen the orphan booking")
		}
		return nil
	})

	// Within the grace period a live dispatcher may still be between the appends.
	if err := a.Reconcile(h.ctx); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c7", "wo7"); o.Status != domain.StatusOpen {
		t.Fatalf("reconciled within the grace period: %s", o.Status)
	}
	h.clock.Advance(2 * time.Minute)
	if err := a.Reconcile(h.ctx); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c7", "wo7"); o.Status != domain.StatusAssigned || o.TechnicianID != "tech-b" {
		t.Fatalf("wo7 after reconcile: %s to %q", o.Status, o.TechnicianID)
	}
	b := h.technician("tech-b")
	if b.OpenJobs() != 2 {
		t.Fatalf("tech-b holds %d jobs, want wo7 and wo8", b.OpenJobs())
	}
	if _, ok := h.technician("tech-a").Open["wo8"]; ok {
		t.Fatal("the orphan booking of tech-a was not released")
	}
	// Reconciling again changes nothing.
	before, events := h.technician("tech-b").Version, len(h.complaintEvents("c7"))
	if err := a.Reconcile(h.ctx); err != nil {
		t.Fatal(err)
	}
	if h.technician("tech-b").Version != before || len(h.complaintEvents("c7")) != events {
		t.Fatal("a second reconcile appended events")
	}
}
