package platform

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

// Main is the whole of a service binary's main: connect (Connect, with the
// log opened by open), build the service from its environment, run it until
// SIGINT or SIGTERM, then stop gracefully. It exits the process with status 1
// on a failure, naming the service.
func Main(service string, open StoreOpener, build func(Deps) (Service, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, service, open, build)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", service, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, service string, open StoreOpener, build func(Deps) (Service, error)) error {
	rt, err := Connect(ctx, service, open)
	if err != nil {
		return err
	}
	defer rt.Close()
	svc, err := build(rt.Deps)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}
