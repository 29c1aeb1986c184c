package jsstore_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(durabilityChildEnv); dir != "" {
		os.Exit(durabilityChild(dir))
	}
	code := m.Run()
	closeReplayLog()
	os.Exit(code)
}
