package natsembed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ClusterOptions configure an embedded cluster. The zero value is a loopback
// cluster on random ports, each node storing in its own temporary directory
// and syncing every write.
type ClusterOptions struct {
	// Name of the cluster (default "closeloop").
	Name string
	// NoSync as in Options: a cluster gets its durability from replication.
	NoSync bool
}

// Cluster is a JetStream cluster of servers in this process, on loopback,
// for fault tests: find a stream's leader, kill a node, restart it on its
// store.
type Cluster struct {
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	opts *server.Options // a copy starts the node (the server changes its own)
	srv  *Server         // nil while the node is down
	dir  string
}

// StartCluster starts n servers (at least 3 for JetStream to tolerate the
// loss of one) routed to each other and waits until JetStream has elected
// its meta leader. Ports are picked free below the ephemeral range, so that
// no outgoing connection can take a node's port while it is down, and a
// restarted node comes back where its peers and clients expect it.
func StartCluster(n int, o ClusterOptions) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("natsembed: cluster size %d: must be at least 1", n)
	}
	name := o.Name
	if name == "" {
		name = "closeloop"
	}
	c := &Cluster{}
	ports, err := freePorts(2 * n)
	if err != nil {
		return nil, err
	}
	var routes []string
	for i := range n {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[2*i+1]))
	}
	for i := range n {
		dir, err := os.MkdirTemp("", fmt.Sprintf("closeloop-nats-%d-*", i))
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("natsembed: temp store dir: %w", err)
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("%s-%d", name, i),
			Host:       "127.0.0.1",
			Port:       ports[2*i],
			JetStream:  true,
			StoreDir:   dir,
			NoSigs:     true,
			SyncAlways: !o.NoSync,
			MaxPayload: 2 << 20,
			Cluster:    server.ClusterOpts{Name: name, Host: "127.0.0.1", Port: ports[2*i+1]},
			// A node ignores the route to itself.
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		node := &clusterNode{opts: opts, dir: dir}
		c.nodes = append(c.nodes, node)
		ns, err := startServer(opts.Clone())
		if err != nil {
			c.Shutdown()
			return nil, fmt.Errorf("natsembed: cluster node %d: %w", i, err)
		}
		node.srv = &Server{Server: ns}
	}
	if err := c.WaitForMetaLeader(30 * time.Second); err != nil {
		c.Shutdown()
		return nil, err
	}
	return c, nil
}

// freePorts finds n distinct ports that are free now, below the ephemeral
// range (where the OS picks the local ports of outgoing connections).
func freePorts(n int) ([]int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 12000 {
				low = v
			}
		}
	}
	seen := map[int]bool{}
	var out []int
	for tries := 0; len(out) < n; tries++ {
		if tries > 1000 {
			return nil, errors.New("natsembed: no free ports below the ephemeral range")
		}
		p := 10000 + rand.IntN(low-10000)
		if seen[p] {
			continue
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		_ = l.Close()
		out = append(out, p)
	}
	return out, nil
}

// Size is the number of nodes, running or not.
func (c *Cluster) Size() int { return len(c.nodes) }

// Node returns node i, or nil while it is down.
func (c *Cluster) Node(i int) *Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// ClientURLs lists every node's client URL (running or not), for a client
// that should fail over between them.
func (c *Cluster) ClientURLs() string {
	urls := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		urls[i] = fmt.Sprintf("nats://127.0.0.1:%d", n.opts.Port)
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection over TCP that knows every node and
// reconnects quickly (every 50ms) to another when its node goes down.
func (c *Cluster) Connect(name string, extra ...nats.Option) (*nats.Conn, error) {
	opts := append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, extra...)
	return nats.Connect(c.ClientURLs(), opts...)
}

// running returns the nodes that are up, with their indexes.
func (c *Cluster) running() map[int]*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]*Server{}
	for i, n := range c.nodes {
		if n.srv != nil {
			out[i] = n.srv
		}
	}
	return out
}

// StreamLeader returns the index of the node leading stream (in the default
// account), or -1 when no running node does (an election is on).
func (c *Cluster) StreamLeader(stream string) int {
	for i, s := range c.running() {
		if s.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return i
		}
	}
	return -1
}

// WaitForStreamLeader polls until a running node leads stream.
func (c *Cluster) WaitForStreamLeader(stream string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		if i := c.StreamLeader(stream); i >= 0 {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("natsembed: no leader for stream %s after %s", stream, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitForMetaLeader polls until a running node is the JetStream meta leader
// (the one that places streams and consumers).
func (c *Cluster) WaitForMetaLeader(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range c.running() {
			if s.JetStreamIsLeader() {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsembed: no JetStream meta leader after %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill shuts node i down as a crash would look to its peers and clients,
// keeping its store for Restart.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	s := c.nodes[i].srv
	c.nodes[i].srv = nil
	c.mu.Unlock()
	if s != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
}

// Restart starts node i again on its store and ports.
func (c *Cluster) Restart(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.srv != nil {
		return fmt.Errorf("natsembed: cluster node %d is running", i)
	}
	ns, err := startServer(n.opts.Clone())
	if err != nil {
		return fmt.Errorf("natsembed: restart cluster node %d: %w", i, err)
	}
	n.srv = &Server{Server: ns}
	return nil
}

// Shutdown stops every node and removes their stores.
func (c *Cluster) Shutdown() {
	for i, n := range c.nodes {
		c.Kill(i)
		_ = os.RemoveAll(n.dir)
	}
}
