package checkpoint

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the JetStream object store that keeps the snapshots.
const Bucket = "SNAPSHOTS"

// JetStream keeps snapshots in a JetStream object store: embedded for
// `make run` and the tests, replicated on a cluster, with no server of its
// own. An object store rather than a KV bucket because a snapshot can be
// larger than a message: it is stored in chunks, and its metadata (the
// last thing written) is rolled up, so a crash mid-save leaves the previous
// snapshot whole.
type JetStream struct {
	obs jetstream.ObjectStore
}

// NewJetStream opens (creating it when absent) the snapshot bucket with the
// given number of replicas (0: one).
func NewJetStream(ctx context.Context, js jetstream.JetStream, replicas int) (*JetStream, error) {
	cfg := jetstream.ObjectStoreConfig{
		Bucket:      Bucket,
		Description: "Closeloop view snapshots: a cache of the event log, safe to delete",
		Replicas:    max(replicas, 1),
		Storage:     jetstream.FileStorage,
		Compression: true,
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: object store %s: %w", Bucket, err)
	}
	return &JetStream{obs: obs}, nil
}

// Save implements Store.
func (s *JetStream) Save(ctx context.Context, name string, snap Snapshot) error {
	b, err := Encode(snap)
	if err != nil {
		return err
	}
	if _, err := s.obs.PutBytes(ctx, name, b); err != nil {
		return fmt.Errorf("checkpoint: save %s: %w", name, err)
	}
	return nil
}

// Load implements Store.
func (s *JetStream) Load(ctx context.Context, name string) (Snapshot, error) {
	b, err := s.obs.GetBytes(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		return Snapshot{}, fmt.Errorf("%w saved as %s", ErrNoSnapshot, name)
	case errors.Is(err, jetstream.ErrDigestMismatch):
		return Snapshot{}, fmt.Errorf("%w: %s: %v", ErrDamaged, name, err)
	case err != nil:
		return Snapshot{}, fmt.Errorf("checkpoint: load %s: %w", name, err)
	}
	snap, err := Decode(b)
	if err != nil {
		return Snapshot{}, fmt.Errorf("%s: %w", name, err)
	}
	return snap, nil
}
