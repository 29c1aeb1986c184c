package kpi

import (
	"bytes"
	"encoding/csv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// T is Monday 2 March 2026, 00:00 UTC.
var T = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

const h = time.Hour

// logBuilder appends records the way the event log would: per-stream
// versions and a log-wide position.
type logBuilder struct {
	recs     []eventlog.Record
	versions map[string]uint64
}

func (b *logBuilder) add(stream eventlog.StreamID, at time.Time, p proto.Message) {
	if b.versions == nil {
		b.versions = map[string]uint64{}
	}
	b.versions[string(stream)]++
	e := &eventsv1.Envelope{StreamId: string(stream), Version: b.versions[string(stream)], OccurredAt: timestamppb.New(at), EventId: "x"}
	if stream.Kind() == eventlog.KindComplaint {
		e.ComplaintId = stream.ID()
	}
	if err := eventlog.SetPayload(e, p); err != nil {
		panic(err)
	}
	b.recs = append(b.recs, eventlog.Record{Event: e, Position: uint64(len(b.recs) + 1)})
}

func (b *logBuilder) c(id string, at time.Time, ps ...proto.Message) {
	for _, p := range ps {
		b.add(eventlog.ComplaintStream(id), at, p)
	}
}

var (
	received = &eventsv1.ComplaintReceived{}
	accepted = &eventsv1.ComplaintAccepted{}
	response = &eventsv1.ResponseRecorded{}
)

func classified(c eventsv1.Category) *eventsv1.ComplaintClassified {
	return &eventsv1.ComplaintClassified{Category: c}
}
func assigned(team, owner string) *eventsv1.ComplaintAssigned {
	return &eventsv1.ComplaintAssigned{Team: team, Owner: owner}
}
func resolvedMsg(first bool) *eventsv1.ComplaintResolved {
	return &eventsv1.ComplaintResolved{FirstContact: first}
}
func answered(s uint32) *eventsv1.SurveyAnswered { return &eventsv1.SurveyAnswered{Satisfaction: s} }
func closed(o eventsv1.CloseOutcome) *eventsv1.ComplaintClosed {
	return &eventsv1.ComplaintClosed{Outcome: o}
}
func met(id string, t eventsv1.SlaTarget) *eventsv1.SlaMet {
	return &eventsv1.SlaMet{ClockId: id, Target: t}
}
func breached(id string, t eventsv1.SlaTarget) *eventsv1.SlaBreached {
	return &eventsv1.SlaBreached{ClockId: id, Target: t}
}

const (
	acceptance    = eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE
	firstResponse = eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE
	resolution    = eventsv1.SlaTarget_SLA_TARGET_RESOLUTION
	satisfied     = eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED
	neutral       = eventsv1.CloseOutcome_CLOSE_OUTCOME_NEUTRAL
	noResponse    = eventsv1.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE
)

// handLog is six complaints whose KPIs are worked out by hand below.
//
//	A  cs/u1  SERVICE          rcv T+0   acc +1h  resp +3h  resolved +10h (first contact)  CSI 5  closed SATISFIED
//	B  cs/u2  PRODUCT_QUALITY  rcv T+2h  acc +2h  resp +6h  resolved +24h  repeat, techs t1
//	                           CSI 2 → reopened → resolved again (+48h) → CSI 4 → closed SATISFIED
//	C  tech/u3 PRODUCT_QUALITY rcv T+5h  acc +30m  techs t1, t2, never resolved
//	D  cs/u1  SERVICE          rcv T+8d  withdrawn
//	E  cs/u1  OTHER            rcv T+8d+1h  acc +3h  resolved +12h  CSI 3  closed NEUTRAL
//	F  cs/u2  SERVICE          rcv T+8d+2h  acc +1h  resp +2h  resolved +4h (first contact)  closed NO_RESPONSE
//
// SLA clocks: a1 ACCEPTANCE met (A); b1 ACCEPTANCE met, b2 RESOLUTION breached (B);
// c1 ACCEPTANCE met, c2 FIRST_RESPONSE breached then met (counts as breached) (C).
func handLog() []eventlog.Record {
	var b logBuilder
	a := T
	b.c("A", a, received)
	b.c("A", a.Add(1*h), accepted)
	b.c("A", a.Add(1*h), classified(eventsv1.Category_CATEGORY_SERVICE), assigned("cs", "u1"), met("a1", acceptance))
	b.c("A", a.Add(3*h), response)
	b.c("A", a.Add(10*h), resolvedMsg(true))
	b.c("A", a.Add(11*h), answered(5), closed(satisfied))

	bt := T.Add(2 * h)
	b.c("B", bt, received)
	b.c("B", bt.Add(2*h), accepted, classified(eventsv1.Category_CATEGORY_PRODUCT_QUALITY), assigned("tech", "u9"), assigned("cs", "u2"),
		&eventsv1.RepeatComplaintFlagged{}, met("b1", acceptance))
	b.c("B", bt.Add(6*h), response)
	// A technician's own stream: not a complaint, ignored.
	b.add(eventlog.Stream(eventlog.KindTechnician, "t1"), bt.Add(7*h), &eventsv1.TechnicianJobBooked{})
	b.c("B", bt.Add(7*h), &eventsv1.TechnicianAccepted{TechnicianId: "t1"}, &eventsv1.WorkCompleted{TechnicianId: "t1"})
	b.c("B", bt.Add(24*h), resolvedMsg(false))
	b.c("B", bt.Add(25*h), answered(2), &eventsv1.ComplaintReopened{}, breached("b2", resolution))
	b.c("B", bt.Add(48*h), resolvedMsg(true)) // a later resolution changes neither time to resolve nor FCR
	b.c("B", bt.Add(49*h), answered(4), closed(satisfied))

	ct := T.Add(5 * h)
	b.c("C", ct, received)
	b.c("C", ct.Add(30*time.Minute), accepted, classified(eventsv1.Category_CATEGORY_PRODUCT_QUALITY), assigned("tech", "u3"), met("c1", acceptance))
	b.c("C", ct.Add(2*h), &eventsv1.TechnicianAccepted{TechnicianId: "t2"}, &eventsv1.RemoteResolved{TechnicianId: "t1"})
	b.c("C", ct.Add(30*h), &eventsv1.SlaWarning{ClockId: "c2", Target: firstResponse}, breached("c2", firstResponse), met("c2", firstResponse))

	dt := T.Add(8 * 24 * h)
	b.c("D", dt, received, classified(eventsv1.Category_CATEGORY_SERVICE), assigned("cs", "u1"), &eventsv1.ComplaintWithdrawn{})

	et := dt.Add(1 * h)
	b.c("E", et, received, classified(eventsv1.Category_CATEGORY_OTHER), assigned("cs", "u1"))
	b.c("E", et.Add(3*h), accepted)
	b.c("E", et.Add(12*h), resolvedMsg(false))
	b.c("E", et.Add(13*h), answered(3), closed(neutral))

	ft := dt.Add(2 * h)
	b.c("F", ft, received, classified(eventsv1.Category_CATEGORY_SERVICE), assigned("cs", "u2"))
	b.c("F", ft.Add(1*h), accepted)
	b.c("F", ft.Add(2*h), response)
	b.c("F", ft.Add(4*h), resolvedMsg(true))
	b.c("F", ft.Add(7*24*h), closed(noResponse))
	return b.recs
}

func build(recs []eventlog.Record) *Model {
	m := New()
	for _, r := range recs {
		m.Apply(r)
	}
	return m
}

var approx = cmpopts.EquateApprox(0, 1e-9)

func TestHandBuiltLogAll(t *testing.T) {
	recs := handLog()
	// A redelivered record (A's survey answer again) must not count twice.
	recs = append(recs, recs[6])
	got := build(recs).Query(Query{Group: GroupAll, Period: PeriodAll})
	want := []Row{{
		GroupKey:             "",
		Received:             6,   // A B C D E F
		Withdrawn:            1,   // D
		Resolved:             4,   // A B E F
		Reopened:             1,   // B
		Repeats:              1,   // B
		FirstContactResolved: 2,   // A F (B's first resolution was not first contact)
		SurveysAnswered:      4,   // A5 B2 B4 E3
		CSIAverage:           3.5, // (5+2+4+3)/4 = 14/4
		CSIDistribution:      [5]uint32{0, 1, 1, 1, 1},
		ResolutionRate:       0.8,  // 4 / (6 − 1)
		ReopenRate:           0.25, // 1 / 4
		RepeatRate:           1.0 / 6,
		FirstContactRate:     0.5, // 2 / 4
		SLA: []SLA{
			{Target: acceptance, Met: 3, Breached: 0, Rate: 1},    // a1 b1 c1
			{Target: firstResponse, Met: 0, Breached: 1, Rate: 0}, // c2 breached, later met: breached
			{Target: resolution, Met: 0, Breached: 1, Rate: 0},    // b2
		},
		// accept: A 1h, B 2h, C 30m, E 3h, F 1h → sorted 0.5 1 1 2 3; mean 7.5/5 = 1.5h; p90 = rank ceil(4.5)=5 → 3h
		TimeToAccept: Durations{Count: 5, Mean: 90 * time.Minute, P90: 3 * h},
		// respond: A 3h, B 6h, F 2h → mean 11/3 h = 3h40m; p90 = rank ceil(2.7)=3 → 6h
		TimeToRespond: Durations{Count: 3, Mean: 3*h + 40*time.Minute, P90: 6 * h},
		// resolve (first resolution): A 10h, B 24h, E 12h, F 4h → mean 50/4 = 12.5h; p90 = rank ceil(3.6)=4 → 24h
		TimeToResolve:    Durations{Count: 4, Mean: 12*h + 30*time.Minute, P90: 24 * h},
		ClosedSatisfied:  2, // A B
		ClosedNeutral:    1, // E
		ClosedNoResponse: 1, // F
	}}
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Fatalf("KPIs (-want +got):\n%s", diff)
	}
}

