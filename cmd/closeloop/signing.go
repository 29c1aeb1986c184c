package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

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

// signersFile is the keyring closeloopctl reads too.
func signersFile(dataDir string) string { return filepath.Join(signingDir(dataDir), "signers.json") }

// localSigning gives every service of `make run` its part in event signing:
// a key per writing service, generated on first start into the data
// directory and reused after, and the keyring of every key ever made there.
// A key file deleted (rotation) is replaced by a new key on the next start,
// added to the keyring beside the old one, whose events still verify.
// Verification is always on: every service reads with the keyring. A log
// that already holds events when the keyring is first made (head > 0, a
// data directory from before signing) keeps them: the keyring records head
// as the last position whose events may be unsigned.
func localSigning(dataDir string, head uint64) (map[string]platform.Signing, error) {
	dir := signingDir(dataDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("signing keys: %w", err)
	}
	var keys []signing.Key
	changed := false
	unsignedUntil := head
	if ring, err := signing.ReadKeyring(signersFile(dataDir)); err == nil {
		keys, unsignedUntil = ring.Keys(), ring.UnsignedUntil()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("signing keys: %w", err)
	} else if head > 0 {
		changed = true // record the boundary even if every key file exists
	}
	signers := map[string]*signing.Signer{}
	for _, svc := range writers {
		s, err := localKey(filepath.Join(dir, svc+".key"), svc)
		if err != nil {
			return nil, fmt.Errorf("signing key of %s: %w", svc, err)
		}
		signers[svc] = s
		if ring, err := signing.NewKeyring(keys...); err != nil {
			return nil, err
		} else if !ring.Holds(s.Public()) {
			keys = append(keys, s.Public())
			changed = true
		}
	}
	if changed {
		data, err := signing.MarshalKeyring(keys, unsignedUntil)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(signersFile(dataDir), data, 0o644); err != nil {
			return nil, fmt.Errorf("signing keyring: %w", err)
		}
	}
	ring, err := signing.NewKeyring(keys...)
	if err != nil {
		return nil, fmt.Errorf("signing keyring %s: %w", signersFile(dataDir), err)
	}
	ring = ring.WithUnsignedUntil(unsignedUntil)
	out := map[string]platform.Signing{console.Name: {Keys: ring}}
	for svc, s := range signers {
		out[svc] = platform.Signing{Signer: s, Keys: ring}
	}
	return out, nil
}

// localKey reads a service's key file, creating it with a new key first.
func localKey(path, service string) (*signing.Signer, error) {
	if s, err := signing.ReadSigner(path); err == nil {
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	// The key's name says whose and since when; the suffix keeps two keys
	// made the same second apart.
	id := fmt.Sprintf("%s-%s-%s", service, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(suffix))
	s, err := signing.Generate(id, service)
	if err != nil {
		return nil, err
	}
	data, err := s.MarshalKeyFile()
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, data, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}

// writeFileAtomic writes through a temporary file and a rename, so that a
// crash leaves the old file or the new one, never half of one.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
