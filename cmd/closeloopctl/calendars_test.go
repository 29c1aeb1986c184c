package main

import (
	"errors"
	"maps"
	"strings"
	"testing"
	"time"
)

func TestDeadlineRequestPassesWhatWasGiven(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	cases := []struct {
		args []string
		want map[string]any
	}{
		{[]string{"-calendar", "cn-standard", "-from", "2026-09-30T16:00+08:00", "-hours", "8"},
			map[string]any{"calendarId": "cn-standard", "from": "2026-09-30T08:00:00Z", "duration": "28800s"}},
		{[]string{"-from", "2026-09-30T16:00:00+08:00", "-days", "2"},
			map[string]any{"calendarId": "", "from": "2026-09-30T08:00:00Z", "workingDays": 2}},
		{[]string{"-hours", "1.5"}, map[string]any{"calendarId": "", "from": "2026-12-03T10:00:00Z", "duration": "5400s"}},
		// The service refuses these, naming the field: the CLI passes them on.
		{[]string{"-hours", "-1", "-days", "0"}, map[string]any{"calendarId": "", "from": "2026-12-03T10:00:00Z", "duration": "-3600s", "workingDays": 0}},
		{nil, map[string]any{"calendarId": "", "from": "2026-12-03T10:00:00Z"}},
	}
	for _, c := range cases {
		got, err := deadlineRequest(c.args, now)
		if err != nil || !maps.Equal(got, c.want) {
			t.Errorf("%v: %v %v, want %v", c.args, got, err, c.want)
		}
	}
	for _, bad := range [][]string{{"-from", "30/09/2026 16:00", "-days", "1"}, {"-days", "x"}, {"extra"}} {
		_, err := deadlineRequest(bad, now)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("%v: %v, want a usage error", bad, err)
		}
	}
}

func TestCalendarPublishNeedsAFile(t *testing.T) {
	for _, args := range [][]string{nil, {"publish"}, {"list"}, {"publish", "-file", "a.json", "b.json"}} {
		err := calendarCmd(t.Context(), options{}, args, &strings.Builder{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("calendar %v: %v, want a usage error", args, err)
		}
	}
}
