package esdb_test

import (
	"context"
	"errors"
	"testing"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/esdb/internal/fakekurrent"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The client library closes itself for good once it fails to discover its
// node (here: a service that starts before its database); the store must
// work once the server is there.
func TestStoreComesBackAfterTheClientGaveUp(t *testing.T) {
	srv, err := fakekurrent.Start()
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr()
	srv.Stop() // nothing listens at addr now
	conn, err := esdb.Dial("esdb://"+addr+"?tls=false&maxDiscoverAttempts=1&discoveryInterval=10", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	store, err := esdb.New(conn, esdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	appendOne := func() error {
		id := uuid.NewString()
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id}, &eventsv1.ComplaintAccepted{AcceptedBy: "system"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = store.Append(ctx, eventlog.ComplaintStream(id), 0, e)
		return err
	}
	if err := appendOne(); err == nil {
		t.Fatal("append succeeded with no server")
	}
	// The client has now given up: it says so once, and the store then
	// replaces it.
	var ce *kurrent.Error
	if err := appendOne(); !errors.As(err, &ce) || ce.Code() != kurrent.ErrorCodeConnectionClosed {
		t.Fatalf("second append = %v, want the client's ErrorCodeConnectionClosed", err)
	}

	srv, err = fakekurrent.StartOn(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := appendOne(); err != nil {
		t.Fatalf("append once the server is there: %v", err)
	}
}

func TestClosedConnRefusesCalls(t *testing.T) {
	srv, err := fakekurrent.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	conn, err := esdb.Dial(srv.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := esdb.New(conn, esdb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.Close()
	if _, err := store.ReadStream(context.Background(), eventlog.ComplaintStream("x"), 1); !errors.Is(err, esdb.ErrClosed) {
		t.Fatalf("ReadStream after Close = %v, want ErrClosed", err)
	}
}
