package timers

import (
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func calOf(bool, string) *calendar.Calendar { return calendar.Continuous() }

func started(complaintID string, n int, deadline time.Time) *ev.Envelope {
	e := &ev.Envelope{ComplaintId: complaintID}
	_ = eventlog.SetPayload(e, &ev.SlaClockStarted{
		ClockId: []string{"acceptance-1", "first_response-1", "resolution-1"}[n], Target: ev.SlaTarget(1 + 2*n/2),
		Deadline: timestamppb.New(deadline), Budget: durationpb.New(24 * time.Hour), WarnPercents: []uint32{50, 75, 90},
	})
	return e
}

// BenchmarkOpenClockMemory holds 1,000,000 open clocks in the index and
// reports the heap bytes per clock (target ≤ 200): one clock per complaint
// (the worst case) and three per complaint (a fresh complaint).
func BenchmarkOpenClockMemory(b *testing.B) {
	for _, perComplaint := range []int{1, 3} {
		b.Run(map[int]string{1: "1_per_complaint", 3: "3_per_complaint"}[perComplaint], func(b *testing.B) {
			const clocks = 1_000_000
			base := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				x := New(calOf)
				for i := 0; i < clocks/perComplaint; i++ {
					id := uuid.NewString()
					for n := range perComplaint {
						x.Apply(started(id, n, base.Add(time.Duration(i)*time.Second)))
					}
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				if x.Open() != clocks/perComplaint*perComplaint {
					b.Fatalf("open = %d", x.Open())
				}
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(x.Open()), "bytes/clock")
				runtime.KeepAlive(x)
			}
		})
	}
}
