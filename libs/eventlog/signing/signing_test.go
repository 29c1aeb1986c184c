package signing_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

func TestSignSplitVerify(t *testing.T) {
	s, err := signing.Generate("routing-1", "routing")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "event-1")
	stored := s.Sign(unsigned)
	signed, keyID, sig, err := signing.Split(stored)
	if err != nil || !bytes.Equal(signed, unsigned) || keyID != "routing-1" || len(sig) != 64 {
		t.Fatalf("Split = %x, %q, %d-byte sig, %v; want the unsigned bytes back and the key id", signed, keyID, len(sig), err)
	}
	if n := len(stored) - len(unsigned); n > signing.MaxTrailerSize {
		t.Errorf("trailer of %d bytes, more than MaxTrailerSize %d", n, signing.MaxTrailerSize)
	}
	ring, err := signing.NewKeyring(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	if key, err := ring.Verify(stored); err != nil || key.Producer != "routing" {
		t.Fatalf("Verify = %+v, %v; want routing's key", key, err)
	}

	altered := bytes.Clone(stored)
	altered[3] ^= 1 // inside "event-1"
	if _, err := ring.Verify(altered); err == nil || !strings.Contains(err.Error(), "does not hold") {
		t.Fatalf("Verify(altered) = %v, want the signature refused", err)
	}
	if _, err := ring.Verify(unsigned); !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("Verify(unsigned) = %v, want ErrUnsigned", err)
	}
	other, _ := signing.Generate("dispatch-1", "dispatch")
	if _, err := ring.Verify(other.Sign(unsigned)); err == nil || !strings.Contains(err.Error(), "unknown key") {
		t.Fatalf("Verify(other key) = %v, want an unknown key", err)
	}
	// The signature must be the last field, once.
	trailing := protowire.AppendVarint(protowire.AppendTag(bytes.Clone(stored), 4, protowire.VarintType), 9)
	if _, _, _, err := signing.Split(trailing); err == nil || !strings.Contains(err.Error(), "last field") {
		t.Fatalf("Split(field after the signature) = %v, want refused", err)
	}
	if _, _, _, err := signing.Split(s.Sign(stored)); err == nil {
		t.Fatal("Split(signed twice) = nil, want refused")
	}
}

func TestKeyFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, err := signing.Generate("intake-2026-12", "intake")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := s.MarshalKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, "intake.key")
	if err := os.WriteFile(keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	back, err := signing.ReadSigner(keyPath)
	if err != nil || back.KeyID() != s.KeyID() || back.Producer() != "intake" {
		t.Fatalf("ReadSigner = %v, %v; want the same key id and producer", back, err)
	}
	ringJSON, err := signing.MarshalKeyring([]signing.Key{s.Public()}, 0)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := signing.ParseKeyring(ringJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !ring.Holds(back.Public()) {
		t.Fatal("the keyring written from the key does not hold the key read back")
	}
	if _, err := ring.Verify(back.Sign([]byte{0x08, 0x01})); err != nil {
		t.Fatalf("a signature of the key read back: %v", err)
	}

	for name, data := range map[string]string{
		"not a keyring": `{"key_id":"a"}`,
		"bad base64":    `[{"key_id":"a","producer":"intake","public_key":"!!"}]`,
		"short key":     `[{"key_id":"a","producer":"intake","public_key":"AAAA"}]`,
		"no producer":   `[{"key_id":"a","producer":"","public_key":"` + strings.Repeat("A", 43) + `="}]`,
		"unknown field": `[{"key_id":"a","producer":"intake","public_key":"` + strings.Repeat("A", 43) + `=","valid":true}]`,
	} {
		if _, err := signing.ParseKeyring([]byte(data)); err == nil {
			t.Errorf("%s: ParseKeyring = nil, want an error", name)
		}
	}
	noHeaders := strings.Replace(string(pemBytes), "Key-Id: intake-2026-12\n", "", 1)
	if _, err := signing.ParseSigner([]byte(noHeaders)); err == nil || !strings.Contains(err.Error(), "Key-Id") {
		t.Errorf("ParseSigner without Key-Id = %v, want it named", err)
	}
}

// BenchmarkSign and BenchmarkVerify are the CPU cost per event of a
// typical 300-byte envelope.
func BenchmarkSign(b *testing.B) {
	s, _ := signing.Generate("routing-bench", "routing")
	event := bytes.Repeat([]byte{0x0a, 0x03, 'a', 'b', 'c'}, 60)
	for b.Loop() {
		s.Sign(event)
	}
}

func BenchmarkVerify(b *testing.B) {
	s, _ := signing.Generate("routing-bench", "routing")
	stored := s.Sign(bytes.Repeat([]byte{0x0a, 0x03, 'a', 'b', 'c'}, 60))
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ring, _ := signing.NewKeyring(s.Public()) // nothing verified yet
		b.StartTimer()
		if _, err := ring.Verify(stored); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyAgain is another reader of the same process meeting an
// event the keyring has verified already.
func BenchmarkVerifyAgain(b *testing.B) {
	s, _ := signing.Generate("routing-bench", "routing")
	stored := s.Sign(bytes.Repeat([]byte{0x0a, 0x03, 'a', 'b', 'c'}, 60))
	ring, _ := signing.NewKeyring(s.Public())
	for b.Loop() {
		if _, err := ring.Verify(stored); err != nil {
			b.Fatal(err)
		}
	}
}

// A keyring remembers what it verified by the whole stored bytes: bytes
// altered after a verification are checked afresh, and refused.
func TestAVerifiedEventAlteredIsStillRefused(t *testing.T) {
	s, err := signing.Generate("routing-1", "routing")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := signing.NewKeyring(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	stored := s.Sign(bytes.Repeat([]byte{0x0a, 0x03, 'a', 'b', 'c'}, 60))
	for range 2 { // checked, then remembered
		if key, err := ring.Verify(stored); err != nil || key.KeyID != "routing-1" {
			t.Fatalf("verify = %v, %v; want routing-1", key, err)
		}
	}
	altered := bytes.Clone(stored)
	altered[3] ^= 1
	if _, err := ring.Verify(altered); err == nil {
		t.Fatal("altered bytes verified after the original was remembered")
	}
	if _, err := ring.WithUnsignedUntil(7).Verify(stored); err != nil {
		t.Fatalf("a copy of the keyring: %v", err)
	}
}
