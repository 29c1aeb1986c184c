package esdb_test

import (
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/esdb/internal/fakekurrent"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/conformance"
)

// howToRunLive is the message of the tests that need a KurrentDB server.
const howToRunLive = `EVENTSTORE_URL is not set, so there is no KurrentDB to run against. Start one and point the tests at it:
    docker run --rm -d --name kurrentdb -p 2113:2113 docker.kurrent.io/kurrent-latest/kurrentdb:25.0 --insecure --mem-db
    EVENTSTORE_URL='esdb://localhost:2113?tls=false' go test ./libs/esdb/...`

// storeOn returns a factory of stores on the KurrentDB at url, each in a
// namespace of its own (so each test sees an empty log on a shared server).
func storeOn(t *testing.T, url string) func(t *testing.T) eventlog.Store {
	conn, err := esdb.Dial(url, nil)
	if err != nil {
		t.Fatalf("EVENTSTORE_URL: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return func(t *testing.T) eventlog.Store {
		ns := esdb.Namespace("conformance-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12])
		s, err := esdb.New(conn, esdb.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
}

// TestConformance runs the suite every eventlog backend passes against a
// live KurrentDB.
func TestConformance(t *testing.T) {
	if os.Getenv("EVENTSTORE_URL") == "" {
		t.Skip(howToRunLive)
	}
	conformance.Run(t, storeOn(t, os.Getenv("EVENTSTORE_URL")), conformance.AtomicBatches())
}

// TestConformanceOnTheStandIn runs the same suite through the real client
// against an in-process stand-in for KurrentDB's gRPC API (see
// fakekurrent): it checks the client plumbing (requests, error mapping,
// positions) on machines without a server. It is no substitute for
// TestConformance against a live server.
func TestConformanceOnTheStandIn(t *testing.T) {
	srv, err := fakekurrent.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	conformance.Run(t, storeOn(t, srv.URL()), conformance.AtomicBatches())
}
