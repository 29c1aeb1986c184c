package routing

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/app"
)

// history takes complaints from..to-1 through intake and assignment, a
// month and a half apart, three customers about one product each, and
// closes every other one: old closed ones leave the view on the way.
func (e *env) history(t *testing.T, fc *clock.Fake, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		id := fmt.Sprintf("c-%03d", i)
		e.intake(t, id, texts[i%len(texts)], fmt.Sprintf("cust-%d", i%3))
		e.waitAssigned(t, id)
		if i%2 == 0 {
			e.write(t, id, &eventsv1.ComplaintResolved{ResolutionCode: "FIXED", Summary: "done"},
				&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, ClosedBy: "system"})
		}
		fc.Advance(45 * 24 * time.Hour)
	}
}

func (e *env) waitAssigned(t *testing.T, ids ...string) {
	t.Helper()
	checkFor(t, 20*time.Second, func() error {
		for _, id := range ids {
			if e.count(t, id)["ComplaintAssigned"] == 0 {
				return fmt.Errorf("%s not assigned yet", id)
			}
		}
		return nil
	})
}

// rebuilt is a fresh view built from the whole log, as a start without a
// snapshot builds it.
func (e *env) rebuilt(t *testing.T) *app.View {
	t.Helper()
	p, err := embeddedPolicy()
	if err != nil {
		t.Fatal(err)
	}
	v := app.NewView(p)
	f, err := checkpoint.New(checkpoint.Options{Name: app.ViewName, Format: app.ViewFormat, Log: e.store}, v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, f) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-f.CaughtUp():
	case err := <-done:
		t.Fatalf("rebuild: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("rebuild did not catch up")
	}
	return v
}

// sameAsRebuilt: once routing is idle, its view encodes to the same bytes
// as a view rebuilt from the whole log.
func (e *env) sameAsRebuilt(t *testing.T, svc *Service) []byte {
	t.Helper()
	checkFor(t, 20*time.Second, func() error { return e.consumersIdle("routing") })
	want := e.rebuilt(t)
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := svc.view.WaitFor(ctx, want.Position()); err != nil {
		t.Fatal(err)
	}
	got, err := svc.view.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	wantB, err := want.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if svc.view.Position() != want.Position() || !bytes.Equal(got, wantB) {
		t.Fatalf("view at %d:\n%s\nrebuilt at %d:\n%s", svc.view.Position(), got, want.Position(), wantB)
	}
	return got
}

// TestViewRestoredAndCaughtUpEqualsRebuild: routing stops (saving its
// view), intake goes on, routing starts again from the snapshot, catches
// up and handles what came meanwhile; its view is then byte for byte the
// one rebuilt from the whole log, closed complaints pruned alike.
func TestViewRestoredAndCaughtUpEqualsRebuild(t *testing.T) {
	fc := clock.NewFake(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	e := newEnvAt(t, fc)
	svc, stop := e.run(t, "routing")
	roster(t, e.ctx, client(t, svc))
	e.history(t, fc, 0, 6)
	stop()
	at := svc.view.Position()

	// While routing is down: more complaints, and a close.
	for i := 6; i < 9; i++ {
		e.intake(t, fmt.Sprintf("c-%03d", i), texts[i%len(texts)], fmt.Sprintf("cust-%d", i%3))
		fc.Advance(8 * 24 * time.Hour)
	}
	e.write(t, "c-001", &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE, ClosedBy: "system"})

	svc = e.start(t, "routing")
	if st := svc.follower.Started(); st == nil || !st.Restored || st.Position != at {
		t.Fatalf("start %+v, want restored from position %d", st, at)
	}
	e.waitAssigned(t, "c-006", "c-007", "c-008")
	e.write(t, "c-007", &eventsv1.ComplaintResolved{ResolutionCode: "FIXED", Summary: "done"},
		&eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, ClosedBy: "system"})
	snap := e.sameAsRebuilt(t, svc)
	// The log time is now day 294: closed complaints accepted more than
	// 90+30 days before it left the view (c-001 as soon as it closed);
	// c-004 and c-007 (closed, days 180 and 278) and c-003 (open, day 135)
	// are kept.
	want := map[string]bool{`"c-000"`: false, `"c-001"`: false, `"c-002"`: false, `"c-003"`: true, `"c-004"`: true, `"c-007"`: true}
	for id, want := range want {
		if got := bytes.Contains(snap, []byte(id)); got != want {
			t.Errorf("snapshot holds %s: %v, want %v", id, got, want)
		}
	}
}

// TestViewSnapshotRefusedFallsBackToRebuild: a damaged snapshot, one of
// another format and one whose state does not decode are not restored; the
// view is rebuilt from the log and routing still assigns.
func TestViewSnapshotRefusedFallsBackToRebuild(t *testing.T) {
	cases := map[string]func(t *testing.T, e *env){
		"garbage in the object store": func(t *testing.T, e *env) {
			obs, err := e.js.ObjectStore(e.ctx, checkpoint.Bucket)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := obs.PutBytes(e.ctx, app.ViewName, []byte("not a snapshot at all")); err != nil {
				t.Fatal(err)
			}
		},
		"foreign format": func(t *testing.T, e *env) { e.saveSnapshot(t, app.ViewFormat+41, []byte(`{}`)) },
		"state that does not decode": func(t *testing.T, e *env) {
			e.saveSnapshot(t, app.ViewFormat, []byte(`{"Complaints": [`))
		},
		"a customer's complaint missing": func(t *testing.T, e *env) {
			e.saveSnapshot(t, app.ViewFormat, []byte(`{"KeepHours": 100000, "ByCustomer": [{"Ref": "x", "IDs": ["c-gone"]}]}`))
		},
		"kept for a shorter window": func(t *testing.T, e *env) {
			e.saveSnapshot(t, app.ViewFormat, []byte(`{"KeepHours": 24}`))
		},
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			svc, stop := e.run(t, "routing")
			roster(t, e.ctx, client(t, svc))
			e.intake(t, "c-before", texts[0], "cust-1")
			e.waitAssigned(t, "c-before")
			stop()
			spoil(t, e)

			svc = e.start(t, "routing")
			if st := svc.follower.Started(); st == nil || st.Restored || st.Reason == "" {
				t.Fatalf("start %+v, want a rebuild with its reason", st)
			} else {
				t.Logf("not restored: %s", st.Reason)
			}
			e.intake(t, "c-after", texts[1], "cust-2")
			e.waitAssigned(t, "c-after")
			e.sameAsRebuilt(t, svc)
		})
	}
}

// saveSnapshot stores a snapshot of the view under its name, tied to this
// log's first event, with the given format and state.
func (e *env) saveSnapshot(t *testing.T, format uint32, data []byte) {
	t.Helper()
	recs, err := e.store.ReadAll(e.ctx, 1, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("first event: %v %v", recs, err)
	}
	err = e.snaps.Save(e.ctx, app.ViewName, checkpoint.Snapshot{Format: format, Position: 1, Hash: eventlog.Hash(recs[0].Raw), Data: data})
	if err != nil {
		t.Fatal(err)
	}
}
