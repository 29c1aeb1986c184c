// Package signing proves which service wrote an event: each service signs
// the events it appends with its own Ed25519 key, and every reader checks
// the signature against a keyring before it applies an event.
//
// The signature travels in the stored bytes, as the envelope's last field
// (Envelope.signature, number 30): the writer marshals the envelope without
// it, signs those bytes and appends the field. A reader splits the field off
// (Split) and checks the signature over exactly the bytes before it, so no
// re-marshalling is ever needed. The chain hash (eventlog.Hash) covers the
// whole stored bytes, signature included.
//
// Key files:
//
//   - a service's private key: PEM, a PKCS #8 "PRIVATE KEY" block of an
//     Ed25519 key with two headers, Key-Id and Producer (ReadSigner,
//     WriteKeyFile). `openssl genpkey -algorithm ed25519` writes the block;
//     add the two header lines.
//   - the keyring: JSON, [{"key_id", "producer", "public_key"}], the public
//     key as standard base64 of its 32 bytes (ReadKeyring, MarshalKeyring).
//
// Rotation: a producer may have several keys in the keyring. A service signs
// with the one in its key file; old keys stay in the keyring so that the
// events they signed still verify.
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// FieldNumber is the envelope's signature field.
const FieldNumber protowire.Number = 30

// Fields of the Signature message.
const (
	fieldKeyID protowire.Number = 1
	fieldSig   protowire.Number = 2
)

// MaxKeyIDLength bounds a key id, so that a signature's size is known.
const MaxKeyIDLength = 64

// MaxTrailerSize is the most bytes Sign adds to an event.
const MaxTrailerSize = 2 + 2 + (1 + 1 + MaxKeyIDLength) + (1 + 1 + ed25519.SignatureSize)

// ErrUnsigned is returned by Split for stored bytes without a signature.
var ErrUnsigned = errors.New("signing: event is not signed")

// Signer signs the events of one producer (a service) with its key.
type Signer struct {
	keyID    string
	producer string
	key      ed25519.PrivateKey
}

// NewSigner returns the signer of producer with key, named keyID in the
// keyring.
func NewSigner(keyID, producer string, key ed25519.PrivateKey) (*Signer, error) {
	if err := checkNames(keyID, producer); err != nil {
		return nil, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing: key %s: not an Ed25519 private key (%d bytes)", keyID, len(key))
	}
	return &Signer{keyID: keyID, producer: producer, key: key}, nil
}

func checkNames(keyID, producer string) error {
	switch {
	case keyID == "":
		return errors.New("signing: key_id: required")
	case len(keyID) > MaxKeyIDLength:
		return fmt.Errorf("signing: key_id %q: at most %d bytes", keyID, MaxKeyIDLength)
	case strings.TrimSpace(keyID) != keyID || strings.ContainsAny(keyID, "\n\r"):
		return fmt.Errorf("signing: key_id %q: no surrounding spaces or line breaks", keyID)
	case producer == "":
		return fmt.Errorf("signing: key %s: producer: required", keyID)
	}
	return nil
}

// KeyID names the signer's key in the keyring.
func (s *Signer) KeyID() string { return s.keyID }

// Producer is the service whose events the signer signs.
func (s *Signer) Producer() string { return s.producer }

// Public is the signer's entry for the keyring.
func (s *Signer) Public() Key {
	return Key{KeyID: s.keyID, Producer: s.producer, Public: s.key.Public().(ed25519.PublicKey)}
}

// Sign returns unsigned followed by the signature field over it: the bytes
// to store. unsigned must be an envelope marshalled without a signature.
func (s *Signer) Sign(unsigned []byte) []byte {
	sig := ed25519.Sign(s.key, unsigned)
	var inner []byte
	inner = protowire.AppendTag(inner, fieldKeyID, protowire.BytesType)
	inner = protowire.AppendString(inner, s.keyID)
	inner = protowire.AppendTag(inner, fieldSig, protowire.BytesType)
	inner = protowire.AppendBytes(inner, sig)
	out := make([]byte, 0, len(unsigned)+MaxTrailerSize)
	out = append(out, unsigned...)
	out = protowire.AppendTag(out, FieldNumber, protowire.BytesType)
	return protowire.AppendBytes(out, inner)
}

