// Package backend chooses the event-log backend of a service binary from
// its configuration: EVENTLOG_BACKEND=jetstream (the default) or
// eventstoredb, with EVENTSTORE_URL the KurrentDB connection string. A
// binary that imports it links the KurrentDB client; one that never uses
// KurrentDB uses jsstore directly instead (see the README).
package backend

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

// The environment variables read by ConfigFromEnv.
const (
	EnvBackend = "EVENTLOG_BACKEND"
	EnvURL     = "EVENTSTORE_URL"
)

// Kind names a backend.
type Kind string

// The backends.
const (
	JetStream    Kind = "jetstream"
	EventStoreDB Kind = "eventstoredb"
)

// Config says which backend holds the event log.
type Config struct {
	// Backend: JetStream (default) or EventStoreDB.
	Backend Kind
	// EventStoreURL is the KurrentDB connection string, e.g.
	// esdb://localhost:2113?tls=false; required with EventStoreDB, and
	// refused with JetStream (a set URL that is ignored would hide a
	// misconfigured system of record).
	EventStoreURL string
}

// ConfigFromEnv reads EVENTLOG_BACKEND and EVENTSTORE_URL and validates them.
func ConfigFromEnv() (Config, error) { return Parse(os.LookupEnv) }

// Parse reads the configuration through lookup (os.LookupEnv in
// production) and validates it.
func Parse(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	if v, ok := lookup(EnvBackend); ok {
		c.Backend = Kind(strings.ToLower(strings.TrimSpace(v)))
	}
	if v, ok := lookup(EnvURL); ok {
		c.EventStoreURL = strings.TrimSpace(v)
	}
	if c.Backend == "" {
		c.Backend = JetStream
	}
	return c, c.Validate()
}

// Validate checks the configuration; errors name the variable and the rule
// and never repeat the connection string (it may hold a password).
func (c Config) Validate() error {
	switch c.Backend {
	case JetStream:
		if c.EventStoreURL != "" {
			return fmt.Errorf("%s: set, but %s is %s: set %s=%s to keep the log in KurrentDB, or unset %s",
				EnvURL, EnvBackend, JetStream, EnvBackend, EventStoreDB, EnvURL)
		}
	case EventStoreDB:
		if c.EventStoreURL == "" {
			return fmt.Errorf("%s: required when %s=%s (e.g. esdb://localhost:2113?tls=false)", EnvURL, EnvBackend, EventStoreDB)
		}
		if _, err := esdb.ParseURL(c.EventStoreURL); err != nil {
			return fmt.Errorf("%s: %w", EnvURL, err)
		}
	default:
		return fmt.Errorf("%s: %q is not a backend: use %s (the default) or %s", EnvBackend, string(c.Backend), JetStream, EventStoreDB)
	}
	return nil
}

// Open opens the configured event log. js is the JetStream client (the
// log itself with JetStream; the bus in both cases); jscfg and escfg tune
// the backend in use. The returned close releases what Open opened (the
// KurrentDB client), not js.
func Open(ctx context.Context, cfg Config, js jetstream.JetStream, jscfg jsstore.Config, escfg esdb.Config, logger *slog.Logger) (store eventlog.Store, closeFn func() error, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	switch cfg.Backend {
	case EventStoreDB:
		conn, err := esdb.Dial(cfg.EventStoreURL, logger)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", EnvURL, err)
		}
		s, err := esdb.New(conn, escfg)
		if err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
		return s, conn.Close, nil
	default:
		if js == nil {
			return nil, nil, fmt.Errorf("backend %s: a JetStream client is required", JetStream)
		}
		s, err := jsstore.New(ctx, js, jscfg)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Close, nil
	}
}

// Opener is a platform.StoreOpener: the service binaries pass it to
// platform.Connect so that EVENTLOG_BACKEND and EVENTSTORE_URL alone choose
// where the log is kept.
func Opener(ctx context.Context, js jetstream.JetStream, jscfg jsstore.Config, logger *slog.Logger) (eventlog.Store, func() error, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, nil, err
	}
	return Open(ctx, cfg, js, jscfg, esdb.Config{Clock: jscfg.Clock}, logger)
}
