// Package faulty wraps an eventlog.Store with the faults real logs show, for
// tests of the services' handlers.
package faulty

import (
	"context"
	"sync/atomic"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// ShortRead answers its first non-empty ReadStream with the last event left
// out, as a replica behind its leader may (direct gets are served by any
// replica); every later read passes through.
type ShortRead struct {
	eventlog.Store
	done atomic.Bool
}

// ReadStream implements eventlog.Store.
func (s *ShortRead) ReadStream(ctx context.Context, stream eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	recs, err := s.Store.ReadStream(ctx, stream, from)
	if err == nil && len(recs) > 0 && s.done.CompareAndSwap(false, true) {
		recs = recs[:len(recs)-1]
	}
	return recs, err
}

// Done reports whether the short read has been given.
func (s *ShortRead) Done() bool { return s.done.Load() }