// Split cuts stored bytes into the signed bytes and the signature: the
// signature field must be the last field and appear once. Bytes with no
// signature field return ErrUnsigned.
func Split(stored []byte) (signed []byte, keyID string, sig []byte, err error) {
	start, found := -1, false
	for at := 0; at < len(stored); {
		num, typ, n := protowire.ConsumeTag(stored[at:])
		if n < 0 {
			return nil, "", nil, errors.New("signing: stored bytes do not parse")
		}
		m := protowire.ConsumeFieldValue(num, typ, stored[at+n:])
		if m < 0 {
			return nil, "", nil, errors.New("signing: stored bytes do not parse")
		}
		if found {
			return nil, "", nil, errors.New("signing: the signature is not the last field")
		}
		if num == FieldNumber {
			if typ != protowire.BytesType {
				return nil, "", nil, errors.New("signing: signature field of the wrong wire type")
			}
			start, found = at, true
		}
		at += n + m
	}
	if !found {
		return nil, "", nil, ErrUnsigned
	}
	_, _, n := protowire.ConsumeTag(stored[start:])
	inner, _ := protowire.ConsumeBytes(stored[start+n:])
	var seen [3]bool
	for len(inner) > 0 {
		num, typ, n := protowire.ConsumeTag(inner)
		if n < 0 || typ != protowire.BytesType || (num != fieldKeyID && num != fieldSig) || seen[num] {
			return nil, "", nil, errors.New("signing: signature field malformed")
		}
		seen[num] = true
		v, m := protowire.ConsumeBytes(inner[n:])
		if m < 0 {
			return nil, "", nil, errors.New("signing: signature field malformed")
		}
		if num == fieldKeyID {
			keyID = string(v)
		} else {
			sig = v
		}
		inner = inner[n+m:]
	}
	if keyID == "" || len(sig) != ed25519.SignatureSize {
		return nil, "", nil, errors.New("signing: signature field malformed: key_id and a 64-byte sig are required")
	}
	return stored[:start], keyID, sig, nil
}

// Key is one entry of the keyring: a producer's public key.
type Key struct {
	KeyID    string
	Producer string
	Public   ed25519.PublicKey
}

// Keyring holds every producer's public keys, old ones included. Safe for
// concurrent use (it does not change after NewKeyring).
type Keyring struct {
	keys map[string]Key
	// unsignedUntil is the log position of the last event written before
	// signing was turned on (0: none): an older log's events carry no
	// signature and are vouched for by their chain alone.
	unsignedUntil uint64
	// verified remembers stored bytes whose signature held, so that the
	// readers of one process sharing the keyring (a service's bus consumer
	// and its views; every service of `make run`) check an event once.
	verified *verifiedCache
}

// verifiedCache maps the SHA-256 of verified stored bytes to the key that
// signed them, in two generations of at most max entries each (about 80 B
// an entry): recent events stay, old ones are verified again if read again.
type verifiedCache struct {
	mu       sync.Mutex
	max      int
	cur, old map[[sha256.Size]byte]string
}

// verifiedEntries bounds each generation: readers meet an event within
// seconds of each other while following the log.
const verifiedEntries = 1 << 15

func newVerifiedCache() *verifiedCache {
	return &verifiedCache{max: verifiedEntries, cur: map[[sha256.Size]byte]string{}, old: map[[sha256.Size]byte]string{}}
}

func (c *verifiedCache) get(h [sha256.Size]byte) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if id, ok := c.cur[h]; ok {
		return id, true
	}
	id, ok := c.old[h]
	return id, ok
}

func (c *verifiedCache) put(h [sha256.Size]byte, keyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[[sha256.Size]byte]string, c.max)
	}
	c.cur[h] = keyID
}

// UnsignedUntil is the last log position whose events may be unsigned: the
// log's head when signing was turned on for it (0 for a log signed from its
// first event).
func (k *Keyring) UnsignedUntil() uint64 { return k.unsignedUntil }

// WithUnsignedUntil returns a copy of k whose events up to log position pos
// may be unsigned.
func (k *Keyring) WithUnsignedUntil(pos uint64) *Keyring {
	return &Keyring{keys: k.keys, unsignedUntil: pos, verified: k.verified}
}

// NewKeyring checks keys (ids unique, well formed) and returns their keyring.
func NewKeyring(keys ...Key) (*Keyring, error) {
	k := &Keyring{keys: make(map[string]Key, len(keys)), verified: newVerifiedCache()}
	for i, key := range keys {
		if err := checkNames(key.KeyID, key.Producer); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		if len(key.Public) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("keys[%d]: signing: public_key of %s: must be %d bytes, got %d", i, key.KeyID, ed25519.PublicKeySize, len(key.Public))
		}
		if _, dup := k.keys[key.KeyID]; dup {
			return nil, fmt.Errorf("keys[%d]: signing: key_id %s: given twice", i, key.KeyID)
		}
		k.keys[key.KeyID] = key
	}
	return k, nil
}

