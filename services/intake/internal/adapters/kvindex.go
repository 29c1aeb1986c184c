// Package adapters holds intake's storage next to the event log: the
// duplicate and link indexes on JetStream key-value buckets.
package adapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/services/intake/internal/app"
)

// Buckets.
const (
	// DuplicatesBucket maps a problem fingerprint (customer + problem) to
	// the complaint that claimed it; entries expire after the duplicate
	// window, so a report after the window opens a new complaint.
	DuplicatesBucket = "INTAKE_DUPLICATES"
	// LinksBucket maps a linked submission's own id (derived from its
	// channel reference) to the complaint it joined; kept for good so a
	// retry weeks later still answers the same complaint.
	LinksBucket = "INTAKE_LINKS"
)

// KVIndex implements app.DuplicateIndex on two KV buckets.
type KVIndex struct {
	dups, links jetstream.KeyValue
}

// NewKVIndex opens (creating or updating) the buckets. window is how long a
// fingerprint stays claimed.
func NewKVIndex(ctx context.Context, js jetstream.JetStream, window time.Duration, replicas int) (*KVIndex, error) {
	if replicas <= 0 {
		replicas = 1
	}
	dups, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: DuplicatesBucket, Description: "intake: problem fingerprint -> first complaint (duplicate window)",
		History: 1, TTL: window, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", DuplicatesBucket, err)
	}
	links, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LinksBucket, Description: "intake: linked submission -> complaint it joined",
		History: 1, Storage: jetstream.FileStorage, Replicas: replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", LinksBucket, err)
	}
	return &KVIndex{dups: dups, links: links}, nil
}

var _ app.DuplicateIndex = (*KVIndex)(nil)

type claimValue struct {
	ComplaintID string    `json:"complaint_id"`
	ClaimedAt   time.Time `json:"claimed_at"`
}

// Claim implements app.DuplicateIndex with KV Create (atomic).
func (k *KVIndex) Claim(ctx context.Context, fp, id string, now time.Time) (app.Claim, bool, error) {
	v, err := json.Marshal(claimValue{id, now.UTC()})
	if err != nil {
		return app.Claim{}, false, err
	}
	for range 3 {
		rev, err := k.dups.Create(ctx, fp, v)
		if err == nil {
			return app.Claim{ComplaintID: id, ClaimedAt: now, Revision: rev}, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return app.Claim{}, false, err
		}
		e, err := k.dups.Get(ctx, fp)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // expired between the two calls
		}
		if err != nil {
			return app.Claim{}, false, err
		}
		var cv claimValue
		if err := json.Unmarshal(e.Value(), &cv); err != nil {
			return app.Claim{}, false, fmt.Errorf("duplicate index entry: %w", err)
		}
		return app.Claim{ComplaintID: cv.ComplaintID, ClaimedAt: cv.ClaimedAt, Revision: e.Revision()}, false, nil
	}
	return app.Claim{}, false, errors.New("duplicate index entry keeps vanishing")
}

// Takeover implements app.DuplicateIndex with KV Update (compare-and-set).
func (k *KVIndex) Takeover(ctx context.Context, fp, id string, now time.Time, rev uint64) error {
	v, err := json.Marshal(claimValue{id, now.UTC()})
	if err != nil {
		return err
	}
	_, err = k.dups.Update(ctx, fp, v, rev)
	return err
}

// Release implements app.DuplicateIndex: a delete at the revision read, so
// an entry taken over meanwhile stays.
func (k *KVIndex) Release(ctx context.Context, fp, id string) error {
	e, err := k.dups.Get(ctx, fp)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var cv claimValue
	if err := json.Unmarshal(e.Value(), &cv); err != nil {
		return fmt.Errorf("duplicate index entry: %w", err)
	}
	if cv.ComplaintID != id {
		return nil
	}
	err = k.dups.Delete(ctx, fp, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil // changed meanwhile: no longer ours to release
	}
	return err
}

// Link implements app.DuplicateIndex with KV Create; the first link wins.
func (k *KVIndex) Link(ctx context.Context, submissionID, firstID string) (string, error) {
	_, err := k.links.Create(ctx, submissionID, []byte(firstID))
	if err == nil {
		return firstID, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return "", err
	}
	got, ok, err := k.LinkedTo(ctx, submissionID)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", errors.New("link index entry vanished")
	}
	return got, nil
}

// Unlink implements app.DuplicateIndex: a delete at the revision read, so
// that a link written anew meanwhile stays.
func (k *KVIndex) Unlink(ctx context.Context, submissionID, firstID string) error {
	e, err := k.links.Get(ctx, submissionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if string(e.Value()) != firstID {
		return nil
	}
	err = k.links.Delete(ctx, submissionID, jetstream.LastRevision(e.Revision()))
	if errors.Is(err, jetstream.ErrKeyExists) {
		return nil // changed meanwhile: no longer this link
	}
	return err
}

// LinkedTo implements app.DuplicateIndex.
func (k *KVIndex) LinkedTo(ctx context.Context, submissionID string) (string, bool, error) {
	e, err := k.links.Get(ctx, submissionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(e.Value()), true, nil
}
