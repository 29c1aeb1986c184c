package jsstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
)

var _ eventlog.HeadReader = (*Store)(nil)

// Head implements eventlog.HeadReader from the stream's state as the
// server reports it now (not the store's cached info).
func (s *Store) Head(ctx context.Context) (eventlog.Head, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	info, err := s.stream.Info(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return eventlog.Head{}, fmt.Errorf("%w: stream %s does not exist", eventlog.ErrLogGone, StreamName)
	}
	if err != nil {
		return eventlog.Head{}, fmt.Errorf("jsstore: head of %s: %w", StreamName, err)
	}
	h := eventlog.Head{Position: info.State.LastSeq, Messages: info.State.Msgs}
	if h.Position == 0 || h.Messages == 0 {
		return eventlog.Head{Position: h.Position}, nil
	}
	raw, err := s.storedAt(ctx, h.Position)
	if err != nil {
		return eventlog.Head{}, err
	}
	h.Hash = eventlog.Hash(raw)
	return h, nil
}

// StoredAt implements eventlog.HeadReader.
func (s *Store) StoredAt(ctx context.Context, position uint64) ([]byte, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	return s.storedAt(ctx, position)
}

func (s *Store) storedAt(ctx context.Context, position uint64) ([]byte, error) {
	m, err := s.stream.GetMsg(ctx, position)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return nil, fmt.Errorf("%w: no message at log position %d", eventlog.ErrNotFound, position)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, fmt.Errorf("%w: stream %s does not exist", eventlog.ErrLogGone, StreamName)
	case err != nil:
		return nil, fmt.Errorf("jsstore: read log position %d: %w", position, err)
	}
	return m.Data, nil
}
