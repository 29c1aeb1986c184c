package view

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var t0 = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC)

// memSnapshots is a checkpoint.Store in memory.
type memSnapshots struct {
	mu   sync.Mutex
	snap map[string]checkpoint.Snapshot
	raw  map[string][]byte // stored bytes replacing a snapshot (damage)
}

func newMemSnapshots() *memSnapshots {
	return &memSnapshots{snap: map[string]checkpoint.Snapshot{}, raw: map[string][]byte{}}
}

func (m *memSnapshots) Save(_ context.Context, name string, s checkpoint.Snapshot) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap[name], m.raw[name] = s, nil
	return nil
}

func (m *memSnapshots) Load(_ context.Context, name string) (checkpoint.Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.raw[name]; b != nil {
		return checkpoint.Decode(b)
	}
	s, ok := m.snap[name]
	if !ok {
		return checkpoint.Snapshot{}, checkpoint.ErrNoSnapshot
	}
	return s, nil
}

// logWriter appends complaint events to a memstore log.
type logWriter struct {
	t   testing.TB
	log *memstore.Store
}

func (w logWriter) add(id string, payloads ...proto.Message) {
	w.t.Helper()
	stream := eventlog.ComplaintStream(id)
	recs, err := w.log.ReadStream(context.Background(), stream, 1)
	if err != nil {
		w.t.Fatal(err)
	}
	var evs []*eventsv1.Envelope
	for _, p := range payloads {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "test", Actor: "test", OccurredAt: t0}, p)
		if err != nil {
			w.t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if _, err := w.log.Append(context.Background(), stream, eventlog.LastVersion(recs), evs...); err != nil {
		w.t.Fatal(err)
	}
}

func ts(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

// history writes n complaints at various stages of their work: some
// closed, some withdrawn, some on hold, with clocks met, warned, breached.
func history(w logWriter, from, n int) {
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("c-%05d", i)
		at := t0.Add(time.Duration(i) * time.Minute)
		w.add(id,
			&eventsv1.ComplaintReceived{Channel: eventsv1.Channel(1 + i%5), ReceivedAt: ts(at),
				Description: fmt.Sprintf("空调开机后自动关机 case %d", i), Product: &eventsv1.Product{SerialNumber: fmt.Sprintf("SN-%d", i)}},
			&eventsv1.SlaClockStarted{ClockId: id + "-response", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, Deadline: ts(at.Add(time.Duration(1+i%7) * time.Hour))},
			&eventsv1.SlaClockStarted{ClockId: id + "-resolution", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, Deadline: ts(at.Add(48 * time.Hour))},
			&eventsv1.ComplaintAccepted{Automatic: true},
			&eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: eventsv1.Severity(1 + i%4), Priority: eventsv1.Priority(1 + i%3), RulesFired: []string{"r1"}},
			&eventsv1.ComplaintAssigned{Team: "technical-support", Owner: fmt.Sprintf("agent-%d", i%3)},
		)
		switch i % 6 {
		case 0:
			w.add(id, &eventsv1.AssignmentAccepted{Owner: "x"}, &eventsv1.ResponseRecorded{Summary: "called"},
				&eventsv1.SlaMet{ClockId: id + "-response"})
		case 1:
			w.add(id, &eventsv1.ComplaintWithdrawn{Reason: "r"})
		case 2:
			w.add(id, &eventsv1.ComplaintPutOnHold{Reason: eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_PARTS},
				&eventsv1.SlaClockPaused{ClockId: id + "-resolution"})
		case 3:
			w.add(id, &eventsv1.SlaWarning{ClockId: id + "-response", ThresholdPercent: 75},
				&eventsv1.SlaBreached{ClockId: id + "-response"},
				&eventsv1.ComplaintEscalated{ToLevel: eventsv1.EscalationLevel_ESCALATION_LEVEL_TEAM_LEAD})
		case 4:
			w.add(id, &eventsv1.ComplaintResolved{Summary: "done"}, &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED})
		}
	}
}

