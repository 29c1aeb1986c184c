package domain

import "time"

// hours is a test schedule: on shift from..to (UTC hours) every day.
type hours struct{ from, to int }

func (h hours) OnShift(t time.Time) bool {
	t = t.UTC()
	return t.Hour() >= h.from && t.Hour() < h.to
}

func (h hours) NextShiftStart(t time.Time) time.Time {
	if h.OnShift(t) {
		return t
	}
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), t.Day(), h.from, 0, 0, 0, time.UTC)
	if !start.After(t) {
		start = start.AddDate(0, 0, 1)
	}
	return start
}

func (hours) Location() *time.Location { return time.UTC }
