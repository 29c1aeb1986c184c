package domain

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// BenchmarkMatch matches orders against 10,000 technicians (50 regions, 4
// product lines, mixed skills and schedules) who already hold 1,000 open
// orders, and reports the 99th-percentile latency of one match.
func BenchmarkMatch(b *testing.B) {
	const techs, openOrders, regions = 10_000, 1_000, 50
	rng := rand.New(rand.NewPCG(1, 2))
	lines := []string{"chiller", "boiler", "pump", "compressor"}
	services := []eventsv1.ServiceType{
		eventsv1.ServiceType_SERVICE_TYPE_INSTALLATION, eventsv1.ServiceType_SERVICE_TYPE_COMMISSIONING,
		eventsv1.ServiceType_SERVICE_TYPE_REPAIR, eventsv1.ServiceType_SERVICE_TYPE_MAINTENANCE,
	}
	schedules := []Schedule{AlwaysOn{}, hours{8, 20}, hours{9, 18}, hours{20, 23}}
	cands := make([]Candidate, techs)
	for i := range cands {
		t := EvolveTechnician(nil, t0, &eventsv1.TechnicianRegistered{
			TechnicianId: fmt.Sprintf("t%05d", i), ProductLines: []string{lines[rng.IntN(4)], lines[rng.IntN(4)]},
			Services: []eventsv1.ServiceType{services[rng.IntN(4)], services[rng.IntN(4)]}, Region: fmt.Sprintf("r%02d", rng.IntN(regions)),
			Outsourced: rng.IntN(5) == 0, MaxConcurrentJobs: 3, MaxDailyJobs: 6,
		})
		cands[i] = Candidate{Tech: t, Schedule: schedules[rng.IntN(len(schedules))]}
	}
	for i := range openOrders { // the open orders' load on their technicians
		t := cands[rng.IntN(techs)].Tech
		EvolveTechnician(t, t0, &eventsv1.TechnicianJobBooked{TechnicianId: t.ID, WorkOrderId: fmt.Sprintf("o%d", i), Day: "2026-03-10"})
	}
	specs := make([]*eventsv1.WorkOrderSpec, openOrders)
	for i := range specs {
		specs[i] = &eventsv1.WorkOrderSpec{
			Region: fmt.Sprintf("r%02d", rng.IntN(regions)), ServiceType: services[rng.IntN(4)], ProductLine: lines[rng.IntN(4)],
			Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, RequiredBy: timestamppb.New(t0.Add(24 * time.Hour)),
		}
	}
	p := DefaultMatchPolicy()
	pool := NewPool(cands)
	run := func(b *testing.B, match func(MatchRequest) MatchResult) {
		lat := make([]time.Duration, 0, b.N)
		eligible := 0
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			begin := time.Now()
			res := match(MatchRequest{Spec: specs[i%openOrders], Now: t0})
			lat = append(lat, time.Since(begin))
			eligible += len(res.Ranked)
		}
		b.StopTimer()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e6, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e6, "p50-ms")
		b.ReportMetric(float64(eligible)/float64(b.N), "eligible/match")
	}
	// pool: the service's path (technicians indexed by region).
	b.Run("pool", func(b *testing.B) { run(b, func(r MatchRequest) MatchResult { return pool.Match(p, r) }) })
	// scan: every technician through every filter, for comparison.
	b.Run("scan", func(b *testing.B) { run(b, func(r MatchRequest) MatchResult { return Match(p, r, cands) }) })
}
