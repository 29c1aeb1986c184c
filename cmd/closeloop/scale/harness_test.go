package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock/natsclock"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/platform"
	"github.com/closeloop/closeloop/services/dispatch"
	"github.com/closeloop/closeloop/services/followup"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/routing"
	"github.com/closeloop/closeloop/services/slaclock"
)

// The harness's knobs (environment), with their defaults.
const (
	envScale    = "SCALE"              // 1 runs TestScale
	envN        = "SCALE_COMPLAINTS"   // 30000
	envOpen     = "SCALE_OPEN_PERCENT" // 5
	envDir      = "SCALE_DIR"          // $TMPDIR/closeloop-scale-<N>-<open>
	envServices = "SCALE_SERVICES"     // intake,routing,slaclock,dispatch,followup
	envStarts   = "SCALE_STARTS"       // 1; 2 times a second start on the same data
	envWorkers  = "SCALE_WORKERS"      // 64
	envProfile  = "SCALE_PROFILE"      // a service run in this process under a CPU profile
	envTimeout  = "SCALE_READY_TIMEOUT"
)

// clockBucket holds the time the services run on: the end of the log, so
// a data dir measured days after it was generated starts the same way.
const clockBucket = "SCALE_CLOCK"

var allServices = []string{"intake", "routing", "slaclock", "dispatch", "followup"}

// durables are the bus consumers the services subscribe with (their names
// and filters, libs/bus): created and moved to the end of the log after
// generation, as on a system that handled every event before it stopped.
var durables = map[string][]string{
	"routing":  {"events.complaint.>", "events.team.>"},
	"dispatch": {"events.complaint.>"},
	"followup": {"events.complaint.>"},
}

// manifest describes a generated data dir; a run reuses a dir whose
// manifest matches its N, open share and the log's subject layout.
type manifest struct {
	Layout      string    `json:"layout"`
	Complaints  int       `json:"complaints"`
	OpenPercent int       `json:"open_percent"`
	Seed        uint64    `json:"seed"`
	Now         time.Time `json:"now"`
	Summary     Summary   `json:"summary"`
	StoreBytes  uint64    `json:"store_bytes"`
	Messages    uint64    `json:"messages"`
}

// TestScale is the scale harness (make scale): it generates the log (or
// reuses the data dir), then starts each service as its own process on it
// and reports start-to-ready time, the work done after ready, and memory.
func TestScale(t *testing.T) {
	if os.Getenv(envScale) != "1" {
		t.Skip("the scale harness runs with SCALE=1 (make scale; SCALE_COMPLAINTS=30000 by default)")
	}
	n := envInt(t, envN, 30000)
	open := envInt(t, envOpen, 5)
	starts := envInt(t, envStarts, 1)
	dir := os.Getenv(envDir)
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("closeloop-scale-%d-%d", n, open))
	}
	services := allServices
	if v := os.Getenv(envServices); v != "" {
		services = strings.Split(v, ",")
	}
	readyTimeout := 2 * time.Hour
	if v := os.Getenv(envTimeout); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", envTimeout, err)
		}
		readyTimeout = d
	}
	lockDir(t, dir)
	bin := filepath.Join(dir, "bin")
	build(t, bin)

	m := prepare(t, dir, bin, n, open)
	t.Logf("log: %d complaints (%d open, %d closed), %d events, %.1f MB stored, generated in %s (%.0f complaints/s)",
		m.Summary.Complaints, m.Summary.Open, m.Summary.Closed, m.Messages, float64(m.StoreBytes)/1e6,
		m.Summary.Elapsed.Round(time.Second), float64(m.Summary.Complaints)/m.Summary.Elapsed.Seconds())

	if svc := os.Getenv(envProfile); svc != "" {
		profile(t, dir, bin, svc, readyTimeout)
		return
	}
	var rows []measurement
	for _, svc := range services {
		for i := range starts {
			r := measure(t, dir, bin, svc, readyTimeout)
			r.start = i + 1
			rows = append(rows, r)
			t.Logf("%s start %d: ready %.1fs, settled %.1fs, RSS %.0f MB", svc, i+1, r.ready.Seconds(), r.settled.Seconds(), r.rss/1e6)
		}
	}
	report(t, m, rows)
}

