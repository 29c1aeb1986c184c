// Package app holds intake's use cases: one file per command or query. Each
// loads a complaint from the event log, asks the domain what happens, and
// appends the result with the version it read (optimistic concurrency).
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// Producer names intake in the events it writes.
const Producer = "intake"

// Errors the API maps to status codes (with the domain's).
var (
	// ErrPermission: the caller is authenticated but may not do this.
	ErrPermission = errors.New("permission denied")
	// ErrRetryLater: a transient state another submission will resolve in
	// moments; the caller should retry.
	ErrRetryLater = errors.New("another submission of the same problem is in progress; retry")
)

// ValidationError carries every violated rule of a request.
type ValidationError struct{ Violations []domain.Violation }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("invalid request: %d field violation(s), first: %s: %s", len(e.Violations), e.Violations[0].Field, e.Violations[0].Rule)
}

func invalid(v []domain.Violation) error {
	if len(v) == 0 {
		return nil
	}
	return &ValidationError{Violations: v}
}

// Sealer seals and opens personal data with per-customer keys (libs/pii).
type Sealer interface {
	Seal(ctx context.Context, customerRef string, pd *eventsv1.PersonalData) (*eventsv1.SealedPersonalData, error)
	Open(ctx context.Context, sealed *eventsv1.SealedPersonalData) (*eventsv1.PersonalData, error)
	Erase(ctx context.Context, customerRef string) error
}

// Claim is the owner of a problem fingerprint in the duplicate index.
type Claim struct {
	ComplaintID string
	ClaimedAt   time.Time
	Revision    uint64
}

// DuplicateIndex is the atomic index behind cross-channel duplicate
// detection (a JetStream KV in production).
type DuplicateIndex interface {
	// Claim makes complaintID the owner of fingerprint unless someone owns
	// it already; it returns the owner either way and whether it is new.
	Claim(ctx context.Context, fingerprint, complaintID string, now time.Time) (owner Claim, created bool, err error)
	// Takeover replaces a stale owner, provided the entry is still at rev.
	Takeover(ctx context.Context, fingerprint, complaintID string, now time.Time, rev uint64) error
	// Link records that the submission whose own id would be submissionID
	// joined firstID; if it was already recorded, the recorded id wins and
	// is returned.
	Link(ctx context.Context, submissionID, firstID string) (string, error)
	// LinkedTo returns the complaint a submission was linked to, if any.
	LinkedTo(ctx context.Context, submissionID string) (string, bool, error)
}

// Config are the use cases' settings.
type Config struct {
	Limits domain.Limits
	// Secret keys the customer reference and problem fingerprint HMACs.
	Secret []byte
	// ClaimGrace is how long a duplicate-index entry whose complaint was
	// never written is respected before another submission takes it over
	// (its writer crashed between the index write and the append).
	ClaimGrace time.Duration
}

// App runs intake's use cases.
type App struct {
	store eventlog.Store
	keys  Sealer
	index DuplicateIndex
	clock clock.Clock
	cfg   Config
}

// New builds the use cases; every dependency is required.
func New(store eventlog.Store, keys Sealer, index DuplicateIndex, clk clock.Clock, cfg Config) (*App, error) {
	switch {
	case store == nil:
		return nil, errors.New("app: nil event store")
	case keys == nil:
		return nil, errors.New("app: nil key store")
	case index == nil:
		return nil, errors.New("app: nil duplicate index")
	case clk == nil:
		return nil, errors.New("app: nil clock")
	case len(cfg.Secret) < 16:
		return nil, errors.New("app: secret must be at least 16 bytes")
	}
	return &App{store: store, keys: keys, index: index, clock: clk, cfg: cfg}, nil
}

// load rebuilds a complaint from its stream.
func (a *App) load(ctx context.Context, id string) (domain.State, error) {
	recs, err := a.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
	if err != nil && !errors.Is(err, eventlog.ErrNotFound) {
		return domain.State{}, fmt.Errorf("read complaint: %w", err)
	}
	var s domain.State
	for _, r := range recs {
		s = domain.Evolve(s, r.Event)
	}
	return s, nil
}

// envelopes wraps payloads for one command.
func (a *App) envelopes(id, actor string, msgs []proto.Message) ([]*eventsv1.Envelope, error) {
	corr, err := uuid.NewV7()
	if err != nil {
		return nil, fmt.Errorf("correlation id: %w", err)
	}
	meta := eventlog.Meta{ComplaintID: id, Producer: Producer, Actor: actor, CorrelationID: corr.String(), OccurredAt: a.clock.Now()}
	out := make([]*eventsv1.Envelope, 0, len(msgs))
	for _, m := range msgs {
		e, err := eventlog.NewEvent(meta, m)
		if err != nil {
			return nil, err
		}
		if len(out) > 0 {
			e.CausationId = out[0].GetEventId()
		}
		out = append(out, e)
	}
	return out, nil
}

// update loads, decides and appends, re-deciding on a conflicting write.
// A decision with no events changes nothing and returns the loaded state.
func (a *App) update(ctx context.Context, id, actor string, decide func(domain.State) ([]proto.Message, error)) (domain.State, error) {
	for attempt := 0; ; attempt++ {
		s, err := a.load(ctx, id)
		if err != nil {
			return s, err
		}
		msgs, err := decide(s)
		if err != nil || len(msgs) == 0 {
			return s, err
		}
		envs, err := a.envelopes(id, actor, msgs)
		if err != nil {
			return s, err
		}
		_, err = a.store.Append(ctx, eventlog.ComplaintStream(id), s.Version, envs...)
		if errors.Is(err, eventlog.ErrConflict) && attempt < 10 {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("append: %w", err)
		}
		for i, e := range envs {
			e.Version = s.Version + uint64(i) + 1
			s = domain.Evolve(s, e)
		}
		return s, nil
	}
}
