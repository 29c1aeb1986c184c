package platform

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/anchor"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
)

// AnchorStores are where the log's anchors are: the ANCHORS stream, and
// the file CLOSELOOP_ANCHOR_FILE names, if any.
func AnchorStores(js jetstream.JetStream) []anchor.Store {
	stores := []anchor.Store{anchor.JetStream{JS: js}}
	if f := os.Getenv(EnvAnchorFile); f != "" {
		stores = append(stores, anchor.File{Path: f})
	}
	return stores
}

// RefuseLostLog is asked before anything that would create the EVENTS
// stream: a missing stream that an anchor vouches for is a lost log, and
// an empty one must not be created in its place (the *anchor.Mismatch).
func RefuseLostLog(ctx context.Context, js jetstream.JetStream) error {
	_, err := js.Stream(ctx, jsstore.StreamName)
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil // there, or not known: jsstore.New says which
	}
	if err := anchor.Check(ctx, anchor.Gone{}, AnchorStores(js)...); err != nil {
		return fmt.Errorf("refusing to create an empty event log: %w", err)
	}
	return nil
}

// healthTimeout bounds one readiness check of the log.
const healthTimeout = 2 * time.Second

// checkAnchors is the start-up check every service passes through: a log
// that lost what its anchors vouch for (deleted and recreated empty,
// shorter, its anchored message altered) is refused, naming the anchor,
// rather than served as a new log. It returns the same check for
// readiness (Deps.LogHealth). A backend that cannot tell its head (not
// an eventlog.HeadReader) is not checked.
func checkAnchors(ctx context.Context, js jetstream.JetStream, log eventlog.Store) (func(context.Context) error, error) {
	hr, ok := log.(eventlog.HeadReader)
	if !ok {
		return nil, nil
	}
	stores := AnchorStores(js)
	if err := anchor.Check(ctx, hr, stores...); err != nil {
		return nil, fmt.Errorf("refusing to start on this event log: %w", err)
	}
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, healthTimeout)
		defer cancel()
		if _, err := hr.Head(ctx); errors.Is(err, eventlog.ErrLogGone) {
			return fmt.Errorf("event log unavailable: %w", err)
		}
		if err := anchor.Check(ctx, hr, stores...); err != nil {
			return fmt.Errorf("event log unavailable: %w", err)
		}
		return nil
	}, nil
}
