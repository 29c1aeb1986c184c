package timers

import (
	"bytes"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The traces of c1's clock start and of the retried decision.
const (
	startTrace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	retryTrace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
)

// The same schedule built in another order encodes to the same bytes, and
// a restored index encodes back to them, due instants, retries and the
// traces their firings continue included.
func TestEncodeIsCanonicalAndRestores(t *testing.T) {
	const c1, c2 = "0190abcd-0000-7000-8000-000000000001", "not-a-uuid"
	build := func(order []int) *Index {
		x := New(calOf)
		steps := []func(){
			func() {
				e := event(c1, 1, start("acceptance-1", t0.Add(24*time.Hour), 50, 75))
				e.Traceparent = startTrace
				x.Apply(e)
			},
			func() {
				x.Apply(event(c2, 1, start("acceptance-1", t0.Add(10*time.Hour))))
				x.Apply(event(c2, 2, &ev.SlaClockPaused{ClockId: "acceptance-1", Remaining: durationpb.New(time.Hour)}))
			},
			func() {
				x.Retry("0190abcd-0000-7000-8000-000000000003", t0.Add(time.Second), 4, ParseTrace(retryTrace))
			},
		}
		for _, i := range order {
			steps[i]()
		}
		return x
	}
	a, b := build([]int{0, 1, 2}), build([]int{2, 1, 0})
	if !bytes.Equal(a.Encode(), b.Encode()) {
		t.Fatal("the same schedule built in another order encodes differently")
	}
	r := New(calOf)
	if err := r.Restore(a.Encode()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Encode(), a.Encode()) || r.Open() != 2 || r.Complaints() != 3 {
		t.Fatalf("restored: open %d complaints %d, or other bytes", r.Open(), r.Complaints())
	}
	if next, _ := r.Next(); !next.Equal(t0.Add(time.Second)) {
		t.Fatalf("restored next due %v, want the retry's", next)
	}
	due := r.TakeDue(t0.Add(12 * time.Hour))
	if len(due) != 2 || due[1].ComplaintID != c1 || due[0].Version != 4 || !due[0].Retry || due[1].Retry {
		t.Fatalf("restored due %+v: want the retry (version 4), then c1's 50%% warning", due)
	}
	if got := due[0].Trace.Traceparent(); got != retryTrace {
		t.Errorf("the retry continues trace %q, want the retried decision's %q", got, retryTrace)
	}
	if got := due[1].Trace.Traceparent(); got != startTrace {
		t.Errorf("c1's warning continues trace %q, want its clock start's %q", got, startTrace)
	}
	if err := r.Restore([]byte{5, 1}); err == nil {
		t.Fatal("truncated bytes restored")
	}
	if r.Complaints() != 3 {
		t.Fatal("a failed restore changed the index")
	}
}
