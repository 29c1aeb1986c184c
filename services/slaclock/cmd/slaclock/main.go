// Command slaclock runs the sla-clock service against an external NATS
// server (NATS_URL, default nats://127.0.0.1:4222). Configuration: see the README.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/slaclock"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "slaclock:", err)
		os.Exit(1)
	}
}

func run() error {
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	cfg, err := slaclock.ConfigFromEnv()
	if err != nil {
		return err
	}
	url := os.Getenv("NATS_URL")
	if url == "" {
		url = nats.DefaultURL
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	nc, err := nats.Connect(url, nats.Name("closeloop-slaclock"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("NATS_URL %s: %w", url, err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	store, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		return err
	}
	defer store.Close()
	svc, err := slaclock.New(platform.Deps{NC: nc, JS: js, Log: store, Clock: clock.Real{}, Logger: logger}, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
