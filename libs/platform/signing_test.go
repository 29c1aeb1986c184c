package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

func TestSigningFromEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	routing, _ := signing.Generate("routing-1", "routing")
	other, _ := signing.Generate("routing-2", "routing")
	keyFile, _ := routing.MarshalKeyFile()
	ring, _ := signing.MarshalKeyring([]signing.Key{other.Public()}, 0)
	keyPath, ringPath := write("routing.key", keyFile), write("signers.json", ring)

	if sig, err := SigningFromEnv("routing"); err != nil || sig.Signer != nil || sig.Keys != nil {
		t.Fatalf("nothing set: %+v, %v; want signing off", sig, err)
	}
	t.Setenv(EnvSigningKeyFile, keyPath)
	if sig, err := SigningFromEnv("routing"); err != nil || sig.Signer.KeyID() != "routing-1" {
		t.Fatalf("key only: %+v, %v; want the key", sig, err)
	}
	if _, err := SigningFromEnv("dispatch"); err == nil || !strings.Contains(err.Error(), "routing's, not dispatch's") {
		t.Fatalf("another service's key: %v, want refused", err)
	}
	t.Setenv(EnvSignersFile, ringPath)
	if _, err := SigningFromEnv("routing"); err == nil || !strings.Contains(err.Error(), "not in the keyring") {
		t.Fatalf("a key missing from the keyring: %v, want refused", err)
	}
	ring, _ = signing.MarshalKeyring([]signing.Key{other.Public(), routing.Public()}, 0)
	write("signers.json", ring)
	if sig, err := SigningFromEnv("routing"); err != nil || sig.Keys == nil || sig.Signer == nil {
		t.Fatalf("key and keyring: %+v, %v", sig, err)
	}
	t.Setenv(EnvBackend, "eventstoredb")
	if _, err := SigningFromEnv("routing"); err == nil || !strings.Contains(err.Error(), "jetstream") {
		t.Fatalf("signing on KurrentDB: %v, want refused", err)
	}
}
