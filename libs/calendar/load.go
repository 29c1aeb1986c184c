package calendar

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed data
var shipped embed.FS

// HolidayYear is one data file: a region's public holidays and make-up
// working days of one year (data/<region>/<year>.json).
type HolidayYear struct {
	Region string `json:"region"`
	Year   int    `json:"year"`
	// Provisional years are not from the official notice; their version
	// carries a "p" so a deadline computed with them says so.
	Provisional bool      `json:"provisional"`
	Source      string    `json:"source"`
	Holidays    []Holiday `json:"holidays"`
	// Version is the published version of the year (0: the data shipped in
	// data/; n: the n-th version published by sla-clock). Not in the file:
	// publishing assigns it.
	Version int `json:"-"`
}

// HasProvisional reports whether any entry of the year is not from the
// official notice (the whole year, or one holiday).
func (y HolidayYear) HasProvisional() bool {
	if y.Provisional {
		return true
	}
	for _, h := range y.Holidays {
		if h.Provisional {
			return true
		}
	}
	return false
}

// Holiday is one holiday: days off (inclusive range) and the weekend days
// worked instead.
type Holiday struct {
	Name    string   `json:"name"`
	OffFrom string   `json:"off_from"`
	OffTo   string   `json:"off_to"`
	Work    []string `json:"work,omitempty"`
	// Provisional: this entry is not from the official notice (an estimate);
	// it must not list make-up working days.
	Provisional bool `json:"provisional,omitempty"`
}

// Spec describes one calendar (an entry of data/calendars.json).
type Spec struct {
	ID       string `json:"id"`
	TimeZone string `json:"time_zone"`
	// Holidays names the region whose year files apply ("CN"); empty: none.
	Holidays string `json:"holidays,omitempty"`
	// Hours per weekday ("mon".."sun"), each "HH:MM-HH:MM"; a missing day is closed.
	Hours map[string][]string `json:"hours"`
	// MakeUpHours are the hours of a make-up working day that falls on a
	// closed weekday; default: Monday's hours.
	MakeUpHours []string `json:"make_up_hours,omitempty"`
}

// File is the calendars data file: the calendars, the default one, and
// which calendar each team or technician works by.
type File struct {
	Default   string `json:"default"`
	Calendars []Spec `json:"calendars"`
	// Assignments map an owner ("team-<id>", "technician-<id>") to a calendar id.
	Assignments map[string]string `json:"assignments"`
}

// Set is a loaded calendars file: calendars by id and by owner.
type Set struct {
	def         string
	calendars   map[string]*Calendar
	assignments map[string]string
	// What it was built from, so that WithYear can build the next one.
	file  File
	years []HolidayYear
}

// Default loads the shipped calendars and holiday years (2026 official,
// 2027 provisional).
func Default() (*Set, error) {
	sub, err := fs.Sub(shipped, "data")
	if err != nil {
		return nil, err
	}
	return LoadFS(sub)
}

// LoadFS loads "calendars.json" and every "<region>/<year>.json" of fsys.
func LoadFS(fsys fs.FS) (*Set, error) {
	raw, err := fs.ReadFile(fsys, "calendars.json")
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	var f File
	if err := strictJSON(raw, &f); err != nil {
		return nil, fmt.Errorf("calendar: calendars.json: %w", err)
	}
	files, err := fs.Glob(fsys, "*/*.json")
	if err != nil {
		return nil, err
	}
	var years []HolidayYear
	for _, name := range files {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("calendar: %w", err)
		}
		var y HolidayYear
		if err := strictJSON(raw, &y); err != nil {
			return nil, fmt.Errorf("calendar: %s: %w", name, err)
		}
		if want := strings.TrimSuffix(path.Base(name), ".json"); strconv.Itoa(y.Year) != want {
			return nil, fmt.Errorf("calendar: %s: year: %d does not match the file name", name, y.Year)
		}
		years = append(years, y)
	}
	return NewSet(f, years)
}

// NewSet builds calendars from a calendars file and holiday years.
func NewSet(f File, years []HolidayYear) (*Set, error) {
	s := &Set{def: f.Default, calendars: map[string]*Calendar{}, assignments: map[string]string{}, file: f, years: years}
	for i, spec := range f.Calendars {
		var mine []HolidayYear
		for _, y := range years {
			if spec.Holidays != "" && strings.EqualFold(y.Region, spec.Holidays) {
				mine = append(mine, y)
			}
		}
		c, err := New(spec, mine...)
		if err != nil {
			return nil, fmt.Errorf("calendar: calendars[%d]: %w", i, err)
		}
		if _, dup := s.calendars[c.id]; dup {
			return nil, fmt.Errorf("calendar: calendars[%d].id: %q is defined twice", i, c.id)
		}
		s.calendars[c.id] = c
	}
	if _, ok := s.calendars[s.def]; !ok {
		return nil, fmt.Errorf("calendar: default: %q is not a defined calendar", s.def)
	}
	for owner, id := range f.Assignments {
		if _, ok := s.calendars[id]; !ok {
			return nil, fmt.Errorf("calendar: assignments[%q]: %q is not a defined calendar", owner, id)
		}
		s.assignments[owner] = id
	}
	return s, nil
}

// ErrUnknown is returned for a calendar id that is not defined.
var ErrUnknown = errors.New("calendar: unknown calendar")

