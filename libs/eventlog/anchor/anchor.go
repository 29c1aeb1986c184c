// Package anchor keeps the event log's head outside the log: where it
// ended (position, SHA-256 of the bytes stored there, message count) and
// when, in a second JetStream stream (ANCHORS) and in a file of the data
// directory. An empty or shorter log whose anchor says otherwise is a lost
// log, not a new one: Check tells them apart, services refuse to start on
// it, readiness reports it and `closeloopctl verify --all` exits 3.
//
// Anchors are not signed yet: Anchor carries KeyID and Signature, Payload
// is what a Signer signs, and Writer.Signer is the seam for the per-service
// Ed25519 keys of event signing.
package anchor

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
)

// Anchor vouches for the head of the log as a writer saw it.
type Anchor struct {
	// Position of the last message of the log.
	Position uint64 `json:"position"`
	// SHA256 is the hex SHA-256 of the bytes stored at Position.
	SHA256 string `json:"sha256"`
	// Messages is how many messages the log held.
	Messages uint64 `json:"messages"`
	// At is when the head was read (the writer's clock).
	At time.Time `json:"at"`
	// KeyID and Signature sign Payload; empty while anchors are unsigned.
	KeyID     string `json:"key_id,omitempty"`
	Signature []byte `json:"signature,omitempty"`
}

// Of makes the anchor of head, read at at.
func Of(head eventlog.Head, at time.Time) Anchor {
	return Anchor{Position: head.Position, SHA256: hex.EncodeToString(head.Hash), Messages: head.Messages, At: at.UTC()}
}

// Payload is what a Signer signs: the anchor without its signature, as
// JSON.
func (a Anchor) Payload() []byte {
	a.KeyID, a.Signature = "", nil
	b, _ := json.Marshal(a) // a struct of plain fields: never fails
	return b
}

// Signer signs an anchor's Payload (see Writer.Signer).
type Signer interface {
	Sign(payload []byte) (keyID string, signature []byte, err error)
}

// Store keeps anchors: the latest one matters.
type Store interface {
	// Name says where the anchors are, for messages ("ANCHORS stream",
	// "file data/anchor.json").
	Name() string
	// Save stores a new latest anchor.
	Save(ctx context.Context, a Anchor) error
	// Latest returns the latest anchor; ok is false when there is none.
	Latest(ctx context.Context) (a Anchor, ok bool, err error)
}

// ErrLogBehind is what a *Mismatch is (errors.Is): the log no longer holds
// what an anchor vouches for.
var ErrLogBehind = errors.New("anchor: the event log does not hold what its anchor vouches for")

// Mismatch says which anchor the log fails and how.
type Mismatch struct {
	Store  string // Store.Name of the anchor
	Anchor Anchor
	Reason string
}

func (m *Mismatch) Error() string {
	return fmt.Sprintf("event log missing or damaged: the anchor in %s (written %s) vouches for %d messages up to log position %d, but %s; "+
		"do not write to this log: restore it from a backup (README, \"Missing or damaged log\")",
		m.Store, m.Anchor.At.Format(time.RFC3339), m.Anchor.Messages, m.Anchor.Position, m.Reason)
}

// Is makes errors.Is(err, ErrLogBehind) hold.
func (m *Mismatch) Is(target error) bool { return target == ErrLogBehind }

// Check compares log with the latest anchor of each store and returns a
// *Mismatch for the first the log fails: the log is gone, ends before the
// anchored position, or holds other bytes there (or none). A store without
// an anchor vouches for nothing. Other errors (a store or the log not
// answering) are returned as they are.
func Check(ctx context.Context, log eventlog.HeadReader, stores ...Store) error {
	for _, s := range stores {
		a, ok, err := s.Latest(ctx)
		if err != nil {
			return fmt.Errorf("anchor: read the latest anchor in %s: %w", s.Name(), err)
		}
		if !ok || a.Position == 0 {
			continue
		}
		if reason, err := against(ctx, log, a); err != nil {
			return err
		} else if reason != "" {
			return &Mismatch{Store: s.Name(), Anchor: a, Reason: reason}
		}
	}
	return nil
}

// against says what is wrong with log for anchor a ("" when nothing is).
func against(ctx context.Context, log eventlog.HeadReader, a Anchor) (string, error) {
	head, err := log.Head(ctx)
	if errors.Is(err, eventlog.ErrLogGone) {
		return "the log is gone (" + err.Error() + ")", nil
	}
	if err != nil && !errors.Is(err, eventlog.ErrNotFound) { // the head itself unreadable: looked at below
		return "", err
	}
	if err == nil && head.Position < a.Position {
		if head.Position == 0 {
			return "the log is empty", nil
		}
		return fmt.Sprintf("the log ends at position %d", head.Position), nil
	}
	raw, err := log.StoredAt(ctx, a.Position)
	switch {
	case errors.Is(err, eventlog.ErrNotFound):
		return fmt.Sprintf("the message at position %d is missing (altered or lost on disk)", a.Position), nil
	case errors.Is(err, eventlog.ErrLogGone):
		return "the log is gone", nil
	case err != nil:
		return "", err
	}
	if want, _ := hex.DecodeString(a.SHA256); !bytes.Equal(eventlog.Hash(raw), want) {
		return fmt.Sprintf("the message at position %d is not the one anchored (its SHA-256 differs: altered or replaced)", a.Position), nil
	}
	return "", nil
}

// Gone is the HeadReader of a log that does not exist: checked against
// it, any anchor fails. A setup that would create the log checks Gone
// first, so that it never creates an empty log in place of a lost one.
type Gone struct{}

// Head implements eventlog.HeadReader.
func (Gone) Head(context.Context) (eventlog.Head, error) {
	return eventlog.Head{}, fmt.Errorf("%w: it does not exist", eventlog.ErrLogGone)
}

// StoredAt implements eventlog.HeadReader.
func (Gone) StoredAt(context.Context, uint64) ([]byte, error) {
	return nil, fmt.Errorf("%w: it does not exist", eventlog.ErrLogGone)
}
