// Package jsstore is the event log on NATS JetStream: one stream, EVENTS,
// holding every entity's events, one literal subject per entity stream:
// events.<kind>.<id>, the event type in the Closeloop-Event-Type header.
//
// Concurrency is optimistic per entity stream: the caller states the version
// (event count) it read; JetStream checks the *stream sequence* of the last
// message on events.<kind>.<id> (Nats-Expected-Last-Subject-Sequence). The
// store keeps the mapping version -> sequence explicit in a bounded cache of
// each stream's tail (version, sequence, hash of the stored bytes), so the
// common append is a single publish; a miss or a mismatch is settled by
// asking the server.
//
// A batch of several events is one publish per event, each expecting the
// last: what is stored is always a contiguous prefix, and a writer that cut
// in makes the rest a conflict. With Config.AtomicBatches it is one atomic
// batch publish (stream option AllowAtomicPublish), stored whole or not at
// all; README.md says what that costs on a single node.
//
// Event ids are message ids (Nats-Msg-Id): the server stores an id once within
// the duplicate window, and a retry whose expected version went stale because
// its own events were stored is recognised by reading what follows that
// version, so it reports duplicates rather than a conflict.
package jsstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
)

// Defaults and limits of Config.
const (
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultMaxAge          = 3 * 365 * 24 * time.Hour
	// MinMaxAge is the shortest retention accepted: complaints must stay
	// auditable for at least two years.
	MinMaxAge = 2 * 365 * 24 * time.Hour
	// KeepForever as Config.MaxAge keeps events with no age limit.
	KeepForever    time.Duration = -1
	DefaultTimeout               = 10 * time.Second
	DefaultTails                 = 100_000
)

// maxMsgSize is the largest message the stream takes: the largest event plus
// room for its headers (ids, expectations, trace context). The server's
// max_payload must be at least this.
const maxMsgSize = eventlog.MaxEventSize + 16<<10

// Config tunes the store. The zero value is a single-node setup with the
// defaults below.
type Config struct {
	// Replicas of the EVENTS stream: 1 (default) on a single node, 3 on a
	// cluster.
	Replicas int
	// DuplicateWindow within which an event id is stored only once
	// (default 10 minutes).
	DuplicateWindow time.Duration
	// MaxAge of events before JetStream may drop them: 0 means DefaultMaxAge
	// (3 years), KeepForever means no limit; anything under MinMaxAge (2
	// years) is refused.
	MaxAge time.Duration
	// Clock stamps RecordedAt (default clock.Real).
	Clock clock.Clock
	// Timeout bounds each server request when ctx has no deadline
	// (default 10s).
	Timeout time.Duration
	// Tails is how many streams' last (version, sequence, hash) are kept to
	// make appends a single publish (default 100,000; a miss costs one
	// extra request).
	Tails int
	// AtomicBatches stores a multi-event append as one JetStream atomic
	// batch: whole or not at all. Off by default: on a single file-store
	// node the server stages every batch in a store of its own, which
	// measured about 8x slower per event than one publish per event (see
	// README.md). Off, a concurrent writer may cut a batch, leaving a
	// stored prefix, and the writer re-decides from the stream.
	AtomicBatches bool
	// Signer signs every appended event after it is stamped (prev_hash
	// included), so that readers can tell which service wrote it
	// (libs/eventlog/signing). It appends only its own producer's events.
	// Nil: events are stored unsigned.
	Signer *signing.Signer
	// Logger receives one line for each message of the log a reader skips
	// because it is not an event (default slog.Default()).
	Logger *slog.Logger
	// MeterProvider makes the counters of skipped messages (default the
	// otel global).
	MeterProvider metric.MeterProvider
}

