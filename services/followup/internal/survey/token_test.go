package survey

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/kernel"
)

var (
	secret = []byte("0123456789abcdef0123456789abcdef")
	t0     = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
)

func mustSigner(t *testing.T, key []byte) *Signer {
	t.Helper()
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenRoundTrip(t *testing.T) {
	s := mustSigner(t, secret)
	c := Claims{ComplaintID: "c1", SurveyID: "sv-e2", ExpiresAt: t0.Add(7 * 24 * time.Hour)}
	got, err := s.Verify(s.Sign(c), "c1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if got != c {
		t.Fatalf("claims = %+v, want %+v", got, c)
	}
}

func TestTokenRefused(t *testing.T) {
	s := mustSigner(t, secret)
	c := Claims{ComplaintID: "c1", SurveyID: "sv-e2", ExpiresAt: t0.Add(time.Hour)}
	good := s.Sign(c)
	p64, sig64, _ := strings.Cut(good, ".")

	// A token signed with another secret, and one whose payload was edited
	// to name another complaint while keeping the old signature.
	other := mustSigner(t, []byte("ffffffffffffffffffffffffffffffff")).Sign(c)
	edited := b64.EncodeToString([]byte("v1\x00c2\x00sv-e2\x00"+"9999999999")) + "." + sig64
	longer := s.Sign(Claims{ComplaintID: "c1", SurveyID: "sv-e2", ExpiresAt: t0.Add(1000 * time.Hour)})

	tests := []struct {
		name      string
		token     string
		complaint string
		now       time.Time
		want      error
	}{
		{"forged: other secret", other, "c1", t0, ErrForged},
		{"forged: payload edited", edited, "c2", t0, ErrForged},
		{"forged: signature of a longer-lived token", p64 + "." + strings.SplitN(longer, ".", 2)[1], "c1", t0, ErrForged},
		{"expired: at the expiry instant", good, "c1", t0.Add(time.Hour), ErrExpired},
		{"expired: a week later", good, "c1", t0.Add(7 * 24 * time.Hour), ErrExpired},
		{"wrong complaint", good, "c2", t0, ErrWrongComplaint},
		{"malformed: no dot", p64, "c1", t0, ErrMalformed},
		{"malformed: not base64", "%%%." + sig64, "c1", t0, ErrMalformed},
		{"malformed: empty", "", "c1", t0, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Verify(tt.token, tt.complaint, tt.now)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			// An expired link was the caller's and is refused for its
			// time; any other is not theirs to use.
			kind := kernel.ErrPermission
			if tt.want == ErrExpired {
				kind = kernel.ErrPrecondition
			}
			if !errors.Is(err, kind) {
				t.Fatalf("err = %v is not a %v", err, kind)
			}
		})
	}
	// Just before expiry it is still good.
	if _, err := s.Verify(good, "c1", t0.Add(time.Hour-time.Second)); err != nil {
		t.Fatalf("token refused before expiry: %v", err)
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := NewSigner([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func TestLink(t *testing.T) {
	s := mustSigner(t, secret)
	c := Claims{ComplaintID: "c1", SurveyID: "sv-e2", ExpiresAt: t0.Add(time.Hour)}
	u, err := url.Parse(s.Link("https://cl.example/", c))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/survey/c1" {
		t.Fatalf("path = %q", u.Path)
	}
	if _, err := s.Verify(u.Query().Get("t"), "c1", t0); err != nil {
		t.Fatalf("link token: %v", err)
	}
}
