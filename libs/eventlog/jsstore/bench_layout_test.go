package jsstore_test

import (
	"github.com/nats-io/nats.go"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

// layoutMsg is a message of an event of stream as this build stores it.
func layoutMsg(stream eventlog.StreamID, eventType string) *nats.Msg {
	m := nats.NewMsg(jsstore.Subject(stream))
	m.Header.Set(jsstore.EventTypeHeader, eventType)
	return m
}
