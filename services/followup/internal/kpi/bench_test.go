package kpi

import (
	"strconv"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// benchLog is n complaints of seven events each, spread over 90 days, 10
// teams, 50 owners.
func benchLog(n int) []eventlog.Record {
	var b logBuilder
	for i := range n {
		id := "c" + strconv.Itoa(i)
		at := T.Add(time.Duration(i%90) * 24 * h)
		b.c(id, at, received, assigned("team"+strconv.Itoa(i%10), "u"+strconv.Itoa(i%50)), classified(eventsv1.Category(1+i%5)))
		b.c(id, at.Add(h), accepted, response, met("k"+id, acceptance))
		b.c(id, at.Add(time.Duration(i%48)*h), resolvedMsg(i%3 == 0))
	}
	return b.recs
}

func BenchmarkApply(b *testing.B) {
	recs := benchLog(10000)
	b.ResetTimer()
	for b.Loop() {
		m := New()
		for _, r := range recs {
			m.Apply(r)
		}
	}
	b.ReportMetric(float64(len(recs))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkQueryTeamByWeek(b *testing.B) {
	m := New()
	for _, r := range benchLog(10000) {
		m.Apply(r)
	}
	b.ResetTimer()
	for b.Loop() {
		if rows := m.Query(Query{Group: GroupTeam, Period: PeriodWeek}); len(rows) == 0 {
			b.Fatal("no rows")
		}
	}
}
