// Package esdb is the event log on EventStoreDB/KurrentDB, for deployments
// that keep KurrentDB as the system of record: one KurrentDB stream per
// entity, named like the eventlog.StreamID ("complaint-<id>"), optimistic
// appends through ExpectedRevision, idempotent by event id, and the same hash
// chain as every other backend. The relay (package relay) then copies each
// event to the JetStream bus the services consume.
//
// What is stored: the sealed envelope's protobuf bytes as the event's data
// (binary content, so Record.Raw is exactly what was stored and the chain
// holds), its type as the event type, and the envelope without its payload
// as JSON metadata (see Metadata). Positions are prepare positions (see
// PositionOf).
//
// The client is imported as "kurrent" in this module to keep it apart from
// this package's name.
package esdb

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
)

// DefaultTimeout bounds each server call when the caller's context has none.
const DefaultTimeout = 10 * time.Second

// Config tunes the store.
type Config struct {
	// Clock stamps RecordedAt (default clock.Real).
	Clock clock.Clock
	// Timeout bounds each server call when ctx has no deadline (default 10s).
	Timeout time.Duration
	// Namespace of the streams (default: none, streams named as the
	// eventlog names them).
	Namespace Namespace
}

// Store is an eventlog.Store on KurrentDB. Safe for concurrent use.
type Store struct {
	conn      *Conn
	ns        Namespace
	clock     clock.Clock
	timeout   time.Duration
	positions *positions
}

var _ eventlog.Store = (*Store)(nil)

// New returns a store on a connection (see Dial); Close does not close it.
func New(conn *Conn, cfg Config) (*Store, error) {
	if conn == nil {
		return nil, fmt.Errorf("esdb: connection: required")
	}
	if err := cfg.Namespace.Validate(); err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &Store{conn: conn, ns: cfg.Namespace, clock: cfg.Clock, timeout: cfg.Timeout, positions: newPositions(4096)}, nil
}

// clientLogger forwards the client's warnings and errors to logger.
func clientLogger(logger *slog.Logger) kurrent.LoggingFunc {
	if logger == nil {
		return kurrent.NoopLogging()
	}
	return func(level kurrent.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		switch level {
		case kurrent.LogWarn:
			lvl = slog.LevelWarn
		case kurrent.LogError:
			lvl = slog.LevelError
		case kurrent.LogInfo:
			lvl = slog.LevelInfo
		}
		logger.Log(context.Background(), lvl, "kurrentdb client: "+fmt.Sprintf(format, args...))
	}
}

// withTimeout bounds ctx by the configured timeout unless it has a deadline.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// Close implements eventlog.Store. The connection stays open: it belongs to
// the caller.
func (s *Store) Close() error { return nil }

// positions remembers the full $all position (commit, prepare) of events
// this store has seen, by eventlog position. KurrentDB only starts a read of
// $all at a record boundary given as (commit, prepare), while an eventlog
// position is one number and callers resume from "last position + 1"; the
// store starts from the closest remembered position before the one asked
// for, or from the start of $all when it remembers none, and skips what
// comes before. Forgetting is safe: it only costs a longer scan.
type positions struct {
	mu   sync.Mutex
	max  int
	seen map[uint64]kurrent.Position
}

func newPositions(max int) *positions {
	return &positions{max: max, seen: make(map[uint64]kurrent.Position)}
}

func (p *positions) remember(pos kurrent.Position) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.seen) >= p.max {
		clear(p.seen)
	}
	p.seen[PositionOf(pos)] = pos
}

// before returns where to start reading $all so that the event at eventlog
// position from (if any) is not missed, whether the server's read is
// inclusive or exclusive of its start: the largest remembered position
// strictly below from, else the start of $all.
func (p *positions) before(from uint64) kurrent.AllPosition {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best uint64
	var found kurrent.Position
	ok := false
	for k, v := range p.seen {
		if k < from && (!ok || k > best) {
			best, found, ok = k, v, true
		}
	}
	if !ok {
		return kurrent.Start{}
	}
	return found
}
