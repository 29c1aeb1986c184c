package pii_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// oldCustomer is a customer of a data directory from before key wrapping:
// a clear generation ‖ key in the bucket and data sealed under it.
type oldCustomer struct {
	ref    string
	key    []byte // generation ‖ key, as the old bucket stored it
	sealed *eventsv1.SealedPersonalData
	name   string
}

// oldBucket makes PII_KEYS the way the old code did (the KV client, which
// denies message deletes, and clear keys), seals a value per customer as
// the old Seal did, and erases cr_gone the old way (a purge).
func oldBucket(t *testing.T, ctx context.Context, js jetstream.JetStream) []oldCustomer {
	t.Helper()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pii.Bucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		t.Fatal(err)
	}
	var cs []oldCustomer
	for _, c := range []struct{ ref, name string }{{"cr_alice", "Wang Fang"}, {"cr_bob", "Li Lei"}, {"cr_gone", "Han Meimei"}} {
		key := make([]byte, 40)
		if _, err := rand.Read(key); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Create(ctx, c.ref, key); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, oldCustomer{ref: c.ref, key: key, name: c.name, sealed: sealOld(t, c.ref, key, &eventsv1.PersonalData{Name: c.name})})
	}
	if err := kv.Purge(ctx, "cr_gone"); err != nil {
		t.Fatal(err)
	}
	return cs
}

// sealOld seals pd as Seal does, with a clear key.
func sealOld(t *testing.T, ref string, key []byte, pd *eventsv1.PersonalData) *eventsv1.SealedPersonalData {
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
	if _, err := rand.Read(nonce); err != nil {
		t.Fatal(err)
	}
	keyID := ref + "." + hex.EncodeToString(key[:8])
	return &eventsv1.SealedPersonalData{KeyId: keyID, Nonce: nonce, Ciphertext: aead.Seal(nil, nonce, plain, []byte(keyID))}
}

// clearKeys are what must not stay on disk: each customer's clear key.
func clearKeys(cs []oldCustomer) [][]byte {
	var out [][]byte
	for _, c := range cs {
		out = append(out, c.key[8:])
	}
	return out
}

// checkMigrated asserts that intake's key store starts on the migrated
// bucket, opens the old sealed data, keeps the erased customer erased and
// can now erase (deletes allowed).
func checkMigrated(t *testing.T, ctx context.Context, js jetstream.JetStream, keks *pii.Keyring, cs []oldCustomer) {
	t.Helper()
	ks, err := pii.New(ctx, js, pii.Config{KEKs: keks})
	if err != nil {
		t.Fatalf("intake's key store on the migrated bucket: %v", err)
	}
	for _, c := range cs {
		pd, err := ks.Open(ctx, c.sealed)
		if c.ref == "cr_gone" {
			if !errors.Is(err, pii.ErrErased) {
				t.Fatalf("Open of the customer erased before the migration: %v, want ErrErased", err)
			}
			continue
		}
		if err != nil || pd.GetName() != c.name {
			t.Fatalf("Open %s after the migration: %v, %q", c.ref, err, pd.GetName())
		}
	}
	if err := ks.Erase(ctx, "cr_bob"); err != nil {
		t.Fatalf("Erase on the migrated bucket: %v", err)
	}
	if _, err := ks.Open(ctx, cs[1].sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open after erasing: %v, want ErrErased", err)
	}
}

func TestMigrateClearBucketKeepsTheKeysAndRemovesTheClearOnes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := natstest.Start(t, natsembed.Options{StoreDir: dir}) // syncs every write
	_, js := natstest.Connect(t, srv)
	keks := testKEKs(t)
	cs := oldBucket(t, ctx, js)
	if len(filesHolding(t, dir, clearKeys(cs[:2])...)) == 0 {
		t.Fatal("the clear keys are in no file before the migration: the scan proves nothing")
	}
	if _, err := pii.New(ctx, js, pii.Config{KEKs: keks}); err == nil {
		t.Fatal("the old bucket was not refused before the migration")
	}

	recovery := filepath.Join(t.TempDir(), "pii-keys.recovery")
	var steps []string
	n, err := pii.MigrateClearBucket(ctx, js, pii.Config{KEKs: keks}, recovery, func(s string) { steps = append(steps, s) })
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("migrated %d keys, want 2 (the erased customer has none)", n)
	}
	for _, s := range steps {
		for _, c := range cs {
			if bytes.Contains([]byte(s), []byte(c.ref)) {
				t.Fatalf("progress names a customer: %q", s)
			}
		}
	}
	if _, err := os.Stat(recovery); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recovery file after a complete migration: %v, want it removed", err)
	}
	checkMigrated(t, ctx, js, keks, cs)
	if got := filesHolding(t, dir, clearKeys(cs)...); len(got) != 0 {
		t.Fatalf("after the migration a clear key is still in %v", got)
	}
	srv.Shutdown()
	if got := filesHolding(t, dir, clearKeys(cs)...); len(got) != 0 {
		t.Fatalf("after the migration and a shutdown a clear key is still in %v", got)
	}
}

// A crash after the old stream was deleted leaves the keys only in the
// recovery file; running the migration again completes it.
func TestMigrateClearBucketResumesFromTheRecoveryFile(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, natsembed.Options{StoreDir: t.TempDir()})
	_, js := natstest.Connect(t, srv)
	keks := testKEKs(t)
	cs := oldBucket(t, ctx, js)
	recovery := filepath.Join(t.TempDir(), "pii-keys.recovery")

	if err := pii.MigrateUntilDeleted(ctx, js, keks, recovery); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Stream(ctx, "KV_"+pii.Bucket); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("old stream after steps 1-3: %v, want it deleted", err)
	}
	fi, err := os.Stat(recovery)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("recovery file mode %v, want 0600", fi.Mode().Perm())
	}
	// The file holds no clear key (JSON writes bytes as base64: look for both).
	if got := filesHolding(t, filepath.Dir(recovery), clearKeys(cs)...); len(got) != 0 {
		t.Fatalf("the recovery file holds a clear key")
	}
	b, err := os.ReadFile(recovery)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range clearKeys(cs) {
		if bytes.Contains(b, []byte(b64(k))) || bytes.Contains(b, []byte(hex.EncodeToString(k))) {
			t.Fatal("the recovery file holds a clear key, encoded")
		}
	}
	// Another KEK cannot resume (it would not open the file's keys).
	if _, err := pii.MigrateClearBucket(ctx, js, pii.Config{KEKs: testKEKs(t, "22"+hex.EncodeToString(make([]byte, 31)))}, recovery, nil); err == nil {
		t.Fatal("resuming with another KEK succeeded")
	}

	n, err := pii.MigrateClearBucket(ctx, js, pii.Config{KEKs: keks}, recovery, nil)
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if n != 2 {
		t.Fatalf("resumed with %d keys, want 2", n)
	}
	if _, err := os.Stat(recovery); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recovery file after resuming: %v, want it removed", err)
	}
	// Once more: nothing left to do.
	if n, err := pii.MigrateClearBucket(ctx, js, pii.Config{KEKs: keks}, recovery, nil); err != nil || n != 0 {
		t.Fatalf("a run after completion: %d, %v; want 0, nil", n, err)
	}
	checkMigrated(t, ctx, js, keks, cs)
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