func TestHandBuiltLogTeamByWeek(t *testing.T) {
	got := build(handLog()).Query(Query{Group: GroupTeam, Period: PeriodWeek})
	week1 := T                 // Monday 2 March
	week2 := T.Add(7 * 24 * h) // Monday 9 March (D E F were received Tuesday 10 March)
	want := []Row{
		{
			GroupKey: "cs", PeriodStart: week1, // A B (B's last assignment is cs)
			Received: 2, Resolved: 2, Reopened: 1, Repeats: 1, FirstContactResolved: 1,
			SurveysAnswered: 3, CSIAverage: 11.0 / 3, CSIDistribution: [5]uint32{0, 1, 0, 1, 1}, // 5 2 4
			ResolutionRate: 1, ReopenRate: 0.5, RepeatRate: 0.5, FirstContactRate: 0.5,
			SLA:             []SLA{{Target: acceptance, Met: 2, Rate: 1}, {Target: resolution, Breached: 1}},
			TimeToAccept:    Durations{Count: 2, Mean: 90 * time.Minute, P90: 2 * h},  // 1h 2h; rank ceil(1.8)=2
			TimeToRespond:   Durations{Count: 2, Mean: 270 * time.Minute, P90: 6 * h}, // 3h 6h
			TimeToResolve:   Durations{Count: 2, Mean: 17 * h, P90: 24 * h},           // 10h 24h
			ClosedSatisfied: 2,
		},
		{
			GroupKey: "tech", PeriodStart: week1, // C
			Received:     1,
			SLA:          []SLA{{Target: acceptance, Met: 1, Rate: 1}, {Target: firstResponse, Breached: 1}},
			TimeToAccept: Durations{Count: 1, Mean: 30 * time.Minute, P90: 30 * time.Minute},
		},
		{
			GroupKey: "cs", PeriodStart: week2, // D E F
			Received: 3, Withdrawn: 1, Resolved: 2, FirstContactResolved: 1,
			SurveysAnswered: 1, CSIAverage: 3, CSIDistribution: [5]uint32{0, 0, 1, 0, 0},
			ResolutionRate: 1, FirstContactRate: 0.5, // 2/(3−1); F of E F
			TimeToAccept:  Durations{Count: 2, Mean: 2 * h, P90: 3 * h},  // F 1h, E 3h
			TimeToRespond: Durations{Count: 1, Mean: 2 * h, P90: 2 * h},  // F
			TimeToResolve: Durations{Count: 2, Mean: 8 * h, P90: 12 * h}, // F 4h, E 12h
			ClosedNeutral: 1, ClosedNoResponse: 1,
		},
	}
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Fatalf("KPIs (-want +got):\n%s", diff)
	}
}

