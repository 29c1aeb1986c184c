package main

import (
	"log/slog"
	"os"
	"strconv"
	"testing"
)

// `make run` listens on loopback unless told otherwise: every service API
// (and the NATS server, natsembed's default host) on the host given.
func TestLocalDefaultsListenOnTheHostGiven(t *testing.T) {
	for _, k := range []string{"CLOSELOOP_TOKENS", "CLOSELOOP_TOKENS_FILE", "CLOSELOOP_AUTH", "INTAKE_PII_SECRET", "FOLLOWUP_SURVEY_SECRET"} {
		t.Setenv(k, "")
	}
	for k := range serviceAddrs {
		t.Setenv(k, "")
	}
	t.Setenv("ROUTING_HTTP_ADDR", "0.0.0.0:9002") // told otherwise
	if err := localDefaults(t.TempDir(), "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if len(serviceAddrs) != 10 {
		t.Fatalf("%d addresses, want the gRPC and HTTP of five services", len(serviceAddrs))
	}
	for k, port := range serviceAddrs {
		want := "127.0.0.1:" + strconv.Itoa(port)
		if k == "ROUTING_HTTP_ADDR" {
			want = "0.0.0.0:9002"
		}
		if got := os.Getenv(k); got != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
}
