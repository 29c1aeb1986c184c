package domain

import "time"

// Schedule is a technician's working time (their calendar). Matching asks
// whether they are on shift when the work must happen.
type Schedule interface {
	// OnShift reports whether t falls in working time.
	OnShift(t time.Time) bool
	// NextShiftStart is the first instant at or after t that is working
	// time (t itself when on shift); the zero time when there is none.
	NextShiftStart(t time.Time) time.Time
	// Location is the time zone whose calendar days count daily capacity.
	Location() *time.Location
}

// AlwaysOn is the schedule of a technician with no calendar: always on shift.
type AlwaysOn struct{}

func (AlwaysOn) OnShift(time.Time) bool               { return true }
func (AlwaysOn) NextShiftStart(t time.Time) time.Time { return t }
func (AlwaysOn) Location() *time.Location             { return time.UTC }

// Day is the calendar day (YYYY-MM-DD) of t in the schedule's time zone: the
// day a booking counts against for daily capacity.
func Day(s Schedule, t time.Time) string {
	loc := time.UTC
	if s != nil && s.Location() != nil {
		loc = s.Location()
	}
	return t.In(loc).Format(time.DateOnly)
}
