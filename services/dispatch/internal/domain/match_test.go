package domain

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var (
	t0     = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) // a Tuesday morning
	repair = eventsv1.ServiceType_SERVICE_TYPE_REPAIR
	remote = eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT
)

// tech builds a technician by folding its registration, then the given bookings.
func tech(id, region string, opts ...func(*eventsv1.TechnicianRegistered)) *Technician {
	reg := &eventsv1.TechnicianRegistered{
		TechnicianId: id, DisplayName: id, ProductLines: []string{"chiller"}, Services: []eventsv1.ServiceType{repair},
		ServiceCentre: "sc-" + region, Region: region, MaxConcurrentJobs: 2, MaxDailyJobs: 4,
	}
	for _, o := range opts {
		o(reg)
	}
	return EvolveTechnician(nil, t0, reg)
}

func booked(t *Technician, day string, ids ...string) *Technician {
	for _, id := range ids {
		t = EvolveTechnician(t, t0, &eventsv1.TechnicianJobBooked{TechnicianId: t.ID, WorkOrderId: id, Day: day})
	}
	return t
}

func onSiteSpec(region string, due time.Duration) *eventsv1.WorkOrderSpec {
	return &eventsv1.WorkOrderSpec{
		Region: region, ServiceType: repair, Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE,
		ProductLine: "chiller", RequiredBy: timestamppb.New(t0.Add(due)),
	}
}

