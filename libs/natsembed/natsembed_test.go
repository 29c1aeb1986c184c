package natsembed

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

func TestStartServesJetStreamAndCleansUp(t *testing.T) {
	s, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	for _, inProc := range []bool{true, false} {
		nc, err := s.Connect("test", inProc)
		if err != nil {
			t.Fatal(err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info, err := js.AccountInfo(ctx)
		cancel()
		if err != nil {
			t.Fatalf("in-process=%v: JetStream not enabled: %v", inProc, err)
		}
		if info.Tier.Streams != 0 {
			t.Fatalf("fresh server has %d streams", info.Tier.Streams)
		}
		nc.Close()
	}
}
