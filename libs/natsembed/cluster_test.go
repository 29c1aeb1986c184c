package natsembed

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The cluster elects a new stream leader when the leader is killed, and a
// killed node restarted on its store catches up with the stream.
func TestClusterLeaderKillAndRestart(t *testing.T) {
	c, err := StartCluster(3, ClusterOptions{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown()
	nc, err := c.Connect("cluster-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// The first stream creation may time out while the cluster settles.
	var st jetstream.Stream
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		st, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3})
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	publish := func(what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := js.Publish(ctx, "t.x", []byte(what), jetstream.WithMsgID(what))
			cancel()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %s: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	publish("before")
	leader, err := c.WaitForStreamLeader("T", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Kill(leader)
	if c.Node(leader) != nil {
		t.Fatal("killed node still reported running")
	}
	publish("after")
	next, err := c.WaitForStreamLeader("T", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if next == leader {
		t.Fatalf("node %d still leads after being killed", leader)
	}
	if err := c.Restart(leader); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(leader); err == nil {
		t.Fatal("restarting a running node should fail")
	}
	// The restarted node catches up from its store and its peers.
	deadline = time.Now().Add(30 * time.Second)
	for !c.Node(leader).JetStreamIsStreamCurrent("$G", "T") {
		if time.Now().After(deadline) {
			t.Fatalf("restarted node %d not current", leader)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream holds %d messages with %d replicas besides the leader, want 2 and 2", info.State.Msgs, len(info.Cluster.Replicas))
	}
}
