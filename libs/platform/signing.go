package platform

import (
	"fmt"
	"os"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

// Event signing (libs/eventlog/signing): each service signs what it appends
// with its own key, and every reader verifies against the keyring.
const (
	// EnvSigningKeyFile is the service's private key file (PEM, PKCS #8
	// Ed25519 with Key-Id and Producer headers).
	EnvSigningKeyFile = "CLOSELOOP_SIGNING_KEY_FILE"
	// EnvSignersFile is the keyring: a JSON list of {key_id, producer,
	// public_key}. Set, every reader verifies every event before applying
	// it and quarantines what fails; unset, nothing is verified.
	EnvSignersFile = "CLOSELOOP_SIGNERS_FILE"
)

// Signing is a service's part in event signing. The zero value turns it off.
type Signing struct {
	// Signer signs the events the service appends (nil: unsigned).
	Signer *signing.Signer
	// Keys verify every event the service's readers apply (nil: no checks).
	Keys *signing.Keyring
}

// SigningFromEnv reads CLOSELOOP_SIGNING_KEY_FILE and CLOSELOOP_SIGNERS_FILE
// for service, and checks that the key is the service's and in the keyring.
func SigningFromEnv(service string) (Signing, error) {
	var sig Signing
	if path := os.Getenv(EnvSigningKeyFile); path != "" {
		s, err := signing.ReadSigner(path)
		if err != nil {
			return sig, fmt.Errorf("%s: %w", EnvSigningKeyFile, err)
		}
		sig.Signer = s
	}
	if path := os.Getenv(EnvSignersFile); path != "" {
		k, err := signing.ReadKeyring(path)
		if err != nil {
			return sig, fmt.Errorf("%s: %w", EnvSignersFile, err)
		}
		sig.Keys = k
	}
	if b := os.Getenv(EnvBackend); (sig.Signer != nil || sig.Keys != nil) && b != "" && b != "jetstream" {
		// Only the JetStream store signs what it appends: readers with a
		// keyring would quarantine every event of the KurrentDB log.
		return sig, fmt.Errorf("%s and %s: event signing needs the jetstream backend, not %s=%s", EnvSigningKeyFile, EnvSignersFile, EnvBackend, b)
	}
	return sig, sig.check(service)
}

// check refuses a key of another service, or one its own readers would
// refuse (not in the keyring).
func (s Signing) check(service string) error {
	if s.Signer == nil {
		return nil
	}
	if p := s.Signer.Producer(); p != service {
		return fmt.Errorf("%s: key %s is %s's, not %s's", EnvSigningKeyFile, s.Signer.KeyID(), p, service)
	}
	if s.Keys != nil && !s.Keys.Holds(s.Signer.Public()) {
		return fmt.Errorf("%s: key %s of %s is not in the keyring (%s): add its public key there first", EnvSigningKeyFile, s.Signer.KeyID(), service, EnvSignersFile)
	}
	return nil
}
