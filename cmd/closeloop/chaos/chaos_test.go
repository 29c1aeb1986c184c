package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock/natsclock"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

var (
	flagSeed = flag.Int64("chaos.seed", 0, "seed of the random schedule (0: CHAOS_SEED, else the time); printed by every run")
	flagLong = flag.Bool("chaos.long", false, "the long form (also CHAOS_LONG=1): >= 5,000 complaints, >= 100 kills")
)

// form is the size of a run.
type form struct {
	complaints int
	minKills   int
	workers    int
	killGap    [2]time.Duration // between two kills
	downFor    [2]time.Duration // before the restart
	stall      time.Duration    // a complaint without progress this long fails the run
}

var (
	shortForm = form{complaints: 500, minKills: 20, workers: 24, killGap: [2]time.Duration{500 * time.Millisecond, 2 * time.Second}, downFor: [2]time.Duration{100 * time.Millisecond, 1500 * time.Millisecond}, stall: 90 * time.Second}
	longForm  = form{complaints: 5000, minKills: 100, workers: 32, killGap: [2]time.Duration{500 * time.Millisecond, 2 * time.Second}, downFor: [2]time.Duration{100 * time.Millisecond, 2 * time.Second}, stall: 3 * time.Minute}
)

const (
	clockBucket = "CHAOS_CLOCK"
	technicians = 12
	// Simulated time moves clockStep every clockTick while complaints are
	// driven: slow enough that no survey expires before it is answered.
	clockStep = 10 * time.Second
	clockTick = 250 * time.Millisecond
)

var clockStart = time.Date(2026, 11, 2, 1, 0, 0, 0, time.UTC) // Monday 09:00 in Shanghai

