package eventlog

import (
	"context"
	"errors"
)

// ErrLogGone is returned by a HeadReader whose log no longer exists (the
// EVENTS stream was deleted): not an empty log.
var ErrLogGone = errors.New("eventlog: the log is gone")

// Head is where the whole log ends, as an anchor records it.
type Head struct {
	// Position of the last message stored (0: none).
	Position uint64
	// Hash is the SHA-256 of the bytes stored at Position (nil for none).
	Hash []byte
	// Messages is how many messages the log holds.
	Messages uint64
}

// HeadReader is implemented by a store whose head can be anchored outside
// it (libs/eventlog/anchor): where the log ends, and what is stored at a
// position, events or not.
type HeadReader interface {
	// Head returns where the log ends; ErrLogGone when it does not exist.
	Head(ctx context.Context) (Head, error)
	// StoredAt returns the bytes stored at position: ErrNotFound when
	// nothing is (never stored, or no longer readable), ErrLogGone when the
	// log does not exist.
	StoredAt(ctx context.Context, position uint64) ([]byte, error)
}