func TestHandBuiltLogOtherGroupings(t *testing.T) {
	m := build(handLog())
	type cell struct {
		key      string
		received uint32
		resolved uint32
		csi      float64
	}
	cells := func(rows []Row) []cell {
		var out []cell
		for _, r := range rows {
			out = append(out, cell{r.GroupKey, r.Received, r.Resolved, r.CSIAverage})
		}
		return out
	}
	tests := []struct {
		name string
		q    Query
		want []cell
	}{
		{
			// B and C count for t1 (B accepted+completed, C remote); C for t2; the rest have none.
			name: "technician", q: Query{Group: GroupTechnician},
			want: []cell{{"", 4, 3, 4}, {"t1", 2, 1, 3}, {"t2", 1, 0, 0}}, // "": A5 E3 → 4; t1: B2 B4 → 3
		},
		{
			name: "category by month", q: Query{Group: GroupCategory, Period: PeriodMonth},
			want: []cell{{"OTHER", 1, 1, 3}, {"PRODUCT_QUALITY", 2, 1, 3}, {"SERVICE", 3, 2, 5}}, // SERVICE: A D F
		},
		{
			// Only 10 March: D E F. u1: D E; u2: F.
			name: "owner by day, 10 March only", q: Query{Group: GroupOwner, Period: PeriodDay, From: T.Add(8 * 24 * h), To: T.Add(9 * 24 * h)},
			want: []cell{{"u1", 2, 1, 3}, {"u2", 1, 1, 0}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, cells(m.Query(tt.q)), cmp.AllowUnexported(cell{}), approx); diff != "" {
				t.Fatalf("rows (-want +got):\n%s", diff)
			}
		})
	}
	// The owner rows' resolution rates: u1 1/(2−1) = 1, u2 1/1 = 1.
	for _, r := range m.Query(tests[2].q) {
		if r.ResolutionRate != 1 {
			t.Errorf("%s resolution rate = %v, want 1", r.GroupKey, r.ResolutionRate)
		}
	}
}

