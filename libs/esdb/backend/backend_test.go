package backend

import (
	"context"
	"github.com/closeloop/closeloop/libs/platform"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/esdb"
	"github.com/closeloop/closeloop/libs/esdb/internal/fakekurrent"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func env(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestParseChoosesTheBackend(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want Config
	}{
		{"nothing set: jetstream", map[string]string{}, Config{Backend: JetStream}},
		{"empty values as docker compose passes them", map[string]string{EnvBackend: "", EnvURL: ""}, Config{Backend: JetStream}},
		{"jetstream", map[string]string{EnvBackend: "jetstream"}, Config{Backend: JetStream}},
		{"eventstoredb, any case", map[string]string{EnvBackend: " EventStoreDB ", EnvURL: "esdb://kurrentdb:2113?tls=false"},
			Config{Backend: EventStoreDB, EventStoreURL: "esdb://kurrentdb:2113?tls=false"}},
		{"a cluster", map[string]string{EnvBackend: "eventstoredb", EnvURL: "esdb+discover://admin:changeit@cluster.local:2113"},
			Config{Backend: EventStoreDB, EventStoreURL: "esdb+discover://admin:changeit@cluster.local:2113"}},
	}
	for _, tt := range tests {
		got, err := Parse(env(tt.env))
		if err != nil || got != tt.want {
			t.Errorf("%s: Parse = %+v, %v; want %+v", tt.name, got, err, tt.want)
		}
	}
}

func TestParseRefusesBadSettingsNamingTheVariable(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
		rule     string
	}{
		{"unknown backend", map[string]string{EnvBackend: "kafka"}, EnvBackend, "is not a backend"},
		{"no url for eventstoredb", map[string]string{EnvBackend: "eventstoredb"}, EnvURL, "required when EVENTLOG_BACKEND=eventstoredb"},
		{"url not esdb", map[string]string{EnvBackend: "eventstoredb", EnvURL: "https://admin:s3cret@kurrentdb:2113"}, EnvURL, "not valid"},
		{"url with a path", map[string]string{EnvBackend: "eventstoredb", EnvURL: "esdb://admin:s3cret@kurrentdb:2113/db"}, EnvURL, "not valid"},
		{"url but jetstream", map[string]string{EnvURL: "esdb://admin:s3cret@kurrentdb:2113"}, EnvURL, "EVENTLOG_BACKEND is jetstream"},
	}
	for _, tt := range tests {
		_, err := Parse(env(tt.env))
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, tt.variable+": ") || !strings.Contains(msg, tt.rule) {
			t.Errorf("%s: error %q, want it to start with %s and say %q", tt.name, msg, tt.variable, tt.rule)
		}
		if strings.Contains(msg, "s3cret") {
			t.Errorf("%s: error repeats the password: %q", tt.name, msg)
		}
	}
}

func TestOpenEventStoreDBGivesAWorkingLog(t *testing.T) {
	srv, err := fakekurrent.Start() // the stand-in for KurrentDB's gRPC API
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	ctx := context.Background()
	cfg, err := Parse(env(map[string]string{EnvBackend: "eventstoredb", EnvURL: srv.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	log, closeFn, err := Open(ctx, cfg, nil, jsstore.Config{}, esdb.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeFn() }()
	if _, ok := log.(*esdb.Store); !ok {
		t.Fatalf("Open(eventstoredb) = %T, want *esdb.Store", log)
	}
	id := uuid.NewString()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id}, &eventsv1.ComplaintAccepted{AcceptedBy: "system"})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := log.Append(ctx, eventlog.ComplaintStream(id), 0, e); err != nil || res.Version != 1 {
		t.Fatalf("Append = %+v, %v; want version 1", res, err)
	}
	if recs, err := log.ReadStream(ctx, eventlog.ComplaintStream(id), 1); err != nil || len(recs) != 1 {
		t.Fatalf("ReadStream = %d records, %v; want 1", len(recs), err)
	}
}

func TestOpenJetStreamGivesAWorkingLog(t *testing.T) {
	s, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown()
	nc, err := s.Connect("backend-test", true)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	log, closeFn, err := Open(ctx, Config{Backend: JetStream}, js, jsstore.Config{}, esdb.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeFn() }()
	if _, ok := log.(*jsstore.Store); !ok {
		t.Fatalf("Open(jetstream) = %T, want *jsstore.Store", log)
	}
	recs, err := log.ReadAll(ctx, 1, 10)
	if err != nil || len(recs) != 0 {
		t.Fatalf("ReadAll on a new log = %d records, %v; want none", len(recs), err)
	}
	if _, _, err := Open(ctx, Config{Backend: "kafka"}, js, jsstore.Config{}, esdb.Config{}, nil); err == nil || !strings.Contains(err.Error(), EnvBackend) {
		t.Fatalf("Open(kafka) = %v, want the configuration error", err)
	}
	var _ eventlog.Store = log
}

// The service binaries hand Opener to platform.Connect.
var _ platform.StoreOpener = Opener
