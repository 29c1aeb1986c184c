package pii

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/atomicfile"
)

// recoveryFile is what MigrateClearBucket keeps on disk between deleting the
// old bucket and filling the new one: the data keys, wrapped, by customer
// reference. Never a key in the clear.
type recoveryFile struct {
	Bucket string            `json:"bucket"`
	Keys   map[string][]byte `json:"keys"` // customer ref -> wrapped key
}

// MigrateClearBucket turns a PII_KEYS bucket made before secure erasure
// (its stream denies message deletes, its keys are in the clear) into one
// New accepts, keeping every customer's key and its generation so that data
// sealed under it still opens. Intake, the only writer of the bucket, must
// be stopped; the user needs the right to delete a stream.
//
// The keys are first written wrapped under cfg.KEKs to recoveryPath (0600,
// synced, renamed into place); only then is the old stream deleted, which
// removes its files and the clear keys with them. The new bucket is made by
// New and filled from the file, which is removed last. A run interrupted at
// any point resumes from the old stream or, once that is gone, from the
// file. progress (may be nil) receives one line per step, never a key or a
// customer reference. It returns the number of keys in the new bucket's
// care.
func MigrateClearBucket(ctx context.Context, js jetstream.JetStream, cfg Config, recoveryPath string, progress func(string)) (int, error) {
	if cfg.KEKs == nil || len(cfg.KEKs.keks) == 0 {
		return 0, errors.New("pii: migrate: no key-encryption key: set " + EnvKEK + " or " + EnvKEKFile)
	}
	if cfg.ReadOnly {
		return 0, errors.New("pii: migrate: the key store cannot be migrated read-only")
	}
	if err := saveClearBucket(ctx, js, cfg.KEKs, recoveryPath, progress); err != nil {
		return 0, err
	}
	return restoreKeys(ctx, js, cfg, recoveryPath, progress)
}

// saveClearBucket is steps 1 to 3: read the old bucket, write its keys
// wrapped to the recovery file, delete the old stream. Nothing to do when
// the bucket is not of the old kind (absent, or made by New).
func saveClearBucket(ctx context.Context, js jetstream.JetStream, keks *Keyring, recoveryPath string, progress func(string)) error {
	say := sayer(progress)
	s, err := js.Stream(ctx, "KV_"+Bucket)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pii: migrate: stream KV_%s: %w", Bucket, err)
	}
	if !s.CachedInfo().Config.DenyDelete {
		return nil
	}
	kv, err := js.KeyValue(ctx, Bucket)
	if err != nil {
		return fmt.Errorf("pii: migrate: old bucket %s: %w", Bucket, err)
	}
	plain, err := readKeys(ctx, kv, keks)
	if err != nil {
		return err
	}
	say("read %d data keys from the old %s bucket", len(plain))
	rec := recoveryFile{Bucket: Bucket, Keys: make(map[string][]byte, len(plain))}
	for ref, v := range plain {
		if rec.Keys[ref], err = keks.wrap(ref, v); err != nil {
			return err
		}
	}
	if err := writeFileSynced(recoveryPath, rec); err != nil {
		return fmt.Errorf("pii: migrate: recovery file: %w", err)
	}
	// Read back before the only other copy goes.
	back, err := readRecovery(recoveryPath, keks)
	if err != nil {
		return err
	}
	if len(back) != len(plain) {
		return fmt.Errorf("pii: migrate: recovery file %s holds %d keys, the bucket %d", recoveryPath, len(back), len(plain))
	}
	for ref, v := range plain {
		if !bytes.Equal(back[ref], v) {
			return fmt.Errorf("pii: migrate: recovery file %s does not read back as written", recoveryPath)
		}
	}
	say("wrote them wrapped to %s; deleting the old stream KV_%s (and its files)", recoveryPath, Bucket)
	if err := js.DeleteStream(ctx, "KV_"+Bucket); err != nil {
		return fmt.Errorf("pii: migrate: delete the old stream KV_%s (its keys are safe in %s): %w", Bucket, recoveryPath, err)
	}
	return nil
}