func TestPeriodStartInTimeZone(t *testing.T) {
	sh := time.FixedZone("CST", 8*3600)
	// 2026-03-01 20:00 UTC is Monday 2 March 04:00 in Shanghai.
	at := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	if got, want := periodStart(at, PeriodDay, sh), time.Date(2026, 3, 2, 0, 0, 0, 0, sh); !got.Equal(want) {
		t.Errorf("day = %v, want %v", got, want)
	}
	if got, want := periodStart(at, PeriodWeek, sh), time.Date(2026, 3, 2, 0, 0, 0, 0, sh); !got.Equal(want) {
		t.Errorf("week = %v, want %v", got, want)
	}
	// 2026-02-28 20:00 UTC is still February in UTC, already March in Shanghai.
	feb := time.Date(2026, 2, 28, 20, 0, 0, 0, time.UTC)
	if got, want := periodStart(feb, PeriodMonth, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("month (UTC) = %v, want %v", got, want)
	}
	if got, want := periodStart(feb, PeriodMonth, sh), time.Date(2026, 3, 1, 0, 0, 0, 0, sh); !got.Equal(want) {
		t.Errorf("month (Shanghai) = %v, want %v", got, want)
	}
	sunday := time.Date(2026, 3, 8, 23, 0, 0, 0, time.UTC)
	if got := periodStart(sunday, PeriodWeek, time.UTC); !got.Equal(T) {
		t.Errorf("Sunday's week starts %v, want Monday %v", got, T)
	}
}

func TestCSV(t *testing.T) {
	rows := build(handLog()).Query(Query{Group: GroupTeam, Period: PeriodWeek})
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+len(rows) {
		t.Fatalf("%d lines, want header + %d", len(recs), len(rows))
	}
	col := map[string]int{}
	for i, name := range recs[0] {
		col[name] = i
	}
	first := recs[1]
	for name, want := range map[string]string{
		"group": "cs", "period_start": "2026-03-02T00:00:00Z", "received": "2", "csi_average": "3.6667",
		"resolve_mean_s": "61200", "sla_acceptance_met": "2", "sla_resolution_breached": "1", "sla_resolution_rate": "0.0000",
	} {
		i, ok := col[name]
		if !ok {
			t.Fatalf("no column %q", name)
		}
		if first[i] != want {
			t.Errorf("%s = %q, want %q", name, first[i], want)
		}
	}
}

