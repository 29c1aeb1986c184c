// Package adapters connects dispatch to what lies outside its domain: the
// business calendars technicians work by.
package adapters

import (
	"time"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// CalendarSchedules gives technicians the working time of their calendar
// (libs/calendar); an empty calendar id is the set's default calendar.
type CalendarSchedules struct {
	set *calendar.Set
}

// NewCalendarSchedules wraps a loaded calendar set.
func NewCalendarSchedules(set *calendar.Set) *CalendarSchedules { return &CalendarSchedules{set: set} }

// Known reports whether a calendar id exists ("" is the default).
func (s *CalendarSchedules) Known(id string) bool {
	_, err := s.set.Calendar(id)
	return err == nil
}

// Schedule returns the calendar's working time; an unknown id (validated
// away at registration, so only a calendar removed since) is never on shift.
func (s *CalendarSchedules) Schedule(id string) domain.Schedule {
	c, err := s.set.Calendar(id)
	if err != nil {
		return never{}
	}
	return calendarSchedule{c}
}

type calendarSchedule struct{ c *calendar.Calendar }

func (s calendarSchedule) OnShift(t time.Time) bool { return s.c.IsWorkingTime(t) }

// NextShiftStart: one nanosecond of working time after t ends one
// nanosecond after the next working instant.
func (s calendarSchedule) NextShiftStart(t time.Time) time.Time {
	if s.c.IsWorkingTime(t) {
		return t
	}
	return s.c.Add(t, time.Nanosecond).Add(-time.Nanosecond)
}

func (s calendarSchedule) Location() *time.Location { return s.c.Location() }

type never struct{}

func (never) OnShift(time.Time) bool             { return false }
func (never) NextShiftStart(time.Time) time.Time { return time.Time{} }
func (never) Location() *time.Location           { return time.UTC }