// Verify checks stored bytes' signature and returns the key that made it:
// an error for unsigned bytes (ErrUnsigned), an unknown key or a signature
// that does not hold.
func (k *Keyring) Verify(stored []byte) (Key, error) {
	h := sha256.Sum256(stored)
	if id, ok := k.verified.get(h); ok {
		return k.keys[id], nil
	}
	signed, keyID, sig, err := Split(stored)
	if err != nil {
		return Key{}, err
	}
	key, ok := k.keys[keyID]
	if !ok {
		return Key{}, fmt.Errorf("signing: unknown key %q", keyID)
	}
	if !ed25519.Verify(key.Public, signed, sig) {
		return Key{}, fmt.Errorf("signing: signature of key %s does not hold: the event was altered or not signed by that key", keyID)
	}
	k.verified.put(h, keyID)
	return key, nil
}

// Holds reports whether the keyring has key, with the same producer and
// public key.
func (k *Keyring) Holds(key Key) bool {
	got, ok := k.keys[key.KeyID]
	return ok && got.Producer == key.Producer && bytes.Equal(got.Public, key.Public)
}

// Keys returns the keyring's keys (in no particular order).
func (k *Keyring) Keys() []Key {
	out := make([]Key, 0, len(k.keys))
	for _, key := range k.keys {
		out = append(out, key)
	}
	return out
}

// keyJSON is one entry of the keyring file.
type keyJSON struct {
	KeyID     string `json:"key_id"`
	Producer  string `json:"producer"`
	PublicKey string `json:"public_key"`
}

// keyringJSON is a keyring file: the keys, and for a log that was written
// before signing, the last position whose events may be unsigned.
type keyringJSON struct {
	Keys          []keyJSON `json:"keys"`
	UnsignedUntil uint64    `json:"unsigned_until_position,omitempty"`
}

// ParseKeyring reads a keyring file's JSON: {"keys": [{key_id, producer,
// public_key}…], "unsigned_until_position": N}, or the list of keys alone.
func ParseKeyring(data []byte) (*Keyring, error) {
	var file keyringJSON
	var err error
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		err = dec.Decode(&file.Keys)
	} else {
		err = dec.Decode(&file)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: keyring: must be JSON {\"keys\": [{key_id, producer, public_key}…], \"unsigned_until_position\": N} or the list of keys: %w", err)
	}
	entries := file.Keys
	keys := make([]Key, len(entries))
	for i, e := range entries {
		pub, err := base64.StdEncoding.DecodeString(e.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("keys[%d]: signing: public_key of %s: must be standard base64: %w", i, e.KeyID, err)
		}
		keys[i] = Key{KeyID: e.KeyID, Producer: e.Producer, Public: pub}
	}
	ring, err := NewKeyring(keys...)
	if err != nil {
		return nil, err
	}
	return ring.WithUnsignedUntil(file.UnsignedUntil), nil
}

// ReadKeyring reads a keyring file.
func ReadKeyring(path string) (*Keyring, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// MarshalKeyring lays keys out as a keyring file, with the last log
// position whose events may be unsigned (0: none).
func MarshalKeyring(keys []Key, unsignedUntil uint64) ([]byte, error) {
	file := keyringJSON{Keys: make([]keyJSON, len(keys)), UnsignedUntil: unsignedUntil}
	for i, k := range keys {
		file.Keys[i] = keyJSON{KeyID: k.KeyID, Producer: k.Producer, PublicKey: base64.StdEncoding.EncodeToString(k.Public)}
	}
	out, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// PEM headers of a key file.
const (
	headerKeyID    = "Key-Id"
	headerProducer = "Producer"
)

// ParseSigner reads a key file's PEM: a PKCS #8 Ed25519 private key with
// Key-Id and Producer headers.
func ParseSigner(data []byte) (*Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("signing: key file: must hold a PEM \"PRIVATE KEY\" block (PKCS #8)")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing: key file: %w", err)
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing: key file: a %T, not an Ed25519 key", key)
	}
	id, producer := block.Headers[headerKeyID], block.Headers[headerProducer]
	if id == "" || producer == "" {
		return nil, fmt.Errorf("signing: key file: needs the PEM headers %s and %s", headerKeyID, headerProducer)
	}
	return NewSigner(id, producer, ed)
}

// ReadSigner reads a key file.
func ReadSigner(path string) (*Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSigner(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// Generate makes a new key for producer, named keyID.
func Generate(keyID, producer string) (*Signer, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("signing: generate a key: %w", err)
	}
	return NewSigner(keyID, producer, key)
}

// MarshalKeyFile lays the signer out as a key file (ParseSigner reads it).
func (s *Signer) MarshalKeyFile() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(s.key)
	if err != nil {
		return nil, fmt.Errorf("signing: key %s: %w", s.keyID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Headers: map[string]string{headerKeyID: s.keyID, headerProducer: s.producer}, Bytes: der}), nil
}
