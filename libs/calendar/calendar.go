// Package calendar is business-time arithmetic: working hours per weekday in
// a time zone, public holidays and make-up working days (调休) loaded from one
// data file per year, and per-team calendars. SLA deadlines ("2 working days")
// and technician availability are computed with it.
//
// The API is small on purpose:
//
//	set, _ := calendar.Default()            // shipped calendars and holidays
//	cal, _ := set.Calendar("cn-standard")   // or set.For("team-repair-north")
//	due := cal.Add(received, 16*time.Hour)  // 16 working hours later
//	left := cal.Between(now, due)           // working time between two instants
//	due = cal.AddWorkingDays(received, 2)   // 2 working days later
//	cal.ProvisionalYears(received, due)     // years crossed with provisional or no holiday data
//
// A Calendar is immutable and safe for concurrent use. Its Version names the
// working hours and holiday data it was built from; record it with any
// deadline computed from it.
package calendar

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // calendars name IANA zones; do not depend on the host's zoneinfo
)

// Interval is a span of working time within one day, as offsets from local
// midnight: [Start, End).
type Interval struct{ Start, End time.Duration }

// Day is a civil date in the calendar's time zone.
type Day struct {
	Year  int
	Month time.Month
	Day   int
}

// DayOf returns the civil date of t in loc.
func DayOf(t time.Time, loc *time.Location) Day {
	y, m, d := t.In(loc).Date()
	return Day{y, m, d}
}

func (d Day) String() string { return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day) }

func (d Day) next(n int) Day {
	t := time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC)
	return Day{t.Year(), t.Month(), t.Day()}
}

func (d Day) weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

type dayKind uint8

const (
	dayOff  dayKind = 1 // public holiday: no working hours
	dayWork dayKind = 2 // make-up working day: the make-up hours
)

// Calendar is one business calendar.
type Calendar struct {
	id      string
	version string
	loc     *time.Location
	week    [7][]Interval // by time.Weekday
	makeUp  []Interval    // hours of a make-up working day
	special map[Day]dayKind
	always  bool          // every instant is working time: calendar time
	region  string        // the holiday region whose years apply; "": none
	years   []HolidayYear // those years, in order
}

// ID is the calendar's id, e.g. "cn-standard".
func (c *Calendar) ID() string { return c.id }

// Version identifies the hours and holiday data, e.g.
// "cn-standard@2026+2027p#1a2b3c4d" ("p": a provisional year).
func (c *Calendar) Version() string { return c.version }

// Location is the calendar's time zone.
func (c *Calendar) Location() *time.Location { return c.loc }

// Hours returns the working intervals of a civil date: none on a holiday,
// the make-up hours on a make-up working day, else the weekday's hours.
func (c *Calendar) Hours(d Day) []Interval {
	switch c.special[d] {
	case dayOff:
		return nil
	case dayWork:
		if len(c.week[d.weekday()]) > 0 {
			return c.week[d.weekday()]
		}
		return c.makeUp
	}
	return c.week[d.weekday()]
}

// IsWorkingDay reports whether a civil date has any working hours.
func (c *Calendar) IsWorkingDay(d Day) bool { return len(c.Hours(d)) > 0 }

// IsWorkingTime reports whether t falls inside a working interval.
func (c *Calendar) IsWorkingTime(t time.Time) bool {
	if c.always {
		return true
	}
	d := DayOf(t, c.loc)
	for _, iv := range c.Hours(d) {
		s, e := c.at(d, iv.Start), c.at(d, iv.End)
		if !t.Before(s) && t.Before(e) {
			return true
		}
	}
	return false
}

// at is the instant of an offset from local midnight of d. Offsets are wall
// clock: on a DST day 09:00 is 09:00 local, whatever the day's length.
func (c *Calendar) at(d Day, off time.Duration) time.Time {
	return time.Date(d.Year, d.Month, d.Day, int(off/time.Hour), int(off%time.Hour/time.Minute), 0, 0, c.loc)
}

// Add returns the instant d of working time after t (before t when d is
// negative). A positive d never ends inside closed time: it lands inside a
// working interval or on its end. Add(t, 0) is t.
func (c *Calendar) Add(t time.Time, d time.Duration) time.Time {
	if c.always || d == 0 {
		return t.Add(d)
	}
	if d > 0 {
		return c.forward(t, d)
	}
	return c.backward(t, -d)
}

// maxScan bounds the day walk: a calendar is validated to have working
// hours every week, so only a data error could exhaust it.
const maxScan = 100 * 366

func (c *Calendar) forward(t time.Time, d time.Duration) time.Time {
	day := DayOf(t, c.loc)
	for i := 0; i < maxScan; i, day = i+1, day.next(1) {
		for _, iv := range c.Hours(day) {
			s, e := c.at(day, iv.Start), c.at(day, iv.End)
			if !t.Before(e) {
				continue
			}
			if s.Before(t) {
				s = t
			}
			if avail := e.Sub(s); d <= avail {
				return s.Add(d)
			} else {
				d -= avail
			}
		}
	}
	panic(fmt.Sprintf("calendar %s: no working time within %d days of %s", c.id, maxScan, t))
}

func (c *Calendar) backward(t time.Time, d time.Duration) time.Time {
	day := DayOf(t, c.loc)
	for i := 0; i < maxScan; i, day = i+1, day.next(-1) {
		hours := c.Hours(day)
		for j := len(hours) - 1; j >= 0; j-- {
			s, e := c.at(day, hours[j].Start), c.at(day, hours[j].End)
			if !t.After(s) {
				continue
			}
			if e.After(t) {
				e = t
			}
			if avail := e.Sub(s); d <= avail {
				return e.Add(-d)
			} else {
				d -= avail
			}
		}
	}
	panic(fmt.Sprintf("calendar %s: no working time within %d days of %s", c.id, maxScan, t))
}

// Between returns the working time from a to b; negative when b is before a.
func (c *Calendar) Between(a, b time.Time) time.Duration {
	if c.always {
		return b.Sub(a)
	}
	if b.Before(a) {
		return -c.Between(b, a)
	}
	var sum time.Duration
	last := DayOf(b, c.loc)
	for day := DayOf(a, c.loc); ; day = day.next(1) {
		for _, iv := range c.Hours(day) {
			s, e := c.at(day, iv.Start), c.at(day, iv.End)
			if s.Before(a) {
				s = a
			}
			if e.After(b) {
				e = b
			}
			if e.After(s) {
				sum += e.Sub(s)
			}
		}
		if day == last {
			return sum
		}
	}
}

func newVersion(id string, loc *time.Location, week [7][]Interval, makeUp []Interval, special map[Day]dayKind, years []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%v|%v|", id, loc, week, makeUp)
	days := make([]Day, 0, len(special))
	for d := range special {
		days = append(days, d)
	}
	sort.Slice(days, func(i, j int) bool { return days[i].String() < days[j].String() })
	for _, d := range days {
		fmt.Fprintf(h, "%s=%d;", d, special[d])
	}
	v := id
	if len(years) > 0 {
		v += "@" + strings.Join(years, "+")
	}
	return v + "#" + hex.EncodeToString(h.Sum(nil))[:8]
}

// Continuous is calendar time: every instant counts, Add(t, d) is t.Add(d).
func Continuous() *Calendar { return continuous }

var continuous = func() *Calendar {
	c := &Calendar{id: "continuous", version: "continuous", loc: time.UTC, always: true}
	for i := range c.week {
		c.week[i] = []Interval{{0, 24 * time.Hour}}
	}
	return c
}()
