// Package app holds intake's use cases: one file per command or query. Each
// reads a complaint from the event log, asks the domain what happens, and
// appends the result at the version it read, through the kernel's command
// loop (libs/kernel), which stamps, traces and retries every write.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// Producer names intake in the events it writes.
const Producer = "intake"

// instrumentation names intake's tracer: the kernel's writer uses the same
// name for its spans, so a submission and its commands read as one
// service's.
const instrumentation = "github.com/closeloop/closeloop/services/" + Producer

// invalid turns the domain's violations into the kernel's refusal, or nil.
func invalid(v []domain.Violation) error {
	if len(v) == 0 {
		return nil
	}
	return kernel.Invalid(v...)
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
	// Release removes fingerprint's entry if complaintID owns it: a claim
	// made by a submission that was then refused.
	Release(ctx context.Context, fingerprint, complaintID string) error
	// Link records that the submission whose own id would be submissionID
	// joined firstID; if it was already recorded, the recorded id wins and
	// is returned.
	Link(ctx context.Context, submissionID, firstID string) (string, error)
	// LinkedTo returns the complaint a submission was linked to, if any.
	LinkedTo(ctx context.Context, submissionID string) (string, bool, error)
	// Unlink removes submissionID's link if it still names firstID: a link
	// never recorded on a first complaint that has ended since.
	Unlink(ctx context.Context, submissionID, firstID string) error
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
	store  eventlog.Store
	w      *kernel.Writer
	tracer trace.Tracer
	keys   Sealer
	index  DuplicateIndex
	clock  clock.Clock
	cfg    Config
}

// New builds the use cases on the service's log, clock and tracer provider
// (every command is a span of it); every dependency is required.
func New(store eventlog.Store, keys Sealer, index DuplicateIndex, clk clock.Clock, tp trace.TracerProvider, cfg Config) (*App, error) {
	switch {
	case keys == nil:
		return nil, errors.New("app: nil key store")
	case index == nil:
		return nil, errors.New("app: nil duplicate index")
	case len(cfg.Secret) < 16:
		return nil, errors.New("app: secret must be at least 16 bytes")
	}
	w, err := kernel.NewWriter(store, Producer, clk, tp)
	if err != nil {
		return nil, fmt.Errorf("app: %w", err)
	}
	return &App{store: store, w: w, tracer: tp.Tracer(instrumentation), keys: keys, index: index, clock: clk, cfg: cfg}, nil
}

// fold rebuilds a complaint from its stream's records. A stream that does
// not start with ComplaintReceived holds no complaint intake accepted:
// domain.ErrNotFound when empty, kernel.ErrNotReceived otherwise.
func fold(recs []eventlog.Record) (domain.State, error) {
	if err := kernel.Received(recs); err != nil {
		if errors.Is(err, kernel.ErrNotReceived) {
			return domain.State{}, err
		}
		return domain.State{}, domain.ErrNotFound
	}
	var s domain.State
	for _, r := range recs {
		s = domain.Evolve(s, r.Event)
	}
	return s, nil
}

// load reads a complaint for a query, or a decision made outside the
// command loop.
func (a *App) load(ctx context.Context, id string) (domain.State, error) {
	recs, err := a.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		return domain.State{}, fmt.Errorf("read complaint: %w", err)
	}
	return fold(recs)
}

// update runs one agent's or adapter's command on a complaint: the kernel
// reads, folds, decides, stamps (a new correlation, the caller as actor)
// and appends, re-deciding on a conflicting write. A decision with no
// events changes nothing and returns the state read.
func (a *App) update(ctx context.Context, name, id string, p auth.Principal, decide func(domain.State) ([]proto.Message, error)) (domain.State, error) {
	res, err := kernel.Execute(ctx, a.w, kernel.Command[domain.State]{
		Name:        name,
		Stream:      eventlog.ComplaintStream(id),
		ComplaintID: id,
		Cause:       kernel.Cause{Actor: p.ID},
		Fold:        fold,
		Decide:      func(s domain.State, _ time.Time) ([]proto.Message, error) { return decide(s) },
	})
	if err != nil {
		return res.State, err
	}
	s := res.State
	for _, e := range res.Events {
		s = domain.Evolve(s, e)
	}
	s.Version = res.Version // the envelopes appended need not carry theirs
	return s, nil
}
