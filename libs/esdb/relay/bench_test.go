package relay

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRelayToJetStream measures the relay's core and JetStream sink:
// one synchronous publish per event (expected last sequence, message id,
// position header) to an embedded server without fsync.
func BenchmarkRelayToJetStream(b *testing.B) {
	events := someEvents(b, 64)
	_, js := startNATS(b, b.TempDir())
	sink := newSink(b, js)
	ctx := context.Background()
	if _, _, err := sink.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := events[i%len(events)]
		ev.EventID = fmt.Sprintf("bench-%d", i) // a new id each time
		ev.Position = Position{Commit: uint64(i + 1), Prepare: uint64(i + 1)}
		if err := sink.Publish(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