// follow runs a follower of a new view until it has caught up, then stops
// it (which saves a snapshot) and returns the view and how it started.
func follow(t *testing.T, log eventlog.Store, snaps checkpoint.Store, secret string, rebuild bool) (*View, *checkpoint.Start) {
	t.Helper()
	v := New(NewIndex([]byte(secret)))
	f, err := checkpoint.New(checkpoint.Options{Name: Name, Format: Format, Log: log, Snapshots: snaps, Rebuild: rebuild}, v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx, f) }()
	select {
	case <-f.CaughtUp():
	case err := <-done:
		t.Fatalf("follower stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("view did not catch up")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return v, f.Started()
}

func snapshotOf(t *testing.T, v *View) []byte {
	t.Helper()
	b, err := v.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRestoredAndCaughtUpEqualsRebuilt(t *testing.T) {
	log := memstore.New(clock.NewFake(t0))
	w := logWriter{t, log}
	snaps := newMemSnapshots()
	history(w, 0, 120)
	first, start := follow(t, log, snaps, "secret-0123456789", false)
	if start.Restored {
		t.Fatal("the first start restored a snapshot that was never saved")
	}
	history(w, 120, 120)
	// More events for complaints the snapshot holds.
	w.add("c-00002", &eventsv1.ComplaintTakenOffHold{}, &eventsv1.SlaClockResumed{ClockId: "c-00002-resolution", NewDeadline: ts(t0.Add(72 * time.Hour))})
	w.add("c-00000", &eventsv1.ComplaintResolved{}, &eventsv1.ComplaintClosed{})

	restored, start := follow(t, log, snaps, "secret-0123456789", false)
	if !start.Restored || start.Position != first.Position() {
		t.Fatalf("second start %+v, want restored at %d", start, first.Position())
	}
	rebuilt, start := follow(t, log, snaps, "secret-0123456789", true)
	if start.Restored {
		t.Fatal("a forced rebuild restored")
	}
	if a, b := snapshotOf(t, restored), snapshotOf(t, rebuilt); !bytes.Equal(a, b) {
		t.Fatalf("restored and caught up differs from rebuilt:\n%s\n%s", a, b)
	}
	// The owner index is derived on restore: the same answers.
	for _, owner := range []string{"agent-0", "agent-1", "agent-2"} {
		a, b := restored.Find(Query{Owner: owner, Limit: MaxLimit}), rebuilt.Find(Query{Owner: owner, Limit: MaxLimit})
		if a.Total != b.Total || fmt.Sprint(a.Complaints) != fmt.Sprint(b.Complaints) {
			t.Fatalf("%s's queue: restored %d, rebuilt %d", owner, a.Total, b.Total)
		}
	}
	// Closed and withdrawn complaints left: 240 - 40 withdrawn - 40 closed - c-00000.
	if open, closed := rebuilt.Len(); open != 159 || closed != 81 {
		t.Fatalf("open %d closed %d, want 159 and 81", open, closed)
	}
	c, ok := rebuilt.Get("c-00002")
	// Clocks are sorted by id: resolution, then response.
	if !ok || c.Status != StatusAssigned || c.Clocks[0].Paused || !c.Clocks[0].Deadline.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("c-00002 after the hold: %+v", c)
	}
}

func TestDamagedOrForeignSnapshotIsRebuilt(t *testing.T) {
	log := memstore.New(clock.NewFake(t0))
	w := logWriter{t, log}
	history(w, 0, 60)
	rebuilt, _ := follow(t, log, nil, "secret-0123456789", true)

	damaged := newMemSnapshots()
	follow(t, log, damaged, "secret-0123456789", false)
	b, err := checkpoint.Encode(damaged.snap[Name])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0xff
	damaged.raw[Name] = b
	v, start := follow(t, log, damaged, "secret-0123456789", false)
	if start.Restored || start.Reason == "" {
		t.Fatalf("a damaged snapshot was used: %+v", start)
	}
	if !bytes.Equal(snapshotOf(t, v), snapshotOf(t, rebuilt)) {
		t.Fatal("view after a damaged snapshot differs from the rebuilt one")
	}

	// A snapshot keyed by another secret: its terms would find nothing.
	foreign := newMemSnapshots()
	follow(t, log, foreign, "another-secret-abcdef", false)
	v, start = follow(t, log, foreign, "secret-0123456789", false)
	if start.Restored {
		t.Fatalf("a snapshot of another index secret was used: %+v", start)
	}
	if !bytes.Equal(snapshotOf(t, v), snapshotOf(t, rebuilt)) {
		t.Fatal("view after a foreign snapshot differs from the rebuilt one")
	}
	if err := v.Restore(1, []byte(`{"index_check":1}`)); !errors.Is(err, ErrForeignIndex) {
		t.Fatalf("Restore of a foreign snapshot: %v", err)
	}
}

func TestFindFiltersSortsAndSearches(t *testing.T) {
	log := memstore.New(clock.NewFake(t0))
	w := logWriter{t, log}
	history(w, 0, 60)
	v, _ := follow(t, log, nil, "secret-0123456789", true)

	mine := v.Find(Query{Owner: "agent-2"})
	if mine.Total == 0 {
		t.Fatal("agent-2 has no complaints")
	}
	var last time.Time
	for _, c := range mine.Complaints {
		if c.Owner != "agent-2" {
			t.Fatalf("owner filter let %s (%s) through", c.ID, c.Owner)
		}
		due, _ := c.NextDue()
		if due.Before(last) {
			t.Fatalf("not sorted by due: %s before %s", due, last)
		}
		last = due
	}
	if p := v.Find(Query{Breached: true}); p.Total != 10 || !p.Complaints[0].Breached() {
		t.Fatalf("breached: %d", p.Total)
	}
	if p := v.Find(Query{Escalated: true, Status: StatusAssigned}); p.Total != 10 {
		t.Fatalf("escalated and assigned: %d", p.Total)
	}
	if p := v.Find(Query{Status: StatusOnHold}); p.Total != 10 {
		t.Fatalf("on hold: %d", p.Total)
	}
	// Search: Chinese pairs and Latin words, all terms must match.
	if p := v.Find(Query{Text: "自动关机"}); p.Total != v.Find(Query{}).Total {
		t.Fatalf("text 自动关机 found %d of %d", p.Total, v.Find(Query{}).Total)
	}
	if p := v.Find(Query{Text: "case 33"}); p.Total != 1 || p.Complaints[0].ID != "c-00033" {
		t.Fatalf("text 'case 33': %+v", p)
	}
	if p := v.Find(Query{Text: "冒烟"}); p.Total != 0 {
		t.Fatalf("text 冒烟 found %d", p.Total)
	}
	if p := v.Find(Query{Serial: "sn 33"}); p.Total != 1 || p.Complaints[0].ID != "c-00033" {
		t.Fatalf("serial: %+v", p)
	}
	if p := v.Find(Query{Limit: 5, Offset: 5, Sort: SortReceived}); len(p.Complaints) != 5 || !p.Complaints[0].ReceivedAt.After(p.Complaints[1].ReceivedAt) {
		t.Fatalf("received order page: %+v", p)
	}
}

// The snapshot holds no text of the description or serial.
func TestSnapshotKeepsNoTextOfTheDescription(t *testing.T) {
	log := memstore.New(clock.NewFake(t0))
	w := logWriter{t, log}
	w.add("c-1", &eventsv1.ComplaintReceived{Description: "请回电 13800138000 张三", ReceivedAt: ts(t0), Product: &eventsv1.Product{SerialNumber: "SN-778899"}})
	v, _ := follow(t, log, nil, "secret-0123456789", true)
	b := snapshotOf(t, v)
	for _, s := range []string{"13800138000", "张三", "778899", "回电"} {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("snapshot contains %q: %s", s, b)
		}
	}
	if p := v.Find(Query{Text: "13800138000"}); p.Total != 1 {
		t.Fatal("the number is not searchable through the blind index")
	}
}

