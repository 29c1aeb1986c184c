package eventlog_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestRetriedPrefixTellsRetryFromConflict(t *testing.T) {
	batch := func(ids ...string) []*eventsv1.Envelope {
		out := make([]*eventsv1.Envelope, len(ids))
		for i, id := range ids {
			out[i] = &eventsv1.Envelope{EventId: id}
		}
		return out
	}
	for _, tc := range []struct {
		name        string
		storedAfter []string
		batch       []*eventsv1.Envelope
		stored      int
		ok          bool
	}{
		{"whole batch already stored", []string{"a", "b"}, batch("a", "b"), 2, true},
		{"whole batch stored, others wrote after it", []string{"a", "b", "x"}, batch("a", "b"), 2, true},
		{"a prefix stored by a crashed attempt", []string{"a"}, batch("a", "b", "c"), 1, true},
		{"someone else wrote first", []string{"x"}, batch("a"), 0, false},
		{"a prefix, then someone else", []string{"a", "x"}, batch("a", "b"), 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored, ok := eventlog.RetriedPrefix(tc.storedAfter, tc.batch)
			if stored != tc.stored || ok != tc.ok {
				t.Fatalf("RetriedPrefix = %d, %v; want %d, %v", stored, ok, tc.stored, tc.ok)
			}
		})
	}
}

func TestStreamIDValidate(t *testing.T) {
	for id, valid := range map[eventlog.StreamID]bool{
		"complaint-0190a1b2-c3d4": true,
		"policy-default_v2":       true,
		"complaint":               false,
		"complaint-":              false,
		"complaint-a.b":           false,
		"complaint-a*":            false,
		"complaint-a>":            false,
		"complaint-a b":           false,
	} {
		if err := id.Validate(); (err == nil) != valid {
			t.Errorf("%q: Validate() = %v, want valid=%v", id, err, valid)
		}
	}
}

func TestReachedRefusesAShortRead(t *testing.T) {
	stream := eventlog.ComplaintStream("c1")
	if err := eventlog.Reached(stream, 5, 5); err != nil {
		t.Errorf("read up to the version seen: %v", err)
	}
	if err := eventlog.Reached(stream, 0, 0); err != nil {
		t.Errorf("no expectation: %v", err)
	}
	if got := eventlog.LastVersion([]eventlog.Record{{Event: &eventsv1.Envelope{Version: 3}}, {Event: &eventsv1.Envelope{Version: 4}}}); got != 4 {
		t.Errorf("LastVersion = %d, want 4", got)
	}
	if got := eventlog.LastVersion(nil); got != 0 {
		t.Errorf("LastVersion(nil) = %d, want 0", got)
	}
	err := eventlog.Reached(stream, 4, 5)
	if !errors.Is(err, eventlog.ErrShortRead) || !strings.Contains(err.Error(), "complaint-c1 read up to version 4, version 5 was seen") {
		t.Errorf("short read: %v", err)
	}
}
