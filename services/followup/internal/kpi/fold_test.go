package kpi

import (
	"bytes"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// foldLog is the hand-built log followed by complaints spread over 120
// days, most closed (some reopened first, some withdrawn), so log time
// passes every fold window. Each complaint's events are logged together,
// as an import would write them: log time runs up to a week ahead of the
// complaint being written, and an SLA clock of a complaint ends after its
// close in the log.
func foldLog() []eventlog.Record {
	recs := handLog()
	b := logBuilder{recs: recs, versions: map[string]uint64{}}
	for _, r := range recs {
		b.versions[r.Event.GetStreamId()] = max(b.versions[r.Event.GetStreamId()], r.Event.GetVersion())
	}
	at := T.Add(20 * 24 * h)
	for i := range 400 {
		id := "g" + strconv.Itoa(i)
		at = at.Add(7*h + time.Duration(i%5)*time.Minute)
		b.c(id, at, received, assigned("team"+strconv.Itoa(i%4), "u"+strconv.Itoa(i%9)), classified(eventsv1.Category(1+i%5)))
		if i%11 == 0 {
			b.c(id, at.Add(h), &eventsv1.ComplaintWithdrawn{})
			continue
		}
		b.c(id, at.Add(time.Duration(i%3)*h), accepted, response, met("k"+id, acceptance))
		if i%4 == 0 {
			b.c(id, at.Add(2*h), &eventsv1.TechnicianAccepted{TechnicianId: "t" + strconv.Itoa(i%3)}, &eventsv1.WorkCompleted{TechnicianId: "t" + strconv.Itoa(i%2)})
		}
		b.c(id, at.Add(time.Duration(i%48)*h), resolvedMsg(i%3 == 0))
		switch i % 5 {
		case 0:
			b.c(id, at.Add(50*h), answered(2), &eventsv1.ComplaintReopened{}, breached("r"+id, resolution))
			b.c(id, at.Add(60*h), resolvedMsg(false))
			b.c(id, at.Add(61*h), answered(4), closed(satisfied))
		case 1:
			b.c(id, at.Add(55*h), answered(3), closed(neutral))
		case 2:
			b.c(id, at.Add(7*24*h), closed(noResponse))
		case 3: // still open at the end of the log
		default:
			b.c(id, at.Add(49*h), answered(5), closed(satisfied))
		}
		// An SLA clock ends after the close, within the fold window.
		b.c(id, at.Add(72*h), breached("f"+id, eventsv1.SlaTarget_SLA_TARGET_SECOND_FEEDBACK))
	}
	return b.recs
}

// testLag is a FoldLag for foldLog: more than the events logged between a
// complaint's close and its last event.
const testLag = 40

func buildWith(o Options, recs []eventlog.Record) *Model {
	m := NewWith(o)
	for _, r := range recs {
		m.Apply(r)
	}
	return m
}

// Folding ended complaints into cells answers every query as the model
// that keeps every complaint's facts.
func TestFoldingKeepsQueryResults(t *testing.T) {
	recs := foldLog()
	whole := buildWith(Options{FoldAfter: -1}, recs)
	for _, o := range []Options{{FoldAfter: DefaultFoldAfter, FoldLag: testLag}, {FoldAfter: 4 * 24 * h, FoldLag: testLag}} {
		after := o.FoldAfter
		folded := buildWith(o, recs)
		if n, live := folded.Folded(); n < 100 || live >= len(whole.complaints) {
			t.Fatalf("FoldAfter %s: %d folded, %d live of %d: want most folded", after, n, live, len(whole.complaints))
		}
		// And so does the model restored from its snapshot: the binary
		// summaries decode to what was folded.
		snap, err := folded.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		restored := NewWith(o)
		if err := restored.Restore(folded.Position(), snap); err != nil {
			t.Fatal(err)
		}
		kolkata, _ := time.LoadLocation("Asia/Kolkata") // days begin at :30 UTC
		for _, loc := range []*time.Location{nil, kolkata} {
			for g := GroupAll; g <= GroupCategory; g++ {
				for p := PeriodAll; p <= PeriodMonth; p++ {
					for _, bounds := range [][2]time.Time{{}, {T.Add(30*24*h + 17*time.Minute), T.Add(90*24*h + 3*time.Second)}} {
						q := Query{Group: g, Period: p, From: bounds[0], To: bounds[1], Location: loc}
						if diff := cmp.Diff(whole.Query(q), folded.Query(q), approx); diff != "" {
							t.Fatalf("FoldAfter %s, query %+v (-whole +folded):\n%s", after, q, diff)
						}
						if diff := cmp.Diff(whole.Query(q), restored.Query(q), approx); diff != "" {
							t.Fatalf("FoldAfter %s, query %+v (-whole +restored):\n%s", after, q, diff)
						}
					}
				}
			}
		}
	}
}

// The lag is what keeps the late events of a log written out of time
// order: folded on log time alone, foldLog's complaints fold at their
// close, before their SLA clocks end, and the SLA figures change.
func TestFoldingWithoutTheLagLosesLateEventsOfAnImportedLog(t *testing.T) {
	recs := foldLog()
	q := Query{Group: GroupAll, Period: PeriodAll}
	whole := buildWith(Options{FoldAfter: -1}, recs).Query(q)
	if got := buildWith(Options{FoldAfter: 4 * 24 * h, FoldLag: testLag}, recs).Query(q); cmp.Diff(whole, got, approx) != "" {
		t.Fatalf("with the lag, the answer changed:\n%s", cmp.Diff(whole, got, approx))
	}
	if got := buildWith(Options{FoldAfter: 4 * 24 * h, FoldLag: -1}, recs).Query(q); cmp.Diff(whole, got, approx) == "" {
		t.Fatal("without the lag, the answer is the same: the lag is not what keeps the late events (change foldLog)")
	}
}

// History written after its time (an import; the scale harness's log):
// log time is at the end from the first event on, and every complaint
// after it ended long before. Each folds once the lag has passed it; none
// waits for log time to move (the hourly fold of format 1 folded none).
func TestHistoryLoggedAfterItsTimeFolds(t *testing.T) {
	b := logBuilder{versions: map[string]uint64{}}
	now := T.Add(3 * 365 * 24 * h)
	b.c("today", now, received, accepted)
	for i := range 200 {
		id := "old" + strconv.Itoa(i)
		at := T.Add(time.Duration(i) * 24 * h)
		b.c(id, at, received, assigned("team", "u"), accepted, response)
		b.c(id, at.Add(2*h), resolvedMsg(false), answered(5), closed(satisfied))
		b.c(id, at.Add(72*h), met("f"+id, eventsv1.SlaTarget_SLA_TARGET_SECOND_FEEDBACK))
	}
	m := buildWith(Options{FoldLag: testLag}, b.recs)
	folded, live := m.Folded()
	// The complaints whose last event is among the last testLag are kept
	// (8 events each), and "today".
	if want := 200 - testLag/8; folded != want || live != 1+testLag/8 {
		t.Fatalf("%d folded, %d live; want %d folded, %d live", folded, live, want, 1+testLag/8)
	}
	q := Query{Group: GroupAll, Period: PeriodAll}
	if diff := cmp.Diff(buildWith(Options{FoldAfter: -1}, b.recs).Query(q), m.Query(q), approx); diff != "" {
		t.Fatalf("folded answers differ (-whole +folded):\n%s", diff)
	}
}

// A model restored from a snapshot and caught up is the model rebuilt
// from the whole log, byte for byte, wherever the snapshot was taken.
func TestSnapshotAndCatchUpEqualsRebuild(t *testing.T) {
	recs := foldLog()
	o := Options{FoldAfter: 4 * 24 * h, FoldLag: testLag}
	want, err := buildWith(o, recs).Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, len(recs) / 3, len(recs) / 2, len(recs) - 1} {
		part := buildWith(o, recs[:cut])
		if cut > 1 && (len(part.pending) == 0 || len(part.due) == 0) {
			t.Fatalf("cut %d: %d pending, %d due: the cut should find both queues in use", cut, len(part.pending), len(part.due))
		}
		snap, err := part.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		m := NewWith(o)
		if err := m.Restore(uint64(cut), snap); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		for _, r := range recs[cut:] {
			m.Apply(r)
		}
		got, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("cut %d: restored and caught up (%d bytes) differs from rebuilt (%d bytes)", cut, len(got), len(want))
		}
		if m.Position() != uint64(len(recs)) {
			t.Fatalf("cut %d: position %d", cut, m.Position())
		}
	}
}

