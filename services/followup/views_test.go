package followup_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/followup/internal/app"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// rebuiltViews folds the whole log into fresh views and encodes them.
func (e *env) rebuiltViews() []byte {
	e.t.Helper()
	v := &app.Views{Tracker: app.NewTracker(), KPI: kpi.New()}
	for from := uint64(1); ; {
		recs, err := e.log.ReadAll(context.Background(), from, 100)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if err := v.Apply(context.Background(), r); err != nil {
				e.t.Fatal(err)
			}
		}
		from = recs[len(recs)-1].Position + 1
	}
	b, err := v.Snapshot()
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// sameAsRebuilt waits for the service's views to reach the end of the log
// and holds them equal, byte for byte, to views rebuilt from the log.
func (e *env) sameAsRebuilt(r *running) {
	e.t.Helper()
	last := e.lastPosition()
	checkFor(e.t, 10*time.Second, func() error {
		if r.svc.Follower().Position() < last {
			return errString("views not caught up")
		}
		return nil
	})
	got, err := r.svc.Views().Snapshot()
	if err != nil {
		e.t.Fatal(err)
	}
	if want := e.rebuiltViews(); !bytes.Equal(got, want) {
		e.t.Fatalf("service views (%d bytes) differ from the rebuilt ones (%d bytes):\n%s\n%s", len(got), len(want), got, want)
	}
}

// A restart restores the tracker and the KPIs from their snapshot and
// catches up to what a full rebuild gives; a damaged snapshot or one of
// another format is refused, the views are rebuilt and the service works.
func TestViewsRestoredFromSnapshotEqualRebuilt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	snaps, err := checkpoint.NewJetStream(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	e.snaps = snaps

	r := e.startService()
	if st := r.svc.Follower().Started(); st.Restored {
		t.Fatalf("first start restored: %+v", st)
	}
	e.emit("c1", received, l1, &eventsv1.ComplaintAssigned{Team: "cs", Owner: "u1"}, resolved())
	e.waitForTypes("c1", "ComplaintReceived", "ComplaintClassified", "ComplaintAssigned", "ComplaintResolved",
		"FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent")
	e.emit("c2", received, l3, &eventsv1.ComplaintWithdrawn{Reason: "changed mind"})
	e.sameAsRebuilt(r)
	r.stop() // saves a last snapshot
	saved, err := snaps.Load(ctx, app.ViewsName)
	if err != nil {
		t.Fatal(err)
	}

	// While it is down: events it only folds.
	e.clk.Advance(time.Hour)
	e.emit("c3", received, l1, &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"},
		&eventsv1.SlaMet{ClockId: "k3", Target: eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE})
	r = e.startService()
	if st := r.svc.Follower().Started(); !st.Restored || st.Position != saved.Position {
		t.Fatalf("second start: %+v, want restored at %d", st, saved.Position)
	}
	e.sameAsRebuilt(r)
	if tasks := r.svc.Views().Tracker.DueTasks(e.clk.Now().Add(30*day), e.clk.Now(), 0); len(tasks) != 2 {
		t.Fatalf("due tasks after restore: %+v, want c1's two feedback tasks", tasks)
	}
	r.stop()

	refused := func(name, want string) {
		t.Helper()
		r := e.startService()
		st := r.svc.Follower().Started()
		if st.Restored || !strings.Contains(st.Reason, want) {
			t.Fatalf("%s: start %+v, want a rebuild because %q", name, st, want)
		}
		// It still works: it reacts to a resolution and its views are right.
		id := "c-" + name
		e.emit(id, received, l1, resolved())
		e.waitForTypes(id, "ComplaintReceived", "ComplaintClassified", "ComplaintResolved",
			"FeedbackTaskScheduled", "FeedbackTaskScheduled", "SurveySent")
		e.sameAsRebuilt(r)
		r.stop()
	}

	obs, err := e.js.ObjectStore(ctx, checkpoint.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obs.PutBytes(ctx, app.ViewsName, []byte("garbage, not a snapshot")); err != nil {
		t.Fatal(err)
	}
	refused("damaged", "damaged")

	recs, err := e.log.ReadAll(ctx, 1, 1)
	if err != nil || len(recs) == 0 {
		t.Fatal(recs, err)
	}
	foreign := checkpoint.Snapshot{Format: app.ViewsFormat + 1, Position: 1, Hash: eventlog.Hash(recs[0].Raw), Data: []byte("{}")}
	if err := snaps.Save(ctx, app.ViewsName, foreign); err != nil {
		t.Fatal(err)
	}
	refused("foreign", "format")

	// Format 3 counted KPIs from ComplaintReceived's occurred_at, not its
	// received_at: its summaries must not be read as format 4's.
	older := checkpoint.Snapshot{Format: 3, Position: 1, Hash: eventlog.Hash(recs[0].Raw), Data: []byte("{}")}
	if err := snaps.Save(ctx, app.ViewsName, older); err != nil {
		t.Fatal(err)
	}
	refused("format3", "snapshot of format 3")
}
