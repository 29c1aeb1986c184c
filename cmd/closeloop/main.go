// Command closeloop is the standalone runner: an embedded NATS JetStream
// server (data kept in a local directory across restarts) and all five
// services and the console in one process. Each service gets its own NATS
// connection and its own event-log handle and talks to the others only
// through the bus, exactly as when they run as separate binaries against a
// NATS cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var cfg runnerConfig
	flag.StringVar(&cfg.DataDir, "data", envOr("CLOSELOOP_DATA", "data"), "directory for the embedded JetStream store, local secrets and the NATS credentials (env CLOSELOOP_DATA)")
	flag.StringVar(&cfg.Host, "host", envOr("CLOSELOOP_HOST", "127.0.0.1"), "address the NATS server and the services' APIs listen on; 0.0.0.0 opens them to the network (env CLOSELOOP_HOST)")
	flag.IntVar(&cfg.NATSPort, "nats-port", 4222, "port of the embedded NATS server, for the CLI and external tools (0 = any free port)")
	flag.BoolVar(&cfg.NoSync, "no-sync", false, "do not fsync each append before acknowledging it (faster; a power cut may lose acknowledged events)")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := run(ctx, cfg, logger); err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("closeloop stopped with an error", "error", err)
		os.Exit(1)
	}
	logger.Info("closeloop stopped")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