func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault-injection harness runs separate processes for minutes; skipped under -short")
	}
	f := shortForm
	if *flagLong || os.Getenv("CHAOS_LONG") == "1" {
		f = longForm
	}
	seed := *flagSeed
	if seed == 0 {
		if v := os.Getenv("CHAOS_SEED"); v != "" {
			var err error
			if seed, err = strconv.ParseInt(v, 10, 64); err != nil {
				t.Fatalf("CHAOS_SEED=%q: must be an integer", v)
			}
		}
	}
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("chaos seed %d (replay with -chaos.seed=%d or CHAOS_SEED=%d)", seed, seed, seed)
	fmt.Fprintf(os.Stderr, "chaos: seed %d\n", seed)
	rnd := rand.New(rand.NewSource(seed))
	began := time.Now()

	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Join(dir, "bin")
	buildServices(t, binDir)
	t.Logf("services built in %v", time.Since(began).Round(time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The NATS server: this test binary in the natsd role.
	natsPort := freePort(t)
	natsURL := fmt.Sprintf("nats://127.0.0.1:%d", natsPort)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	natsProc := &proc{name: "nats", path: self, log: filepath.Join(logs, "nats.log"),
		env: append(os.Environ(), envRole+"=natsd", envNATSDir+"="+filepath.Join(dir, "nats"), fmt.Sprintf("%s=%d", envNATSPort, natsPort))}
	if err := natsProc.start(); err != nil {
		t.Fatal(err)
	}
	procs := []*proc{natsProc}
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		if t.Failed() {
			keepLogs(t, logs)
		}
	}()

	// The harness's own connection: the log, the clock, the poison.
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1), nats.RetryOnFailedConnect(true), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	store := mustStore(ctx, t, js)
	clk := newClockDriver(ctx, t, js)

	// The five services.
	tokens := tokensJSON(t)
	addrs := map[string]string{}
	for _, s := range services {
		grpcPort, httpPort := freePort(t), freePort(t)
		addrs[s] = fmt.Sprintf("127.0.0.1:%d", grpcPort)
		up := strings.ToUpper(s)
		env := append(os.Environ(),
			"NATS_URL="+natsURL,
			platformClockEnv(),
			"CLOSELOOP_TOKENS="+tokens,
			"INTAKE_PII_SECRET=chaos-intake-pii-secret-0123456789",
			"PII_KEK="+strings.Repeat("5a", 32),
			"FOLLOWUP_SURVEY_SECRET=chaos-followup-survey-secret-0123456789abcdef",
			"INTAKE_RATE=0",
			"DISPATCH_ACCEPT_TIMEOUT=240h",
			"OTEL_SDK_DISABLED=true",
			fmt.Sprintf("%s_GRPC_ADDR=127.0.0.1:%d", up, grpcPort),
			fmt.Sprintf("%s_HTTP_ADDR=127.0.0.1:%d", up, httpPort),
		)
		p := &proc{name: s, path: filepath.Join(binDir, s), env: env, log: filepath.Join(logs, s+".log")}
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, p)
	}
	cl, err := dial(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.close()
	d := &driver{cl: cl, store: store, now: clk.now}

	setupRosters(ctx, t, cl)
	t.Logf("services up and configured after %v", time.Since(began).Round(time.Millisecond))

	// Chaos: kill each process in turn (NATS included) at seeded random
	// moments, restart it after a short random delay. The moments are paced
	// by progress (kill k waits until about k/(kills+1) of the complaints are
	// parked, give or take a seeded jitter) and never closer than killGap, so
	// a slow machine gets the same number of kills, not more.
	chaosCtx, stopChaos := context.WithCancel(ctx)
	var kills atomic.Int64
	var mainDone atomic.Bool
	chaosDone := make(chan struct{})
	schedule := rand.New(rand.NewSource(rnd.Int63()))
	planned := f.minKills + f.minKills/4
	go func() {
		defer close(chaosDone)
		k := 0
		for {
			for _, i := range schedule.Perm(len(procs)) {
				gap := between(schedule, f.killGap)
				down := between(schedule, f.downFor)
				jitter := schedule.Float64() - 0.5
				sleep(chaosCtx, gap)
				due := int64((float64(k+1) + jitter) * float64(f.complaints) / float64(planned+1))
				for !mainDone.Load() && d.parked.Load() < due && chaosCtx.Err() == nil {
					sleep(chaosCtx, 50*time.Millisecond)
				}
				if chaosCtx.Err() != nil || (mainDone.Load() && kills.Load() >= int64(f.minKills)) {
					return
				}
				p := procs[i]
				if p.kill() {
					kills.Add(1)
				}
				k++
				sleep(ctx, down)
				if err := p.start(); err != nil {
					t.Errorf("restart %s: %v", p.name, err)
				}
			}
		}
	}()

	// The poison message: a protobuf that is no event envelope (no event
	// id), published raw on a complaint subject. It goes to the dead-letter
	// stream of the consumers that see it.
	poisonMsg := injectPoison(ctx, t, js)

	// Drive the complaints.
	items := make([]*item, f.complaints)
	for i := range items {
		items[i] = &item{n: i + 1, script: pickScript(rnd), channelRef: fmt.Sprintf("CHAOS-%d-%06d", seed, i+1)}
	}
	work := make(chan *item)
	var wg sync.WaitGroup
	var failures []string
	var fmu sync.Mutex
	for range f.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range work {
				it.receivedAt = clk.now()
				if err := d.run(ctx, it, f.stall); err != nil {
					fmu.Lock()
					failures = append(failures, err.Error())
					fmu.Unlock()
				}
			}
		}()
	}
	progressDone := make(chan struct{})
	go func() {
		for {
			select {
			case <-progressDone:
				return
			case <-time.After(15 * time.Second):
			}
			t.Logf("progress after %v: %d/%d complaints parked, %d kills", time.Since(began).Round(time.Second), d.parked.Load(), len(items), kills.Load())
		}
	}()
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
	close(progressDone)
	mainDone.Store(true)
	clk.stopTicking()
	t.Logf("all %d complaints driven after %v; %d kills so far", len(items), time.Since(began).Round(time.Millisecond), kills.Load())
	<-chaosDone
	stopChaos()
	if len(failures) > 0 {
		t.Errorf("%d complaints did not reach their parking state:\n%s", len(failures), strings.Join(first(failures, 20), "\n"))
	}

	// Everyone back up; then jump nine days in hourly steps so that the
	// parked complaints breach and the unanswered surveys expire.
	waitCtx, cancelWait := context.WithTimeout(ctx, time.Minute)
	if err := waitRunning(waitCtx, procs); err != nil {
		t.Fatalf("processes not back up: %v", err)
	}
	cancelWait()
	for range 9 * 24 {
		clk.advance(time.Hour)
		sleep(ctx, 20*time.Millisecond)
	}
	// Wait until every complaint meets its expectation (or give up after a while).
	deadline := time.Now().Add(3 * time.Minute)
	for _, it := range items {
		if it.id == "" {
			continue
		}
		for {
			c, err := d.read(ctx, it.id)
			if err != nil {
				t.Fatal(err)
			}
			it.state = c
			if expectation(it, c) == "" || time.Now().After(deadline) {
				break
			}
			sleep(ctx, 200*time.Millisecond)
		}
	}
	// The services converge on their own time (a retry after a crash can
	// wait 15 s): check again while something is missing. Nothing that
	// is wrong goes away by waiting (a duplicate stays), so this only
	// gives missing effects their time.
	var r report
	var events int
	deadline = time.Now().Add(2 * time.Minute)
	for {
		quiesce(ctx, t, js)
		r = report{}
		n, err := checkLog(ctx, store, js, items, poisonMsg, &r)
		if err != nil {
			t.Fatal(err)
		}
		events = n
		if len(r.problems) == 0 || time.Now().After(deadline) {
			break
		}
		t.Logf("%d invariant violations, the first: %s; checking again", len(r.problems), r.problems[0])
		sleep(ctx, 5*time.Second)
	}
	for _, p := range first(r.problems, 50) {
		t.Error(p)
	}
	if len(r.problems) > 50 {
		t.Errorf("... and %d more invariant violations", len(r.problems)-50)
	}

	// Summary.
	perScript := map[script]int{}
	acked := 0
	for _, it := range items {
		perScript[it.script]++
		if it.id != "" {
			acked++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "chaos summary: seed %d, %d complaints (%d acknowledged;", seed, len(items), acked)
	for s := range nScripts {
		fmt.Fprintf(&sb, " %s %d", s, perScript[s])
	}
	fmt.Fprintf(&sb, "), %d kills:", kills.Load())
	restarts := 0
	for _, p := range procs {
		starts, k, crashes := p.counts()
		restarts += starts - 1
		fmt.Fprintf(&sb, " %s %d", p.name, k)
		if crashes > 0 {
			fmt.Fprintf(&sb, " (+%d exits on its own)", crashes)
		}
	}
	fmt.Fprintf(&sb, "; %d restarts; %d events in the log; %d invariant violations; %v",
		restarts, events, len(r.problems), time.Since(began).Round(time.Second))
	t.Log(sb.String())
	fmt.Fprintln(os.Stderr, sb.String())
	if kills.Load() < int64(f.minKills) {
		t.Errorf("only %d kills, want at least %d", kills.Load(), f.minKills)
	}
	if acked < f.complaints {
		t.Errorf("only %d of %d submissions acknowledged", acked, f.complaints)
	}
}

