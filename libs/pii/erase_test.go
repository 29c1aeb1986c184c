package pii_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// filesHolding lists the files under dir whose bytes contain any of needles.
func filesHolding(t *testing.T, dir string, needles ...[]byte) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if bytes.Contains(b, n) {
				found = append(found, path)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// After an erasure, no file of the store holds the customer's data key,
// neither in the clear nor wrapped as it was stored.
func TestEraseLeavesNoCopyOfTheKeyOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	srv := natstest.Start(t, natsembed.Options{StoreDir: dir}) // syncs every write
	_, js := natstest.Connect(t, srv)
	keks := testKEKs(t)
	ks, err := pii.New(ctx, js, pii.Config{KEKs: keks})
	if err != nil {
		t.Fatal(err)
	}
	// Other customers around the erased one, in the same block.
	for _, ref := range []string{"cr_before", "cr_erased", "cr_after"} {
		if _, err := ks.Seal(ctx, ref, &eventsv1.PersonalData{Name: "Wang Fang", Phone: "13800138000"}); err != nil {
			t.Fatal(err)
		}
	}
	kv, err := js.KeyValue(ctx, pii.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "cr_erased")
	if err != nil {
		t.Fatal(err)
	}
	wrapped := e.Value()
	plain, err := keks.Unwrap("cr_erased", wrapped)
	if err != nil {
		t.Fatal(err)
	}
	dataKey := plain[8:]
	if len(filesHolding(t, dir, wrapped)) == 0 {
		t.Fatal("the wrapped key is in no file before the erasure: the scan proves nothing")
	}
	if got := filesHolding(t, dir, dataKey); len(got) != 0 {
		t.Fatalf("the plain data key is stored in %v", got)
	}

	if err := ks.Erase(ctx, "cr_erased"); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "cr_erased"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("Get after erase: %v, want ErrKeyNotFound", err)
	}
	// The neighbours keep their keys.
	for _, ref := range []string{"cr_before", "cr_after"} {
		if _, err := kv.Get(ctx, ref); err != nil {
			t.Fatalf("%s after erasing another customer: %v", ref, err)
		}
	}
	// A scan while running, then one after a shutdown has flushed
	// everything the server holds.
	if got := filesHolding(t, dir, wrapped, dataKey, plain); len(got) != 0 {
		t.Fatalf("after the erasure the key is still in %v", got)
	}
	srv.Shutdown()
	if got := filesHolding(t, dir, wrapped, dataKey, plain); len(got) != 0 {
		t.Fatalf("after the erasure and a shutdown the key is still in %v", got)
	}
}

// A reader of the bucket without the KEK gets wrapped bytes only: they
// carry neither the data key nor anything that opens the sealed data, and
// another KEK does not unwrap them.
func TestStoredKeysAreUselessWithoutTheKEK(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, srv)
	keks := testKEKs(t)
	ks, err := pii.New(ctx, js, pii.Config{KEKs: keks})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ks.Seal(ctx, "cr_1", &eventsv1.PersonalData{Name: "Li Lei"})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, pii.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "cr_1")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := keks.Unwrap("cr_1", e.Value())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(e.Value(), plain[8:]) {
		t.Fatal("the stored value contains the data key")
	}

	// Another keyring (an attacker's guess, or a lost KEK) opens nothing.
	other, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(t, strings.Repeat("22", 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Open(ctx, sealed); err == nil || !strings.Contains(err.Error(), pii.EnvKEK) {
		t.Fatalf("Open without the KEK: %v, want an error naming %s", err, pii.EnvKEK)
	}
	// The key copied under another customer does not unwrap either.
	if _, err := keks.Unwrap("cr_2", e.Value()); !errors.Is(err, pii.ErrInvalid) {
		t.Fatalf("unwrap under another ref: %v, want ErrInvalid", err)
	}

	// Rotation: a new KEK in front wraps new keys; the old one still opens.
	rotated, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(t, strings.Repeat("33", 32), strings.Repeat("11", 32))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Open(ctx, sealed); err != nil {
		t.Fatalf("Open after rotation: %v", err)
	}
	if _, err := rotated.Seal(ctx, "cr_3", &eventsv1.PersonalData{Name: "Han Meimei"}); err != nil {
		t.Fatal(err)
	}
	e3, err := kv.Get(ctx, "cr_3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keks.Unwrap("cr_3", e3.Value()); err == nil {
		t.Fatal("a key made after rotation opens with the old KEK alone")
	}
}

// A key stored in the clear (a data directory from before key wrapping)
// is refused, and can still be erased.
func TestUnwrappedKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, srv)
	ks, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, pii.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(ctx, "cr_old", bytes.Repeat([]byte{7}, 40)); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Seal(ctx, "cr_old", &eventsv1.PersonalData{Name: "x"}); !errors.Is(err, pii.ErrUnwrapped) {
		t.Fatalf("Seal under an unwrapped key: %v, want ErrUnwrapped", err)
	}
	if err := ks.Erase(ctx, "cr_old"); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Seal(ctx, "cr_old", &eventsv1.PersonalData{Name: "x"}); err != nil {
		t.Fatalf("Seal after erasing the unwrapped key: %v", err)
	}
}

func TestKeyringFromLookup(t *testing.T) {
	hexKEK := strings.Repeat("ab", 32)
	file := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(file, []byte(hexKEK+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string // substring; "" = no error
	}{
		{"inline", map[string]string{"PII_KEK": hexKEK}, ""},
		{"two, newest first", map[string]string{"PII_KEK": strings.Repeat("cd", 32) + "," + hexKEK}, ""},
		{"file", map[string]string{"PII_KEK_FILE": file}, ""},
		{"missing", map[string]string{}, "PII_KEK: required"},
		{"short", map[string]string{"PII_KEK": "abcd"}, "PII_KEK: key-encryption key 1: must be 32 bytes"},
		{"not hex", map[string]string{"PII_KEK": strings.Repeat("zz", 32)}, "PII_KEK: key-encryption key 1: not hex"},
		{"twice", map[string]string{"PII_KEK": hexKEK + "," + hexKEK}, "listed twice"},
		{"both", map[string]string{"PII_KEK": hexKEK, "PII_KEK_FILE": file}, "set one, not both"},
		{"unreadable file", map[string]string{"PII_KEK_FILE": file + ".nope"}, "PII_KEK_FILE:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := pii.KeyringFromLookup(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "abab") {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
}

// A bucket made by the KV client before secure erasure denies message
// deletes for good (and holds unwrapped keys): it is refused at start, with
// a message saying what to do.
func TestOldBucketIsRefusedAtStart(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, srv)
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: pii.Bucket, History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	_, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(t)})
	if err == nil || !strings.Contains(err.Error(), "made before secure erasure") || !strings.Contains(err.Error(), "closeloopctl migrate-pii-keys") {
		t.Fatalf("New on an old bucket: %v, want a refusal naming closeloopctl migrate-pii-keys", err)
	}
}