func (c Config) withDefaults() (Config, error) {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Replicas < 0 || c.Replicas > 5 {
		return c, fmt.Errorf("jsstore: config Replicas %d: must be between 1 and 5", c.Replicas)
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.DuplicateWindow < 0 {
		return c, fmt.Errorf("jsstore: config DuplicateWindow %s: must be positive", c.DuplicateWindow)
	}
	switch {
	case c.MaxAge == 0:
		c.MaxAge = DefaultMaxAge
	case c.MaxAge == KeepForever:
	case c.MaxAge < MinMaxAge:
		return c, fmt.Errorf("jsstore: config MaxAge %s: must be at least %s (two years), or KeepForever", c.MaxAge, MinMaxAge)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Tails <= 0 {
		c.Tails = DefaultTails
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MeterProvider == nil {
		c.MeterProvider = otel.GetMeterProvider()
	}
	return c, nil
}

// streamConfig is the EVENTS stream this store needs.
func (c Config) streamConfig() jetstream.StreamConfig {
	maxAge := c.MaxAge
	if maxAge == KeepForever {
		maxAge = 0 // JetStream: no age limit
	}
	return jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Closeloop event log: every entity's events, append-only",
		Subjects:    []string{subjectRoot + ".*.*"},
		Metadata:    map[string]string{LayoutMetadataKey: LayoutV2},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      maxAge,
		MaxMsgSize:  maxMsgSize,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
		AllowDirect: true,
		// Multi-event appends are atomic batches (see publishBatch).
		AllowAtomicPublish: true,
	}
}

// Store is an eventlog.Store on JetStream. Safe for concurrent use.
type Store struct {
	js        jetstream.JetStream
	stream    jetstream.Stream
	cfg       Config
	apiPrefix string
	tails     *tails
	replies   *replyMux
	// batchPrefix and batches name atomic batches uniquely across stores.
	batchPrefix string
	batches     atomic.Uint64
	// odd counts and logs the messages readers leave out (see skip.go).
	odd *oddMessages
}

var (
	_ eventlog.Store      = (*Store)(nil)
	_ eventlog.TailReader = (*Store)(nil)
)

// New makes sure the EVENTS stream exists with the configuration the log
// needs (creating it, or updating what JetStream lets change) and returns a
// store on it.
func New(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	stream, err := ensureStream(ctx, js, cfg.streamConfig())
	if err != nil {
		return nil, err
	}
	odd, err := newOddMessages(cfg.Logger, cfg.MeterProvider)
	if err != nil {
		return nil, err
	}
	replies, err := newReplyMux(js.Conn())
	if err != nil {
		return nil, err
	}
	return &Store{
		odd:       odd,
		js:        js,
		stream:    stream,
		cfg:       cfg,
		apiPrefix: apiPrefix(js.Options()),
		tails:     newTails(cfg.Tails),
		replies:   replies,
		// 32 hex digits and a counter: well under the server's 64 characters.
		batchPrefix: strings.ReplaceAll(uuid.NewString(), "-", "") + "-",
	}, nil
}

// ensureStream creates the stream, or brings an existing one to want. Fields
// JetStream cannot change (storage, retention policy) fail with an error
// naming them rather than silently running on a different log.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) (jetstream.Stream, error) {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Another process created it meanwhile: check it as an existing one.
			return ensureStream(ctx, js, want)
		}
		if err != nil {
			return nil, fmt.Errorf("jsstore: create stream %s: %w", want.Name, err)
		}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("jsstore: look up stream %s: %w", want.Name, err)
	}
	have := s.CachedInfo().Config
	if err := checkLayout(s.CachedInfo()); err != nil {
		return nil, err
	}
	var fixed []string
	if have.Storage != want.Storage {
		fixed = append(fixed, fmt.Sprintf("storage is %s, want %s", have.Storage, want.Storage))
	}
	if have.Retention != want.Retention {
		fixed = append(fixed, fmt.Sprintf("retention is %s, want %s", have.Retention, want.Retention))
	}
	if len(fixed) > 0 {
		return nil, fmt.Errorf("jsstore: stream %s exists with a configuration that cannot be changed in place: %s", want.Name, strings.Join(fixed, "; "))
	}
	if sameManagedConfig(have, want) {
		return s, nil
	}
	upd := have // keep what this store does not manage (metadata, placement…)
	upd.Description, upd.Subjects, upd.Discard = want.Description, want.Subjects, want.Discard
	upd.MaxAge, upd.MaxMsgSize, upd.Replicas, upd.Duplicates = want.MaxAge, want.MaxMsgSize, want.Replicas, want.Duplicates
	upd.DenyDelete, upd.DenyPurge, upd.AllowDirect = want.DenyDelete, want.DenyPurge, want.AllowDirect
	upd.AllowAtomicPublish = want.AllowAtomicPublish
	upd.Metadata = maps.Clone(have.Metadata)
	if upd.Metadata == nil {
		upd.Metadata = map[string]string{}
	}
	maps.Copy(upd.Metadata, want.Metadata)
	s, err = js.UpdateStream(ctx, upd)
	if err != nil {
		return nil, fmt.Errorf("jsstore: stream %s exists with a different configuration and updating it failed: %w", want.Name, err)
	}
	return s, nil
}

func sameManagedConfig(have, want jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, want.Subjects) && have.Discard == want.Discard &&
		have.MaxAge == want.MaxAge && have.MaxMsgSize == want.MaxMsgSize &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.DenyDelete == want.DenyDelete && have.DenyPurge == want.DenyPurge &&
		have.AllowDirect == want.AllowDirect && have.Description == want.Description &&
		have.AllowAtomicPublish == want.AllowAtomicPublish &&
		have.Metadata[LayoutMetadataKey] == want.Metadata[LayoutMetadataKey]
}

// ErrOldSubjectLayout is returned by New for an EVENTS stream that holds
// messages and does not record the subject layout this store writes: a log
// of the old layout (events.<kind>.<id>.<EventType>) must be migrated, not
// continued, or each entity's stream would be split over two layouts.
var ErrOldSubjectLayout = errors.New("jsstore: the EVENTS stream holds events in another subject layout")

// checkLayout refuses a stream holding messages without this store's layout
// in its metadata; an empty one is simply taken over.
func checkLayout(info *jetstream.StreamInfo) error {
	layout, ok := info.Config.Metadata[LayoutMetadataKey]
	if layout == LayoutV2 || (!ok && info.State.Msgs == 0) {
		return nil
	}
	found := fmt.Sprintf("metadata %s is %q", LayoutMetadataKey, layout)
	if !ok {
		found = fmt.Sprintf("no metadata %s: the original layout, events.<kind>.<id>.<EventType>", LayoutMetadataKey)
	}
	return fmt.Errorf("%w: stream %s holds %d messages, %s, this build writes %q (events.<kind>.<id>); "+
		"migrate it first with `closeloopctl migrate-subjects` (libs/eventlog/jsstore/README.md, \"Migrating a log to one subject per stream\")",
		ErrOldSubjectLayout, info.Config.Name, info.State.Msgs, found, LayoutV2)
}

// apiPrefix is the JetStream API prefix js sends requests to, for the direct
// get requests the jetstream package has no batched form of.
func apiPrefix(o jetstream.JetStreamOptions) string {
	switch {
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	default:
		return jetstream.DefaultAPIPrefix
	}
}

// withTimeout bounds ctx by the configured timeout unless it has a deadline.
func (s *Store) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.cfg.Timeout)
}

// Close implements eventlog.Store: it stops the store's reply subscription.
// The connection stays open: it belongs to the caller.
func (s *Store) Close() error { return s.replies.close() }
