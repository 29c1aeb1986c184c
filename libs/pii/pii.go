// Package pii protects customers' personal data: a pseudonymous customer
// reference (a keyed hash of the normalised contact), and per-customer data
// keys that seal name, phone, email and address inside stored events.
// Destroying a customer's key (Erase) makes every sealed copy unreadable for
// good — crypto-shredding — while the event history itself stays intact and
// verifiable.
package pii

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Bucket is the JetStream key-value bucket holding the data keys.
const Bucket = "PII_KEYS"

// ErrErased is returned by Open when the customer's data key was destroyed.
var ErrErased = errors.New("pii: personal data erased")

// ErrInvalid is returned for a malformed customer reference or sealed value.
var ErrInvalid = errors.New("pii: invalid input")

// Config configures the key store.
type Config struct {
	// Replicas of the key bucket (1 for a single node, 3 in a cluster).
	Replicas int
}

// Keystore keeps one AES-256 data key per customer reference in a JetStream
// KV bucket. Keys are not cached, so an erasure on one instance is effective
// on every instance at once. Safe for concurrent use.
type Keystore struct {
	kv jetstream.KeyValue
}

// New opens (creating if needed) the PII_KEYS bucket.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Keystore, error) {
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      Bucket,
		Description: "closeloop per-customer data keys (erase = crypto-shred)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("pii: key bucket %s: %w", Bucket, err)
	}
	return &Keystore{kv: kv}, nil
}

// A stored key is an 8-byte generation followed by the 32-byte AES key. The
// generation goes into the key id, so data sealed before an erasure never
// opens with a key created after it.
const (
	genLen = 8
	keyLen = 32
)

// Seal encrypts pd with the customer's data key, creating the key on first use.
func (k *Keystore) Seal(ctx context.Context, customerRef string, pd *eventsv1.PersonalData) (*eventsv1.SealedPersonalData, error) {
	if !validRef(customerRef) {
		return nil, fmt.Errorf("%w: customer_ref: must be 1-128 characters of [A-Za-z0-9_-]", ErrInvalid)
	}
	gen, key, err := k.dataKey(ctx, customerRef)
	if err != nil {
		return nil, err
	}
	plain, err := proto.Marshal(pd)
	if err != nil {
		return nil, fmt.Errorf("pii: marshal: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("pii: nonce: %w", err)
	}
	keyID := customerRef + "." + hex.EncodeToString(gen)
	return &eventsv1.SealedPersonalData{
		KeyId:      keyID,
		Nonce:      nonce,
		Ciphertext: aead.Seal(nil, nonce, plain, []byte(keyID)),
	}, nil
}

// Open decrypts sealed personal data. It returns ErrErased when the key was
// destroyed (or replaced after an erasure).
func (k *Keystore) Open(ctx context.Context, sealed *eventsv1.SealedPersonalData) (*eventsv1.PersonalData, error) {
	ref, genHex, ok := strings.Cut(sealed.GetKeyId(), ".")
	if !ok || !validRef(ref) {
		return nil, fmt.Errorf("%w: key_id: malformed", ErrInvalid)
	}
	e, err := k.kv.Get(ctx, ref)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, ErrErased
	}
	if err != nil {
		return nil, fmt.Errorf("pii: read data key: %w", err)
	}
	v := e.Value()
	if len(v) != genLen+keyLen {
		return nil, fmt.Errorf("%w: stored data key has the wrong length", ErrInvalid)
	}
	if hex.EncodeToString(v[:genLen]) != genHex {
		return nil, ErrErased
	}
	aead, err := newAEAD(v[genLen:])
	if err != nil {
		return nil, err
	}
	if len(sealed.GetNonce()) != aead.NonceSize() {
		return nil, fmt.Errorf("%w: nonce: wrong length", ErrInvalid)
	}
	plain, err := aead.Open(nil, sealed.GetNonce(), sealed.GetCiphertext(), []byte(sealed.GetKeyId()))
	if err != nil {
		return nil, fmt.Errorf("%w: ciphertext does not authenticate", ErrInvalid)
	}
	var pd eventsv1.PersonalData
	if err := proto.Unmarshal(plain, &pd); err != nil {
		return nil, fmt.Errorf("pii: unmarshal: %w", err)
	}
	return &pd, nil
}