// readKeys reads every current key of the bucket as generation ‖ key: clear
// ones as they are, any already wrapped one unwrapped. Erased customers
// (purged keys) have none.
func readKeys(ctx context.Context, kv jetstream.KeyValue, keks *Keyring) (map[string][]byte, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("pii: migrate: read the old bucket: %w", err)
	}
	defer func() { _ = w.Stop() }()
	keys := map[string][]byte{}
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pii: migrate: read the old bucket: %w", ctx.Err())
		case e := <-w.Updates():
			if e == nil { // all current values delivered
				return keys, nil
			}
			v := e.Value()
			if len(v) != genLen+keyLen {
				if v, err = keks.unwrap(e.Key(), v); err != nil {
					return nil, fmt.Errorf("pii: migrate: old bucket revision %d: %w", e.Revision(), err)
				}
			}
			keys[e.Key()] = bytes.Clone(v)
		}
	}
}

// restoreKeys is steps 4 and 5: make the bucket with New, store the keys
// of the recovery file, remove it. Nothing to do without the file.
func restoreKeys(ctx context.Context, js jetstream.JetStream, cfg Config, recoveryPath string, progress func(string)) (int, error) {
	say := sayer(progress)
	plain, err := readRecovery(recoveryPath, cfg.KEKs)
	if errors.Is(err, os.ErrNotExist) {
		say("no old %s bucket and no recovery file: nothing to do", Bucket)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	ks, err := New(ctx, js, cfg)
	if err != nil {
		return 0, err
	}
	say("storing %d data keys from %s in the new %s bucket", len(plain), recoveryPath, Bucket)
	conflicts := 0
	for ref, v := range plain {
		wrapped, err := cfg.KEKs.wrap(ref, v)
		if err != nil {
			return 0, err
		}
		_, err = ks.kv.Create(ctx, ref, wrapped)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			if err != nil {
				return 0, fmt.Errorf("pii: migrate: store a data key: %w", err)
			}
			continue
		}
		// Stored by an interrupted run (then it is the same key), or made
		// by an intake started too early (then data sealed under the old
		// key would no longer open: stop and say so).
		e, err := ks.kv.Get(ctx, ref)
		if err != nil {
			return 0, fmt.Errorf("pii: migrate: read back a data key: %w", err)
		}
		if got, err := cfg.KEKs.unwrap(ref, e.Value()); err != nil || !bytes.Equal(got, v) {
			conflicts++
		}
	}
	if conflicts > 0 {
		return 0, fmt.Errorf("pii: migrate: %d customers already have another data key in the new %s bucket (was intake running?); %s is kept: stop intake and ask for help before removing it", conflicts, Bucket, recoveryPath)
	}
	if err := os.Remove(recoveryPath); err != nil {
		return 0, fmt.Errorf("pii: migrate: every key is stored; remove %s: %w", recoveryPath, err)
	}
	say("done: %d data keys wrapped in %s; removed %s", len(plain), Bucket, recoveryPath)
	return len(plain), nil
}

// readRecovery reads the recovery file and unwraps its keys (which checks
// that the KEKs given are the ones it was written with).
func readRecovery(path string, keks *Keyring) (map[string][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("pii: migrate: recovery file: %w", err)
	}
	var rec recoveryFile
	if err := json.Unmarshal(b, &rec); err != nil || rec.Bucket != Bucket || rec.Keys == nil {
		return nil, fmt.Errorf("pii: migrate: recovery file %s: not a %s recovery file", path, Bucket)
	}
	plain := make(map[string][]byte, len(rec.Keys))
	for ref, w := range rec.Keys {
		if !validRef(ref) {
			return nil, fmt.Errorf("pii: migrate: recovery file %s: %w: customer_ref: malformed", path, ErrInvalid)
		}
		v, err := keks.unwrap(ref, w)
		if err != nil {
			return nil, fmt.Errorf("pii: migrate: recovery file %s: %w", path, err)
		}
		plain[ref] = v
	}
	return plain, nil
}

// writeFileSynced writes v as JSON to path (0600), atomically and synced.
func writeFileSynced(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

func sayer(progress func(string)) func(string, ...any) {
	return func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
}
