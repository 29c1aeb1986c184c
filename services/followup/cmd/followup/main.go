// Command followup runs the follow-up service against an external NATS
// server (NATS_URL, default nats://127.0.0.1:4222; EVENTLOG_* for the event
// log) until SIGINT or SIGTERM. Its own settings (FOLLOWUP_*) are listed in
// the service's README.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/closeloop/closeloop/libs/esdb/backend"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/followup"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "followup:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := followup.ConfigFromEnv()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	rt, err := platform.Connect(ctx, followup.Name, backend.Opener)
	if err != nil {
		return err
	}
	defer rt.Close()
	svc, err := followup.New(rt.Deps, cfg)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
