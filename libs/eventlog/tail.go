package eventlog

import "context"

// TailReader is implemented by a store that can read a stream's tail
// without going through the stream from its first event: where a stream's
// events are found by scanning the log (jsstore), ReadStream costs the
// whole stream whatever fromVersion is, and a stream that grows forever (a
// technician's) makes every command on it slower.
type TailReader interface {
	// ReadStreamAfter returns what ReadStream(ctx, stream, fromVersion)
	// does, looking for it only at log positions after afterPosition: a
	// position the caller saw at or before the stream's version
	// fromVersion-1 (typically that event's own), so that every event of
	// the stream with version >= fromVersion is after it.
	//
	// A position past version fromVersion is the caller's mistake; a
	// backend that meets an event after it with a version above
	// fromVersion, where fromVersion itself was expected first, reads the
	// stream as ReadStream does instead. One past the stream's last event
	// reads as a stream with nothing after fromVersion-1: a writer that
	// goes on to append at fromVersion-1 gets ErrConflict, and re-reads.
	ReadStreamAfter(ctx context.Context, stream StreamID, fromVersion, afterPosition uint64) ([]Record, error)
}

// ReadTail reads stream from version fromVersion on, through s's
// TailReader when it has one and afterPosition is known (not 0), else with
// ReadStream.
func ReadTail(ctx context.Context, s Store, stream StreamID, fromVersion, afterPosition uint64) ([]Record, error) {
	if tr, ok := s.(TailReader); ok && afterPosition > 0 {
		return tr.ReadStreamAfter(ctx, stream, fromVersion, afterPosition)
	}
	return s.ReadStream(ctx, stream, fromVersion)
}
