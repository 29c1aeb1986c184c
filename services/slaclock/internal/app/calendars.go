package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// CalendarStream holds the CalendarYearPublished events of a holiday
// region: "policy-calendar-cn" (the policy kind, which sla-clock writes).
func CalendarStream(region string) eventlog.StreamID {
	return eventlog.Stream(eventlog.KindPolicy, "calendar-"+strings.ToLower(region))
}

// liveCalendars is the calendar set in use: the configured one (the shipped
// data by default) with, for each region and year, the newest version
// published on the log. It implements domain.Calendars; safe for
// concurrent use.
type liveCalendars struct {
	mu     sync.Mutex // one change at a time
	cur    atomic.Pointer[calendar.Set]
	newest map[string]int // "<REGION>/<year>" -> the version in use
}

func newLiveCalendars(s *calendar.Set) *liveCalendars {
	l := &liveCalendars{newest: map[string]int{}}
	l.cur.Store(s)
	return l
}

func (l *liveCalendars) Calendar(id string) (*calendar.Calendar, error) {
	return l.cur.Load().Calendar(id)
}

func (l *liveCalendars) For(owner string) (*calendar.Calendar, bool) { return l.cur.Load().For(owner) }

// set is the calendars now in use.
func (l *liveCalendars) set() *calendar.Set { return l.cur.Load() }

// use makes y the data of its year unless a version as new is in use
// already (the log is applied more than once: at start and while following).
func (l *liveCalendars) use(y calendar.HolidayYear) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	key := fmt.Sprintf("%s/%d", strings.ToUpper(y.Region), y.Year)
	if y.Version <= l.newest[key] {
		return nil
	}
	s, err := l.cur.Load().WithYear(y)
	if err != nil {
		return err
	}
	l.cur.Store(s)
	l.newest[key] = y.Version
	return nil
}

// applyCalendarYear uses a published year read from the log.
func (a *App) applyCalendarYear(p *ev.CalendarYearPublished) {
	if err := a.calendars.use(yearOf(p)); err != nil {
		a.log.Error("slaclock: published calendar year does not fit the calendars; ignored",
			"region", p.GetRegion(), "year", p.GetYear(), "version", p.GetVersion(), "err", err)
	}
}

// loadCalendars uses every year published for the calendars' regions: the
// view's snapshot does not hold them, so each start reads their streams.
func (a *App) loadCalendars(ctx context.Context) error {
	for _, region := range a.calendars.set().Regions() {
		recs, err := a.store.ReadStream(ctx, CalendarStream(region), 1)
		if err != nil {
			return fmt.Errorf("app: read %s: %w", CalendarStream(region), err)
		}
		for _, r := range recs {
			if p := r.Event.GetCalendarYearPublished(); p != nil {
				a.applyCalendarYear(p)
			}
		}
	}
	return nil
}

func yearOf(p *ev.CalendarYearPublished) calendar.HolidayYear {
	y := calendar.HolidayYear{Region: p.GetRegion(), Year: int(p.GetYear()), Version: int(p.GetVersion()),
		Provisional: p.GetProvisional(), Source: p.GetSource()}
	for _, h := range p.GetHolidays() {
		y.Holidays = append(y.Holidays, calendar.Holiday{Name: h.GetName(), OffFrom: h.GetOffFrom(), OffTo: h.GetOffTo(),
			Work: h.GetWork(), Provisional: h.GetProvisional()})
	}
	return y
}

func publishedOf(y calendar.HolidayYear, by string) *ev.CalendarYearPublished {
	p := &ev.CalendarYearPublished{Region: y.Region, Year: int32(y.Year), Version: int32(y.Version),
		Provisional: y.Provisional, Source: y.Source, PublishedBy: by}
	for _, h := range y.Holidays {
		p.Holidays = append(p.Holidays, &ev.CalendarHoliday{Name: h.Name, OffFrom: h.OffFrom, OffTo: h.OffTo,
			Work: h.Work, Provisional: h.Provisional})
	}
	return p
}

// YearPublished is the result of PublishCalendarYear.
type YearPublished struct {
	Region  string
	Year    int
	Version int
	// Published is false when the same data was the newest version already.
	Published bool
	// CalendarVersions are the versions of the region's calendars now.
	CalendarVersions []string
}

