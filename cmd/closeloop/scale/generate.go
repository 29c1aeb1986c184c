package scale

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock"
)

// Config of a generated log.
type Config struct {
	// Complaints to write (at least 1).
	Complaints int
	// OpenPercent of them are still open (default 5): complaint i is open
	// when i%100 < OpenPercent.
	OpenPercent int
	// Now is the time the log ends at: closed complaints lie 40 days to
	// three years before it, open ones within the 36 hours before it.
	Now time.Time
	// Seed makes the lifecycles reproducible (event ids are not).
	Seed uint64
	// Workers append complaints concurrently (default 64).
	Workers int
	// Progress, when set, is called about every second with the complaints done.
	Progress func(done int)
}

func (c Config) withDefaults() (Config, error) {
	if c.Complaints < 1 {
		return c, fmt.Errorf("scale: Complaints %d: must be at least 1", c.Complaints)
	}
	if c.OpenPercent == 0 {
		c.OpenPercent = 5
	}
	if c.OpenPercent < 0 || c.OpenPercent > 100 {
		return c, fmt.Errorf("scale: OpenPercent %d: must be 0..100", c.OpenPercent)
	}
	if c.Now.IsZero() {
		return c, errors.New("scale: Now: required (the time the log ends at)")
	}
	if c.Workers <= 0 {
		c.Workers = 64
	}
	return c, nil
}

// Open tells whether complaint i of the log is still open.
func (c Config) Open(i int) bool { return i%100 < c.OpenPercent }

// Summary is what Generate wrote.
type Summary struct {
	Complaints int           `json:"complaints"`
	Open       int           `json:"open"`
	Closed     int           `json:"closed"`
	Withdrawn  int           `json:"withdrawn"` // among Closed
	Events     int64         `json:"events"`
	Elapsed    time.Duration `json:"elapsed_ns"`
}

// Generate writes cfg.Complaints complaint lifecycles, the team rosters and
// the technicians into the event log on js, as the five services would have
// written them: their producers, event types and payloads, and the
// sla-clock's own decisions (slaclock.Simulator). Every append states the
// stream's version, so the hash chains and positions are those of a real log.
func Generate(ctx context.Context, js jetstream.JetStream, cfg Config) (Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Summary{}, err
	}
	sim, err := slaclock.NewSimulator()
	if err != nil {
		return Summary{}, err
	}
	start := time.Now()
	g := &generator{cfg: cfg, js: js, sim: sim, dir: newDirectory(cfg.Complaints)}
	if g.shared, err = g.newWriter(ctx); err != nil {
		return Summary{}, err
	}
	if err := g.writeDirectory(ctx); err != nil {
		return Summary{}, err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range cfg.Workers {
		w, err := g.newWriter(ctx)
		if err != nil {
			return Summary{}, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := g.complaint(ctx, w, i); err != nil {
					cancel(fmt.Errorf("complaint %d: %w", i, err))
					return
				}
				done.Add(1)
			}
		}()
	}
	stopProgress := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					cfg.Progress(int(done.Load()))
				}
			}
		}()
	}
feed:
	for i := range cfg.Complaints {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(stopProgress)
	if err := context.Cause(ctx); err != nil {
		return Summary{}, err
	}
	s := Summary{Complaints: cfg.Complaints, Events: g.events.Load(), Withdrawn: int(g.withdrawn.Load()), Elapsed: time.Since(start)}
	for i := range cfg.Complaints {
		if cfg.Open(i) {
			s.Open++
		}
	}
	s.Closed = s.Complaints - s.Open
	return s, nil
}

type generator struct {
	cfg Config
	js  jetstream.JetStream
	sim *slaclock.Simulator
	dir *directory

	// shared writes the technician and team streams, which complaints of
	// every worker touch: one writer under a lock keeps their versions.
	sharedMu    sync.Mutex
	shared      *writer
	techVersion map[string]uint64

	events    atomic.Int64
	withdrawn atomic.Int64
}

// writer appends through a store of its own, whose clock stamps recorded_at
// with the occurred_at of the events being appended (the log of a system
// that ran for years, not of one loaded in an afternoon).
type writer struct {
	store *jsstore.Store
	clk   *stampClock
}

func (g *generator) newWriter(ctx context.Context) (*writer, error) {
	clk := &stampClock{}
	store, err := jsstore.New(ctx, g.js, jsstore.Config{Clock: clk, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	return &writer{store: store, clk: clk}, nil
}

// append stores envs at expected and counts them. A lost reply or a
// server too busy to answer in time (it stalls for seconds while it writes
// out a big log) is retried for up to appendPatience: event ids make the
// retry idempotent.
func (g *generator) append(ctx context.Context, w *writer, stream eventlog.StreamID, expected uint64, at time.Time, envs []*ev.Envelope) error {
	w.clk.set(at)
	deadline := time.Now().Add(appendPatience)
	for attempt := 1; ; attempt++ {
		_, err := w.store.Append(ctx, stream, expected, envs...)
		if err == nil {
			g.events.Add(int64(len(envs)))
			return nil
		}
		if errors.Is(err, eventlog.ErrConflict) || errors.Is(err, eventlog.ErrInvalidEvent) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second))
	}
}

