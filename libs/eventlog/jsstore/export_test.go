package jsstore

import (
	"context"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// SetReadBatches shrinks the batches of reads (see fastBatch, directBatch,
// pullBatch, followBatch) for the duration of the test t.
func SetReadBatches(t testing.TB, fast, direct, pull, follow int) {
	old := [4]int{fastBatch, directBatch, pullBatch, followBatch}
	fastBatch, directBatch, pullBatch, followBatch = fast, direct, pull, follow
	t.Cleanup(func() { fastBatch, directBatch, pullBatch, followBatch = old[0], old[1], old[2], old[3] })
}

// WalkBack is (*Store).walkBack: whether a tail is read back from the
// stream's end, event by event, rather than as a range.
func WalkBack(s *Store, ctx context.Context, stream eventlog.StreamID, fromVersion, afterPosition uint64) ([]eventlog.Record, bool, error) {
	return s.walkBack(ctx, stream, fromVersion, afterPosition)
}
