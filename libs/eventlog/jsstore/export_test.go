package jsstore

import "testing"

// SetReadBatches shrinks the batches of reads (see fastBatch, directBatch,
// pullBatch, followBatch) for the duration of the test t.
func SetReadBatches(t testing.TB, fast, direct, pull, follow int) {
	old := [4]int{fastBatch, directBatch, pullBatch, followBatch}
	fastBatch, directBatch, pullBatch, followBatch = fast, direct, pull, follow
	t.Cleanup(func() { fastBatch, directBatch, pullBatch, followBatch = old[0], old[1], old[2], old[3] })
}
