package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/pii"
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

// migratePIIKeys turns a PII_KEYS bucket from before secure erasure (clear
// keys, deletes denied) into the current one, keeping every key
// (pii.MigrateClearBucket). The KEK is the services' one: PII_KEK,
// PII_KEK_FILE, else the runner's <data>/secrets/PII_KEK.
func migratePIIKeys(ctx context.Context, o options, args []string, out io.Writer) error {
	fs := newFlagSet("migrate-pii-keys")
	replicas := fs.Int("replicas", 1, "replicas of the new PII_KEYS bucket (3 on a cluster)")
	stopped := fs.Bool("intake-stopped", false, "confirms intake (the bucket's only writer) is stopped")
	recovery := fs.String("recovery-file", filepath.Join(o.dataDir, "PII_KEYS.recovery"), "where the wrapped keys are kept while the bucket is replaced; a later run resumes from it")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 {
		return usageErr("migrate-pii-keys takes --intake-stopped and optionally --replicas N and --recovery-file F")
	}
	if !*stopped {
		return usageErr("migrate-pii-keys: stop intake, then run it again with --intake-stopped")
	}
	keks, err := pii.KeyringFromLookup(kekLookup(o.dataDir))
	if err != nil {
		return err
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
	_, err = pii.MigrateClearBucket(ctx, js, pii.Config{Replicas: *replicas, KEKs: keks}, *recovery, func(step string) {
		fmt.Fprintln(out, step)
	})
	return err
}

// kekLookup reads the environment, falling back to the KEK file `make run`
// generated into the data directory (never creating one).
func kekLookup(dataDir string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if v := os.Getenv(name); v != "" {
			return v, true
		}
		file := filepath.Join(dataDir, "secrets", pii.EnvKEK)
		if name == pii.EnvKEKFile && os.Getenv(pii.EnvKEK) == "" {
			if _, err := os.Stat(file); err == nil {
				return file, true
			}
		}
		return "", false
	}
}