// lockDir holds dir for this run: a second run on it would start a second
// NATS server on the same store, which damages it.
func lockDir(t *testing.T, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("%s is in use by another scale run (%v): two NATS servers on one store would damage it", dir, err)
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, v)
	}
	return n
}

// build compiles the five services and natsd into bin.
func build(t *testing.T, bin string) {
	args := []string{"build", "-o", bin + string(filepath.Separator)}
	for _, s := range allServices {
		args = append(args, "github.com/closeloop/closeloop/services/"+s+"/cmd/"+s)
	}
	args = append(args, "github.com/closeloop/closeloop/cmd/closeloop/scale/natsd")
	cmd := exec.Command("go", args...)
	cmd.Dir = "../../.." // the workspace root (go.work)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
}

// prepare returns the data dir's manifest, generating the log first when
// the dir holds none for this N and open share.
func prepare(t *testing.T, dir, bin string, n, open int) manifest {
	path := filepath.Join(dir, "manifest.json")
	var m manifest
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &m) == nil && m.Layout == jsstore.LayoutV2 && m.Complaints == n && m.OpenPercent == open {
		return m
	}
	if err := os.RemoveAll(filepath.Join(dir, "nats")); err != nil {
		t.Fatal(err)
	}
	nd := startNATS(t, dir, bin, true)
	defer nd.stop()
	js := nd.js(t)
	ctx := context.Background()
	m = manifest{Layout: jsstore.LayoutV2, Complaints: n, OpenPercent: open, Seed: 1, Now: time.Now().UTC().Truncate(time.Second)}
	t.Logf("generating %d complaints into %s", n, dir)
	sum, err := Generate(ctx, js, Config{
		Complaints: n, OpenPercent: open, Now: m.Now, Seed: m.Seed, Workers: envInt(t, envWorkers, 64),
		Progress: func(done int) {
			if done > 0 && done%max(n/20, 1) < 200 {
				fmt.Fprintf(os.Stderr, "scale: %d/%d complaints\n", done, n)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m.Summary = sum
	// The services' consumers, caught up; the clock at the end of the log.
	for name, subjects := range durables {
		if _, err := js.CreateOrUpdateConsumer(ctx, jsstore.StreamName, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: subjects}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(ctx, jsstore.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name := range durables {
		req, _ := json.Marshal(map[string]uint64{"seq": info.State.LastSeq + 1})
		if _, err := nd.nc.Request(fmt.Sprintf("$JS.API.CONSUMER.RESET.%s.%s", jsstore.StreamName, name), req, 10*time.Second); err != nil {
			t.Fatalf("move consumer %s to the end of the log: %v", name, err)
		}
	}
	kv, err := natsclock.Bucket(ctx, js, clockBucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := natsclock.Set(ctx, kv, m.Now); err != nil {
		t.Fatal(err)
	}
	m.StoreBytes, m.Messages = info.State.Bytes, info.State.Msgs
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// natsProc is the harness's NATS server process.
type natsProc struct {
	cmd  *exec.Cmd
	url  string
	nc   *nats.Conn
	done chan struct{}
}

func startNATS(t *testing.T, dir, bin string, noSync bool, extra ...string) *natsProc {
	port := freePort(t)
	args := append([]string{"-dir", filepath.Join(dir, "nats"), "-port", strconv.Itoa(port)}, extra...)
	if noSync {
		args = append(args, "-nosync")
	}
	cmd := exec.Command(filepath.Join(bin, "natsd"), args...)
	logf, err := os.OpenFile(filepath.Join(dir, "natsd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &natsProc{cmd: cmd, url: fmt.Sprintf("nats://127.0.0.1:%d", port), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(p.done) }()
	deadline := time.Now().Add(5 * time.Minute) // JetStream recovers the stream first
	for {
		nc, err := nats.Connect(p.url, nats.Timeout(time.Second))
		if err == nil {
			js, _ := jetstream.New(nc)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err = js.AccountInfo(ctx)
			cancel()
			if err == nil {
				p.nc = nc
				return p
			}
			nc.Close()
		}
		if time.Now().After(deadline) {
			p.stop()
			t.Fatalf("natsd not ready: %v (see %s)", err, filepath.Join(dir, "natsd.log"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *natsProc) js(t *testing.T) jetstream.JetStream {
	js, err := jetstream.New(p.nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (p *natsProc) stop() {
	if p.nc != nil {
		p.nc.Close()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// serviceEnv is the environment of one service run against natsURL.
func serviceEnv(svc, natsURL string, grpcPort, httpPort int) []string {
	up := strings.ToUpper(svc)
	return append(os.Environ(),
		"NATS_URL="+natsURL,
		"CLOSELOOP_AUTH=off",
		"CLOSELOOP_CLOCK=nats-kv:"+clockBucket,
		"INTAKE_PII_SECRET=scale-intake-pii-secret-0123456789",
		"PII_KEK="+strings.Repeat("5a", 32),
		"FOLLOWUP_SURVEY_SECRET=scale-followup-survey-secret-0123456789abcdef",
		"OTEL_SDK_DISABLED=true",
		fmt.Sprintf("%s_GRPC_ADDR=127.0.0.1:%d", up, grpcPort),
		fmt.Sprintf("%s_HTTP_ADDR=127.0.0.1:%d", up, httpPort),
	)
}

// measurement is one start of one service.
type measurement struct {
	service string
	start   int
	ready   time.Duration // start -> GET /readyz 200
	// settled is start -> the process's CPU use fell idle after ready:
	// views some services build after /readyz turns 200 (routing, follow-up)
	// count here, not in ready.
	settled      time.Duration
	cpu          time.Duration // CPU time used until settled
	rss, hwm     float64       // bytes, after settled
	natsBefore   float64       // natsd RSS with no service connected
	natsAfter    float64       // natsd RSS once the service settled
	natsCPUAfter time.Duration // natsd CPU spent on the service's start
}

// measure starts svc as a process on a freshly started natsd (so the
// server's memory is that of serving this service alone) and times it.
// Calling it twice on the same data dir is a second start of the same
// service: what a snapshot will change.
func measure(t *testing.T, dir, bin, svc string, timeout time.Duration) measurement {
	nd := startNATS(t, dir, bin, false)
	defer nd.stop()
	natsPid := nd.cmd.Process.Pid
	natsCPU0 := cpuTime(natsPid)
	r := measurement{service: svc, natsBefore: procStatus(natsPid, "VmRSS")}
	grpcPort, httpPort := freePort(t), freePort(t)
	cmd := exec.Command(filepath.Join(bin, svc))
	cmd.Env = serviceEnv(svc, nd.url, grpcPort, httpPort)
	logf, err := os.Create(filepath.Join(dir, svc+".log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	pid := cmd.Process.Pid
	r.ready = waitReady(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort), begin, timeout, exited, filepath.Join(dir, svc+".log"))
	r.settled = waitSettled(pid, begin, timeout)
	r.cpu = cpuTime(pid)
	r.rss, r.hwm = procStatus(pid, "VmRSS"), procStatus(pid, "VmHWM")
	r.natsAfter = procStatus(natsPid, "VmRSS")
	r.natsCPUAfter = cpuTime(natsPid) - natsCPU0
	return r
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string, begin time.Time, timeout time.Duration, exited <-chan error, log string) time.Duration {
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-exited:
			t.Fatalf("%s exited before ready: %v (see %s)", url, err, log)
		default:
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(begin)
			}
		}
		if time.Since(begin) > timeout {
			t.Fatalf("%s not ready after %s (see %s)", url, timeout, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSettled waits until pid used under 5 % of a core over two seconds,
// and returns when that quiet window began.
func waitSettled(pid int, begin time.Time, timeout time.Duration) time.Duration {
	const window = 2 * time.Second
	type sample struct {
		at  time.Time
		cpu time.Duration
	}
	var s []sample
	for time.Since(begin) < timeout {
		now := sample{time.Now(), cpuTime(pid)}
		s = append(s, now)
		for len(s) > 1 && now.at.Sub(s[1].at) >= window {
			s = s[1:]
		}
		if first := s[0]; now.at.Sub(first.at) >= window && now.cpu-first.cpu < window/20 {
			return first.at.Sub(begin)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return timeout
}

// cpuTime is the user+system CPU time of a process (/proc/<pid>/stat).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// procStatus reads a "kB" field of /proc/<pid>/status, in bytes.
func procStatus(pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb * 1024
		}
	}
	return 0
}

func report(t *testing.T, m manifest, rows []measurement) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nscale: %d complaints (%d open, %d closed), %d events, %.0f MB in JetStream\n",
		m.Summary.Complaints, m.Summary.Open, m.Summary.Closed, m.Messages, float64(m.StoreBytes)/1e6)
	fmt.Fprintf(&b, "%-9s %5s %9s %9s %8s %8s %8s %10s %11s %11s %9s\n",
		"service", "start", "ready s", "settled s", "CPU s", "RSS MB", "HWM MB", "RSS B/cmp", "nats MB bef", "nats MB aft", "nats CPU")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-9s %5d %9.1f %9.1f %8.1f %8.0f %8.0f %10.0f %11.0f %11.0f %9.1f\n",
			r.service, r.start, r.ready.Seconds(), r.settled.Seconds(), r.cpu.Seconds(), r.rss/1e6, r.hwm/1e6,
			r.rss/float64(m.Summary.Complaints), r.natsBefore/1e6, r.natsAfter/1e6, r.natsCPUAfter.Seconds())
	}
	t.Log(b.String())
	fmt.Print(b.String())
}

// writeHeapProfiles writes the heap's profile to path every minute until
// ctx ends, replacing the last one: what a long start holds, while it runs.
func writeHeapProfiles(ctx context.Context, path string) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f, err := os.Create(path)
		if err != nil {
			return
		}
		_ = pprof.WriteHeapProfile(f)
		f.Close()
	}
}

// profile runs svc inside this process (same wiring as its binary, the
// JetStream backend) under a CPU profile from start until it settles, and
// natsd under its own, writing <dir>/<svc>.cpu.pprof and natsd.cpu.pprof,
// and the heap's profile every minute (<dir>/<svc>.heap.pprof).
func profile(t *testing.T, dir, bin, svc string, timeout time.Duration) {
	builders := map[string]func(platform.Deps) (platform.Service, error){
		"intake": intake.FromEnv, "routing": routing.FromEnv, "slaclock": slaclock.FromEnv,
		"dispatch": dispatch.FromEnv, "followup": followup.FromEnv,
	}
	buildSvc := builders[svc]
	if buildSvc == nil {
		t.Fatalf("%s=%q: not a service", envProfile, svc)
	}
	nd := startNATS(t, dir, bin, false, "-cpuprofile", filepath.Join(dir, "natsd.cpu.pprof"))
	defer nd.stop()
	httpPort := freePort(t)
	for _, kv := range serviceEnv(svc, nd.url, freePort(t), httpPort)[len(os.Environ()):] {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	f, err := os.Create(filepath.Join(dir, svc+".cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := time.Now()
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	rt, err := platform.Connect(ctx, svc, platform.OpenJetStream)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	s, err := buildSvc(rt.Deps)
	if err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- s.Run(ctx) }()
	go writeHeapProfiles(ctx, filepath.Join(dir, svc+".heap.pprof"))
	ready := waitReady(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", httpPort), begin, timeout, exited, "this process's output")
	settled := waitSettled(os.Getpid(), begin, timeout)
	pprof.StopCPUProfile()
	cancel()
	if err := <-exited; err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("%s stopped: %v", svc, err)
	}
	t.Logf("%s in process: ready %.1fs, settled %.1fs; profiles in %s ({%s,natsd}.cpu.pprof)", svc, ready.Seconds(), settled.Seconds(), dir, svc)
}
