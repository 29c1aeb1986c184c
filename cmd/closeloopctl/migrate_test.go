package main

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// An old PII_KEYS bucket (clear keys, deletes denied) is migrated with the
// KEK `make run` keeps in the data directory, after which intake's key store
// starts on it and opens data sealed before.
func TestMigratePIIKeysKeepsTheCustomersData(t *testing.T) {
	t.Setenv(pii.EnvKEK, "")
	t.Setenv(pii.EnvKEKFile, "")
	url, js := startNATS(t)
	ctx := t.Context()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pii.Bucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	oldKey := []byte(strings.Repeat("g", 8) + strings.Repeat("k", 32))
	if _, err := kv.Create(ctx, "cr_1", oldKey); err != nil {
		t.Fatal(err)
	}
	sealed := sealClear(t, "cr_1", oldKey, &eventsv1.PersonalData{Name: "Wang Fang"})
	data := t.TempDir()
	kekHex := strings.Repeat("5a", 32)
	if err := os.MkdirAll(filepath.Join(data, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "secrets", pii.EnvKEK), []byte(kekHex), 0o600); err != nil {
		t.Fatal(err)
	}
	w := &world{url: url}

	if code, _, errOut := w.ctl(t, "-data", data, "migrate-pii-keys"); code != exitUsage || !strings.Contains(errOut, "--intake-stopped") {
		t.Fatalf("migrate-pii-keys without the confirmation: exit %d, %q", code, errOut)
	}
	if code, _, errOut := w.ctl(t, "-data", t.TempDir(), "migrate-pii-keys", "--intake-stopped"); code != exitFailure || !strings.Contains(errOut, "PII_KEK: required") {
		t.Fatalf("migrate-pii-keys without a KEK: exit %d, %q", code, errOut)
	}
	code, out, errOut := w.ctl(t, "-data", data, "migrate-pii-keys", "--intake-stopped")
	if code != exitOK || !strings.Contains(out, "done: 1 data keys") {
		t.Fatalf("migrate-pii-keys: exit %d, out %q, err %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(data, "PII_KEYS.recovery")); !os.IsNotExist(err) {
		t.Fatalf("recovery file after the migration: %v", err)
	}
	keks, err := pii.ParseKeyring(kekHex)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := pii.New(ctx, js, pii.Config{KEKs: keks})
	if err != nil {
		t.Fatalf("intake's key store after the migration: %v", err)
	}
	if pd, err := ks.Open(ctx, sealed); err != nil || pd.GetName() != "Wang Fang" {
		t.Fatalf("Open after the migration: %v, %q", err, pd.GetName())
	}
}

// sealClear seals pd under a oldKey generation ‖ key, as the old Seal did.
func sealClear(t *testing.T, ref string, key []byte, pd *eventsv1.PersonalData) *eventsv1.SealedPersonalData {
	t.Helper()
	b, err := aes.NewCipher(key[8:])
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := proto.Marshal(pd)
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, aead.NonceSize())
	keyID := ref + "." + hex.EncodeToString(key[:8])
	return &eventsv1.SealedPersonalData{KeyId: keyID, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plain, []byte(keyID))}
}
