// Package checkpoint keeps a service's in-memory views of the event log
// start-able in seconds, however old the log: a view is saved (a snapshot)
// with the log position it reflects, and at start it is restored and caught
// up from there instead of replayed from the first event.
//
// A snapshot is a cache, never the truth. One that is missing, damaged, of
// another format, or taken from another log (the event at its position is not
// the one it names) is refused: the view is rebuilt from the log, the reason
// is logged, and the service still starts.
package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrNoSnapshot is returned by Store.Load when nothing was saved under a name.
var ErrNoSnapshot = errors.New("checkpoint: no snapshot")

// ErrDamaged is returned (wrapped, with what is wrong) by Decode and
// Store.Load for stored bytes that are not a whole snapshot.
var ErrDamaged = errors.New("checkpoint: snapshot damaged")

// Snapshot is a view's state as of one log position.
type Snapshot struct {
	// Format is the view's own encoding version: a view refuses a snapshot
	// of a format it does not read, and is rebuilt.
	Format uint32
	// Position is the log position of the last event the state reflects.
	Position uint64
	// Hash is the SHA-256 of the stored bytes of the event at Position
	// (eventlog.Hash): it ties the snapshot to this log.
	Hash []byte
	// Data is the view's encoded state.
	Data []byte
}

// Store keeps the last snapshot of each named view. Implementations are
// safe for concurrent use.
type Store interface {
	// Save replaces the snapshot kept under name. A crash during Save
	// leaves the previous one.
	Save(ctx context.Context, name string, s Snapshot) error
	// Load returns the snapshot kept under name: ErrNoSnapshot when there is
	// none, an error wrapping ErrDamaged when its bytes are not a snapshot.
	Load(ctx context.Context, name string) (Snapshot, error)
}

// The stored layout: magic, layout version, the view's format, position,
// the event's hash, the SHA-256 of the data, then the data.
var magic = [4]byte{'C', 'L', 'S', 'N'}

const (
	layoutVersion = 1
	headerSize    = 4 + 4 + 4 + 8 + sha256.Size + sha256.Size
)

// Encode lays a snapshot out for storage.
func Encode(s Snapshot) ([]byte, error) {
	if len(s.Hash) != sha256.Size {
		return nil, fmt.Errorf("checkpoint: hash: %d bytes, want %d (eventlog.Hash of the event at the position)", len(s.Hash), sha256.Size)
	}
	if s.Position == 0 {
		return nil, errors.New("checkpoint: position: must be positive (a snapshot reflects at least one event)")
	}
	out := make([]byte, headerSize, headerSize+len(s.Data))
	copy(out, magic[:])
	binary.BigEndian.PutUint32(out[4:], layoutVersion)
	binary.BigEndian.PutUint32(out[8:], s.Format)
	binary.BigEndian.PutUint64(out[12:], s.Position)
	copy(out[20:], s.Hash)
	sum := sha256.Sum256(s.Data)
	copy(out[20+sha256.Size:], sum[:])
	return append(out, s.Data...), nil
}

// Decode reads what Encode laid out; any damage is an error wrapping
// ErrDamaged.
func Decode(b []byte) (Snapshot, error) {
	if len(b) < headerSize {
		return Snapshot{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrDamaged, len(b), headerSize)
	}
	if !bytes.Equal(b[:4], magic[:]) {
		return Snapshot{}, fmt.Errorf("%w: not a snapshot (bad magic)", ErrDamaged)
	}
	if v := binary.BigEndian.Uint32(b[4:]); v != layoutVersion {
		return Snapshot{}, fmt.Errorf("%w: layout version %d, this build reads %d", ErrDamaged, v, layoutVersion)
	}
	s := Snapshot{
		Format:   binary.BigEndian.Uint32(b[8:]),
		Position: binary.BigEndian.Uint64(b[12:]),
		Hash:     bytes.Clone(b[20 : 20+sha256.Size]),
		Data:     b[headerSize:],
	}
	sum := sha256.Sum256(s.Data)
	if !bytes.Equal(sum[:], b[20+sha256.Size:headerSize]) {
		return Snapshot{}, fmt.Errorf("%w: data checksum does not match", ErrDamaged)
	}
	if s.Position == 0 {
		return Snapshot{}, fmt.Errorf("%w: position 0", ErrDamaged)
	}
	return s, nil
}
