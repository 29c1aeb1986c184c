package pii

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The variables a service reads its key-encryption keys from (one of them).
const (
	EnvKEK     = "PII_KEK"
	EnvKEKFile = "PII_KEK_FILE"
)

// A stored data key is kekID ‖ nonce ‖ AES-256-GCM(KEK, generation ‖ key)
// with the customer reference as associated data, so a wrapped key copied
// under another customer does not open.
const (
	kekLen     = 32
	kekIDLen   = 4
	nonceLen   = 12
	wrappedLen = kekIDLen + nonceLen + genLen + keyLen + 16 // GCM tag
)

// Keyring holds the key-encryption keys (KEKs), newest first: the newest
// wraps new data keys, every one unwraps. A KEK's id, stored with each key
// it wraps, is derived from the KEK itself (a truncated SHA-256), so
// rotating is adding a new KEK in front and restarting.
type Keyring struct {
	keks []kek
}

type kek struct {
	id   []byte
	aead cipher.AEAD
}

// NewKeyring makes a keyring of 32-byte KEKs, newest first.
func NewKeyring(keks ...[]byte) (*Keyring, error) {
	if len(keks) == 0 {
		return nil, errors.New("no key-encryption key")
	}
	r := &Keyring{}
	for i, k := range keks {
		if len(k) != kekLen {
			return nil, fmt.Errorf("key-encryption key %d: must be %d bytes (%d hex digits), is %d", i+1, kekLen, 2*kekLen, len(k))
		}
		sum := sha256.Sum256(append([]byte("closeloop pii kek id\x00"), k...))
		id := sum[:kekIDLen]
		for _, o := range r.keks {
			if bytes.Equal(o.id, id) {
				return nil, fmt.Errorf("key-encryption key %d: listed twice", i+1)
			}
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, err
		}
		r.keks = append(r.keks, kek{id: id, aead: aead})
	}
	return r, nil
}

// ParseKeyring reads KEKs written as hex (64 digits each), separated by
// commas, newest first: "new,old".
func ParseKeyring(s string) (*Keyring, error) {
	var keks [][]byte
	for i, f := range strings.Split(strings.TrimSpace(s), ",") {
		b, err := hex.DecodeString(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("key-encryption key %d: not hex", i+1)
		}
		keks = append(keks, b)
	}
	return NewKeyring(keks...)
}

// KeyringFromLookup reads the keyring from PII_KEK (the hex KEKs) or
// PII_KEK_FILE (a file holding them); the error names the variable and
// never shows a key.
func KeyringFromLookup(lookup func(string) (string, bool)) (*Keyring, error) {
	v, inline := lookup(EnvKEK)
	path, fromFile := lookup(EnvKEKFile)
	inline, fromFile = inline && v != "", fromFile && path != ""
	switch {
	case inline && fromFile:
		return nil, fmt.Errorf("%s and %s: set one, not both", EnvKEK, EnvKEKFile)
	case fromFile:
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKEKFile, err)
		}
		r, err := ParseKeyring(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKEKFile, err)
		}
		return r, nil
	case inline:
		r, err := ParseKeyring(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvKEK, err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("%s: required (the key-encryption key of the customers' data keys: 64 hex digits, or %s naming a file holding them)", EnvKEK, EnvKEKFile)
}

// wrap seals a data key under the newest KEK.
func (r *Keyring) wrap(ref string, dataKey []byte) ([]byte, error) {
	k := r.keks[0]
	nonce := make([]byte, nonceLen)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("pii: nonce: %w", err)
	}
	out := make([]byte, 0, wrappedLen)
	out = append(append(out, k.id...), nonce...)
	return k.aead.Seal(out, nonce, dataKey, []byte(ref)), nil
}

// unwrap opens a stored data key with the KEK whose id it carries.
func (r *Keyring) unwrap(ref string, stored []byte) ([]byte, error) {
	if len(stored) == genLen+keyLen {
		return nil, ErrUnwrapped
	}
	if len(stored) != wrappedLen {
		return nil, fmt.Errorf("%w: stored data key has the wrong length", ErrInvalid)
	}
	id := stored[:kekIDLen]
	for _, k := range r.keks {
		if !bytes.Equal(k.id, id) {
			continue
		}
		v, err := k.aead.Open(nil, stored[kekIDLen:kekIDLen+nonceLen], stored[kekIDLen+nonceLen:], []byte(ref))
		if err != nil {
			return nil, fmt.Errorf("%w: stored data key does not authenticate under its key-encryption key", ErrInvalid)
		}
		return v, nil
	}
	return nil, fmt.Errorf("pii: data key wrapped with key-encryption key %x, which %s does not hold (keep retired KEKs in it)", id, EnvKEK)
}
