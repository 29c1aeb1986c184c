// Command dispatch runs the dispatch service against an external NATS server
// (NATS_URL, default nats://127.0.0.1:4222; EVENTLOG_BACKEND and EVENTSTORE_URL
// choose where the event log is kept: JetStream, or KurrentDB with the relay)
// until SIGINT or SIGTERM. Its own settings are listed in the service's README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/closeloop/closeloop/libs/esdb/backend"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/dispatch"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dispatch:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := dispatch.ConfigFromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rt, err := platform.Connect(ctx, dispatch.Name, backend.Opener)
	if err != nil {
		return err
	}
	defer rt.Close()
	svc, err := dispatch.New(rt.Deps, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
