package domain

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A technician working every day for months keeps the daily counts of a few
// days only, and the days the capacity rule asks about still count.
func TestDailyCountsStayBoundedAndKeepTheDaysCapacityNeeds(t *testing.T) {
	tc := tech("t-busy", "north", func(r *eventsv1.TechnicianRegistered) { r.MaxDailyJobs = 2 })
	const days = 120
	var at time.Time
	var restored *Technician // encoded half-way as the view's snapshot does, then folded on
	for d := range days {
		if d == days/2 {
			raw, err := json.Marshal(tc)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &restored); err != nil {
				t.Fatal(err)
			}
		}
		at = t0.Add(time.Duration(d) * 24 * time.Hour)
		today := at.Format(time.DateOnly)
		for i, reason := range []string{ReleaseCompleted, ReleaseFailed} { // worked: both keep counting
			id := today + "-" + reason
			booked := &eventsv1.TechnicianJobBooked{TechnicianId: tc.ID, WorkOrderId: id, Day: today}
			released := &eventsv1.TechnicianJobReleased{TechnicianId: tc.ID, WorkOrderId: id, Reason: reason}
			tc = EvolveTechnician(tc, at.Add(time.Duration(i)*time.Hour), booked)
			tc = EvolveTechnician(tc, at.Add(time.Duration(i)*time.Hour+30*time.Minute), released)
			if restored != nil {
				restored = EvolveTechnician(restored, at.Add(time.Duration(i)*time.Hour), booked)
				restored = EvolveTechnician(restored, at.Add(time.Duration(i)*time.Hour+30*time.Minute), released)
			}
		}
		if len(tc.Daily) > 3 {
			t.Fatalf("day %d: daily counts hold %d days, want at most 3", d, len(tc.Daily))
		}
	}
	if !reflect.DeepEqual(restored, tc) {
		t.Fatalf("encoded half-way and folded on:\n%+v\nfolded throughout:\n%+v", restored, tc)
	}
	today, yesterday := at.Format(time.DateOnly), at.Add(-24*time.Hour).Format(time.DateOnly)
	if tc.JobsOn(today) != 2 || tc.JobsOn(yesterday) != 2 {
		t.Fatalf("jobs today %d, yesterday %d; want 2 and 2 (kept for the capacity rule)", tc.JobsOn(today), tc.JobsOn(yesterday))
	}
	if _, err := BookJob(tc, "one-more", "c", today); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("third job today: %v, want ErrNoCapacity", err)
	}
	// A booking for a later day (next shift after a weekend) is kept too.
	later := at.Add(72 * time.Hour).Format(time.DateOnly)
	tc = EvolveTechnician(tc, at.Add(2*time.Hour), &eventsv1.TechnicianJobBooked{TechnicianId: tc.ID, WorkOrderId: "next-week", Day: later})
	if tc.JobsOn(later) != 1 || tc.JobsOn(today) != 2 {
		t.Fatalf("after booking %s: %d jobs then, %d today", later, tc.JobsOn(later), tc.JobsOn(today))
	}
	// A declined job gives its day back and leaves no empty day behind.
	tc = EvolveTechnician(tc, at.Add(3*time.Hour), &eventsv1.TechnicianJobReleased{TechnicianId: tc.ID, WorkOrderId: "next-week", Reason: ReleaseDeclined})
	if _, ok := tc.Daily[later]; ok {
		t.Fatalf("declined job's day %s still listed: %v", later, tc.Daily)
	}
}
