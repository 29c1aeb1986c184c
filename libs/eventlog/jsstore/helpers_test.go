package jsstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// startServer starts an embedded server (syncing every write, like
// production) and returns a JetStream client on it; both stop at cleanup.
func startServer(t testing.TB, o natsembed.Options) (*natsembed.Server, jetstream.JetStream) {
	t.Helper()
	srv, err := natsembed.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, connect(t, srv)
}

func connect(t testing.TB, srv *natsembed.Server) jetstream.JetStream {
	t.Helper()
	nc, err := srv.Connect(t.Name(), true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func newStore(t testing.TB, js jetstream.JetStream, cfg jsstore.Config) *jsstore.Store {
	t.Helper()
	s, err := jsstore.New(testContext(t), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newComplaint() (eventlog.StreamID, string) {
	id := uuid.NewString()
	return eventlog.ComplaintStream(id), id
}

func response(t testing.TB, complaintID, summary string) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{
		ComplaintID: complaintID,
		Producer:    "jsstore-test",
		Actor:       "system",
		OccurredAt:  time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC),
	}, &eventsv1.ResponseRecorded{Summary: summary, RespondedBy: "agent-7"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// appendN appends n events to stream one at a time and returns the records.
func appendN(t testing.TB, s eventlog.Store, stream eventlog.StreamID, n int) []eventlog.Record {
	t.Helper()
	ctx := testContext(t)
	for i := range n {
		if _, err := s.Append(ctx, stream, uint64(i), response(t, stream.ID(), "step")); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := s.ReadStream(ctx, stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != n {
		t.Fatalf("stream has %d events, want %d", len(recs), n)
	}
	return recs
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
