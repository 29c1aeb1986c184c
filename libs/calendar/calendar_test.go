package calendar

import (
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"
)

var shanghai = mustLoc("Asia/Shanghai")

func mustLoc(name string) *time.Location {
	l, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return l
}

func std(t *testing.T) *Calendar {
	t.Helper()
	s, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Calendar("cn-standard")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sh(y int, m time.Month, d, hh, mm int) time.Time {
	return time.Date(y, m, d, hh, mm, 0, 0, shanghai)
}

func TestWorkingDays2026(t *testing.T) {
	c := std(t)
	cases := []struct {
		day     Day
		working bool
		why     string
	}{
		{Day{2026, 1, 1}, false, "New Year"},
		{Day{2026, 1, 4}, true, "Sun Jan 4 make-up"},
		{Day{2026, 2, 13}, true, "Fri before Spring Festival"},
		{Day{2026, 2, 14}, true, "Sat Feb 14 make-up"},
		{Day{2026, 2, 15}, false, "Spring Festival first day"},
		{Day{2026, 2, 18}, false, "Spring Festival Wednesday"},
		{Day{2026, 2, 23}, false, "Spring Festival last day (Monday)"},
		{Day{2026, 2, 24}, true, "first working day after Spring Festival"},
		{Day{2026, 2, 28}, true, "Sat Feb 28 make-up"},
		{Day{2026, 3, 1}, false, "ordinary Sunday"},
		{Day{2026, 5, 9}, true, "Sat May 9 make-up"},
		{Day{2026, 9, 20}, true, "Sun Sep 20 make-up"},
		{Day{2026, 9, 25}, false, "Mid-Autumn"},
		{Day{2026, 10, 1}, false, "National Day"},
		{Day{2026, 10, 7}, false, "National Day last day"},
		{Day{2026, 10, 8}, true, "Thursday after National Day"},
		{Day{2026, 10, 10}, true, "Sat Oct 10 make-up"},
		{Day{2026, 10, 11}, false, "ordinary Sunday"},
		{Day{2027, 2, 5}, false, "2027 provisional Spring Festival eve"},
	}
	for _, tc := range cases {
		if got := c.IsWorkingDay(tc.day); got != tc.working {
			t.Errorf("%s (%s): working = %v, want %v", tc.day, tc.why, got, tc.working)
		}
	}
}

func TestDeadlineAcrossSpringFestival(t *testing.T) {
	c := std(t)
	// Friday Feb 13 16:00: 2 h left that day, Sat Feb 14 is a make-up working
	// day (8 h), then nine days off; the last 6 of 16 working hours run on
	// Tue Feb 24 (09-12, 13-16).
	got := c.Add(sh(2026, 2, 13, 16, 0), 16*time.Hour)
	if want := sh(2026, 2, 24, 16, 0); !got.Equal(want) {
		t.Fatalf("deadline = %v, want %v", got.In(shanghai), want)
	}
	if b := c.Between(sh(2026, 2, 13, 16, 0), got); b != 16*time.Hour {
		t.Fatalf("Between = %v, want 16h", b)
	}
	// Over the whole festival from Sat Feb 14 18:00 to Tue Feb 24 09:00 no working time passes.
	if b := c.Between(sh(2026, 2, 14, 18, 0), sh(2026, 2, 24, 9, 0)); b != 0 {
		t.Fatalf("Between across the holiday = %v, want 0", b)
	}
}

func TestDeadlineAcrossNationalDay(t *testing.T) {
	c := std(t)
	// Wed Sep 30 10:00 + 2 working days (16 h): Sep 30 has 7 h left, Oct 1-7
	// off, Thu Oct 8 8 h, then 1 h on Fri Oct 9.
	got := c.Add(sh(2026, 9, 30, 10, 0), 16*time.Hour)
	if want := sh(2026, 10, 9, 10, 0); !got.Equal(want) {
		t.Fatalf("deadline = %v, want %v", got.In(shanghai), want)
	}
	// Sat Oct 10 is a make-up working day: Fri Oct 9 17:00 + 2 h = Sat 10:00.
	if got := c.Add(sh(2026, 10, 9, 17, 0), 2*time.Hour); !got.Equal(sh(2026, 10, 10, 10, 0)) {
		t.Fatalf("into make-up Saturday = %v", got.In(shanghai))
	}
	// Sun Sep 20 is a make-up working day: Sat Sep 19 12:00 + 1 h = Sun 10:00.
	if got := c.Add(sh(2026, 9, 19, 12, 0), time.Hour); !got.Equal(sh(2026, 9, 20, 10, 0)) {
		t.Fatalf("into make-up Sunday = %v", got.In(shanghai))
	}
	// Backwards across the holiday.
	if got := c.Add(sh(2026, 10, 8, 10, 0), -2*time.Hour); !got.Equal(sh(2026, 9, 30, 17, 0)) {
		t.Fatalf("backwards = %v", got.In(shanghai))
	}
}

func TestLunchBreakAndDayEnd(t *testing.T) {
	c := std(t)
	if got := c.Add(sh(2026, 3, 2, 11, 30), time.Hour); !got.Equal(sh(2026, 3, 2, 13, 30)) {
		t.Fatalf("across lunch = %v", got.In(shanghai))
	}
	// Exactly filling the day ends on the day's end, not the next morning.
	if got := c.Add(sh(2026, 3, 2, 9, 0), 8*time.Hour); !got.Equal(sh(2026, 3, 2, 18, 0)) {
		t.Fatalf("full day = %v", got.In(shanghai))
	}
	// Starting in closed time counts from the next opening.
	if got := c.Add(sh(2026, 3, 1, 3, 0), time.Minute); !got.Equal(sh(2026, 3, 2, 9, 1)) {
		t.Fatalf("from Sunday night = %v", got.In(shanghai))
	}
}

func TestTimeZoneEdges(t *testing.T) {
	c := std(t)
	// 2026-03-02 00:30 UTC is Monday 08:30 in Shanghai: 30 min before opening.
	utc := time.Date(2026, 3, 2, 0, 30, 0, 0, time.UTC)
	if c.IsWorkingTime(utc) {
		t.Fatal("08:30 Shanghai counted as working time")
	}
	if got := c.Add(utc, time.Hour); !got.Equal(time.Date(2026, 3, 2, 2, 0, 0, 0, time.UTC)) {
		t.Fatalf("Add from UTC = %v", got.UTC())
	}
	// Sunday 20:00 UTC is already Monday 04:00 in Shanghai: the civil day is Shanghai's.
	if d := DayOf(time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC), c.Location()); d != (Day{2026, 3, 2}) {
		t.Fatalf("DayOf = %v", d)
	}
	// Thu Oct 7 17:00 UTC is Fri Oct 8 01:00 Shanghai: the holiday is over in
	// Shanghai though it is still Oct 7 in UTC.
	got := c.Add(time.Date(2026, 10, 7, 17, 0, 0, 0, time.UTC), time.Hour)
	if want := sh(2026, 10, 8, 10, 0); !got.Equal(want) {
		t.Fatalf("Add across the date line = %v, want %v", got.In(shanghai), want)
	}
}