// PublishCalendarYear validates one year of holiday data (the format of
// libs/calendar/data/<region>/<year>.json) and appends it to the region's
// stream as the year's next version; by is who publishes it. The same data
// as the newest version publishes nothing.
func (a *App) PublishCalendarYear(ctx context.Context, doc []byte, by string) (YearPublished, error) {
	y, err := calendar.ParseYear(doc)
	if err != nil {
		var fe *calendar.FieldError
		if errors.As(err, &fe) {
			field := "document"
			if fe.Field != "document" {
				field += "." + fe.Field
			}
			return YearPublished{}, kernel.Invalid(kernel.Violation{Field: field, Rule: "valid", Message: fe.Message})
		}
		return YearPublished{}, invalid("document", err)
	}
	cur := a.calendars.set()
	i := slices.IndexFunc(cur.Regions(), func(r string) bool { return strings.EqualFold(r, y.Region) })
	if i < 0 {
		return YearPublished{}, kernel.Invalid(kernel.Violation{Field: "document.region", Rule: "known",
			Message: fmt.Sprintf("no calendar takes its holidays from region %q (calendars.json: holidays); known: %s", y.Region, strings.Join(cur.Regions(), ", "))})
	}
	y.Region = cur.Regions()[i]
	if _, err := cur.WithYear(y); err != nil {
		return YearPublished{}, invalid("document", err)
	}
	res := YearPublished{Region: y.Region, Year: y.Year}
	_, err = kernel.Execute(ctx, a.w, kernel.Command[[]*ev.CalendarYearPublished]{
		Name: "PublishCalendarYear", Stream: CalendarStream(y.Region), Cause: kernel.Cause{Actor: by},
		Fold: func(recs []eventlog.Record) ([]*ev.CalendarYearPublished, error) {
			var mine []*ev.CalendarYearPublished // this year's versions, in order
			for _, r := range recs {
				if p := r.Event.GetCalendarYearPublished(); p != nil && int(p.GetYear()) == y.Year {
					mine = append(mine, p)
				}
			}
			return mine, nil
		},
		Decide: func(mine []*ev.CalendarYearPublished, _ time.Time) ([]proto.Message, error) {
			next := publishedOf(y, by)
			if n := len(mine); n > 0 {
				last := proto.Clone(mine[n-1]).(*ev.CalendarYearPublished)
				last.Version, last.PublishedBy = 0, by
				if proto.Equal(last, next) {
					res.Version, res.Published, y.Version = int(mine[n-1].GetVersion()), false, int(mine[n-1].GetVersion())
					return nil, nil
				}
				next.Version = mine[n-1].GetVersion() + 1
			} else {
				next.Version = 1
			}
			res.Version, res.Published, y.Version = int(next.Version), true, int(next.Version)
			return []proto.Message{next}, nil
		},
	})
	if err != nil {
		return YearPublished{}, err
	}
	if err := a.calendars.use(y); err != nil {
		return YearPublished{}, err // checked above: only a concurrent publication of another shape
	}
	for _, id := range a.calendars.set().IDs() {
		if c, _ := a.calendars.Calendar(id); strings.EqualFold(c.Region(), y.Region) {
			res.CalendarVersions = append(res.CalendarVersions, c.Version())
		}
	}
	return res, nil
}

// Deadline is the result of ComputeDeadline.
type Deadline struct {
	At       time.Time
	Calendar *calendar.Calendar
	// ProvisionalYears are the years crossed whose holiday data is
	// provisional or missing.
	ProvisionalYears []int
}

// ComputeDeadline is the instant d of working time, or days working days,
// after from on a calendar ("": the default); exactly one of d and days is
// positive (the caller checks).
func (a *App) ComputeDeadline(calendarID string, from time.Time, d time.Duration, days int) (Deadline, error) {
	cal, err := a.calendars.Calendar(calendarID)
	if err != nil {
		return Deadline{}, kernel.Invalid(kernel.Violation{Field: "calendar_id", Rule: "known",
			Message: fmt.Sprintf("unknown calendar %q; known: %s", calendarID, strings.Join(a.calendars.set().IDs(), ", "))})
	}
	at := cal.Add(from, d)
	if days > 0 {
		at = cal.AddWorkingDays(from, days)
	}
	return Deadline{At: at, Calendar: cal, ProvisionalYears: cal.ProvisionalYears(from, at)}, nil
}

// Calendars are the calendars in use, sorted by id, and the default's id.
func (a *App) Calendars() ([]*calendar.Calendar, string) {
	s := a.calendars.set()
	var out []*calendar.Calendar
	for _, id := range s.IDs() {
		c, _ := s.Calendar(id)
		out = append(out, c)
	}
	return out, s.DefaultID()
}
