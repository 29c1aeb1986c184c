package chaos

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
)

func TestZZDump(t *testing.T) {
	dir := os.Getenv("DUMP_DIR")
	if dir == "" {
		t.Skip()
	}
	s, err := natsembed.Start(natsembed.Options{StoreDir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, _ := s.Connect("dump", true)
	js, _ := jetstream.New(nc)
	st, err := jsstore.New(context.Background(), js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	recs, _ := st.ReadStream(context.Background(), eventlog.StreamID(os.Getenv("DUMP_STREAM")), 1)
	for _, r := range recs {
		fmt.Println(r.Position, r.Event.GetVersion(), eventlog.TypeOf(r.Event), r.Event.GetProducer(), r.Event.GetRecordedAt().AsTime())
	}
}
