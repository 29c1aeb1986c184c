package platform

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestEnvParsesAndCollectsEveryMistake(t *testing.T) {
	e := EnvOf(map[string]string{
		"GOOD_INT": "7", "BAD_INT": "x", "LOW_INT": "0",
		"GOOD_DUR": "90s", "BAD_DUR": "soon", "SHORT_DUR": "1s",
		"GOOD_BOOL": "1", "BAD_BOOL": "maybe",
		"EMPTY_ADDR": "", "CUSTOM": "no",
	})
	if got := e.Int("GOOD_INT", 1, 1, 10); got != 7 {
		t.Errorf("GOOD_INT = %d, want 7", got)
	}
	if got := e.Int("BAD_INT", 3, 1, 10); got != 3 {
		t.Errorf("BAD_INT = %d, want the default 3", got)
	}
	e.Int("LOW_INT", 3, 1, 10)
	if got := e.Duration("GOOD_DUR", time.Hour, time.Second); got != 90*time.Second {
		t.Errorf("GOOD_DUR = %s", got)
	}
	e.Duration("BAD_DUR", time.Hour, 0)
	e.Duration("SHORT_DUR", time.Hour, time.Minute)
	if !e.Bool("GOOD_BOOL", false) {
		t.Error("GOOD_BOOL = false")
	}
	e.Bool("BAD_BOOL", false)
	if got := e.String("EMPTY_ADDR", ":8080"); got != "" {
		t.Errorf("EMPTY_ADDR = %q: a variable set to empty is set", got)
	}
	if got := e.String("UNSET", "def"); got != "def" {
		t.Errorf("UNSET = %q", got)
	}
	e.Parse("CUSTOM", func(v string) error { return errors.New("must be yes") })
	e.File("UNSET_FILE")
	err := e.Err()
	if err == nil {
		t.Fatal("Err() = nil with six bad variables")
	}
	for _, name := range []string{"BAD_INT", "LOW_INT", "BAD_DUR", "SHORT_DUR", "BAD_BOOL", "CUSTOM: must be yes"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("Err() does not name %s: %v", name, err)
		}
	}
	for _, name := range []string{"GOOD_", "EMPTY_ADDR", "UNSET"} {
		if strings.Contains(err.Error(), name) {
			t.Errorf("Err() names %s, which is fine: %v", name, err)
		}
	}
}

func TestEnvFileNamesTheVariableOfAMissingFile(t *testing.T) {
	e := EnvOf(map[string]string{"POLICY_FILE": "/nonexistent/policy.json"})
	if b := e.File("POLICY_FILE"); b != nil {
		t.Errorf("File = %q", b)
	}
	if err := e.Err(); err == nil || !strings.HasPrefix(err.Error(), "POLICY_FILE: ") {
		t.Errorf("Err() = %v, want it to start with the variable", err)
	}
}