func TestMatch(t *testing.T) {
	day := t0.Format(time.DateOnly)
	always := Schedule(AlwaysOn{})
	office := Schedule(hours{9, 18})
	night := Schedule(hours{20, 23})
	cand := func(tt *Technician, s Schedule) Candidate { return Candidate{Tech: tt, Schedule: s} }
	outsourced := func(r *eventsv1.TechnicianRegistered) { r.Outsourced = true }

	tests := []struct {
		name        string
		spec        *eventsv1.WorkOrderSpec
		exclude     []string
		cands       []Candidate
		wantRanked  []string // ids in rank order
		wantRejects map[string]int
	}{
		{
			name: "skill: a technician without the service or product line is filtered",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{
				cand(tech("installer", "east", func(r *eventsv1.TechnicianRegistered) {
					r.Services = []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_INSTALLATION}
				}), always),
				cand(tech("boilers", "east", func(r *eventsv1.TechnicianRegistered) { r.ProductLines = []string{"boiler"} }), always),
				cand(tech("fixer", "east"), always),
			},
			wantRanked:  []string{"fixer"},
			wantRejects: map[string]int{RejectSkill: 2},
		},
		{
			name:        "territory: on-site work only in the technician's region",
			spec:        onSiteSpec("east", 24*time.Hour),
			cands:       []Candidate{cand(tech("w", "west"), always), cand(tech("e", "east"), always)},
			wantRanked:  []string{"e"},
			wantRejects: map[string]int{RejectTerritory: 1},
		},
		{
			name: "territory: remote support is given from any region",
			spec: &eventsv1.WorkOrderSpec{Region: "east", ServiceType: remote, Mode: eventsv1.ServiceMode_SERVICE_MODE_REMOTE, RequiredBy: timestamppb.New(t0.Add(48 * time.Hour))},
			cands: []Candidate{cand(tech("w", "west", func(r *eventsv1.TechnicianRegistered) {
				r.Services = []eventsv1.ServiceType{remote}
			}), always)},
			wantRanked: []string{"w"},
		},
		{
			name: "schedule: arrival must be on shift and before the due time",
			spec: onSiteSpec("east", 4*time.Hour), // due 13:00, travel 2h
			cands: []Candidate{
				cand(tech("office", "east"), office), // arrives 11:00
				cand(tech("night", "east"), night),   // shift starts 20:00: too late
			},
			wantRanked:  []string{"office"},
			wantRejects: map[string]int{RejectShift: 1},
		},
		{
			name: "schedule: earlier arrival scores higher",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{
				cand(tech("late", "east"), night),   // 22:00
				cand(tech("early", "east"), office), // 11:00
			},
			wantRanked: []string{"early", "late"},
		},
		{
			name: "capacity: concurrent and daily limits",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{
				cand(booked(tech("full", "east"), day, "a", "b"), always),
				cand(func() *Technician {
					tt := booked(tech("tired", "east", func(r *eventsv1.TechnicianRegistered) { r.MaxDailyJobs = 2 }), day, "c", "d")
					return EvolveTechnician(tt, t0, &eventsv1.TechnicianJobReleased{TechnicianId: "tired", WorkOrderId: "c", Reason: ReleaseCompleted})
				}(), always),
				cand(booked(tech("busy", "east"), day, "e"), always),
				cand(tech("free", "east"), always),
			},
			wantRanked:  []string{"free", "busy"}, // load balance: the idle one first
			wantRejects: map[string]int{RejectCapacity: 2},
		},
		{
			name: "capacity: a declined job gives the day's slot back",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{cand(func() *Technician {
				tt := booked(tech("t", "east", func(r *eventsv1.TechnicianRegistered) { r.MaxDailyJobs = 2 }), day, "c", "d")
				tt = EvolveTechnician(tt, t0, &eventsv1.TechnicianJobReleased{TechnicianId: "t", WorkOrderId: "c", Reason: ReleaseDeclined})
				return tt
			}(), always)},
			wantRanked: []string{"t"},
		},
		{
			name: "outsourced fallback: ranked after every direct technician, whatever the score",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{
				cand(tech("partner", "east", outsourced), always),
				cand(booked(tech("direct", "east"), day, "x"), night),
			},
			wantRanked: []string{"direct", "partner"},
		},
		{
			name: "outsourced fallback: used when no direct technician fits",
			spec: onSiteSpec("east", 24*time.Hour),
			cands: []Candidate{
				cand(tech("partner", "east", outsourced), always),
				cand(booked(tech("direct", "east"), day, "x", "y"), always),
			},
			wantRanked:  []string{"partner"},
			wantRejects: map[string]int{RejectCapacity: 1},
		},
		{
			name: "preferred technician wins a tie",
			spec: func() *eventsv1.WorkOrderSpec {
				s := onSiteSpec("east", 24*time.Hour)
				s.PreferredTechnicianId = "b"
				return s
			}(),
			cands:      []Candidate{cand(tech("a", "east"), always), cand(tech("b", "east"), always)},
			wantRanked: []string{"b", "a"},
		},
		{
			name:        "decliners and inactive technicians are not asked",
			spec:        onSiteSpec("east", 24*time.Hour),
			exclude:     []string{"a"},
			cands:       []Candidate{cand(tech("a", "east"), always), cand(EvolveTechnician(tech("b", "east"), t0, &eventsv1.TechnicianStatusChanged{Status: eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ON_LEAVE}), always)},
			wantRejects: map[string]int{RejectDeclined: 1, RejectStatus: 1},
		},
		{
			name:        "no candidate at all",
			spec:        onSiteSpec("east", 24*time.Hour),
			wantRejects: map[string]int{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := MatchRequest{Spec: tc.spec, Exclude: tc.exclude, Now: t0}
			res := Match(DefaultMatchPolicy(), req, tc.cands)
			if pooled := NewPool(tc.cands).Match(DefaultMatchPolicy(), req); !reflect.DeepEqual(pooled, res) {
				t.Fatalf("the pool's result differs from the scan's:\n%+v\n%+v", pooled, res)
			}
			var got []string
			for _, s := range res.Ranked {
				got = append(got, s.TechnicianID)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantRanked, ",") {
				t.Fatalf("ranked %v, want %v (rejections %v)", got, tc.wantRanked, res.Counts)
			}
			for reason, n := range tc.wantRejects {
				if res.Counts[reason] != n {
					t.Errorf("rejected for %s: %d, want %d", reason, res.Counts[reason], n)
				}
			}
			if len(tc.wantRanked) == 0 && !strings.HasPrefix(res.WhyNone(), "no technician") {
				t.Errorf("WhyNone = %q", res.WhyNone())
			}
		})
	}
}

func TestMatchExplainsTheChoice(t *testing.T) {
	res := Match(DefaultMatchPolicy(), MatchRequest{Spec: onSiteSpec("east", 24*time.Hour), Now: t0},
		[]Candidate{{Tech: tech("a", "east")}, {Tech: tech("w", "west")}, {Tech: booked(tech("b", "east"), "2026-03-10", "1", "2")}})
	ex := res.Explain(10)
	if len(ex) != 2 || ex[0].GetTechnicianId() != "a" || !ex[0].GetEligible() || ex[1].GetRejectedBecause() != RejectCapacity {
		t.Fatalf("explanation %v", ex)
	}
	if why := res.WhyChosen(res.Ranked[0]); !strings.Contains(why, "territory 1") || !strings.Contains(why, "capacity 1") {
		t.Fatalf("reason %q does not name the filters", why)
	}
}
