// Package clock is the only way domain code learns the time. Production code
// gets Real; tests get a Fake they advance explicitly, so SLA timers are tested
// without sleeping for a deadline.
package clock

import (
	"sort"
	"sync"
	"time"
)

// Clock tells the time and makes timers that fire on that clock's time.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives the clock's time once d has
	// elapsed on this clock.
	After(d time.Duration) <-chan time.Time
	// NewTimer is After with Stop and Reset, for loops that re-arm a timer.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that the services use.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// Real is the wall clock, in UTC.
type Real struct{}

func (Real) Now() time.Time                         { return time.Now().UTC() }
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (Real) NewTimer(d time.Duration) Timer         { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time        { return r.t.C }
func (r realTimer) Stop() bool                 { return r.t.Stop() }
func (r realTimer) Reset(d time.Duration) bool { return r.t.Reset(d) }

// Fake is a clock that moves only when told to. Timers due at or before the
// new time fire, in deadline order, during Advance or Set.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock standing at start.
func NewFake(start time.Time) *Fake { return &Fake{now: start.UTC()} }

func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *Fake) After(d time.Duration) <-chan time.Time { return f.NewTimer(d).C() }

func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{clock: f, ch: make(chan time.Time, 1), due: f.now.Add(d), armed: true}
	if d <= 0 {
		t.fireLocked(f.now)
	} else {
		f.timers = append(f.timers, t)
	}
	return t
}

// Advance moves the clock forward by d and fires every timer now due.
func (f *Fake) Advance(d time.Duration) { f.Set(f.Now().Add(d)) }

// Set moves the clock to t (never backwards) and fires every timer now due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t.UTC()
	sort.SliceStable(f.timers, func(i, j int) bool { return f.timers[i].due.Before(f.timers[j].due) })
	kept := f.timers[:0]
	for _, tm := range f.timers {
		if !tm.due.After(f.now) {
			tm.fireLocked(f.now)
			continue
		}
		kept = append(kept, tm)
	}
	f.timers = kept
}

// Pending reports how many timers are armed and not yet due; tests use it to
// wait until a service has armed its timer before advancing.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.timers)
}

type fakeTimer struct {
	clock *Fake
	ch    chan time.Time
	due   time.Time
	armed bool
}

func (t *fakeTimer) fireLocked(now time.Time) {
	t.armed = false
	select {
	case t.ch <- now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.ch }

func (t *fakeTimer) Stop() bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	was := t.armed
	t.armed = false
	f.removeLocked(t)
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.clock
	f.mu.Lock()
	defer f.mu.Unlock()
	was := t.armed
	f.removeLocked(t)
	t.due = f.now.Add(d)
	t.armed = true
	if d <= 0 {
		t.fireLocked(f.now)
	} else {
		f.timers = append(f.timers, t)
	}
	return was
}

func (f *Fake) removeLocked(t *fakeTimer) {
	for i, x := range f.timers {
		if x == t {
			f.timers = append(f.timers[:i], f.timers[i+1:]...)
			return
		}
	}
}