// Calendar returns the calendar with the id; "" is the default.
func (s *Set) Calendar(id string) (*Calendar, error) {
	if id == "" {
		id = s.def
	}
	c, ok := s.calendars[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknown, id)
	}
	return c, nil
}

// For returns the calendar an owner ("team-<id>", "technician-<id>") works
// by; assigned is false, and the calendar the default one, when the owner
// has none of its own.
func (s *Set) For(owner string) (cal *Calendar, assigned bool) {
	if id, ok := s.assignments[owner]; ok {
		return s.calendars[id], true
	}
	return s.calendars[s.def], false
}

// IDs lists the calendar ids, sorted.
func (s *Set) IDs() []string {
	ids := make([]string, 0, len(s.calendars))
	for id := range s.calendars {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// New builds one calendar from its spec and holiday years.
func New(spec Spec, years ...HolidayYear) (*Calendar, error) {
	if spec.ID == "" {
		return nil, errors.New("id: required")
	}
	loc, err := time.LoadLocation(spec.TimeZone)
	if err != nil || spec.TimeZone == "" {
		return nil, fmt.Errorf("%s: time_zone: %q is not an IANA time zone", spec.ID, spec.TimeZone)
	}
	c := &Calendar{id: spec.ID, loc: loc, special: map[Day]dayKind{}}
	for name, spans := range spec.Hours {
		wd, ok := weekdays[name]
		if !ok {
			return nil, fmt.Errorf("%s: hours: %q is not a weekday (mon..sun)", spec.ID, name)
		}
		if c.week[wd], err = parseSpans(spans); err != nil {
			return nil, fmt.Errorf("%s: hours.%s: %w", spec.ID, name, err)
		}
	}
	c.makeUp = c.week[time.Monday]
	if len(spec.MakeUpHours) > 0 {
		if c.makeUp, err = parseSpans(spec.MakeUpHours); err != nil {
			return nil, fmt.Errorf("%s: make_up_hours: %w", spec.ID, err)
		}
	}
	open, allDay := 0, true
	for _, h := range c.week {
		if len(h) > 0 {
			open++
		}
		allDay = allDay && len(h) == 1 && h[0] == Interval{0, 24 * time.Hour}
	}
	if open == 0 {
		return nil, fmt.Errorf("%s: hours: at least one weekday must have working hours", spec.ID)
	}
	years = slices.Clone(years)
	sort.Slice(years, func(i, j int) bool { return years[i].Year < years[j].Year })
	var tags []string
	for i, y := range years {
		if i > 0 && years[i-1].Year == y.Year {
			return nil, fmt.Errorf("%s: holidays %s/%d: the year is given twice", spec.ID, y.Region, y.Year)
		}
		if err := checkHolidays(y); err != nil {
			return nil, fmt.Errorf("%s: holidays %s/%d: %w", spec.ID, y.Region, y.Year, err)
		}
		c.addYear(y)
		tag := strconv.Itoa(y.Year)
		if y.Version > 0 {
			tag += "v" + strconv.Itoa(y.Version)
		}
		if y.HasProvisional() {
			tag += "p"
		}
		tags = append(tags, tag)
	}
	c.region, c.years = spec.Holidays, years
	if len(c.makeUp) == 0 && hasWork(c.special) {
		return nil, fmt.Errorf("%s: make_up_hours: required when Monday is closed and make-up days exist", spec.ID)
	}
	c.always = allDay && len(c.special) == 0
	c.version = newVersion(c.id, loc, c.week, c.makeUp, c.special, tags)
	return c, nil
}

func hasWork(m map[Day]dayKind) bool {
	for _, k := range m {
		if k == dayWork {
			return true
		}
	}
	return false
}

// addYear marks the days of a year checked by checkHolidays.
func (c *Calendar) addYear(y HolidayYear) {
	for _, h := range y.Holidays {
		from, _ := parseDay(h.OffFrom)
		to, _ := parseDay(h.OffTo)
		for d := from; d.String() <= to.String(); d = d.next(1) {
			c.special[d] = dayOff
		}
		for _, w := range h.Work {
			d, _ := parseDay(w)
			c.special[d] = dayWork
		}
	}
}

func parseDay(s string) (Day, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Day{}, fmt.Errorf("%q is not a date YYYY-MM-DD", s)
	}
	return Day{t.Year(), t.Month(), t.Day()}, nil
}

// parseSpans reads "HH:MM-HH:MM" spans, in order and not overlapping.
func parseSpans(spans []string) ([]Interval, error) {
	var out []Interval
	for i, sp := range spans {
		a, b, ok := strings.Cut(sp, "-")
		s, err1 := parseHHMM(a)
		e, err2 := parseHHMM(b)
		if !ok || err1 != nil || err2 != nil || e <= s {
			return nil, fmt.Errorf("[%d]: %q must be HH:MM-HH:MM with start before end", i, sp)
		}
		if len(out) > 0 && s < out[len(out)-1].End {
			return nil, fmt.Errorf("[%d]: %q overlaps or precedes the previous span", i, sp)
		}
		out = append(out, Interval{s, e})
	}
	return out, nil
}

func parseHHMM(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || mm < 0 || mm > 59 || hh*60+mm > 24*60 {
		return 0, fmt.Errorf("%q is not HH:MM", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

func strictJSON(raw []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