// appendPatience bounds the retries of one append.
const appendPatience = 3 * time.Minute

// writeDirectory writes the team rosters (members join, some change shifts
// or leave) and registers the technicians.
func (g *generator) writeDirectory(ctx context.Context) error {
	begin := g.cfg.Now.Add(-3*365*24*time.Hour - 24*time.Hour)
	meta := func(producer string, at time.Time) eventlog.Meta {
		return eventlog.Meta{Producer: producer, Actor: "manager-1", OccurredAt: at, PolicyVersion: policyRoute}
	}
	for ti, team := range teams {
		stream := eventlog.Stream(eventlog.KindTeam, team)
		var msgs []proto.Message
		roster := append([]string{g.dir.leads[team]}, g.dir.members[team]...)
		for i, m := range roster {
			role := roleAgent
			if i == 0 {
				role = roleLead
			}
			msgs = append(msgs, &ev.TeamMemberJoined{Team: team, MemberId: m, DisplayName: "Member " + m, Skills: skills, Role: role, OnShift: i%4 != 3})
		}
		if ti == 2 {
			msgs = append(msgs,
				&ev.TeamMemberJoined{Team: team, MemberId: g.dir.quality, DisplayName: "Quality Reviewer", Role: roleQuality, OnShift: true},
				&ev.TeamMemberJoined{Team: team, MemberId: g.dir.senior, DisplayName: "Senior Manager", Role: roleSenior, OnShift: true},
				&ev.TeamMemberJoined{Team: team, MemberId: "manager-1", DisplayName: "Manager", Role: roleManager, OnShift: true})
		}
		// Shift changes over the years, and a few who left.
		for i, m := range g.dir.members[team] {
			msgs = append(msgs, &ev.TeamMemberUpdated{Team: team, MemberId: m, Skills: skills, Role: roleAgent, OnShift: i%3 != 0})
			if i%10 == 9 {
				msgs = append(msgs, &ev.TeamMemberLeft{Team: team, MemberId: fmt.Sprintf("former-%d-%03d", ti, i)})
			}
		}
		var version uint64
		for i, m := range msgs {
			if l, ok := m.(*ev.TeamMemberLeft); ok {
				// A member must have joined before leaving.
				j, err := eventlog.NewEvent(meta("routing", begin), &ev.TeamMemberJoined{Team: team, MemberId: l.GetMemberId(), DisplayName: "Former", Skills: skills, Role: roleAgent, OnShift: true})
				if err != nil {
					return err
				}
				if err := g.append(ctx, g.shared, stream, version, begin, []*ev.Envelope{j}); err != nil {
					return fmt.Errorf("team %s: %w", team, err)
				}
				version++
			}
			at := begin.Add(time.Duration(i) * time.Hour)
			e, err := eventlog.NewEvent(meta("routing", at), m)
			if err != nil {
				return err
			}
			if err := g.append(ctx, g.shared, stream, version, at, []*ev.Envelope{e}); err != nil {
				return fmt.Errorf("team %s: %w", team, err)
			}
			version++
		}
	}
	g.techVersion = map[string]uint64{}
	services := []ev.ServiceType{ev.ServiceType_SERVICE_TYPE_REPAIR, ev.ServiceType_SERVICE_TYPE_INSTALLATION, ev.ServiceType_SERVICE_TYPE_MAINTENANCE, ev.ServiceType_SERVICE_TYPE_COMMISSIONING, ev.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT}
	for i, id := range g.dir.technicians {
		e, err := eventlog.NewEvent(meta("dispatch", begin), &ev.TechnicianRegistered{
			TechnicianId: id, DisplayName: "Technician " + id, ProductLines: []string{productLine}, Services: services,
			ServiceCentre: fmt.Sprintf("centre-%d", i%7), Region: g.dir.regions[i%len(g.dir.regions)], Outsourced: i%5 == 4,
			MaxConcurrentJobs: 3, MaxDailyJobs: 6,
		})
		if err != nil {
			return err
		}
		if err := g.techAppend(ctx, id, begin, e); err != nil {
			return err
		}
	}
	return nil
}

// techAppend appends one event to a technician's stream.
func (g *generator) techAppend(ctx context.Context, tech string, at time.Time, e *ev.Envelope) error {
	g.sharedMu.Lock()
	defer g.sharedMu.Unlock()
	v := g.techVersion[tech]
	if err := g.append(ctx, g.shared, eventlog.Stream(eventlog.KindTechnician, tech), v, at, []*ev.Envelope{e}); err != nil {
		return fmt.Errorf("technician %s: %w", tech, err)
	}
	g.techVersion[tech] = v + 1
	return nil
}

// stampClock is a clock.Clock whose Now is set before each append (the
// store stamps recorded_at with it); its timers run on the wall clock.
type stampClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ clock.Clock = (*stampClock)(nil)

func (c *stampClock) set(t time.Time) { c.mu.Lock(); c.now = t.UTC(); c.mu.Unlock() }

func (c *stampClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stampClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
func (c *stampClock) NewTimer(d time.Duration) clock.Timer   { return clock.Real{}.NewTimer(d) }
