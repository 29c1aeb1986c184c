package main

import (
	"strings"
	"testing"
)

func lookup(kv map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
}

func TestConfigDefaults(t *testing.T) {
	c, err := configFrom(lookup(map[string]string{"EVENTSTORE_URL": "esdb://kurrentdb:2113?tls=false", "EVENTLOG_BACKEND": "jetstream"}))
	if err != nil {
		t.Fatal(err)
	}
	want := config{EventStoreURL: "esdb://kurrentdb:2113?tls=false", NATSURL: "nats://127.0.0.1:4222", Replicas: 1, MetricsAddr: ":9464"}
	if c != want {
		t.Fatalf("config = %+v, want %+v", c, want)
	}
}

func TestConfigRefusesBadSettingsNamingTheVariable(t *testing.T) {
	for _, tt := range []struct {
		env      map[string]string
		variable string
	}{
		{map[string]string{}, "EVENTSTORE_URL"},
		{map[string]string{"EVENTSTORE_URL": "tcp://admin:s3cret@kurrentdb"}, "EVENTSTORE_URL"},
		{map[string]string{"EVENTSTORE_URL": "esdb://kurrentdb:2113", "EVENTLOG_REPLICAS": "7"}, "EVENTLOG_REPLICAS"},
		{map[string]string{"EVENTSTORE_URL": "esdb://kurrentdb:2113", "EVENTLOG_REPLICAS": "three"}, "EVENTLOG_REPLICAS"},
	} {
		_, err := configFrom(lookup(tt.env))
		if err == nil || !strings.HasPrefix(err.Error(), tt.variable+": ") {
			t.Errorf("configFrom(%v) = %v, want an error naming %s", tt.env, err, tt.variable)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error repeats the password: %v", err)
		}
	}
}
