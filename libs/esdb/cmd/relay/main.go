// Command relay copies the KurrentDB event log to the JetStream bus (see
// package relay): run exactly one when EVENTLOG_BACKEND=eventstoredb. It
// reads EVENTSTORE_URL, NATS_URL, EVENTLOG_REPLICAS and RELAY_METRICS_ADDR
// (see config.go and the README), exports traces and metrics over OTLP when
// OTEL_EXPORTER_OTLP_ENDPOINT is set, and serves /metrics.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/esdb/relay"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/telemetry"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "relay:", err)
		os.Exit(1)
	}
}

func run() error {
	logger := telemetry.NewLogger("closeloop-relay", os.Stderr)
	cfg, err := configFrom(os.LookupEnv)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	tel, err := telemetry.Setup(ctx, "closeloop-relay")
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	mux := http.NewServeMux()
	mux.Handle("/metrics", tel.MetricsHandler())
	metrics := &http.Server{Addr: cfg.MetricsAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := metrics.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("relay: metrics server", "addr", cfg.MetricsAddr, "err", err)
		}
	}()
	defer metrics.Close()

	nc, err := nats.Connect(cfg.NATSURL, nats.Name("closeloop-relay"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("NATS_URL: %w", err)
	}
	defer nc.Drain()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sink, err := relay.NewJetStreamSink(ctx, js, jsstore.Config{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}
	db, err := esdb.Dial(cfg.EventStoreURL, logger)
	if err != nil {
		return fmt.Errorf("EVENTSTORE_URL: %w", err)
	}
	defer db.Close()
	r, err := relay.New(relay.KurrentSource{Conn: db}, sink, relay.Options{Logger: logger})
	if err != nil {
		return err
	}
	logger.Info("relay: started", "nats", nc.ConnectedUrlRedacted(), "metrics", cfg.MetricsAddr)
	if err := r.Serve(ctx); !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
