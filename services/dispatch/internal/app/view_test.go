package app_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/adapters"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

func (h *harness) newView() *app.View {
	return app.NewView(adapters.NewCalendarSchedules(h.cals), slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func (h *harness) log() []eventlog.Record {
	h.t.Helper()
	var out []eventlog.Record
	for from := uint64(1); ; {
		recs, err := h.store.ReadAll(h.ctx, from, 100)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		from = recs[len(recs)-1].Position + 1
	}
}

func (h *harness) encode(v *app.View) []byte {
	h.t.Helper()
	b, err := v.Snapshot()
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// rebuilt folds the whole log into a fresh view.
func (h *harness) rebuilt() *app.View {
	h.t.Helper()
	v := h.newView()
	for _, r := range h.log() {
		if err := v.Apply(h.ctx, r); err != nil {
			h.t.Fatal(err)
		}
	}
	return v
}

// follow runs a Follower of a fresh view on store until it caught up with
// the log and reached position, then stops it (it saves a last snapshot).
func (h *harness) follow(store checkpoint.Store, position uint64) (*app.View, *checkpoint.Start) {
	h.t.Helper()
	v := h.newView()
	f, err := checkpoint.New(checkpoint.Options{
		Name: app.ViewName, Format: app.ViewFormat, Log: h.store, Snapshots: store, Clock: h.clock,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, v)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	checkFor(h.t, 10*time.Second, func() error {
		if f.Position() < position {
			return errString("view not caught up")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		h.t.Fatal(err)
	}
	return v, f.Started()
}

type errString string

func (e errString) Error() string { return string(e) }

// Finished orders leave the view once their week has passed in log time;
// a view restored from a snapshot and caught up equals one rebuilt from the
// whole log, byte for byte; a damaged snapshot or one of another format is
// refused, the view rebuilt, and dispatching still works on it.
func TestViewSnapshotsAndRetiresFinishedOrders(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-1", "east")
	h.register(a, "tech-2", "east")
	for _, id := range []string{"1", "2", "3"} {
		if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c"+id, "wo"+id, h.onSiteSpec("east"))); err != nil {
			t.Fatal(err)
		}
	}
	for _, wo := range []string{"wo1", "wo2"} {
		if _, err := a.CancelWorkOrder(h.ctx, "admin", wo, "customer fixed it"); err != nil {
			t.Fatal(err)
		}
	}

	snaps, err := checkpoint.NewJetStream(h.ctx, h.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	recs := h.log()
	v, st := h.follow(snaps, recs[len(recs)-1].Position)
	if st.Restored {
		t.Fatalf("first start restored: %+v", st)
	}
	if v.Order("wo1") == nil || v.Order("wo3") == nil {
		t.Fatal("a finished order left the view before its week passed")
	}

	// Eight days later (log time moves with the next events) wo1 and wo2
	// leave; wo3 is still held.
	h.clock.Advance(8 * 24 * time.Hour)
	if _, err := a.SetTechnicianStatus(h.ctx, "admin", "tech-2", eventsv1.TechnicianStatus_TECHNICIAN_STATUS_INACTIVE); err != nil {
		t.Fatal(err)
	}
	want := h.rebuilt()
	if want.Order("wo1") != nil || want.Order("wo2") != nil || want.ComplaintOf("wo1") != "" {
		t.Fatal("finished orders still in the rebuilt view after their week")
	}
	if o := want.Order("wo3"); o == nil || o.Status != domain.StatusAssigned {
		t.Fatalf("wo3 in the rebuilt view: %+v", o)
	}

	// Cut anywhere: restore and catch up = rebuild.
	recs = h.log()
	for _, cut := range []int{1, len(recs) / 2, len(recs) - 2} {
		prefix := h.newView()
		for _, r := range recs[:cut] {
			_ = prefix.Apply(h.ctx, r)
		}
		v := h.newView()
		if err := v.Restore(recs[cut-1].Position, h.encode(prefix)); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs[cut:] {
			_ = v.Apply(h.ctx, r)
		}
		if got := h.encode(v); !bytes.Equal(got, h.encode(want)) {
			t.Fatalf("cut %d: restored and caught up differs from rebuilt:\n%s\n%s", cut, got, h.encode(want))
		}
	}

	// Through the SNAPSHOTS object store, as the service starts.
	last := recs[len(recs)-1].Position
	v, st = h.follow(snaps, last)
	if !st.Restored || st.Position == 0 {
		t.Fatalf("second start: %+v, want restored", st)
	}
	if !bytes.Equal(h.encode(v), h.encode(want)) {
		t.Fatal("restored view differs from rebuilt")
	}

	refused := func(name, reason string) {
		t.Helper()
		v, st := h.follow(snaps, h.log()[len(h.log())-1].Position)
		if st.Restored || !strings.Contains(st.Reason, reason) {
			t.Fatalf("%s: start %+v, want a rebuild because %q", name, st, reason)
		}
		if !bytes.Equal(h.encode(v), h.encode(h.rebuilt())) {
			t.Fatalf("%s: view differs from rebuilt", name)
		}
		// Dispatch still works on it.
		b, err := app.New(h.deps(h.store, v), app.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		spec := h.onSiteSpec("east")
		spec.RequiredBy = timestamppb.New(h.clock.Now().Add(24 * time.Hour))
		if err := b.HandleComplaintEvent(h.ctx, h.requestDispatch("c-"+name, "wo-"+name, spec)); err != nil {
			t.Fatal(err)
		}
		if o := h.order("c-"+name, "wo-"+name); o.Status != domain.StatusAssigned || o.TechnicianID != "tech-1" {
			t.Fatalf("%s: new order %s to %q, want assigned to tech-1", name, o.Status, o.TechnicianID)
		}
		if _, err := b.CancelWorkOrder(h.ctx, "admin", "wo-"+name, "test done"); err != nil {
			t.Fatal(err)
		}
	}
	obs, err := h.js.ObjectStore(h.ctx, checkpoint.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(h.ctx, app.ViewName, []byte("garbage, not a snapshot")); err != nil {
		t.Fatal(err)
	}
	refused("damaged", "damaged")
	if err := snaps.Save(h.ctx, app.ViewName, checkpoint.Snapshot{Format: app.ViewFormat + 1, Position: 1, Hash: eventlog.Hash(recs[0].Raw), Data: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	refused("foreign", "format")
}

// In a log written out of time order (an import, the scale harness's)
// log time reaches its end early; a complaint finished long before it
// leaves the view at once, though log time never moves again.
func TestFinishedOrdersOfAnImportedLogLeaveAtOnce(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-1", "east")
	for _, id := range []string{"1", "2"} {
		if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c"+id, "wo"+id, h.onSiteSpec("east"))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.CancelWorkOrder(h.ctx, "admin", "wo1", "customer fixed it"); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(365 * 24 * time.Hour)
	h.register(a, "tech-late", "east")
	// The import wrote the year-later event first.
	recs := h.log()
	imported := append([]eventlog.Record{recs[len(recs)-1]}, recs[:len(recs)-1]...)
	v := h.newView()
	for _, r := range imported {
		if err := v.Apply(h.ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if v.Order("wo1") != nil || v.ComplaintOf("wo1") != "" {
		t.Fatal("wo1, finished a year before log time, is still in the view")
	}
	if v.Order("wo2") == nil {
		t.Fatal("wo2, still in play, left the view")
	}
}
