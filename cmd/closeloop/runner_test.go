package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/pii"
	"github.com/closeloop/closeloop/libs/platform"
)

// consoleTestEnv is the console's configuration for tests that start every
// service: its pages on a free port, its actions to routing. Routing binds
// its gRPC port only when it runs, after the console is built, so a free
// port is picked here for routing to listen on and the console to dial.
func consoleTestEnv(tb testing.TB) map[string]string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	routing := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return map[string]string{
		"ROUTING_GRPC_ADDR": routing, "CONSOLE_ROUTING_ADDR": routing,
		"CONSOLE_HTTP_ADDR":    "127.0.0.1:0",
		"CONSOLE_GRPC_ADDR":    "127.0.0.1:0",
		"CONSOLE_INDEX_SECRET": "test-console-index-secret-0123456789abcdef",
	}
}

// hasGRPC says whether a service has a gRPC face.
func hasGRPC(s platform.Service) bool {
	switch s.(type) {
	case interface{ GRPCAddr() string }, interface{ API() *api.Server }:
		return true
	}
	return false
}

// `make run` listens on loopback unless told otherwise: every service API
// (and the NATS server, natsembed's default host) on the host given.
func TestLocalDefaultsListenOnTheHostGiven(t *testing.T) {
	for _, k := range []string{"CLOSELOOP_TOKENS", "CLOSELOOP_TOKENS_FILE", "CLOSELOOP_AUTH", "INTAKE_PII_SECRET", "FOLLOWUP_SURVEY_SECRET", "CONSOLE_INDEX_SECRET", "CONSOLE_ROUTING_ADDR"} {
		t.Setenv(k, "")
	}
	for k := range serviceAddrs {
		t.Setenv(k, "")
	}
	t.Setenv("ROUTING_HTTP_ADDR", "0.0.0.0:9002") // told otherwise
	if err := localDefaults(t.TempDir(), "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if len(serviceAddrs) != 12 {
		t.Fatalf("%d addresses, want the gRPC and HTTP of five services and the console", len(serviceAddrs))
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

// The console reaches routing's gRPC API where routing listens, through
// the runner's host when routing listens on every interface.
func TestLocalDefaultsPointTheConsoleAtRouting(t *testing.T) {
	for _, c := range []struct{ routing, want string }{
		{"", "127.0.0.1:7002"},
		{":9102", "127.0.0.1:9102"},
		{"10.0.0.5:7002", "10.0.0.5:7002"},
	} {
		for k := range serviceAddrs {
			t.Setenv(k, "")
		}
		t.Setenv("CONSOLE_ROUTING_ADDR", "")
		t.Setenv("ROUTING_GRPC_ADDR", c.routing)
		if err := localDefaults(t.TempDir(), "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		if got := os.Getenv("CONSOLE_ROUTING_ADDR"); got != c.want {
			t.Errorf("ROUTING_GRPC_ADDR=%q: CONSOLE_ROUTING_ADDR=%q, want %q", c.routing, got, c.want)
		}
	}
}

// The console reaches follow-up (the dashboard, the survey link) and the
// SLA clock (what-if) where they listen; its status-link secret is kept.
func TestLocalDefaultsPointTheConsoleAtFollowupAndSLAClock(t *testing.T) {
	dir := t.TempDir()
	for k := range serviceAddrs {
		t.Setenv(k, "")
	}
	for _, k := range []string{"CONSOLE_FOLLOWUP_ADDR", "CONSOLE_SLACLOCK_ADDR", "CONSOLE_STATUS_SECRET", "CONSOLE_STATUS_TOKEN",
		"CLOSELOOP_TOKENS", "CLOSELOOP_TOKENS_FILE", "CLOSELOOP_AUTH"} {
		t.Setenv(k, "")
	}
	t.Setenv("FOLLOWUP_GRPC_ADDR", ":9105")
	if err := localDefaults(dir, "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if f, s := os.Getenv("CONSOLE_FOLLOWUP_ADDR"), os.Getenv("CONSOLE_SLACLOCK_ADDR"); f != "127.0.0.1:9105" || s != "127.0.0.1:7003" {
		t.Errorf("CONSOLE_FOLLOWUP_ADDR=%q CONSOLE_SLACLOCK_ADDR=%q", f, s)
	}
	if os.Getenv("CONSOLE_STATUS_TOKEN") != "dev-console-token" {
		t.Errorf("CONSOLE_STATUS_TOKEN=%q with the development credentials", os.Getenv("CONSOLE_STATUS_TOKEN"))
	}
	first := os.Getenv("CONSOLE_STATUS_SECRET")
	t.Setenv("CONSOLE_STATUS_SECRET", "")
	if err := localDefaults(dir, "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if len(first) < 32 || os.Getenv("CONSOLE_STATUS_SECRET") != first {
		t.Errorf("CONSOLE_STATUS_SECRET %q then %q: want one of at least 32 bytes, kept", first, os.Getenv("CONSOLE_STATUS_SECRET"))
	}
}

// The console's index secret is generated once into the data directory and
// kept: a new one would make the saved view's blind index unreadable.
func TestLocalDefaultsKeepTheConsoleIndexSecret(t *testing.T) {
	dir := t.TempDir()
	var secrets []string
	for range 2 {
		t.Setenv("CONSOLE_INDEX_SECRET", "")
		if err := localDefaults(dir, "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, os.Getenv("CONSOLE_INDEX_SECRET"))
	}
	if len(secrets[0]) < 16 || secrets[0] != secrets[1] {
		t.Errorf("CONSOLE_INDEX_SECRET %q then %q: want one secret of at least 16 bytes, kept", secrets[0], secrets[1])
	}
}

// `make run` makes the PII key-encryption key once, outside NATS, in the
// data directory (0600), and keeps it: a new one would leave every stored
// customer key unopenable. PII_KEK_FILE, when set, is used instead.
func TestLocalDefaultsKeepThePIIKEKOutsideNATS(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(pii.EnvKEKFile, "")
	var keks []string
	for range 2 {
		t.Setenv(pii.EnvKEK, "")
		if err := localDefaults(dir, "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
		keks = append(keks, os.Getenv(pii.EnvKEK))
	}
	if keks[0] == "" || keks[0] != keks[1] {
		t.Fatalf("PII_KEK %q then %q: want one, kept", keks[0], keks[1])
	}
	if _, err := pii.KeyringFromLookup(os.LookupEnv); err != nil {
		t.Fatalf("the generated KEK: %v", err)
	}
	st, err := os.Stat(filepath.Join(secretsDir(dir), pii.EnvKEK))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the KEK file: %v, %v; want mode 0600", st, err)
	}

	t.Setenv(pii.EnvKEK, "")
	t.Setenv(pii.EnvKEKFile, "/run/secrets/pii-kek")
	if err := localDefaults(t.TempDir(), "127.0.0.1", slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv(pii.EnvKEK); got != "" {
		t.Fatalf("with PII_KEK_FILE set, localDefaults still set PII_KEK")
	}
}