func between(r *rand.Rand, b [2]time.Duration) time.Duration {
	return b[0] + time.Duration(r.Int63n(int64(b[1]-b[0])+1))
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func platformClockEnv() string { return "CLOSELOOP_CLOCK=nats-kv:" + clockBucket }

func mustStore(ctx context.Context, t *testing.T, js jetstream.JetStream) *jsstore.Store {
	t.Helper()
	for {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := jsstore.New(cctx, js, jsstore.Config{})
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clockDriver publishes the simulated time. It never moves backwards, and it
// retries while the NATS server is down.
type clockDriver struct {
	ctx    context.Context
	mu     sync.Mutex
	t      time.Time
	kv     jetstream.KeyValue
	cancel context.CancelFunc
}

func newClockDriver(ctx context.Context, t *testing.T, js jetstream.JetStream) *clockDriver {
	t.Helper()
	var kv jetstream.KeyValue
	var err error
	for {
		if kv, err = natsclock.Bucket(ctx, js, clockBucket); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	c := &clockDriver{ctx: ctx, t: clockStart, kv: kv}
	c.publish()
	tctx, cancel := context.WithCancel(ctx)
	c.cancel = cancel
	go func() {
		tick := time.NewTicker(clockTick)
		defer tick.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-tick.C:
				c.advance(clockStep)
			}
		}
	}()
	return c
}

func (c *clockDriver) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clockDriver) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	c.publish()
}

// publish writes the current time, retrying until the server takes it.
func (c *clockDriver) publish() {
	for c.ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		err := natsclock.Set(cctx, c.kv, c.now())
		cancel()
		if err == nil || strings.Contains(err.Error(), "before the current time") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *clockDriver) stopTicking() { c.cancel() }

