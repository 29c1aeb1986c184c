package chaos

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestDump(t *testing.T) {
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
	ctx := context.Background()
	st, err := jsstore.New(ctx, js, jsstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	perStream := map[string]map[string]int{}
	holds := map[string]string{}
	var from uint64 = 1
	for {
		recs, err := st.ReadAll(ctx, from, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			from = r.Position + 1
			ty := eventlog.TypeOf(r.Event)
			switch p := eventlog.Payload(r.Event).(type) {
			case *eventsv1.TechnicianJobBooked:
				holds[p.GetWorkOrderId()] = p.GetComplaintId()
			case *eventsv1.TechnicianJobReleased:
				delete(holds, p.GetWorkOrderId())
			}
			types[ty]++
			if ty == "WorkOrderUnassignable" && types[ty] < 4 {
				fmt.Println(r.Event.GetRecordedAt().AsTime(), eventlog.Payload(r.Event))
			}
			id := r.Event.GetStreamId()
			if perStream[id] == nil {
				perStream[id] = map[string]int{}
			}
			perStream[id][ty]++
		}
	}
	_ = holds
	var ks []string
	for k := range types {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return types[ks[i]] > types[ks[j]] })
	for _, k := range ks {
		fmt.Println(k, types[k])
	}
	id := os.Getenv("DUMP_STREAM")
	for _, c := range holds {
		fmt.Println("held by complaint", c)
		if id == "" {
			id = "complaint-" + c
		}
	}
	if id != "" {
		recs, _ := st.ReadStream(ctx, eventlog.StreamID(id), 1)
		for _, r := range recs {
			fmt.Println(r.Event.GetVersion(), eventlog.TypeOf(r.Event), r.Event.GetRecordedAt().AsTime(), eventlog.Payload(r.Event))
		}
	}
	n := 0
	for id, m := range perStream {
		if n < 3 && m["ComplaintReceived"] > 0 {
			fmt.Println(id, m)
			n++
		}
	}
}
