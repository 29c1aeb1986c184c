package relay

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/esdb/internal/fakekurrent"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// TestKurrentSourceOnTheStandIn runs the KurrentDB adapter through the real
// client against the in-process stand-in (see fakekurrent).
func TestKurrentSourceOnTheStandIn(t *testing.T) {
	srv, err := fakekurrent.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	relayFromKurrentDB(t, srv.URL(), func() {
		// Another application's stream and a closeloop-looking stream of
		// another namespace: neither is relayed.
		srv.Write("orders-2", "OrderShipped", []byte(`{}`))
		srv.Write("other:complaint-x", "ComplaintAccepted", []byte("not ours"))
	})
}

// TestKurrentSourceLive does the same against a live KurrentDB.
func TestKurrentSourceLive(t *testing.T) {
	url := os.Getenv("EVENTSTORE_URL")
	if url == "" {
		t.Skip(`EVENTSTORE_URL is not set, so there is no KurrentDB to run against. Start one and point the tests at it:
    docker run --rm -d --name kurrentdb -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:25.0 --insecure --mem-db
    EVENTSTORE_URL='esdb://localhost:2113?tls=false' go test ./libs/esdb/...`)
	}
	relayFromKurrentDB(t, url, func() {})
}

// relayFromKurrentDB appends events through the KurrentDB event log, relays
// them, stops the relay, appends more, starts a new relay and checks that
// JetStream holds every event once, in log order, byte for byte.
func relayFromKurrentDB(t *testing.T, url string, noise func()) {
	ctx := context.Background()
	db, err := esdb.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ns := esdb.Namespace("relay-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12])
	log, err := esdb.New(db, esdb.Config{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	_, js := startNATS(t, t.TempDir())

	ids := []string{uuid.NewString(), uuid.NewString()}
	versions := map[string]uint64{}
	appendSome := func(n int) {
		for i := range n {
			id := ids[i%len(ids)]
			a, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "intake", OccurredAt: committed}, &eventsv1.ComplaintAccepted{AcceptedBy: "system"})
			if err != nil {
				t.Fatal(err)
			}
			b, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "routing", OccurredAt: committed}, &eventsv1.ResponseRecorded{Summary: fmt.Sprint(i)})
			if err != nil {
				t.Fatal(err)
			}
			res, err := log.Append(ctx, eventlog.ComplaintStream(id), versions[id], a, b)
			if err != nil {
				t.Fatal(err)
			}
			versions[id] = res.Version
		}
	}

	appendSome(3)
	noise()
	run := func(wantMsgs int) {
		r, err := New(KurrentSource{Conn: db, Namespace: ns}, newSink(t, js), Options{Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		stop := runInBackground(t, r)
		waitRelayed(t, js, wantMsgs)
		if err := stop(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel = %v, want context.Canceled", err)
		}
	}
	run(6)
	appendSome(2)
	noise()
	run(10)

	want, err := log.ReadAll(ctx, 1, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := relayed(t, js)
	if len(got) != len(want) || len(want) != 10 {
		t.Fatalf("EVENTS holds %d messages, the log %d events; want 10 each", len(got), len(want))
	}
	for i, m := range got {
		w := want[i]
		stream := eventlog.StreamID(w.Event.GetStreamId())
		if string(m.rec.Raw) != string(w.Raw) || m.subject != jsstore.Subject(stream) {
			t.Errorf("message %d: %s %s, want event %s at %s byte for byte", i+1, m.subject, m.rec.Event.GetEventId(), w.Event.GetEventId(), jsstore.Subject(stream))
		}
		if m.header.Get(jetstream.MsgIDHeader) != w.Event.GetEventId() {
			t.Errorf("message %d: Nats-Msg-Id %q, want %s", i+1, m.header.Get(jetstream.MsgIDHeader), w.Event.GetEventId())
		}
		p, err := ParsePosition(m.header.Get(PositionHeader))
		if err != nil || esdb.PositionOf(kurrentPosition(p)) != w.Position {
			t.Errorf("message %d: position header %q (%v), want prepare position %d", i+1, m.header.Get(PositionHeader), err, w.Position)
		}
	}
	for _, id := range ids {
		stream := eventlog.ComplaintStream(id)
		var recs []eventlog.Record
		for _, m := range got {
			if m.rec.Event.GetStreamId() == string(stream) {
				recs = append(recs, m.rec)
			}
		}
		if broken := eventlog.VerifyChain(stream, recs); broken != nil {
			t.Errorf("relayed copy: %v", broken)
		}
	}
}

func TestKurrentSourceStopsWhenTheServerGoes(t *testing.T) {
	srv, err := fakekurrent.Start()
	if err != nil {
		t.Fatal(err)
	}
	db, err := esdb.Dial(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	done := make(chan error, 1)
	go func() {
		done <- KurrentSource{Conn: db}.Subscribe(context.Background(), nil, func(Event) error { return nil })
	}()
	checkFor(t, 10*time.Second, func() error {
		if srv.Subscriptions() != 1 {
			return errors.New("the source never subscribed")
		}
		return nil
	})
	srv.Stop()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Subscribe returned nil when the server went away")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Subscribe did not return after the server stopped")
	}
}
