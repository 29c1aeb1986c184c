// Package natsembed runs a NATS server with JetStream inside the current
// process: the default for `make run` and for every test that needs a real
// server (never a mock).
package natsembed

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Options configure an embedded server. The zero value is a loopback server
// on a random port, storing in a fresh temporary directory, syncing every
// write to disk before acknowledging it.
type Options struct {
	// StoreDir keeps JetStream data; empty means a new temporary directory
	// (removed by Shutdown).
	StoreDir string
	// Host and Port to listen on; Port 0 picks a free port.
	Host string
	Port int
	// NoSync trades durability for speed: the store syncs every two minutes
	// instead of on every write. Acknowledged appends may then be lost on a
	// power cut (not on a process crash: the OS still holds the data).
	NoSync bool
	// ServerName names the node (defaults to "closeloop").
	ServerName string
	// Accounts, when set, is NATS configuration text declaring the
	// accounts, users and permissions (deploy/nats/accounts.conf): the
	// server then takes only those users. Empty means an open server,
	// anyone connecting to the default account.
	Accounts string
	// Variables give the values of the $NAME references in Accounts (the
	// passwords), ahead of the environment.
	Variables map[string]string
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	tempDir string
}

// Start starts the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	s := &Server{}
	dir := o.StoreDir
	if dir == "" {
		d, err := os.MkdirTemp("", "closeloop-nats-*")
		if err != nil {
			return nil, fmt.Errorf("natsembed: temp store dir: %w", err)
		}
		dir, s.tempDir = d, d
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	name := o.ServerName
	if name == "" {
		name = "closeloop"
	}
	opts := &server.Options{}
	if o.Accounts != "" {
		if err := opts.ProcessConfigString(withVariables(o.Accounts, o.Variables)); err != nil {
			s.cleanup()
			return nil, fmt.Errorf("natsembed: accounts: %w", err)
		}
	}
	opts.ServerName = name
	opts.Host, opts.Port = host, port
	opts.JetStream, opts.StoreDir = true, dir
	opts.NoSigs = true
	// Accepted means durable: fsync before the publish ack.
	opts.SyncAlways = !o.NoSync
	// Room for the largest event plus headers.
	opts.MaxPayload = 2 << 20
	ns, err := startServer(opts)
	if err != nil {
		s.cleanup()
		return nil, err
	}
	s.Server = ns
	return s, nil
}

// withVariables puts a definition of each variable ahead of conf: the
// parser resolves $NAME from the file before the environment.
func withVariables(conf string, vars map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		fmt.Fprintf(&b, "%s: %s\n", k, strconv.Quote(vars[k]))
	}
	return b.String() + conf
}

// startServer starts a server with opts and waits until it accepts
// connections.
func startServer(opts *server.Options) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsembed: new server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsembed: server not ready after 30s")
	}
	return ns, nil
}

// Connect opens a client connection to the server. In-process connections
// skip the TCP stack; pass inProcess=false to test what a remote client sees.
func (s *Server) Connect(name string, inProcess bool, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, extra...)
	if inProcess {
		opts = append(opts, nats.InProcessServer(s.Server))
	}
	return nats.Connect(s.ClientURL(), opts...)
}

// Shutdown stops the server, waits for it, and removes a temporary store.
func (s *Server) Shutdown() {
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tempDir != "" {
		_ = os.RemoveAll(s.tempDir)
	}
}
