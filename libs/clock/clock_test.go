package clock

import (
	"testing"
	"time"
)

func TestFakeFiresTimersInOrderOnlyWhenDue(t *testing.T) {
	start := time.Date(2026, 2, 13, 9, 0, 0, 0, time.UTC)
	f := NewFake(start)
	late := f.NewTimer(2 * time.Hour)
	early := f.NewTimer(time.Hour)

	f.Advance(59 * time.Minute)
	select {
	case <-early.C():
		t.Fatal("timer fired before its deadline")
	default:
	}
	f.Advance(time.Minute)
	if got := <-early.C(); !got.Equal(start.Add(time.Hour)) {
		t.Fatalf("early fired at %v, want %v", got, start.Add(time.Hour))
	}
	if f.Pending() != 1 {
		t.Fatalf("pending = %d, want 1", f.Pending())
	}
	if !late.Stop() {
		t.Fatal("Stop of an armed timer reported false")
	}
	f.Advance(5 * time.Hour)
	select {
	case <-late.C():
		t.Fatal("stopped timer fired")
	default:
	}
	late.Reset(time.Minute)
	f.Advance(time.Minute)
	<-late.C()
}

func TestFakeNeverMovesBackwards(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	f.Set(start.Add(-time.Hour))
	if !f.Now().Equal(start) {
		t.Fatalf("clock moved backwards to %v", f.Now())
	}
}
