package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
)

// crashingStore stores only the first keep events of sla-clock's next
// append, as the log does when sla-clock dies between two of them.
type crashingStore struct {
	*memstore.Store
	keep int
}

func (s *crashingStore) Append(ctx context.Context, stream eventlog.StreamID, expected uint64, events ...*ev.Envelope) (eventlog.AppendResult, error) {
	if s.keep < 0 || events[0].GetProducer() != domain.Producer {
		return s.Store.Append(ctx, stream, expected, events...)
	}
	keep := s.keep
	s.keep = -1
	return eventlog.AppendResult{}, s.AppendCut(ctx, stream, expected, keep, events...)
}

type step struct {
	after   time.Duration // after t0
	payload proto.Message
}

// A crash after any event of a multi-event append loses nothing and
// duplicates nothing: the restarted service (Rebuild) ends with the same
// clock events and clocks as one that never crashed. The histories are
// handled in one decision each, so one append covers several triggers,
// clock replacements (a paused one among them) and late breaches.
func TestCrashInsideAnAppendLosesNothing(t *testing.T) {
	h := time.Hour
	const wo = "wo-1"
	for name, steps := range map[string][]step{
		"received, accepted, classified major": {
			{0, received(t0)}, {h, &ev.ComplaintAccepted{}},
			{2 * h, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3}},
		},
		"paused clock replaced on reclassification": {
			{0, received(t0)}, {h, &ev.ComplaintAccepted{}}, {h, &ev.ResponseRecorded{}},
			{2 * h, &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS}},
			{3 * h, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3}},
			{5 * h, &ev.ComplaintTakenOffHold{}},
		},
		"resolved, reopened, resolved again": {
			{0, received(t0)}, {h, &ev.ComplaintAccepted{}}, {h, &ev.ResponseRecorded{}},
			{2 * h, &ev.ComplaintResolved{}}, {3 * h, &ev.ComplaintReopened{}},
			{4 * h, &ev.ComplaintResolved{}},
			{5 * h, &ev.FeedbackDelivered{Round: ev.FeedbackRound_FEEDBACK_ROUND_FIRST}},
		},
		"technician reassigned": {
			{0, received(t0)}, {h, &ev.ComplaintAccepted{}},
			{2 * h, &ev.WorkOrderOpened{WorkOrderId: wo}},
			{2 * h, &ev.TechnicianAssigned{WorkOrderId: wo, TechnicianId: "t1"}},
			{3 * h, &ev.TechnicianAssigned{WorkOrderId: wo, TechnicianId: "t2"}},
			{3 * h, &ev.CustomerContacted{WorkOrderId: wo}},
		},
		"breaches fired late among the triggers": {
			{0, received(t0)}, {50 * h, &ev.ComplaintAccepted{}}, {60 * h, &ev.ResponseRecorded{}},
			{61 * h, &ev.ComplaintWithdrawn{}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			now := t0.Add(100 * time.Hour)
			want, wantClocks, n := crashRun(t, steps, now, -1)
			if n < 2 {
				t.Fatalf("the decision appended %d events: no batch to cut", n)
			}
			for keep := 1; keep < n; keep++ {
				got, gotClocks, _ := crashRun(t, steps, now, keep)
				if !slices.Equal(got, want) {
					t.Errorf("crash after %d of %d events: sla-clock wrote\n  %v\nwant\n  %v", keep, n, got, want)
				}
				if !slices.Equal(gotClocks, wantClocks) {
					t.Errorf("crash after %d of %d events: clocks\n  %v\nwant\n  %v", keep, n, gotClocks, wantClocks)
				}
			}
		})
	}
}

// crashRun writes the history, lets one instance decide it (dying after keep
// events of its append when keep >= 0), then has a new instance rebuild. It
// returns the sorted keys of the clock events written, the final clocks and
// how many events the first decision appended.
func crashRun(t *testing.T, steps []step, now time.Time, keep int) (keys []string, clocks []string, first int) {
	t.Helper()
	const id = "0190abcd-0000-7000-8000-0000000000c2"
	ctx := context.Background()
	inner := memstore.New(nil)
	for _, s := range steps {
		write(t, inner, id, t0.Add(s.after), s.payload)
	}
	clk := clock.NewFake(now)
	err := newApp(t, &crashingStore{Store: inner, keep: keep}, clk, Partition{}).Handle(ctx, id)
	if keep < 0 && err != nil || keep >= 0 && !errors.Is(err, memstore.ErrCut) {
		t.Fatalf("first instance: %v", err)
	}
	first = len(own(t, inner, id))
	if err := newApp(t, inner, clk, Partition{}).Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	written := own(t, inner, id)
	for _, e := range written {
		keys = append(keys, key(e))
	}
	slices.Sort(keys)
	st, err := newApp(t, inner, clk, Partition{}).load(ctx, id, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range st.Clocks {
		clocks = append(clocks, fmt.Sprintf("%s %s %s deadline %s left %s", c.ID, c.Subject, c.Status, c.Deadline.Format(time.RFC3339), c.Remaining))
	}
	if len(st.Pending) != 0 {
		t.Errorf("keep %d: %d triggers still pending after the rebuild", keep, len(st.Pending))
	}
	return keys, clocks, first
}

// A reapply cut short by a crash is completed by the same request again,
// which then does nothing more; no clock is left open twice.
func TestReapplyCutShortIsCompletedByItsRetry(t *testing.T) {
	const id = "0190abcd-0000-7000-8000-0000000000c3"
	h := time.Hour
	run := func(keep int) (keys, clocks []string, first int) {
		ctx := context.Background()
		inner := memstore.New(nil)
		clk := clock.NewFake(t0.Add(3 * h))
		write(t, inner, id, t0, received(t0))
		write(t, inner, id, t0.Add(h), &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS})
		if err := newApp(t, inner, clk, Partition{}).Handle(ctx, id); err != nil {
			t.Fatal(err)
		}
		before := len(own(t, inner, id))
		_, err := newApp(t, &crashingStore{Store: inner, keep: keep}, clk, Partition{}).Reapply(ctx, id, "audit", "")
		if keep < 0 && err != nil || keep >= 0 && !errors.Is(err, memstore.ErrCut) {
			t.Fatalf("first reapply: %v", err)
		}
		first = len(own(t, inner, id)) - before
		if _, err := newApp(t, inner, clk, Partition{}).Reapply(ctx, id, "audit", ""); err != nil {
			t.Fatal(err)
		}
		for _, e := range own(t, inner, id) {
			keys = append(keys, key(e))
		}
		st, err := newApp(t, inner, clk, Partition{}).load(ctx, id, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range st.Clocks {
			clocks = append(clocks, fmt.Sprintf("%s %s deadline %s left %s", c.ID, c.Status, c.Deadline.Format(time.RFC3339), c.Remaining))
		}
		return keys, clocks, first
	}
	want, wantClocks, n := run(-1)
	if n < 4 {
		t.Fatalf("the reapply appended %d events, want at least two replacements", n)
	}
	for keep := 1; keep < n; keep++ {
		got, gotClocks, _ := run(keep)
		if !slices.Equal(got, want) {
			t.Errorf("crash after %d of %d events: sla-clock wrote\n  %v\nwant\n  %v", keep, n, got, want)
		}
		if !slices.Equal(gotClocks, wantClocks) {
			t.Errorf("crash after %d of %d events: clocks\n  %v\nwant\n  %v", keep, n, gotClocks, wantClocks)
		}
	}
}
