package jsstore_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// durabilityChildEnv, when set to a store directory, turns the test binary
// into the writer process of TestAcknowledgedEventsSurviveKill (see TestMain).
const durabilityChildEnv = "JSSTORE_DURABILITY_CHILD_DIR"

const (
	childStreams = 4
	childEvents  = 100_000 // per stream: far more than it gets to write
	killAfter    = 300     // acknowledged events before the parent kills it
)

// Accepted means durable: every event the store acknowledged before the
// process died is in the log after a restart, and every chain holds.
func TestAcknowledgedEventsSurviveKill(t *testing.T) {
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), durabilityChildEnv+"="+dir)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	must(t, err)
	must(t, child.Start())

	// Lines are "ack <stream> <event id> <version>", written after each ack.
	acked := map[eventlog.StreamID][]string{}
	lines, killed := bufio.NewScanner(out), false
	for n := 0; lines.Scan(); {
		var stream, id string
		var version uint64
		if _, err := fmt.Sscanf(lines.Text(), "ack %s %s %d", &stream, &id, &version); err != nil {
			t.Fatalf("child wrote %q: %v", lines.Text(), err)
		}
		acked[eventlog.StreamID(stream)] = append(acked[eventlog.StreamID(stream)], id)
		if n++; n == killAfter && !killed {
			must(t, child.Process.Kill()) // SIGKILL, mid-stream
			killed = true
		}
	}
	err = child.Wait()
	if !killed || err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child exited with %v before being killed (killed=%v)", err, killed)
	}

	srv, err := natsembed.Start(natsembed.Options{StoreDir: dir})
	must(t, err)
	t.Cleanup(srv.Shutdown)
	s := newStore(t, connect(t, srv), jsstore.Config{})
	ctx := testContext(t)
	total := 0
	for stream, ids := range acked {
		recs, err := s.ReadStream(ctx, stream, 1)
		must(t, err)
		if len(recs) < len(ids) {
			t.Fatalf("%s: %d events after restart, %d were acknowledged", stream, len(recs), len(ids))
		}
		for i, id := range ids {
			if recs[i].Event.GetEventId() != id {
				t.Fatalf("%s version %d is %s, acknowledged %s", stream, i+1, recs[i].Event.GetEventId(), id)
			}
		}
		if broken := eventlog.VerifyChain(stream, recs); broken != nil {
			t.Fatalf("chain after restart: %v", broken)
		}
		total += len(ids)
	}
	if total < killAfter {
		t.Fatalf("checked %d acknowledged events, want at least %d", total, killAfter)
	}
	t.Logf("%d acknowledged events over %d streams all read back after SIGKILL", total, len(acked))
}

// durabilityChild appends to a few complaints from concurrent writers and
// reports each acknowledged event on stdout, until it is killed.
func durabilityChild(dir string) int {
	srv, err := natsembed.Start(natsembed.Options{StoreDir: dir}) // SyncAlways
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	nc, err := srv.Connect("durability-child", true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	s, err := storeOn(srv, true)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer nc.Close()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range childStreams {
		wg.Go(func() {
			stream := eventlog.ComplaintStream(fmt.Sprintf("durable-%d", w))
			for v := range uint64(childEvents) {
				e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: stream.ID(), Producer: "durability"}, &eventsv1.ResponseRecorded{Summary: fmt.Sprint(v)})
				if err == nil {
					_, err = s.Append(context.Background(), stream, v, e)
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("ack %s %s %d\n", stream, e.GetEventId(), v+1) // os.Stdout is unbuffered
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return 0
}
