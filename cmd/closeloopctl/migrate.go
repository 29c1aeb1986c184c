package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

// migrateSubjects moves a log of the old subject layout to one subject per
// entity stream (jsstore.MigrateSubjects). It opens no store: a store
// refuses the old layout.
func migrateSubjects(ctx context.Context, o options, args []string, out io.Writer) error {
	fs := newFlagSet("migrate-subjects")
	replicas := fs.Int("replicas", 1, "replicas of the migrated EVENTS stream (3 on a cluster)")
	stopped := fs.Bool("writers-stopped", false, "confirms every writer of the log is stopped")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return usageErr("migrate-subjects takes --writers-stopped and optionally --replicas N")
	}
	if !*stopped {
		return usageErr("migrate-subjects: stop every writer of the log (the five services and the relay), then run it again with --writers-stopped")
	}
	nc, err := connectNATS(o)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	return jsstore.MigrateSubjects(ctx, js, jsstore.Config{Replicas: *replicas}, func(step string) {
		fmt.Fprintln(out, step)
	})
}