// Erase destroys the customer's data key: a purge, which removes the key's
// value and history from the bucket. Erasing an unknown or already erased
// customer is not an error. For the bytes to leave the disk too, run
// JetStream with encryption at rest (the purged block is then unreadable).
func (k *Keystore) Erase(ctx context.Context, customerRef string) error {
	if !validRef(customerRef) {
		return fmt.Errorf("%w: customer_ref: must be 1-128 characters of [A-Za-z0-9_-]", ErrInvalid)
	}
	if err := k.kv.Purge(ctx, customerRef); err != nil {
		return fmt.Errorf("pii: erase data key: %w", err)
	}
	return nil
}

// KeyRef returns the customer reference a sealed value's key belongs to.
func KeyRef(sealed *eventsv1.SealedPersonalData) string {
	ref, _, _ := strings.Cut(sealed.GetKeyId(), ".")
	return ref
}

func (k *Keystore) dataKey(ctx context.Context, ref string) (gen, key []byte, err error) {
	for range 3 {
		e, err := k.kv.Get(ctx, ref)
		if err == nil {
			v := e.Value()
			if len(v) != genLen+keyLen {
				return nil, nil, fmt.Errorf("%w: stored data key has the wrong length", ErrInvalid)
			}
			return v[:genLen], v[genLen:], nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, nil, fmt.Errorf("pii: read data key: %w", err)
		}
		v := make([]byte, genLen+keyLen)
		if _, err := rand.Read(v); err != nil {
			return nil, nil, fmt.Errorf("pii: new data key: %w", err)
		}
		// Create is atomic: of two first sealers of a customer, one key wins
		// and the other reads it back.
		if _, err := k.kv.Create(ctx, ref, v); err == nil {
			return v[:genLen], v[genLen:], nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, nil, fmt.Errorf("pii: store data key: %w", err)
		}
	}
	return nil, nil, errors.New("pii: data key kept changing while being created")
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("pii: cipher: %w", err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, fmt.Errorf("pii: gcm: %w", err)
	}
	return g, nil
}

func validRef(ref string) bool {
	if ref == "" || len(ref) > 128 {
		return false
	}
	for _, r := range ref {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// CustomerRef is the pseudonymous reference of a customer: an HMAC-SHA256,
// under the deployment's secret, of the normalised phone number or (when
// there is no phone) the normalised email. It returns "" when neither is
// usable. The same person reaching out by phone through two channels gets
// the same reference; nobody without the secret can reverse or test it.
func CustomerRef(secret []byte, phone, email string) string {
	var subject string
	switch {
	case NormalizePhone(phone) != "":
		subject = "phone:" + NormalizePhone(phone)
	case NormalizeEmail(email) != "":
		subject = "email:" + NormalizeEmail(email)
	default:
		return ""
	}
	return "cr_" + KeyedHash(secret, subject)
}

// KeyedHash is the hex HMAC-SHA256 of s under secret, truncated to 128 bits.
func KeyedHash(secret []byte, s string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// NormalizePhone keeps the digits of a phone number, dropping a leading
// international prefix for mainland China (+86 / 0086) so "+86 138-0013-8000"
// and "13800138000" are the same number.
func NormalizePhone(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	d := b.String()
	switch {
	case strings.HasPrefix(d, "0086") && len(d) > 4:
		d = d[4:]
	case strings.HasPrefix(d, "86") && len(d) == 13:
		d = d[2:]
	}
	return d
}

// NormalizeEmail lower-cases and trims an address.
func NormalizeEmail(e string) string {
	return strings.ToLower(strings.TrimFunc(e, unicode.IsSpace))
}
