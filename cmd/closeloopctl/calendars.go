package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// deadline asks sla-clock's calculator: from an instant, N working hours or
// working days on a calendar.
func deadline(ctx context.Context, o options, args []string, out io.Writer, now time.Time) error {
	req, err := deadlineRequest(args, now)
	if err != nil {
		return err
	}
	res, err := call(ctx, o, "slaclock", "ComputeDeadline", req)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("deadline %s on %v (version %v)", localTime(res["deadline"], res["timeZone"]), res["calendarId"], res["calendarVersion"])
	if res["provisional"] == true {
		line += fmt.Sprintf("\nPROVISIONAL: it crosses years whose holiday data is provisional or missing: %v", res["provisionalYears"])
	}
	return printJSONOrLine(o, out, res, line)
}

// deadlineRequest builds ComputeDeadline's request; the service checks the
// values (both or neither of -hours and -days, not positive).
func deadlineRequest(args []string, now time.Time) (map[string]any, error) {
	fs := newFlagSet("deadline")
	cal := fs.String("calendar", "", "calendar id, e.g. cn-standard (default: the default calendar)")
	from := fs.String("from", "", "the instant to count from, RFC 3339 with or without seconds, e.g. 2026-09-30T16:00+08:00 (default: now)")
	hours := fs.Float64("hours", 0, "working hours to add")
	days := fs.Int("days", 0, "working days to add")
	if err := fs.Parse(args); err != nil {
		return nil, usageErr("deadline: %v", err)
	}
	if fs.NArg() != 0 {
		return nil, usageErr("deadline: unexpected argument %q (flags only)", fs.Arg(0))
	}
	at := now
	if *from != "" {
		t, err := parseInstant(*from)
		if err != nil {
			return nil, usageErr("deadline: -from %q: must be RFC 3339, e.g. 2026-09-30T16:00+08:00", *from)
		}
		at = t
	}
	req := map[string]any{"calendarId": *cal, "from": at.UTC().Format(time.RFC3339Nano)}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "hours":
			req["duration"] = strconv.FormatFloat(*hours*3600, 'f', -1, 64) + "s"
		case "days":
			req["workingDays"] = *days
		}
	})
	return req, nil
}

// parseInstant reads RFC 3339, also without seconds.
func parseInstant(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t, err = time.Parse("2006-01-02T15:04Z07:00", s)
	}
	return t, err
}

// localTime shows an RFC 3339 instant in a calendar's zone, with its weekday.
func localTime(instant, zone any) string {
	s, _ := instant.(string)
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	if name, _ := zone.(string); name != "" {
		if loc, err := time.LoadLocation(name); err == nil {
			t = t.In(loc)
		}
	}
	return t.Format("2006-01-02T15:04:05Z07:00 Mon")
}

// calendars lists the calendars sla-clock uses: versions, years covered,
// provisional entries.
func calendars(ctx context.Context, o options, out io.Writer) error {
	res, err := call(ctx, o, "slaclock", "ListCalendars", map[string]any{})
	if err != nil {
		return err
	}
	var b strings.Builder
	list, _ := res["calendars"].([]any)
	for _, c := range list {
		c, _ := c.(map[string]any)
		def := ""
		if c["default"] == true {
			def = " (default)"
		}
		fmt.Fprintf(&b, "%v%s  %v  %v\n", c["id"], def, c["timeZone"], c["version"])
		years, _ := c["years"].([]any)
		for _, y := range years {
			y, _ := y.(map[string]any)
			version := "shipped"
			if v, ok := y["version"].(float64); ok && v > 0 {
				version = fmt.Sprintf("published v%v", v)
			}
			status := "official"
			if y["provisional"] == true {
				status = "provisional"
			}
			fmt.Fprintf(&b, "  %v %s, %s — %v\n", y["year"], version, status, y["source"])
			entries, _ := y["provisionalEntries"].([]any)
			for _, e := range entries {
				fmt.Fprintf(&b, "    provisional: %v\n", e)
			}
		}
	}
	return printJSONOrLine(o, out, res, strings.TrimSuffix(b.String(), "\n"))
}

// calendarCmd is `calendar publish -file <year>.json`: publish one year of
// holiday data (an admin's token).
func calendarCmd(ctx context.Context, o options, args []string, out io.Writer) error {
	if len(args) == 0 || args[0] != "publish" {
		return usageErr("calendar: the command is 'calendar publish -file <year>.json'")
	}
	fs := newFlagSet("calendar publish")
	file := fs.String("file", "", "the year's data, in the format of libs/calendar/data/<region>/<year>.json")
	if err := fs.Parse(args[1:]); err != nil {
		return usageErr("calendar publish: %v", err)
	}
	if *file == "" || fs.NArg() != 0 {
		return usageErr("calendar publish: give -file <year>.json and nothing else")
	}
	doc, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	res, err := call(ctx, o, "slaclock", "PublishCalendarYear", map[string]any{"document": doc})
	if err != nil {
		return err
	}
	what := "published as version"
	if res["published"] != true {
		what = "unchanged: already the newest, version"
	}
	return printJSONOrLine(o, out, res, fmt.Sprintf("%v %v %s %v; calendars now %v", res["region"], res["year"], what, res["version"], res["calendarVersions"]))
}
