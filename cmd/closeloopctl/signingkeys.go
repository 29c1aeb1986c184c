package main

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

// signingKeys makes the event-signing keys of a deployment (docker compose,
// Kubernetes) as `make run` makes its own: a key per writing service in
// <dir>/<service>.key (0600) and the keyring <dir>/signers.json. Existing
// key files are kept and missing ones added, so a rerun completes the
// directory and deleting a key file then rerunning rotates that key (the
// old one stays in the keyring). -unsigned-until is the log's head when
// signing is turned on for a log that already holds events.
func signingKeys(args []string, out io.Writer) error {
	fs := newFlagSet("signing-keys")
	dir := fs.String("out", "", "directory of the key files and the keyring (created 0700)")
	unsignedUntil := fs.Uint64("unsigned-until", 0, "a log that already holds events: its last position (nats stream info EVENTS), whose events may stay unsigned")
	if err := fs.Parse(args); err != nil || fs.NArg() != 0 || *dir == "" {
		return usageErr("signing-keys takes -out <dir> and optionally -unsigned-until N (a log position)")
	}
	signers, ring, err := signing.LocalKeys(*dir, eventlog.Writers(), *unsignedUntil)
	if err != nil {
		return err
	}
	for _, svc := range eventlog.Writers() {
		fmt.Fprintf(out, "%s: key %s in %s\n", svc, signers[svc].KeyID(), filepath.Join(*dir, signing.KeyFile(svc)))
	}
	fmt.Fprintf(out, "keyring: %d keys in %s, events up to log position %d may be unsigned\n",
		len(ring.Keys()), filepath.Join(*dir, signing.KeyringFile), ring.UnsignedUntil())
	return nil
}
