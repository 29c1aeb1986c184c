// Package natstest gives a test a real NATS JetStream server in its own
// process (natsembed), and connections to it, each closed when the test
// ends: the one setup every package's tests share.
package natstest

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/natsembed"
)

// Start starts a server with o, shut down when tb ends.
func Start(tb testing.TB, o natsembed.Options) *natsembed.Server {
	tb.Helper()
	srv, err := natsembed.Start(o)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Shutdown)
	return srv
}

// Connect opens an in-process connection to srv named after the test (with
// extra options: credentials on a closed server), closed when tb ends, and
// its JetStream context.
func Connect(tb testing.TB, srv *natsembed.Server, extra ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := srv.Connect(tb.Name(), true, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return nc, js
}

// JetStream starts an open server that does not sync to disk (a test's
// data need not survive a power cut) and connects to it.
func JetStream(tb testing.TB) (*natsembed.Server, jetstream.JetStream) {
	tb.Helper()
	srv := Start(tb, natsembed.Options{NoSync: true})
	_, js := Connect(tb, srv)
	return srv, js
}
