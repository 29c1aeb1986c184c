package jsstore

import "testing"

// SetReadBatches shrinks the batches of reads (see directBatch, pullBatch,
// followBatch) for the duration of the test t.
func SetReadBatches(t testing.TB, direct, pull, follow int) {
	old := [3]int{directBatch, pullBatch, followBatch}
	directBatch, pullBatch, followBatch = direct, pull, follow
	t.Cleanup(func() { directBatch, pullBatch, followBatch = old[0], old[1], old[2] })
}
