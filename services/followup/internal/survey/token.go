// Package survey makes and checks the tokens of customer survey links: an
// HMAC-SHA256 signature over the complaint, the survey and the expiry, so a
// link cannot be forged, used after it expires, or used for another
// complaint. Single use is not the token's job: the complaint's stream
// refuses a second answer (see domain.ErrSurveyAnswered).
package survey

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/closeloop/closeloop/libs/kernel"
)

// Errors of Verify. None of them echoes the token. A malformed, forged or
// foreign link is not the caller's to use (kernel.ErrPermission); an
// expired one was, and is refused for its time (kernel.ErrPrecondition).
var (
	ErrMalformed      = refusal("survey token: malformed", kernel.ErrPermission)
	ErrForged         = refusal("survey token: signature does not match", kernel.ErrPermission)
	ErrExpired        = refusal("survey token: expired", kernel.ErrPrecondition)
	ErrWrongComplaint = refusal("survey token: issued for another complaint", kernel.ErrPermission)
)

// refused is a Verify error of a kernel kind.
type refused struct {
	msg  string
	kind error
}

func refusal(msg string, kind error) error { return &refused{msg: msg, kind: kind} }

func (r *refused) Error() string        { return r.msg }
func (r *refused) Is(target error) bool { return target == r.kind }

// MinSecretLen is the shortest secret accepted: 256 bits, the size of the MAC.
const MinSecretLen = 32

// Claims are what a token vouches for.
type Claims struct {
	ComplaintID string
	SurveyID    string
	ExpiresAt   time.Time
}

// Signer signs and verifies tokens with one secret.
type Signer struct{ secret []byte }

// NewSigner returns a signer; the secret must be at least MinSecretLen bytes.
func NewSigner(secret []byte) (*Signer, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("survey: secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	return &Signer{secret: append([]byte(nil), secret...)}, nil
}

// A token is base64url(payload) "." base64url(HMAC-SHA256(secret, payload)),
// payload = "v1" NUL complaint NUL survey NUL expiry (Unix seconds). Ids never
// contain NUL, so the fields cannot be shifted into one another.
const version = "v1"

var b64 = base64.RawURLEncoding

// Sign returns the token for c.
func (s *Signer) Sign(c Claims) string {
	payload := strings.Join([]string{version, c.ComplaintID, c.SurveyID, strconv.FormatInt(c.ExpiresAt.Unix(), 10)}, "\x00")
	return b64.EncodeToString([]byte(payload)) + "." + b64.EncodeToString(s.mac([]byte(payload)))
}

func (s *Signer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write(payload)
	return m.Sum(nil)
}

// Verify checks token's signature first (nothing unsigned is trusted), then
// that it was issued for complaintID and that now is before its expiry.
func (s *Signer) Verify(token, complaintID string, now time.Time) (Claims, error) {
	p64, sig64, ok := strings.Cut(token, ".")
	if !ok {
		return Claims{}, ErrMalformed
	}
	payload, err1 := b64.DecodeString(p64)
	sig, err2 := b64.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return Claims{}, ErrMalformed
	}
	if !hmac.Equal(sig, s.mac(payload)) {
		return Claims{}, ErrForged
	}
	f := strings.Split(string(payload), "\x00")
	if len(f) != 4 || f[0] != version {
		return Claims{}, ErrMalformed
	}
	exp, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return Claims{}, ErrMalformed
	}
	c := Claims{ComplaintID: f[1], SurveyID: f[2], ExpiresAt: time.Unix(exp, 0).UTC()}
	if c.ComplaintID != complaintID {
		return Claims{}, ErrWrongComplaint
	}
	if !now.Before(c.ExpiresAt) {
		return Claims{}, ErrExpired
	}
	return c, nil
}

// Link is the customer's survey URL: <base>/survey/<complaint id>?t=<token>.
func (s *Signer) Link(base string, c Claims) string {
	return strings.TrimRight(base, "/") + "/survey/" + url.PathEscape(c.ComplaintID) + "?t=" + url.QueryEscape(s.Sign(c))
}
