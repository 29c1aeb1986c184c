package esdb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// readPage is how many events one server read asks for.
const readPage = 1024

// ReadStream implements eventlog.Store.
func (s *Store) ReadStream(ctx context.Context, stream eventlog.StreamID, fromVersion uint64) ([]eventlog.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out := []eventlog.Record{}
	from := max(fromVersion, 1)
	for {
		recs, err := s.readStream(ctx, stream, from, readPage)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if len(recs) < readPage {
			return out, nil
		}
		from += uint64(len(recs))
	}
}

// readStream reads up to limit events of stream from version from (>= 1).
// A stream that does not exist has no events.
func (s *Store) readStream(ctx context.Context, stream eventlog.StreamID, from, limit uint64) ([]eventlog.Record, error) {
	return s.read(ctx, stream, kurrent.ReadStreamOptions{Direction: kurrent.Forwards, From: FromVersion(from)}, limit)
}

// readTail reads the last limit events of stream, oldest first.
func (s *Store) readTail(ctx context.Context, stream eventlog.StreamID, limit uint64) ([]eventlog.Record, error) {
	recs, err := s.read(ctx, stream, kurrent.ReadStreamOptions{Direction: kurrent.Backwards, From: kurrent.End{}}, limit)
	slices.Reverse(recs)
	return recs, err
}

func (s *Store) read(ctx context.Context, stream eventlog.StreamID, opts kurrent.ReadStreamOptions, limit uint64) ([]eventlog.Record, error) {
	from := "the start"
	switch p := opts.From.(type) {
	case kurrent.StreamRevision:
		from = fmt.Sprintf("version %d", VersionOf(p.Value))
	case kurrent.End:
		from = "the end backwards"
	}
	db, err := s.conn.client()
	if err != nil {
		return nil, err
	}
	rs, err := db.ReadStream(ctx, s.ns.StreamName(stream), opts, limit)
	s.conn.check(db, err)
	if isStreamNotFound(err) {
		return []eventlog.Record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("esdb: read %s from %s: %w", stream, from, err)
	}
	defer rs.Close()
	out := []eventlog.Record{}
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if isStreamNotFound(err) {
			return []eventlog.Record{}, nil
		}
		if err != nil {
			return nil, fmt.Errorf("esdb: read %s from %s: %w", stream, from, err)
		}
		rec, err := s.decode(ev)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
}

// decode turns a read event into a Record and remembers its $all position.
func (s *Store) decode(ev *kurrent.ResolvedEvent) (eventlog.Record, error) {
	e := ev.OriginalEvent()
	rec, err := Decode(e)
	if err != nil {
		return rec, err
	}
	s.positions.remember(e.Position)
	return rec, nil
}

// ReadAll implements eventlog.Store. It reads $all forwards and keeps the
// events of the namespace's closeloop streams (the client has no filtered
// read of $all, only filtered subscriptions); reading $all needs an admin
// user on a secure server.
func (s *Store) ReadAll(ctx context.Context, fromPosition uint64, maxEvents int) ([]eventlog.Record, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	out := []eventlog.Record{}
	if maxEvents <= 0 {
		return out, nil
	}
	from := max(fromPosition, 1)
	start := s.positions.before(from)
	for {
		db, err := s.conn.client()
		if err != nil {
			return nil, err
		}
		rs, err := db.ReadAll(ctx, kurrent.ReadAllOptions{Direction: kurrent.Forwards, From: start}, readPage)
		s.conn.check(db, err)
		if err != nil {
			return nil, fmt.Errorf("esdb: read $all from position %d: %w", from, err)
		}
		n, last, err := s.collect(rs, from, maxEvents, &out)
		rs.Close()
		if err != nil || len(out) == maxEvents || n < readPage {
			return out, err
		}
		// Next page: from the last event read, skipping it.
		start, from = last, max(from, PositionOf(last)+1)
	}
}

// collect appends to out the closeloop events of rs at or after from, up to
// maxEvents in out. It returns how many events rs gave and the position of
// the last one.
func (s *Store) collect(rs *kurrent.ReadStream, from uint64, maxEvents int, out *[]eventlog.Record) (int, kurrent.Position, error) {
	n := 0
	var last kurrent.Position
	for len(*out) < maxEvents {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, last, fmt.Errorf("esdb: read $all from position %d: %w", from, err)
		}
		n++
		e := ev.OriginalEvent()
		last = e.Position
		if _, ours := s.ns.StreamID(e.StreamID); !ours || PositionOf(e.Position) < from {
			continue
		}
		rec, err := s.decode(ev)
		if err != nil {
			return n, last, err
		}
		*out = append(*out, rec)
	}
	return n, last, nil
}

// Follow implements eventlog.Store with a catch-up subscription to $all,
// filtered on the server to the closeloop streams. A dropped subscription
// (server restart, network) ends Follow with an error; the caller resumes
// from the position after the last event it got.
func (s *Store) Follow(ctx context.Context, fromPosition uint64, fn func(eventlog.Record) error) error {
	from := max(fromPosition, 1)
	db, err := s.conn.client()
	if err != nil {
		return err
	}
	sub, err := db.SubscribeToAll(ctx, kurrent.SubscribeToAllOptions{
		From:   s.positions.before(from),
		Filter: &kurrent.SubscriptionFilter{Type: kurrent.StreamFilterType, Prefixes: s.ns.Prefixes()},
	})
	s.conn.check(db, err)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("esdb: subscribe to $all from position %d: %w", from, err)
	}
	defer sub.Close()
	for {
		ev := sub.Recv()
		switch {
		case ev.SubscriptionDropped != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("esdb: subscription to $all dropped: %w", ev.SubscriptionDropped.Error)
		case ev.EventAppeared != nil:
			e := ev.EventAppeared.OriginalEvent()
			if _, ours := s.ns.StreamID(e.StreamID); !ours || PositionOf(e.Position) < from {
				continue
			}
			rec, err := s.decode(ev.EventAppeared)
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
}