func TestRestoreRefusesGarbageAndKeepsTheModel(t *testing.T) {
	m := build(handLog())
	before, _ := m.Snapshot()
	folded := buildWith(Options{FoldAfter: 4 * 24 * h, FoldLag: testLag}, foldLog())
	good, err := folded.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	garbage := [][]byte{nil, []byte("{not json"), append(slices.Clone(good), 0)}
	// Every snapshot cut short: in the header, between and inside summaries.
	for n := 0; n < len(good); n += 1 + n/50 {
		garbage = append(garbage, good[:n])
	}
	for _, g := range garbage {
		if err := m.Restore(9, g); err == nil {
			t.Fatalf("%d bytes of garbage restored", len(g))
		}
	}
	after, _ := m.Snapshot()
	if !bytes.Equal(before, after) {
		t.Fatal("a refused restore changed the model")
	}
}

// A summary decodes to itself, whatever its values: negative durations
// (a resolution stamped before the receipt), counts at their limits.
func TestSummaryRoundTrip(t *testing.T) {
	full := summary{received: -1 << 62, accept: -5, respond: 1 << 50, resolve: 7, flags: hasAccept | hasRespond | hasResolve | reopened | repeat,
		outcome: eventsv1.CloseOutcome(3), answers: 1<<32 - 1, csiSum: 1<<32 - 1, csi: [5]uint16{1, 0, 1<<16 - 1, 2, 3}}
	full.slaMet[0], full.slaMet[numTargets-1], full.slaBreached[5] = 255, 1, 9
	for _, s := range []summary{{}, {received: 1, flags: firstContact}, full} {
		b := appendSummary([]byte{0xEE}, &s)
		var got summary
		rest, err := readSummary(b[1:], &got)
		if err != nil || len(rest) != 0 || got != s {
			t.Fatalf("%+v: decoded %+v, rest %d, err %v", s, got, len(rest), err)
		}
	}
}
