package esdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// ErrClosed is returned by a Conn's operations after Close.
var ErrClosed = errors.New("esdb: connection closed")

// Conn is a KurrentDB client that survives the client library giving up.
//
// The v4 client closes itself for good when it cannot (re)discover a node
// within maxDiscoverAttempts (default 10, 100 ms apart): every later call
// fails with ErrorCodeConnectionClosed. A KurrentDB restart of a couple of
// seconds, or a service starting before its database, would leave the
// service with a dead client. Conn replaces such a client with a new one on
// the next call.
type Conn struct {
	conf kurrent.Configuration

	mu     sync.Mutex
	db     *kurrent.Client
	closed bool
}

// Dial prepares a connection to a KurrentDB connection string such as
// "esdb://localhost:2113?tls=false" (see the README); the client connects
// on first use. Its log lines go to logger (discarded when nil). Errors
// never repeat the string: it may hold a password.
func Dial(connectionString string, logger *slog.Logger) (*Conn, error) {
	conf, err := ParseURL(connectionString)
	if err != nil {
		return nil, err
	}
	conf.Logger = clientLogger(logger)
	c := &Conn{conf: *conf}
	if _, err := c.client(); err != nil {
		return nil, err
	}
	return c, nil
}

// ParseURL parses a KurrentDB connection string with the client's own
// parser, keeping the string (which may hold a password) out of the error.
func ParseURL(connectionString string) (*kurrent.Configuration, error) {
	if connectionString == "" {
		return nil, fmt.Errorf("esdb: connection string: required (e.g. esdb://localhost:2113?tls=false)")
	}
	conf, err := kurrent.ParseConnectionString(connectionString)
	if err != nil {
		if ue, ok := err.(*url.Error); ok { // url.Error repeats the whole URL
			err = ue.Err
		}
		return nil, fmt.Errorf("esdb: connection string: not valid (want esdb://host:port?tls=false or esdb+discover://…): %w", err)
	}
	return conf, nil
}

// client returns the current client, making a new one when the last one
// was given up.
func (c *Conn) client() (*kurrent.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.db == nil {
		conf := c.conf // NewClient keeps the pointer: each client its own copy
		db, err := kurrent.NewClient(&conf)
		if err != nil {
			return nil, fmt.Errorf("esdb: client: %w", err)
		}
		c.db = db
	}
	return c.db, nil
}

// check looks at an error db returned: when the library closed db for
// good, the next call gets a new client.
func (c *Conn) check(db *kurrent.Client, err error) {
	if !hasCode(err, kurrent.ErrorCodeConnectionClosed) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.db == db && !c.closed {
		_ = db.Close()
		c.db = nil
	}
}

// Close closes the connection; calls made after it fail with ErrClosed.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.db != nil {
		_ = c.db.Close()
		c.db = nil
	}
	return nil
}

// SubscribeToAll opens a catch-up subscription to $all on the current
// client (for the relay; the store has its own Follow).
func (c *Conn) SubscribeToAll(ctx context.Context, opts kurrent.SubscribeToAllOptions) (*kurrent.Subscription, error) {
	db, err := c.client()
	if err != nil {
		return nil, err
	}
	sub, err := db.SubscribeToAll(ctx, opts)
	c.check(db, err)
	return sub, err
}
