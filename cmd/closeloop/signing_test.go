package main

import (
	"os"
	"path/filepath"
	"testing"
)

// make run gives every writing service a key of its own (0600) and lists
// them in the keyring; a deleted key is replaced on the next start and the
// old one stays in the keyring, so that its events still verify.
func TestLocalSigningMakesKeysOnceAndKeepsRotatedOnes(t *testing.T) {
	dir := t.TempDir()
	first, err := localSigning(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, svc := range writers {
		s := first[svc]
		if s.Signer == nil || s.Signer.Producer() != svc || !s.Keys.Holds(s.Signer.Public()) {
			t.Fatalf("%s: signer %v, want its own key, in the keyring", svc, s.Signer)
		}
		info, err := os.Stat(filepath.Join(signingDir(dir), svc+".key"))
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s.key: %v, mode %v; want 0600", svc, err, info.Mode())
		}
	}
	if c := first["console"]; c.Signer != nil || c.Keys == nil {
		t.Fatalf("console: %+v, want a keyring and no key (it writes no event)", c)
	}

	again, err := localSigning(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	if again["routing"].Signer.KeyID() != first["routing"].Signer.KeyID() {
		t.Fatal("a second start made a new key instead of reusing the file")
	}

	if err := os.Remove(filepath.Join(signingDir(dir), "routing.key")); err != nil {
		t.Fatal(err)
	}
	rotated, err := localSigning(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	old, fresh := first["routing"].Signer, rotated["routing"].Signer
	if fresh.KeyID() == old.KeyID() {
		t.Fatal("no new key after the old one was removed")
	}
	if !rotated["routing"].Keys.Holds(old.Public()) || !rotated["routing"].Keys.Holds(fresh.Public()) {
		t.Fatal("the keyring lost the old key or lacks the new one")
	}
	if n := len(rotated["routing"].Keys.Keys()); n != len(writers)+1 {
		t.Fatalf("keyring of %d keys, want %d", n, len(writers)+1)
	}
}

// A data directory from before signing keeps its events: the keyring made
// on the first signed start records the log's head as the last position
// whose events may be unsigned, and later starts keep that boundary.
func TestLocalSigningKeepsAnOlderLogsUnsignedEvents(t *testing.T) {
	dir := t.TempDir()
	first, err := localSigning(dir, 42)
	if err != nil {
		t.Fatal(err)
	}
	if got := first["routing"].Keys.UnsignedUntil(); got != 42 {
		t.Fatalf("unsigned until %d, want the log's head 42", got)
	}
	again, err := localSigning(dir, 99) // the log grew, signed
	if err != nil {
		t.Fatal(err)
	}
	if got := again["console"].Keys.UnsignedUntil(); got != 42 {
		t.Fatalf("after a restart: unsigned until %d, want 42 still", got)
	}
	fresh, err := localSigning(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := fresh["intake"].Keys.UnsignedUntil(); got != 0 {
		t.Fatalf("a new log: unsigned until %d, want 0", got)
	}
}
