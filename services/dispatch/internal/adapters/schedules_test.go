package adapters

import (
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/calendar"
)

func TestCalendarSchedule(t *testing.T) {
	set, err := calendar.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := NewCalendarSchedules(set)
	sh, _ := time.LoadLocation("Asia/Shanghai")
	std := s.Schedule("cn-standard")
	tests := []struct {
		name    string
		at      time.Time
		onShift bool
		next    time.Time
	}{
		{"working morning", time.Date(2026, 3, 10, 10, 0, 0, 0, sh), true, time.Date(2026, 3, 10, 10, 0, 0, 0, sh)},
		{"lunch break", time.Date(2026, 3, 10, 12, 30, 0, 0, sh), false, time.Date(2026, 3, 10, 13, 0, 0, 0, sh)},
		{"saturday", time.Date(2026, 3, 14, 10, 0, 0, 0, sh), false, time.Date(2026, 3, 16, 9, 0, 0, 0, sh)},
		{"labour day holiday", time.Date(2026, 5, 1, 10, 0, 0, 0, sh), false, time.Date(2026, 5, 6, 9, 0, 0, 0, sh)},
		{"make-up working saturday", time.Date(2026, 5, 9, 10, 0, 0, 0, sh), true, time.Date(2026, 5, 9, 10, 0, 0, 0, sh)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := std.OnShift(tc.at); got != tc.onShift {
				t.Errorf("OnShift = %v", got)
			}
			if got := std.NextShiftStart(tc.at); !got.Equal(tc.next) {
				t.Errorf("NextShiftStart = %s, want %s", got.In(sh), tc.next)
			}
		})
	}
	if !s.Known("") || !s.Known("always") || s.Known("nope") {
		t.Error("Known")
	}
	if s.Schedule("nope").OnShift(time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)) {
		t.Error("an unknown calendar is never on shift")
	}
}