func TestDSTZone(t *testing.T) {
	c, err := New(Spec{ID: "ny", TimeZone: "America/New_York", Hours: map[string][]string{
		"sun": {"00:00-24:00"}, "mon": {"09:00-17:00"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ny := c.Location()
	// Sun 2026-03-08 loses an hour (02:00 -> 03:00): the whole-day interval is 23 h.
	sun := time.Date(2026, 3, 8, 0, 0, 0, 0, ny)
	if got := c.Between(sun, time.Date(2026, 3, 9, 0, 0, 0, 0, ny)); got != 23*time.Hour {
		t.Fatalf("spring-forward Sunday = %v, want 23h", got)
	}
	// Working hours are wall clock: Monday opens at 09:00 EDT (13:00 UTC).
	if got := c.Add(time.Date(2026, 3, 8, 23, 0, 0, 0, ny), 2*time.Hour); !got.Equal(time.Date(2026, 3, 9, 10, 0, 0, 0, ny)) {
		t.Fatalf("Add over DST = %v", got)
	}
	// Sun 2026-11-01 gains an hour: 25 h.
	if got := c.Between(time.Date(2026, 11, 1, 0, 0, 0, 0, ny), time.Date(2026, 11, 2, 0, 0, 0, 0, ny)); got != 25*time.Hour {
		t.Fatalf("fall-back Sunday = %v, want 25h", got)
	}
}

func TestContinuousIsCalendarTime(t *testing.T) {
	c := Continuous()
	a := sh(2026, 2, 15, 3, 0)
	if got := c.Add(a, 24*time.Hour); !got.Equal(a.Add(24 * time.Hour)) {
		t.Fatalf("Add = %v", got)
	}
	if got := c.Between(a, a.Add(90*time.Minute)); got != 90*time.Minute {
		t.Fatalf("Between = %v", got)
	}
}

func TestVersionNamesDataAndProvisionalYear(t *testing.T) {
	c := std(t)
	v := c.Version()
	if len(v) < len("cn-standard@2026+2027p#") || v[:len("cn-standard@2026+2027p#")] != "cn-standard@2026+2027p#" {
		t.Fatalf("version = %q", v)
	}
	s, _ := Default()
	f, _ := s.Calendar("cn-field")
	if f.Version() == v {
		t.Fatal("different hours share a version")
	}
}

func TestLoadRejectsBadData(t *testing.T) {
	hours := map[string][]string{"mon": {"09:00-18:00"}}
	cases := []struct {
		name  string
		spec  Spec
		years []HolidayYear
	}{
		{"bad zone", Spec{ID: "x", TimeZone: "Mars/Olympus", Hours: hours}, nil},
		{"bad weekday", Spec{ID: "x", TimeZone: "UTC", Hours: map[string][]string{"mo": {"09:00-18:00"}}}, nil},
		{"reversed span", Spec{ID: "x", TimeZone: "UTC", Hours: map[string][]string{"mon": {"18:00-09:00"}}}, nil},
		{"no hours", Spec{ID: "x", TimeZone: "UTC"}, nil},
		{"provisional make-up day", Spec{ID: "x", TimeZone: "UTC", Hours: hours}, []HolidayYear{{Year: 2027, Provisional: true,
			Holidays: []Holiday{{Name: "h", OffFrom: "2027-01-01", OffTo: "2027-01-01", Work: []string{"2027-01-02"}}}}}},
		{"off and work", Spec{ID: "x", TimeZone: "UTC", Hours: hours}, []HolidayYear{{Year: 2026,
			Holidays: []Holiday{{Name: "h", OffFrom: "2026-01-01", OffTo: "2026-01-02", Work: []string{"2026-01-02"}}}}}},
	}
	for _, tc := range cases {
		if _, err := New(tc.spec, tc.years...); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestSetAssignments(t *testing.T) {
	s, err := NewSet(File{
		Default: "a",
		Calendars: []Spec{
			{ID: "a", TimeZone: "UTC", Hours: map[string][]string{"mon": {"09:00-17:00"}}},
			{ID: "b", TimeZone: "Asia/Shanghai", Hours: map[string][]string{"sat": {"09:00-17:00"}}, MakeUpHours: []string{"09:00-12:00"}},
		},
		Assignments: map[string]string{"team-repair-north": "b"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := s.For("team-repair-north"); !ok || c.ID() != "b" {
		t.Fatal("assignment not honoured")
	}
	if c, ok := s.For("team-other"); ok || c.ID() != "a" {
		t.Fatal("assignment not honoured")
	}
	if _, err := s.Calendar("zzz"); err == nil {
		t.Fatal("unknown calendar accepted")
	}
	if _, err := NewSet(File{Default: "a", Calendars: []Spec{{ID: "a", TimeZone: "UTC", Hours: map[string][]string{"mon": {"09:00-17:00"}}}},
		Assignments: map[string]string{"team-x": "nope"}}, nil); err == nil {
		t.Fatal("assignment to an unknown calendar accepted")
	}
}

// Property tests: random instants and durations with a fixed seed, over the
// standard calendar (holidays, make-up days, lunch) and a DST calendar.
func TestProperties(t *testing.T) {
	s, _ := Default()
	field, _ := s.Calendar("cn-field")
	ny, _ := New(Spec{ID: "ny", TimeZone: "America/New_York", Hours: map[string][]string{
		"sun": {"00:00-24:00"}, "mon": {"09:00-12:00", "13:00-17:00"}, "wed": {"22:00-24:00"}, "thu": {"00:00-06:00"},
	}})
	for _, c := range []*Calendar{std(t), field, ny} {
		rng := rand.New(rand.NewSource(42))
		base := time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC)
		randT := func() time.Time { return base.Add(time.Duration(rng.Int63n(int64(400 * 24 * time.Hour)))) }
		randD := func() time.Duration {
			return time.Duration(rng.Int63n(int64(60*time.Hour))) / time.Minute * time.Minute
		}
		for i := 0; i < 2000; i++ {
			t0, a, b := randT(), randD(), randD()
			x := c.Add(t0, a)
			// Monotonic.
			if a2 := a + randD(); c.Add(t0, a2).Before(x) {
				t.Fatalf("%s: not monotonic at %v + %v", c.ID(), t0, a)
			}
			// Additive: once inside working time, adding splits freely.
			if !c.Add(x, b).Equal(c.Add(t0, a+b)) {
				t.Fatalf("%s: Add(Add(%v,%v),%v)=%v != Add(t,a+b)=%v", c.ID(), t0, a, b, c.Add(x, b), c.Add(t0, a+b))
			}
			// Never lands strictly inside closed time.
			if a > 0 && !c.IsWorkingTime(x) && !c.IsWorkingTime(x.Add(-time.Nanosecond)) {
				t.Fatalf("%s: Add(%v, %v) = %v lands in closed time", c.ID(), t0, a, x)
			}
			// Between inverts Add.
			if got := c.Between(t0, x); got != a {
				t.Fatalf("%s: Between(t, Add(t,%v)) = %v", c.ID(), a, got)
			}
			// Backward Add inverts forward Add from a point inside working time.
			if a > 0 && !c.Add(x, -a).After(t0) && !c.Add(c.Add(x, -a), a).Equal(x) {
				t.Fatalf("%s: backward Add does not invert at %v", c.ID(), x)
			}
			// Between is antisymmetric and additive over a split point.
			t1, t2 := randT(), randT()
			if c.Between(t1, t2) != -c.Between(t2, t1) {
				t.Fatalf("%s: Between not antisymmetric", c.ID())
			}
			if t2.Before(t1) {
				t1, t2 = t2, t1
			}
			mid := t1.Add(t2.Sub(t1) / 2)
			if c.Between(t1, t2) != c.Between(t1, mid)+c.Between(mid, t2) {
				t.Fatalf("%s: Between not additive", c.ID())
			}
		}
	}
}

func BenchmarkAdd16h(b *testing.B) {
	s, _ := Default()
	c, _ := s.Calendar("cn-standard")
	t0 := sh(2026, 2, 13, 16, 0)
	for b.Loop() {
		c.Add(t0, 16*time.Hour)
	}
}

// The calculator's cases on the 2026 mainland calendar: National Day week
// (Oct 1-7 off), its make-up Sunday Sep 20 and Saturday Oct 10.
func TestWorkingHoursAndDays2026(t *testing.T) {
	c := std(t)
	cases := []struct {
		name  string
		from  time.Time
		hours time.Duration
		days  int
		want  time.Time
	}{
		{"8 h over National Day", sh(2026, 9, 30, 16, 0), 8 * time.Hour, 0, sh(2026, 10, 8, 16, 0)},
		{"2 days over National Day", sh(2026, 9, 30, 16, 0), 0, 2, sh(2026, 10, 9, 16, 0)},
		{"8 h into the make-up Saturday", sh(2026, 10, 9, 16, 0), 8 * time.Hour, 0, sh(2026, 10, 10, 16, 0)},
		{"1 day onto the make-up Saturday", sh(2026, 10, 9, 16, 0), 0, 1, sh(2026, 10, 10, 16, 0)},
		{"3 days: make-up Saturday counts, Sunday not", sh(2026, 10, 9, 10, 0), 0, 3, sh(2026, 10, 13, 10, 0)},
		{"8 h onto the make-up Sunday", sh(2026, 9, 18, 16, 0), 8 * time.Hour, 0, sh(2026, 9, 20, 16, 0)},
		{"1 day onto the make-up Sunday", sh(2026, 9, 18, 16, 0), 0, 1, sh(2026, 9, 20, 16, 0)},
		{"43 h across the week", sh(2026, 9, 28, 9, 0), 43 * time.Hour, 0, sh(2026, 10, 10, 12, 0)},
		{"from the lunch break", sh(2026, 9, 30, 12, 30), 0, 1, sh(2026, 10, 8, 12, 0)},
		{"from before opening: that day is the first", sh(2026, 9, 30, 8, 0), 0, 1, sh(2026, 9, 30, 18, 0)},
		{"from after close: the next working day", sh(2026, 9, 30, 19, 0), 0, 1, sh(2026, 10, 8, 18, 0)},
		{"from a holiday", sh(2026, 10, 3, 11, 0), 0, 2, sh(2026, 10, 9, 18, 0)},
		{"from a holiday, in hours", sh(2026, 10, 3, 11, 0), 2 * time.Hour, 0, sh(2026, 10, 8, 11, 0)},
	}
	for _, tc := range cases {
		var got time.Time
		if tc.days > 0 {
			got = c.AddWorkingDays(tc.from, tc.days)
		} else {
			got = c.Add(tc.from, tc.hours)
		}
		if !got.Equal(tc.want) {
			t.Errorf("%s: got %s, want %s", tc.name, got.In(shanghai), tc.want)
		}
		if p := c.ProvisionalYears(tc.from, got); len(p) != 0 {
			t.Errorf("%s: provisional years %v in official 2026", tc.name, p)
		}
	}
}

func TestWorkingDaysCutAtAShorterDay(t *testing.T) {
	s, _ := Default()
	field, _ := s.Calendar("cn-field") // 08-20 Mon-Fri, 09-17 Sat
	// Friday 19:00 is 11 h into the day; Saturday has 8 h: its close.
	if got, want := field.AddWorkingDays(sh(2026, 11, 6, 19, 0), 1), sh(2026, 11, 7, 17, 0); !got.Equal(want) {
		t.Fatalf("got %s, want %s", got.In(shanghai), want)
	}
}

func TestProvisionalYears(t *testing.T) {
	c := std(t)
	if got := c.ProvisionalYears(sh(2026, 12, 30, 10, 0), sh(2027, 1, 4, 10, 0)); len(got) != 1 || got[0] != 2027 {
		t.Fatalf("2026..2027: %v, want [2027] (provisional)", got)
	}
	if got := c.ProvisionalYears(sh(2028, 1, 3, 10, 0), sh(2028, 1, 4, 10, 0)); len(got) != 1 || got[0] != 2028 {
		t.Fatalf("2028: %v, want [2028] (no data)", got)
	}
	s, _ := Default()
	always, _ := s.Calendar("always")
	if got := always.ProvisionalYears(sh(2030, 1, 1, 0, 0), sh(2031, 1, 1, 0, 0)); got != nil {
		t.Fatalf("a calendar without holidays: %v", got)
	}
}

func TestWithYearReplacesTheYear(t *testing.T) {
	s, _ := Default()
	y, err := ParseYear([]byte(`{"region": "CN", "year": 2027, "source": "test notice",
	  "holidays": [{"name": "National Day", "off_from": "2027-10-01", "off_to": "2027-10-07", "work": ["2027-10-09"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	y.Version = 1
	s2, err := s.WithYear(y)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := s.Calendar("cn-standard")
	c, _ := s2.Calendar("cn-standard")
	if !strings.HasPrefix(c.Version(), "cn-standard@2026+2027v1#") || c.Version() == old.Version() {
		t.Fatalf("version %q (was %q)", c.Version(), old.Version())
	}
	if c.IsWorkingDay(Day{2027, 10, 5}) || !c.IsWorkingDay(Day{2027, 10, 9}) || old.IsWorkingDay(Day{2027, 10, 9}) {
		t.Fatal("the published year is not the one used, or the old set changed")
	}
	if c.IsWorkingDay(Day{2027, 2, 5}) == false {
		t.Fatal("the shipped provisional 2027 still applies: it must be replaced, not merged")
	}
	if got := c.ProvisionalYears(sh(2027, 10, 8, 10, 0), sh(2027, 10, 11, 10, 0)); len(got) != 0 {
		t.Fatalf("official 2027: provisional %v", got)
	}
}

func TestParseYearNamesTheField(t *testing.T) {
	cases := map[string]string{
		`{"region": "CN", "year": 2027, "source": "s", "holidays": [{"name": "a", "off_from": "2027-13-01", "off_to": "2027-10-03"}]}`:                                              "holidays[0].off_from",
		`{"region": "CN", "year": 2027, "source": "s", "holidays": [{"name": "a", "off_from": "2027-10-01", "off_to": "2027-10-03", "work": ["2027-10-02"]}]}`:                      "holidays[0].work[0]",
		`{"region": "CN", "year": 2027, "source": "s", "holidays": [{"name": "a", "off_from": "2027-10-01", "off_to": "2027-10-03", "work": ["2027-10-09"], "provisional": true}]}`: "holidays[0].work",
		`{"region": "CN", "year": 2027, "source": "s", "holidays": [{"name": "a", "off_from": "2026-10-01", "off_to": "2026-10-03"}]}`:                                              "holidays[0]",
		`{"region": "CN", "year": 2027, "holidays": [{"name": "a", "off_from": "2027-10-01", "off_to": "2027-10-03"}]}`:                                                             "source",
		`{"region": "C.N", "year": 2027, "source": "s", "holidays": []}`:                                                                                                            "region",
		`{"region": "CN", "year": 27, "source": "s", "holidays": []}`:                                                                                                               "year",
		`{"region": "CN", "year": 2027, "source": "s", "holidays": []}`:                                                                                                             "holidays",
		`{"region": "CN", "year": 2027, "source": "s", "holiday": []}`:                                                                                                              "document",
	}
	for doc, field := range cases {
		_, err := ParseYear([]byte(doc))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: error %v, want one naming %s", doc, err, field)
		}
	}
}
