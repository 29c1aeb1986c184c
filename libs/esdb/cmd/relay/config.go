package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/closeloop/closeloop/libs/esdb/backend"
)

// config is the relay's configuration, from the environment.
type config struct {
	EventStoreURL string // EVENTSTORE_URL, required
	NATSURL       string // NATS_URL, default nats://127.0.0.1:4222
	Replicas      int    // EVENTLOG_REPLICAS of the EVENTS stream, 1–5, default 1
	MetricsAddr   string // RELAY_METRICS_ADDR serving /metrics, default :9464
}

// configFrom reads the configuration through lookup (os.LookupEnv). The
// relay only makes sense with KurrentDB as the system of record, so it
// ignores EVENTLOG_BACKEND and validates EVENTSTORE_URL as that backend does.
func configFrom(lookup func(string) (string, bool)) (config, error) {
	get := func(k, def string) string {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	c := config{
		EventStoreURL: get(backend.EnvURL, ""),
		NATSURL:       get("NATS_URL", nats.DefaultURL),
		MetricsAddr:   get("RELAY_METRICS_ADDR", ":9464"),
	}
	if err := (backend.Config{Backend: backend.EventStoreDB, EventStoreURL: c.EventStoreURL}).Validate(); err != nil {
		return c, err
	}
	r, err := strconv.Atoi(get("EVENTLOG_REPLICAS", "1"))
	if err != nil || r < 1 || r > 5 {
		return c, fmt.Errorf("EVENTLOG_REPLICAS: %q: must be a whole number from 1 to 5", get("EVENTLOG_REPLICAS", "1"))
	}
	c.Replicas = r
	return c, nil
}