func TestRetermedClockAndWithdrawnBreachAreShown(t *testing.T) {
	w := logWriter{t, memstore.New(clock.NewFake(t0))}
	id := "c-terms"
	w.add(id,
		&eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ReceivedAt: ts(t0)},
		&eventsv1.SlaClockStarted{ClockId: "r", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, Deadline: ts(t0.Add(48 * time.Hour))},
		&eventsv1.SlaClockStarted{ClockId: "f", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, Deadline: ts(t0.Add(time.Hour))},
		&eventsv1.SlaBreached{ClockId: "f"},
		// The classification arrives: other terms for the resolution clock;
		// a hold recorded late: the response clock was not breached after all.
		&eventsv1.SlaClockRetermed{ClockId: "r", Terms: &eventsv1.SlaClockTerms{Deadline: ts(t0.Add(72 * time.Hour))}},
		&eventsv1.SlaBreachWithdrawn{ClockId: "f", Reopened: true, Terms: &eventsv1.SlaClockTerms{Deadline: ts(t0.Add(3 * time.Hour))}},
	)
	v, _ := follow(t, w.log, newMemSnapshots(), "s", false)
	c, ok := v.Get(id)
	if !ok {
		t.Fatal("complaint not in the view")
	}
	got := map[string]Clock{}
	for _, k := range c.Clocks {
		got[k.ID] = k
	}
	if k := got["r"]; !k.Deadline.Equal(t0.Add(72 * time.Hour)) {
		t.Errorf("re-termed clock: deadline %v, want %v", k.Deadline, t0.Add(72*time.Hour))
	}
	if k := got["f"]; k.Breached || !k.Deadline.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("withdrawn breach: breached %v deadline %v, want running to %v", k.Breached, k.Deadline, t0.Add(3*time.Hour))
	}
}