// tokensJSON is CLOSELOOP_TOKENS for the run: the adapter, one staff member
// with every back-office role, and each technician.
func tokensJSON(t *testing.T) string {
	t.Helper()
	type entry struct {
		SHA      string   `json:"token_sha256"`
		ID       string   `json:"id"`
		Kind     string   `json:"kind"`
		Channels []string `json:"channels,omitempty"`
		Roles    []string `json:"roles,omitempty"`
	}
	list := []entry{
		{SHA: auth.HashToken(adapterToken), ID: "chaos-adapter", Kind: auth.KindAdapter, Channels: []string{"phone"}},
		{SHA: auth.HashToken(staffToken), ID: staffID, Kind: auth.KindUser, Roles: []string{
			auth.RoleAgent, auth.RoleTeamLead, auth.RoleManager, auth.RoleQualityReviewer, auth.RoleSeniorManager, auth.RoleAuditor, auth.RoleAdmin}},
	}
	for l, role := range map[eventsv1.ReviewLevel]string{
		eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR:        auth.RoleTeamLead,
		eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY:           auth.RoleQualityReviewer,
		eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT: auth.RoleSeniorManager,
	} {
		list = append(list, entry{SHA: auth.HashToken(reviewerToken(l)), ID: "chaos-reviewer-" + role, Kind: auth.KindUser, Roles: []string{role}})
	}
	for i := range technicians {
		id := techID(i)
		list = append(list, entry{SHA: auth.HashToken(techToken(id)), ID: id, Kind: auth.KindUser, Roles: []string{auth.RoleTechnician}})
	}
	b, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func techID(i int) string { return fmt.Sprintf("tech-%02d", i+1) }

// setupRosters puts agents on shift in the two teams the scripts reach and
// registers the technicians (retrying until the services answer).
func setupRosters(ctx context.Context, t *testing.T, cl *clients) {
	t.Helper()
	retry := func(what string, call func(context.Context) error) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			cctx, cancel := context.WithTimeout(as(ctx, staffToken), 5*time.Second)
			err := classify(call(cctx))
			cancel()
			if err == nil || strings.Contains(err.Error(), "AlreadyExists") || strings.Contains(strings.ToLower(err.Error()), "already") {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v", what, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for _, team := range []string{"customer-service", "technical-support"} {
		for i := range 4 {
			member := fmt.Sprintf("%s-agent-%d", team, i+1)
			retry("add "+member, func(ctx context.Context) error {
				_, err := cl.routing.AddTeamMember(ctx, &routingv1.AddTeamMemberRequest{
					Team: team, MemberId: member, DisplayName: member, Role: "agent", OnShift: true,
					Skills: []string{"product", "service", "logistics", "billing", "general"},
				})
				return err
			})
		}
		retry("add the lead of "+team, func(ctx context.Context) error {
			_, err := cl.routing.AddTeamMember(ctx, &routingv1.AddTeamMemberRequest{
				Team: team, MemberId: team + "-lead", DisplayName: team + " lead", Role: "team_lead", OnShift: true,
			})
			return err
		})
	}
	for i := range technicians {
		id := techID(i)
		retry("register "+id, func(ctx context.Context) error {
			_, err := cl.dispatch.RegisterTechnician(ctx, &dispatchv1.RegisterTechnicianRequest{
				TechnicianId: id,
				Profile: &dispatchv1.TechnicianProfile{
					DisplayName: id, ProductLines: []string{"aircon"},
					Services:      []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REPAIR, eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT},
					ServiceCentre: "sc-north", Region: "North", CalendarId: "always",
					MaxConcurrentJobs: 3, MaxDailyJobs: 500,
				},
			})
			return err
		})
	}
}

// injectPoison publishes a message that decodes as protobuf but is no event
// (no event id) on a fresh complaint's subject.
func injectPoison(ctx context.Context, t *testing.T, js jetstream.JetStream) poison {
	t.Helper()
	id := uuid.NewString()
	subject := "events.complaint." + id
	data, err := proto.Marshal(&eventsv1.Envelope{StreamId: "complaint-" + id, Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ack, err := js.Publish(cctx, subject, data)
		cancel()
		if err == nil {
			return poison{subject: subject, seq: ack.Sequence}
		}
		if ctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quiesce waits until the log has stopped growing for a few seconds.
func quiesce(ctx context.Context, t *testing.T, js jetstream.JetStream) {
	t.Helper()
	var last uint64
	stable := time.Now()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, err := js.Stream(ctx, jsstore.StreamName)
		if err == nil {
			if info, err := st.Info(ctx); err == nil {
				if info.State.LastSeq != last {
					last, stable = info.State.LastSeq, time.Now()
				} else if time.Since(stable) > 3*time.Second {
					return
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Log("the log was still growing after 2 minutes; checking it anyway")
}

// keepLogs copies the processes' logs next to the test for diagnosis.
func keepLogs(t *testing.T, dir string) {
	out := filepath.Join(os.TempDir(), fmt.Sprintf("closeloop-chaos-logs-%d", time.Now().UnixNano()))
	if err := os.CopyFS(out, os.DirFS(dir)); err != nil {
		t.Logf("could not keep the process logs: %v", err)
		return
	}
	t.Logf("process logs kept in %s", out)
}
