package calendar

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// FieldError is a refusal of one field of a holiday year, e.g.
// {Field: "holidays[2].off_to", Message: "..."}: what an API reports.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var regionRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// ParseYear reads one holiday year in the format of data/<region>/<year>.json
// (unknown fields refused) and checks it (ValidateYear). Errors are
// *FieldError naming the field.
func ParseYear(raw []byte) (HolidayYear, error) {
	var y HolidayYear
	if err := strictJSON(raw, &y); err != nil {
		return HolidayYear{}, fieldErr("document", "not a holiday year file: %v", err)
	}
	return y, ValidateYear(y)
}

// ValidateYear checks a holiday year to be published: a region, a year, a
// source, and holidays that are dates of that year, in order, at most a
// month long, with make-up working days that are not days off and only on
// entries from the official notice. Errors are *FieldError.
func ValidateYear(y HolidayYear) error {
	if !regionRE.MatchString(y.Region) {
		return fieldErr("region", "%q must be 1-32 letters, digits or '_' (the calendars' holidays region, e.g. CN)", y.Region)
	}
	if y.Year < 1970 || y.Year > 9999 {
		return fieldErr("year", "%d must be between 1970 and 9999", y.Year)
	}
	if strings.TrimSpace(y.Source) == "" {
		return fieldErr("source", "required: the official notice, or why the data is provisional")
	}
	if len(y.Holidays) == 0 {
		return fieldErr("holidays", "at least one holiday is required")
	}
	return checkHolidays(y)
}

// checkHolidays checks the holidays of a year (ValidateYear's last part;
// also what New requires of a data file).
func checkHolidays(y HolidayYear) error {
	off := map[Day]bool{}
	for i, h := range y.Holidays {
		if strings.TrimSpace(h.Name) == "" {
			return fieldErr(fmt.Sprintf("holidays[%d].name", i), "required")
		}
		from, err := parseDay(h.OffFrom)
		if err != nil {
			return fieldErr(fmt.Sprintf("holidays[%d].off_from", i), "%v", err)
		}
		to, err := parseDay(h.OffTo)
		if err != nil {
			return fieldErr(fmt.Sprintf("holidays[%d].off_to", i), "%v", err)
		}
		if from.Year != y.Year || to.String() < from.String() || to.String() > from.next(31).String() {
			return fieldErr(fmt.Sprintf("holidays[%d]", i), "off_from..off_to must be within %d, in order, at most a month long", y.Year)
		}
		for d := from; d.String() <= to.String(); d = d.next(1) {
			off[d] = true
		}
		if len(h.Work) > 0 && (y.Provisional || h.Provisional) {
			return fieldErr(fmt.Sprintf("holidays[%d].work", i), "a provisional entry must not list make-up working days")
		}
	}
	for i, h := range y.Holidays {
		for j, w := range h.Work {
			d, err := parseDay(w)
			if err != nil {
				return fieldErr(fmt.Sprintf("holidays[%d].work[%d]", i, j), "%v", err)
			}
			if off[d] {
				return fieldErr(fmt.Sprintf("holidays[%d].work[%d]", i, j), "%s is also a day off", w)
			}
		}
	}
	return nil
}

// WithYear returns a new set in which y replaces the data of its region and
// year (or adds it); s is unchanged. Every calendar of the region gets a new
// version. The error names what does not fit (e.g. make-up days on a
// calendar without make-up hours).
func (s *Set) WithYear(y HolidayYear) (*Set, error) {
	years := slices.DeleteFunc(slices.Clone(s.years), func(o HolidayYear) bool {
		return strings.EqualFold(o.Region, y.Region) && o.Year == y.Year
	})
	return NewSet(s.file, append(years, y))
}

// Regions lists the holiday regions the calendars use, sorted (as the
// calendars spell them).
func (s *Set) Regions() []string {
	var out []string
	for _, c := range s.calendars {
		if c.region != "" && !slices.Contains(out, c.region) {
			out = append(out, c.region)
		}
	}
	sort.Strings(out)
	return out
}

// DefaultID is the id of the default calendar.
func (s *Set) DefaultID() string { return s.def }

// Region is the holiday region whose years apply ("CN"); "" when none.
func (c *Calendar) Region() string { return c.region }

// Years are the holiday years the calendar was built from, in order.
func (c *Calendar) Years() []HolidayYear { return slices.Clone(c.years) }

// ProvisionalYears lists the years from the day of a to the day of b
// (either order) whose holiday data is provisional or missing, so that a
// deadline over them may move once the official notice is published. A
// calendar without holidays has none.
func (c *Calendar) ProvisionalYears(a, b time.Time) []int {
	if c.region == "" {
		return nil
	}
	if b.Before(a) {
		a, b = b, a
	}
	var out []int
	for y := DayOf(a, c.loc).Year; y <= DayOf(b, c.loc).Year; y++ {
		i := slices.IndexFunc(c.years, func(h HolidayYear) bool { return h.Year == y })
		if i < 0 || c.years[i].HasProvisional() {
			out = append(out, y)
		}
	}
	return out
}

// AddWorkingDays returns the deadline n working days (n > 0) after t: the
// same working position on the n-th working day after t's day (Wednesday
// 16:00 plus 2 is Friday 16:00; a make-up working day counts, a holiday does
// not), cut at that day's close when it is shorter. From outside working
// hours (before the day's opening, after its close, a day off) the count
// starts at the next opening, and a working day is then the whole day:
// Saturday plus 1 is Monday's close. n <= 0 returns t.
func (c *Calendar) AddWorkingDays(t time.Time, n int) time.Time {
	if n <= 0 {
		return t
	}
	if c.always {
		return t.Add(time.Duration(n) * 24 * time.Hour)
	}
	day := DayOf(t, c.loc)
	if hours := c.Hours(day); len(hours) > 0 {
		open, end := c.at(day, hours[0].Start), c.at(day, hours[len(hours)-1].End)
		if t.After(open) && t.Before(end) {
			target := c.workingDayAfter(day, n)
			th := c.Hours(target)
			due := c.Add(c.at(target, th[0].Start), c.Between(open, t))
			if close := c.at(target, th[len(th)-1].End); due.After(close) {
				due = close
			}
			return due
		}
		if !t.After(open) {
			n-- // today's opening is still ahead: today is the first day
		}
	}
	target := c.workingDayAfter(day, n)
	th := c.Hours(target)
	return c.at(target, th[len(th)-1].End)
}

// workingDayAfter is the n-th working day after d (d itself when n is 0).
func (c *Calendar) workingDayAfter(d Day, n int) Day {
	for i := 0; n > 0; i++ {
		if i > maxScan {
			panic(fmt.Sprintf("calendar %s: no working day within %d days of %s", c.id, maxScan, d))
		}
		d = d.next(1)
		if c.IsWorkingDay(d) {
			n--
		}
	}
	return d
}
