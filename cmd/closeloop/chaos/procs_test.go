package chaos

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/closeloop/closeloop/libs/natsembed"
)

// The test binary doubles as the NATS server process: run with
// CHAOS_ROLE=natsd it serves JetStream from CHAOS_NATS_DIR on CHAOS_NATS_PORT
// (syncing every write) until killed.
const (
	envRole     = "CHAOS_ROLE"
	envNATSDir  = "CHAOS_NATS_DIR"
	envNATSPort = "CHAOS_NATS_PORT"
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "natsd" {
		os.Exit(natsd())
	}
	os.Exit(m.Run())
}

func natsd() int {
	port, err := strconv.Atoi(os.Getenv(envNATSPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", envNATSPort, err)
		return 2
	}
	s, err := natsembed.Start(natsembed.Options{StoreDir: os.Getenv(envNATSDir), Port: port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "natsd:", err)
		return 1
	}
	fmt.Fprintln(os.Stderr, "natsd: ready on", s.ClientURL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	return 0
}

// services are the five binaries, in the order the kill schedule visits them.
var services = []string{"intake", "routing", "slaclock", "dispatch", "followup"}

// buildServices builds the five service binaries into dir, once per run.
func buildServices(t *testing.T, dir string) {
	t.Helper()
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, s := range services {
		args = append(args, "github.com/closeloop/closeloop/services/"+s+"/cmd/"+s)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = "../../.." // the workspace root (go.work)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the services: %v\n%s", err, out)
	}
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one supervised OS process: started, killed with SIGKILL, started
// again. Its stdout and stderr go to one log file across restarts.
type proc struct {
	name string
	path string
	env  []string
	log  string

	mu       sync.Mutex
	cmd      *exec.Cmd
	done     chan struct{}
	killing  bool
	starts   int
	kills    int
	crashes  int // exits the harness did not cause
	stopping bool
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil || p.stopping {
		return nil
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "\n===== chaos: start #%d at %s =====\n", p.starts+1, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.path)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.starts++
	p.cmd, p.done = cmd, make(chan struct{})
	done := p.done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		crashed := !p.killing && !p.stopping
		if crashed {
			p.crashes++
			fmt.Fprintf(os.Stderr, "chaos: %s exited on its own: %v (see %s)\n", p.name, err, p.log)
		}
		p.cmd, p.killing = nil, false
		p.mu.Unlock()
		close(done)
		if crashed {
			// A process that gave up on its own (NATS away too long, say)
			// is restarted like a killed one; the summary counts it.
			time.Sleep(500 * time.Millisecond)
			_ = p.start()
		}
	}()
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	if cmd == nil {
		p.mu.Unlock()
		return false
	}
	p.killing = true
	p.kills++
	p.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return true
}

// stop ends the process for good (SIGTERM, then SIGKILL).
func (p *proc) stop() {
	p.mu.Lock()
	p.stopping = true
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

func (p *proc) counts() (starts, kills, crashes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts, p.kills, p.crashes
}

// waitRunning waits until every process is up (a restart may be pending).
func waitRunning(ctx context.Context, ps []*proc) error {
	for {
		all := true
		for _, p := range ps {
			if !p.running() {
				all = false
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