// A complaint entered two days after the customer reported it (a letter
// typed in late) counts from the channel's received_at, as its SLA clocks
// do: it lands in the week it was reported, and its automatic acceptance,
// written with the receipt, took two days, not 0 s.
func TestLateEntryCountsFromReceivedAt(t *testing.T) {
	reported := T.Add(6*24*h + 9*h) // Sunday 8 March 09:00, the week of 2 March
	entered := reported.Add(48 * h) // Tuesday 10 March 09:00, the week of 9 March
	var b logBuilder
	b.c("L", entered, &eventsv1.ComplaintReceived{ReceivedAt: timestamppb.New(reported)},
		&eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
	b.c("L", entered.Add(1*h), response)
	b.c("L", entered.Add(4*h), resolvedMsg(false))
	// A received_at after the event (a channel's clock ahead) is not
	// believed: the complaint counts from when it was logged.
	b.c("S", entered, &eventsv1.ComplaintReceived{ReceivedAt: timestamppb.New(entered.Add(h))}, accepted)

	unfolded := build(b.recs)
	// Folded (no window, no lag) it reads the same.
	folded := NewWith(Options{FoldAfter: time.Nanosecond, FoldLag: -1})
	for _, r := range b.recs {
		folded.Apply(r)
	}
	b.c("L", entered.Add(5*h), answered(5), closed(satisfied))
	b.c("X", entered.Add(60*24*h), received) // moves log time past the window
	for _, r := range b.recs[len(b.recs)-3:] {
		folded.Apply(r)
		unfolded.Apply(r)
	}
	if n, _ := folded.Folded(); n != 1 {
		t.Fatalf("folded %d complaints, want L", n)
	}
	for name, m := range map[string]*Model{"unfolded": unfolded, "folded": folded} {
		got := m.Query(Query{Group: GroupAll, Period: PeriodWeek, To: entered.Add(24 * h)})
		want := []Row{
			{
				PeriodStart: T, Received: 1, Resolved: 1, ResolutionRate: 1, SurveysAnswered: 1, CSIAverage: 5,
				CSIDistribution: [5]uint32{0, 0, 0, 0, 1}, ClosedSatisfied: 1,
				TimeToAccept:  Durations{Count: 1, Mean: 48 * h, P90: 48 * h},
				TimeToRespond: Durations{Count: 1, Mean: 49 * h, P90: 49 * h},
				TimeToResolve: Durations{Count: 1, Mean: 52 * h, P90: 52 * h},
			},
			{
				PeriodStart: T.Add(7 * 24 * h), Received: 1,
				TimeToAccept: Durations{Count: 1},
			},
		}
		if diff := cmp.Diff(want, got, approx); diff != "" {
			t.Fatalf("%s: KPIs by week (-want +got):\n%s", name, diff)
		}
	}
}

func TestWithdrawnBreachCountsAsMet(t *testing.T) {
	var b logBuilder
	b.c("G", T, received, accepted, met("g1", acceptance))
	b.c("G", T.Add(25*h), breached("g2", firstResponse))
	// A hold recorded late: sla-clock withdraws the breach, the clock runs
	// again and is then met in time.
	b.c("G", T.Add(26*h), &eventsv1.SlaBreachWithdrawn{ClockId: "g2", Target: firstResponse, Reopened: true})
	b.c("G", T.Add(27*h), met("g2", firstResponse))
	got := build(b.recs).Query(Query{Group: GroupAll, Period: PeriodAll})
	want := []SLA{
		{Target: acceptance, Met: 1, Breached: 0, Rate: 1},
		{Target: firstResponse, Met: 1, Breached: 0, Rate: 1},
	}
	if len(got) != 1 {
		t.Fatalf("rows: %d, want 1", len(got))
	}
	if diff := cmp.Diff(want, got[0].SLA, approx); diff != "" {
		t.Fatalf("SLA attainment (-want +got):\n%s", diff)
	}
}
