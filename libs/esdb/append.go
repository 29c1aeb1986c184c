package esdb

import (
	"context"
	"fmt"

	kurrent "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// DedupWindow is how many of a stream's last events Append checks a batch's
// event ids against: an event already among them is a duplicate and is not
// stored again. (JetStream's window is a duration; KurrentDB keeps no index
// of event ids, so ours is a count, per stream.)
const DedupWindow = 64

// Append implements eventlog.Store.
//
// It first reads the stream's tail (its last DedupWindow events). That tells
// where the stream ends; when it is past the expected version, whether what
// follows that version is an idempotent retry of this batch (its event ids,
// in order) or someone else's events (a conflict), the way
// eventlog.RetriedPrefix defines it; and which events of the batch are
// already stored. The rest is sealed, chained to the stream's last event,
// and appended in one KurrentDB write (atomic: all or none) expecting the
// revision the read saw; a writer that got in between makes KurrentDB answer
// WrongExpectedVersion, which is eventlog.ErrConflict.
func (s *Store) Append(ctx context.Context, stream eventlog.StreamID, expectedVersion uint64, events ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	if err := eventlog.ValidateBatch(stream, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()

	tail, err := s.readTail(ctx, stream, DedupWindow)
	if err != nil {
		return eventlog.AppendResult{}, err
	}
	var current uint64
	if len(tail) > 0 {
		current = tail[len(tail)-1].Event.GetVersion()
	}
	var res eventlog.AppendResult
	switch {
	case current < expectedVersion:
		return res, conflict(stream, expectedVersion, fmt.Sprintf("the stream has %d events", current))
	case current > expectedVersion:
		after, err := s.after(ctx, stream, expectedVersion, tail, len(events)+1)
		if err != nil {
			return res, err
		}
		ids := make([]string, len(after))
		for i, r := range after {
			ids[i] = r.Event.GetEventId()
		}
		stored, ok := eventlog.RetriedPrefix(ids, events)
		if !ok {
			return res, conflict(stream, expectedVersion, fmt.Sprintf("the stream is at version %d with other events", current))
		}
		last := after[stored-1]
		res = eventlog.AppendResult{Version: last.Event.GetVersion(), Position: last.Position, Duplicates: stored}
		if stored == len(events) {
			return res, nil
		}
		// The stream ends with the stored part of the batch: the rest
		// follows it.
		events = events[stored:]
	}

	// Events already among the stream's last ones are not stored again.
	inTail := make(map[string]eventlog.Record, len(tail))
	for _, r := range tail {
		inTail[r.Event.GetEventId()] = r
	}
	fresh := events[:0:0]
	for _, e := range events {
		if r, dup := inTail[e.GetEventId()]; dup {
			res.Duplicates++
			res.Position = r.Position
			continue
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		res.Version = current
		return res, nil
	}

	// No Position: KurrentDB checks revisions, not log positions, so the
	// events carry no prev_position.
	end := eventlog.StreamEnd{Version: current}
	if len(tail) > 0 {
		end.Hash = eventlog.Hash(tail[len(tail)-1].Raw)
	}
	raws, err := eventlog.Seal(ctx, stream, end, s.clock.Now(), fresh)
	if err != nil {
		return eventlog.AppendResult{}, err
	}
	data := make([]kurrent.EventData, len(fresh))
	for i, e := range fresh {
		if data[i], err = EventData(e, raws[i]); err != nil {
			return eventlog.AppendResult{}, err
		}
	}
	db, err := s.conn.client()
	if err != nil {
		return res, err
	}
	_, err = db.AppendToStream(ctx, s.ns.StreamName(stream), kurrent.AppendToStreamOptions{ExpectedRevision: ExpectedRevision(current)}, data...)
	s.conn.check(db, err)
	if IsWrongExpectedVersion(err) {
		return res, conflict(stream, expectedVersion, "another writer appended first")
	}
	if err != nil {
		// The write may or may not have happened: a retry settles it.
		return res, fmt.Errorf("esdb: append to %s at version %d: %w", stream, current, err)
	}

	// The write result's position is the write's, not necessarily its last
	// event's: read that event back for its exact position.
	version := current + uint64(len(fresh))
	last, err := s.readStream(ctx, stream, version, 1)
	if err != nil || len(last) == 0 {
		return res, fmt.Errorf("esdb: appended to %s up to version %d, but reading back its position failed (retrying the append is safe): %v", stream, version, err)
	}
	res.Version, res.Position = version, last[0].Position
	return res, nil
}

// after returns up to limit events of stream after version v, from the
// tail when it reaches back that far, else from a forward read.
func (s *Store) after(ctx context.Context, stream eventlog.StreamID, v uint64, tail []eventlog.Record, limit int) ([]eventlog.Record, error) {
	if len(tail) > 0 && tail[0].Event.GetVersion() <= v+1 {
		out := tail[v+1-tail[0].Event.GetVersion():]
		return out[:min(len(out), limit)], nil
	}
	return s.readStream(ctx, stream, v+1, uint64(limit))
}

func conflict(stream eventlog.StreamID, expected uint64, why string) error {
	return fmt.Errorf("esdb: append to %s expecting version %d: %s: %w", stream, expected, why, eventlog.ErrConflict)
}
