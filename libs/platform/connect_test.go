package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

func TestStoreConfigFromEnv(t *testing.T) {
	cases := []struct {
		name, backend, replicas, window string
		wantErr                         string
		wantReplicas                    int
		wantWindow                      time.Duration
	}{
		{name: "defaults"},
		{name: "cluster", backend: "jetstream", replicas: "3", window: "30m", wantReplicas: 3, wantWindow: 30 * time.Minute},
		{name: "replicas not a number", replicas: "three", wantErr: "EVENTLOG_REPLICAS"},
		{name: "too many replicas", replicas: "7", wantErr: "EVENTLOG_REPLICAS"},
		{name: "bad window", window: "-1m", wantErr: "EVENTLOG_DUPLICATE_WINDOW"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvBackend, c.backend)
			t.Setenv(EnvReplicas, c.replicas)
			t.Setenv(EnvDuplicateWindow, c.window)
			cfg, err := StoreConfigFromEnv()
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Replicas != c.wantReplicas || cfg.DuplicateWindow != c.wantWindow {
				t.Fatalf("got replicas %d window %s", cfg.Replicas, cfg.DuplicateWindow)
			}
		})
	}
}

func TestOpenJetStreamRefusesABackendItDoesNotHave(t *testing.T) {
	t.Setenv(EnvBackend, "eventstoredb")
	if _, _, err := OpenJetStream(t.Context(), nil, StoreConfigFromEnvMust(t), nil); err == nil || !strings.Contains(err.Error(), EnvBackend) {
		t.Fatalf("err = %v, want a refusal naming %s", err, EnvBackend)
	}
}

func StoreConfigFromEnvMust(t *testing.T) jsstore.Config {
	t.Helper()
	cfg, err := StoreConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestRebuildViewsFromEnv(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true} {
		t.Setenv(EnvRebuildViews, v)
		got, err := rebuildViewsFromEnv()
		if err != nil || got != want {
			t.Fatalf("%s=%q: got %v, %v; want %v", EnvRebuildViews, v, got, err, want)
		}
	}
	t.Setenv(EnvRebuildViews, "yes")
	if _, err := rebuildViewsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvRebuildViews) {
		t.Fatalf("err = %v, want one naming %s", err, EnvRebuildViews)
	}
}

func TestNATSAuthFromEnv(t *testing.T) {
	file := filepath.Join(t.TempDir(), "NATS_ROUTING_PASSWORD")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, user, pw, file string
		wantPw, errWants     string
	}{
		{name: "none: the URL's credentials"},
		{name: "password", user: "routing", pw: "x", wantPw: "x"},
		{name: "password file", user: "routing", file: file, wantPw: "from-file"},
		{name: "no user", pw: "x", errWants: EnvNATSUser},
		{name: "both", user: "routing", pw: "x", file: file, errWants: "not both"},
		{name: "no password", user: "routing", errWants: "needs a password"},
		{name: "missing file", user: "routing", file: file + ".nope", errWants: EnvNATSPasswordFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvNATSUser, c.user)
			t.Setenv(EnvNATSPassword, c.pw)
			t.Setenv(EnvNATSPasswordFile, c.file)
			opts, err := NATSAuthFromEnv()
			if c.errWants != "" {
				if err == nil || !strings.Contains(err.Error(), c.errWants) {
					t.Fatalf("err %v, want one naming %s", err, c.errWants)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var o nats.Options
			for _, opt := range opts {
				if err := opt(&o); err != nil {
					t.Fatal(err)
				}
			}
			if o.User != c.user || o.Password != c.wantPw {
				t.Fatalf("user %q password %q, want %q %q", o.User, o.Password, c.user, c.wantPw)
			}
		})
	}
}
