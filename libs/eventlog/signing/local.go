package signing

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/closeloop/closeloop/libs/atomicfile"
)

// KeyringFile is the keyring's name in a directory of local keys.
const KeyringFile = "signers.json"

// KeyFile is the name of a service's key file in a directory of local keys.
func KeyFile(service string) string { return service + ".key" }

// LocalKeys gives each of services a key of its own in dir
// (<service>.key, 0600), generated when its file is missing and reused
// after, and keeps the keyring dir/signers.json of every key ever made
// there. A key file deleted (rotation) is replaced by a new key on the next
// call, added to the keyring beside the old one, whose events still verify.
// head is the log's last position when the keyring is first made: a log
// that already holds events (head > 0) keeps them, the keyring recording
// head as the last position whose events may be unsigned; an existing
// keyring keeps its boundary. `make run` and `closeloopctl signing-keys`
// both make their keys here.
func LocalKeys(dir string, services []string, head uint64) (map[string]*Signer, *Keyring, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("signing keys: %w", err)
	}
	ringPath := filepath.Join(dir, KeyringFile)
	var keys []Key
	changed := false
	unsignedUntil := head
	if ring, err := ReadKeyring(ringPath); err == nil {
		keys, unsignedUntil = ring.Keys(), ring.UnsignedUntil()
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("signing keys: %w", err)
	} else if head > 0 {
		changed = true // record the boundary even if every key file exists
	}
	signers := map[string]*Signer{}
	for _, svc := range services {
		s, err := localKey(filepath.Join(dir, KeyFile(svc)), svc)
		if err != nil {
			return nil, nil, fmt.Errorf("signing key of %s: %w", svc, err)
		}
		signers[svc] = s
		if ring, err := NewKeyring(keys...); err != nil {
			return nil, nil, err
		} else if !ring.Holds(s.Public()) {
			keys = append(keys, s.Public())
			changed = true
		}
	}
	if changed {
		data, err := MarshalKeyring(keys, unsignedUntil)
		if err != nil {
			return nil, nil, err
		}
		if err := atomicfile.Write(ringPath, data, 0o644); err != nil {
			return nil, nil, fmt.Errorf("signing keyring: %w", err)
		}
	}
	ring, err := NewKeyring(keys...)
	if err != nil {
		return nil, nil, fmt.Errorf("signing keyring %s: %w", ringPath, err)
	}
	return signers, ring.WithUnsignedUntil(unsignedUntil), nil
}

// localKey reads a service's key file, creating it with a new key first.
func localKey(path, service string) (*Signer, error) {
	if s, err := ReadSigner(path); err == nil {
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	// The key's name says whose and since when (wall time: a label, not a
	// domain decision); the suffix keeps two keys made the same second apart.
	id := fmt.Sprintf("%s-%s-%s", service, time.Now().UTC().Format("20060102T150405Z"), hex.EncodeToString(suffix))
	s, err := Generate(id, service)
	if err != nil {
		return nil, err
	}
	data, err := s.MarshalKeyFile()
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return nil, err
	}
	return s, nil
}
