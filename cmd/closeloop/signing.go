package main

import (
	"path/filepath"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/console"
	"github.com/closeloop/closeloop/services/dispatch"
	"github.com/closeloop/closeloop/services/followup"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/routing"
	"github.com/closeloop/closeloop/services/slaclock"
)

// writers are the services that append events, each with a key of its own.
var writers = []string{intake.Name, routing.Name, slaclock.Name, dispatch.Name, followup.Name}

// signingDir holds the services' signing keys (<service>.key, 0600) and the
// keyring (signers.json) of `make run`.
func signingDir(dataDir string) string { return filepath.Join(secretsDir(dataDir), "signing") }

// localSigning gives every service of `make run` its part in event signing:
// a key per writing service, generated on first start into the data
// directory and reused after, and the keyring of every key ever made there
// (signing.LocalKeys, as `closeloopctl signing-keys` for a deployment).
// Verification is always on: every service reads with the keyring. head is
// the log's head, the keyring's boundary for a data directory from before
// signing.
func localSigning(dataDir string, head uint64) (map[string]platform.Signing, error) {
	signers, ring, err := signing.LocalKeys(signingDir(dataDir), writers, head)
	if err != nil {
		return nil, err
	}
	out := map[string]platform.Signing{console.Name: {Keys: ring}}
	for svc, s := range signers {
		out[svc] = platform.Signing{Signer: s, Keys: ring}
	}
	return out, nil
}
