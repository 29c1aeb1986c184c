// Package pii protects customers' personal data: a pseudonymous customer
// reference (a keyed hash of the normalised contact), and per-customer data
// keys that seal name, phone, email and address inside stored events.
// The data keys are stored wrapped under a key-encryption key kept outside
// NATS (kek.go). Destroying a customer's key (Erase, which overwrites it on
// disk) makes every sealed copy unreadable for good — crypto-shredding —
// while the event history itself stays intact and verifiable.
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
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Bucket is the JetStream key-value bucket holding the wrapped data keys.
const Bucket = "PII_KEYS"

// ErrErased is returned by Open when the customer's data key was destroyed.
var ErrErased = errors.New("pii: personal data erased")

// ErrInvalid is returned for a malformed customer reference or sealed value.
var ErrInvalid = errors.New("pii: invalid input")

// ErrUnwrapped is returned for a data key stored in the clear, as before
// key wrapping: such a key is refused rather than used (root README,
// Customer data keys).
var ErrUnwrapped = errors.New("pii: data key stored unwrapped (written before PII_KEK existed); erase the customer or start from a new data directory")

// Config configures the key store.
type Config struct {
	// Replicas of the key bucket (1 for a single node, 3 in a cluster).
	Replicas int
	// KEKs wrap the data keys (required): see Keyring.
	KEKs *Keyring
	// ReadOnly opens an existing bucket without changing its settings and
	// never creates a key: Seal under a customer without a key fails with
	// ErrErased. For services that seal under the keys intake made
	// (dispatch), whose NATS user may not write the bucket.
	ReadOnly bool
}

// Keystore keeps one AES-256 data key per customer reference in a JetStream
// KV bucket, wrapped with a key-encryption key kept outside NATS. Keys are
// not cached, so an erasure on one instance is effective on every instance
// at once. Safe for concurrent use.
type Keystore struct {
	kv       jetstream.KeyValue
	stream   jetstream.Stream
	keks     *Keyring
	readOnly bool
}

// streamConfig is the bucket's stream: what the KV client would make for
// History 1, except that message deletes are allowed, for Erase to
// overwrite a stored key (a purge alone leaves its bytes in the block file,
// and a stream that denies deletes can never be changed to allow them). Who
// may delete is for the NATS permissions: only intake's user
// (deploy/nats/accounts.conf).
func streamConfig(replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + Bucket,
		Description:       "closeloop per-customer data keys, wrapped (erase = crypto-shred)",
		Subjects:          []string{"$KV." + Bucket + ".>"},
		MaxMsgsPerSubject: 1,
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		Replicas:          replicas,
		AllowRollup:       true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
	}
}

// New opens (creating if needed) the PII_KEYS bucket.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Keystore, error) {
	if cfg.KEKs == nil || len(cfg.KEKs.keks) == 0 {
		return nil, errors.New("pii: no key-encryption key: set " + EnvKEK + " or " + EnvKEKFile)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	ks := &Keystore{keks: cfg.KEKs, readOnly: cfg.ReadOnly}
	var err error
	if cfg.ReadOnly {
		ks.stream, err = js.Stream(ctx, "KV_"+Bucket)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			ks.stream, err = js.CreateStream(ctx, streamConfig(cfg.Replicas))
		}
	} else {
		ks.stream, err = js.CreateOrUpdateStream(ctx, streamConfig(cfg.Replicas))
		if err != nil && strings.Contains(err.Error(), "deny message deletes") {
			err = errors.New("made before secure erasure (it denies message deletes, and its keys are unwrapped): stop intake and run `closeloopctl migrate-pii-keys`, which keeps every key (see README, Customer data keys)")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pii: key bucket %s: %w", Bucket, err)
	}
	if ks.kv, err = js.KeyValue(ctx, Bucket); err != nil {
		return nil, fmt.Errorf("pii: key bucket %s: %w", Bucket, err)
	}
	return ks, nil
}

// A data key is an 8-byte generation followed by the 32-byte AES key. The
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
	v, err := k.keks.unwrap(ref, e.Value())
	if err != nil {
		return nil, err
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

// Erase destroys the customer's data key: every stored revision of it is
// overwritten on disk (JetStream's secure delete), then a purge marker is
// put, so that the bucket answers "not found" and no copy of the key, wrapped
// or not, remains in the store's files. Erasing an unknown or already
// erased customer is not an error.
func (k *Keystore) Erase(ctx context.Context, customerRef string) error {
	if !validRef(customerRef) {
		return fmt.Errorf("%w: customer_ref: must be 1-128 characters of [A-Za-z0-9_-]", ErrInvalid)
	}
	if k.readOnly {
		return errors.New("pii: erase: the key store is open read-only")
	}
	revs, err := k.kv.History(ctx, customerRef)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("pii: erase data key: history: %w", err)
	}
	for _, e := range revs {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		// Not found: removed meanwhile by another erasure.
		if err := k.stream.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("pii: erase data key: overwrite revision %d: %w", e.Revision(), err)
		}
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
			v, err := k.keks.unwrap(ref, e.Value())
			if err != nil {
				return nil, nil, err
			}
			return v[:genLen], v[genLen:], nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, nil, fmt.Errorf("pii: read data key: %w", err)
		}
		if k.readOnly {
			return nil, nil, ErrErased
		}
		v := make([]byte, genLen+keyLen)
		if _, err := rand.Read(v); err != nil {
			return nil, nil, fmt.Errorf("pii: new data key: %w", err)
		}
		wrapped, err := k.keks.wrap(ref, v)
		if err != nil {
			return nil, nil, err
		}
		// Create is atomic: of two first sealers of a customer, one key wins
		// and the other reads it back.
		if _, err := k.kv.Create(ctx, ref, wrapped); err == nil {
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
