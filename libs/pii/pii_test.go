package pii_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func testKEKs(t testing.TB, keks ...string) *pii.Keyring {
	t.Helper()
	if len(keks) == 0 {
		keks = []string{strings.Repeat("11", 32)}
	}
	r, err := pii.ParseKeyring(strings.Join(keks, ","))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func newKeystore(t *testing.T) *pii.Keystore {
	t.Helper()
	s := natstest.Start(t, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(t, s)
	ks, err := pii.New(context.Background(), js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestSealOpenErase(t *testing.T) {
	ctx := context.Background()
	ks := newKeystore(t)
	ref := pii.CustomerRef([]byte("secret"), "+86 138-0013-8000", "")
	pd := &eventsv1.PersonalData{Name: "张三", Phone: "13800138000", Email: "z@example.com", Address: "1 Road"}

	sealed, err := ks.Seal(ctx, ref, pd)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sealed.GetCiphertext()), "13800138000") {
		t.Fatal("ciphertext contains the phone number in the clear")
	}
	got, err := ks.Open(ctx, sealed)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, pd) {
		t.Fatalf("Open = %v, want %v", got, pd)
	}
	// Same customer, second seal: same key.
	sealed2, err := ks.Seal(ctx, ref, pd)
	if err != nil {
		t.Fatal(err)
	}
	if sealed2.GetKeyId() != sealed.GetKeyId() {
		t.Fatalf("key id changed: %s vs %s", sealed2.GetKeyId(), sealed.GetKeyId())
	}

	// Tampering is detected.
	bad := proto.Clone(sealed).(*eventsv1.SealedPersonalData)
	bad.Ciphertext[0] ^= 1
	if _, err := ks.Open(ctx, bad); !errors.Is(err, pii.ErrInvalid) {
		t.Fatalf("tampered Open err = %v, want ErrInvalid", err)
	}

	if err := ks.Erase(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Open(ctx, sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open after erase err = %v, want ErrErased", err)
	}
	// A new key after erasure never opens data sealed under the old one.
	if _, err := ks.Seal(ctx, ref, pd); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Open(ctx, sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open with a re-created key err = %v, want ErrErased", err)
	}
	if err := ks.Erase(ctx, ref); err != nil {
		t.Fatalf("second erase: %v", err)
	}
}

func TestCustomerRef(t *testing.T) {
	sec := []byte("k")
	tests := []struct {
		name         string
		a, b         [2]string
		same, emptyA bool
	}{
		{"phone formats", [2]string{"+86 138-0013-8000", ""}, [2]string{"13800138000", ""}, true, false},
		{"0086 prefix", [2]string{"0086 13800138000", ""}, [2]string{"13800138000", "x@y.z"}, true, false},
		{"email case", [2]string{"", " A@B.com "}, [2]string{"", "a@b.com"}, true, false},
		{"different phones", [2]string{"13800138000", ""}, [2]string{"13800138001", ""}, false, false},
		{"no contact", [2]string{"", ""}, [2]string{"", "a@b.com"}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := pii.CustomerRef(sec, tt.a[0], tt.a[1])
			b := pii.CustomerRef(sec, tt.b[0], tt.b[1])
			if (a == b) != tt.same {
				t.Fatalf("refs %q %q: same=%v, want %v", a, b, a == b, tt.same)
			}
			if (a == "") != tt.emptyA {
				t.Fatalf("ref %q: empty=%v, want %v", a, a == "", tt.emptyA)
			}
		})
	}
	if pii.CustomerRef([]byte("other"), "13800138000", "") == pii.CustomerRef(sec, "13800138000", "") {
		t.Fatal("the ref does not depend on the secret")
	}
}
