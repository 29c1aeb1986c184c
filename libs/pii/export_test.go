package pii

import (
	"context"

	"github.com/nats-io/nats.go/jetstream"
)

// Unwrap exposes a stored key's unwrapping to the tests, which look for the
// plain data key in the store's files.
func (r *Keyring) Unwrap(ref string, stored []byte) ([]byte, error) { return r.unwrap(ref, stored) }

// MigrateUntilDeleted runs MigrateClearBucket up to the deletion of the old
// stream and stops, as a crash there would.
func MigrateUntilDeleted(ctx context.Context, js jetstream.JetStream, keks *Keyring, recoveryPath string) error {
	return saveClearBucket(ctx, js, keks, recoveryPath, nil)
}
