// Package natsclock is a test facility: a clock.Clock shared by separate
// processes, whose time is whatever a controller last wrote to one key of a
// JetStream KV bucket. The fault-injection harness (cmd/closeloop/chaos)
// runs the service binaries on it, so that it can move time forward for all
// of them at once; a restarted process reads the current time back from the
// bucket. Production uses clock.Real: a service gets this clock only when
// CLOSELOOP_CLOCK=nats-kv:<bucket> is set (libs/platform).
package natsclock

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/clock"
)

// Key is the KV key that holds the time (RFC 3339 with nanoseconds, UTC).
const Key = "now"

// Clock follows the time in the bucket. Its zero value is not usable; see New.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	watch  jetstream.KeyWatcher
	stop   context.CancelFunc
}

var _ clock.Clock = (*Clock)(nil)

// Bucket opens the clock's bucket, creating it if needed.
func Bucket(ctx context.Context, js jetstream.JetStream, bucket string) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, History: 1, Storage: jetstream.FileStorage})
	}
	if err != nil {
		return nil, fmt.Errorf("natsclock: bucket %s: %w", bucket, err)
	}
	return kv, nil
}

// Set publishes t as the time of every clock following the bucket. The
// controller never moves time backwards; Set refuses to.
func Set(ctx context.Context, kv jetstream.KeyValue, t time.Time) error {
	if e, err := kv.Get(ctx, Key); err == nil {
		cur, perr := time.Parse(time.RFC3339Nano, string(e.Value()))
		if perr == nil && t.Before(cur) {
			return fmt.Errorf("natsclock: set %s: before the current time %s", t.UTC().Format(time.RFC3339Nano), cur.Format(time.RFC3339Nano))
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("natsclock: read time: %w", err)
	}
	if _, err := kv.Put(ctx, Key, []byte(t.UTC().Format(time.RFC3339Nano))); err != nil {
		return fmt.Errorf("natsclock: set time: %w", err)
	}
	return nil
}

// New follows the time in bucket. It waits (until ctx ends) for the time to
// have been set, so a process never starts with a zero clock. The watch
// lives until Stop; when the server is away the clock stands still and
// catches up when the watch resumes.
func New(ctx context.Context, js jetstream.JetStream, bucket string) (*Clock, error) {
	kv, err := Bucket(ctx, js, bucket)
	if err != nil {
		return nil, err
	}
	w, err := kv.Watch(context.Background(), Key)
	if err != nil {
		return nil, fmt.Errorf("natsclock: watch %s: %w", bucket, err)
	}
	pollCtx, stop := context.WithCancel(context.Background())
	c := &Clock{watch: w, stop: stop}
	// The watcher first delivers the current value (or nil when the key
	// is unset) and then every update.
	for c.Now().IsZero() {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("natsclock: watch closed")
			}
			if e != nil {
				c.apply(e)
			}
		case <-ctx.Done():
			c.Stop()
			return nil, fmt.Errorf("natsclock: waiting for the time in %s: %w", bucket, ctx.Err())
		}
	}
	go func() {
		for e := range w.Updates() {
			if e != nil {
				c.apply(e)
			}
		}
	}()
	// A backstop for a watch that does not come back after the server
	// restarts: read the key now and then.
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-pollCtx.Done():
				return
			case <-tick.C:
			}
			gctx, cancel := context.WithTimeout(pollCtx, 2*time.Second)
			if e, err := kv.Get(gctx, Key); err == nil {
				c.apply(e)
			}
			cancel()
		}
	}()
	return c, nil
}

// Stop ends the watch; the clock then stands still.
func (c *Clock) Stop() {
	c.stop()
	_ = c.watch.Stop()
}

func (c *Clock) apply(e jetstream.KeyValueEntry) {
	if e.Operation() != jetstream.KeyValuePut {
		return
	}
	t, err := time.Parse(time.RFC3339Nano, string(e.Value()))
	if err != nil {
		return // not a time: the controller's mistake, keep the last one
	}
	c.set(t)
}

// set moves the clock to t (never backwards) and fires the timers now due,
// earliest deadline first.
func (c *Clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.now) {
		return
	}
	c.now = t.UTC()
	sort.SliceStable(c.timers, func(i, j int) bool { return c.timers[i].due.Before(c.timers[j].due) })
	kept := c.timers[:0]
	for _, tm := range c.timers {
		if !tm.due.After(c.now) {
			tm.fireLocked(c.now)
			continue
		}
		kept = append(kept, tm)
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// Now returns the latest time read from the bucket.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After fires once the bucket's time has moved d past now.
func (c *Clock) After(d time.Duration) <-chan time.Time { return c.NewTimer(d).C() }

// NewTimer makes a timer on the bucket's time.
func (c *Clock) NewTimer(d time.Duration) clock.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	t.armLocked(d)
	return t
}

type timer struct {
	c     *Clock
	ch    chan time.Time
	due   time.Time
	armed bool
}

func (t *timer) armLocked(d time.Duration) {
	t.due, t.armed = t.c.now.Add(d), true
	if d <= 0 {
		t.fireLocked(t.c.now)
		return
	}
	t.c.timers = append(t.c.timers, t)
}

func (t *timer) fireLocked(now time.Time) {
	t.armed = false
	select {
	case t.ch <- now:
	default:
	}
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.armed = false
	t.c.removeLocked(t)
	return was
}

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.armed
	t.c.removeLocked(t)
	t.armLocked(d)
	return was
}

func (c *Clock) removeLocked(t *timer) {
	for i, x := range c.timers {
		if x == t {
			c.timers = append(c.timers[:i], c.timers[i+1:]...)
			return
		}
	}
}
