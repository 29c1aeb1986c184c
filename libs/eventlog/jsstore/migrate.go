package jsstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// migrationStream holds the log during MigrateSubjects: a mirror of the old
// EVENTS with its subjects rewritten, then the source of the new EVENTS.
const migrationStream = StreamName + "_SUBJECTS_V2"

// oldLayoutTransform rewrites events.<kind>.<id>.<EventType> to
// events.<kind>.<id>.
var oldLayoutTransform = jetstream.SubjectTransformConfig{
	Source:      subjectRoot + ".*.*.*",
	Destination: subjectRoot + ".{{wildcard(1)}}.{{wildcard(2)}}",
}

// MigrateSubjects moves an EVENTS stream written with the old subject layout
// (events.<kind>.<id>.<EventType>) to one subject per entity stream, keeping
// every message's sequence (its log position) and payload, so hash chains
// and prev_position stay valid. Writers must be stopped first; the user
// needs the rights to create, update and delete streams.
//
// Two mirrors, since a stream cannot be renamed and two streams cannot
// capture the same subjects: EVENTS_SUBJECTS_V2 mirrors EVENTS through a
// subject transform; once it holds everything EVENTS is deleted, recreated
// as a mirror of EVENTS_SUBJECTS_V2, promoted to a normal stream with the
// store's configuration (cfg, as for New) and EVENTS_SUBJECTS_V2 deleted. A
// run interrupted after EVENTS was deleted resumes from EVENTS_SUBJECTS_V2.
// progress (may be nil) receives one line per step.
func MigrateSubjects(ctx context.Context, js jetstream.JetStream, cfg Config, progress func(string)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	want := cfg.streamConfig()

	old, err := js.Stream(ctx, StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		// Interrupted after the old log was deleted: the copy must exist.
		if _, err := js.Stream(ctx, migrationStream); err != nil {
			return fmt.Errorf("jsstore: migrate subjects: no stream %s and no %s to resume from: %w", StreamName, migrationStream, err)
		}
		say("resuming: %s is gone, %s holds the log", StreamName, migrationStream)
	case err != nil:
		return fmt.Errorf("jsstore: migrate subjects: %w", err)
	default:
		info := old.CachedInfo()
		if info.Config.Metadata[LayoutMetadataKey] == LayoutV2 {
			say("%s already has %s=%s: nothing to do", StreamName, LayoutMetadataKey, LayoutV2)
			return nil
		}
		if m := info.Config.Mirror; m != nil && m.Name == migrationStream {
			say("resuming: %s is being copied back from %s", StreamName, migrationStream)
			return promote(ctx, js, want, say)
		}
		if err := copyOldLog(ctx, js, old, cfg, say); err != nil {
			return err
		}
	}

	say("recreating %s as a mirror of %s", StreamName, migrationStream)
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name: StreamName, Description: want.Description, Storage: want.Storage, Replicas: want.Replicas,
		MaxMsgSize: want.MaxMsgSize, Mirror: &jetstream.StreamSource{Name: migrationStream},
	})
	if err != nil {
		return fmt.Errorf("jsstore: migrate subjects: create %s from %s: %w", StreamName, migrationStream, err)
	}
	return promote(ctx, js, want, say)
}

// copyOldLog mirrors the old EVENTS into migrationStream with the subject
// transform and deletes EVENTS once the copy holds all of it.
func copyOldLog(ctx context.Context, js jetstream.JetStream, old jetstream.Stream, cfg Config, say func(string, ...any)) error {
	info := old.CachedInfo()
	if info.Config.Mirror != nil || len(info.Config.Sources) > 0 {
		return fmt.Errorf("jsstore: migrate subjects: %s is itself a mirror or has sources; migrate its origin", StreamName)
	}
	say("copying %s (%d messages, positions %d-%d) into %s, events.<kind>.<id>.<EventType> -> events.<kind>.<id>",
		StreamName, info.State.Msgs, info.State.FirstSeq, info.State.LastSeq, migrationStream)
	copyCfg := jetstream.StreamConfig{
		Name:        migrationStream,
		Description: "Closeloop event log being migrated to one subject per entity stream",
		Storage:     info.Config.Storage,
		Replicas:    cfg.Replicas,
		MaxMsgSize:  max(info.Config.MaxMsgSize, maxMsgSize),
		Mirror: &jetstream.StreamSource{
			Name:              StreamName,
			SubjectTransforms: []jetstream.SubjectTransformConfig{oldLayoutTransform},
		},
	}
	_, err := js.CreateStream(ctx, copyCfg)
	if err != nil && !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return fmt.Errorf("jsstore: migrate subjects: create %s: %w", migrationStream, err)
	}
	last, err := caughtUp(ctx, js, migrationStream, StreamName)
	if err != nil {
		return err
	}
	// Promoted, so that EVENTS can mirror it back without a cycle. With no
	// subjects of its own it takes no writes.
	copyCfg.Mirror = nil
	if _, err := js.UpdateStream(ctx, copyCfg); err != nil {
		return fmt.Errorf("jsstore: migrate subjects: stop %s mirroring %s: %w", migrationStream, StreamName, err)
	}
	// The copy no longer follows EVENTS: anything stored there since would be lost.
	if st, err := streamState(ctx, js, StreamName); err != nil {
		return err
	} else if st.LastSeq != last {
		return fmt.Errorf("jsstore: migrate subjects: %s grew to %d while copied up to %d: a writer is still running; stop it, delete %s and run again",
			StreamName, st.LastSeq, last, migrationStream)
	}
	say("%s holds positions up to %d; deleting the old %s", migrationStream, last, StreamName)
	if err := js.DeleteStream(ctx, StreamName); err != nil {
		return fmt.Errorf("jsstore: migrate subjects: delete the old %s (its copy %s is complete): %w", StreamName, migrationStream, err)
	}
	return nil
}

// promote waits for the new EVENTS to hold all of migrationStream, makes it a
// normal stream with the store's configuration and deletes the copy.
func promote(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, say func(string, ...any)) error {
	last, err := caughtUp(ctx, js, StreamName, migrationStream)
	if err != nil {
		return err
	}
	say("%s holds positions up to %d; promoting it with %s=%s", StreamName, last, LayoutMetadataKey, LayoutV2)
	if _, err := js.UpdateStream(ctx, want); err != nil {
		return fmt.Errorf("jsstore: migrate subjects: promote %s (remove its mirror): %w", StreamName, err)
	}
	if err := js.DeleteStream(ctx, migrationStream); err != nil {
		return fmt.Errorf("jsstore: migrate subjects: %s is migrated, but deleting %s failed: %w", StreamName, migrationStream, err)
	}
	say("done: %s deleted", migrationStream)
	return nil
}

// caughtUp waits until mirror holds every message of origin, with the same
// first and last positions, and returns the last one. The origin must not
// grow meanwhile (writers stopped).
func caughtUp(ctx context.Context, js jetstream.JetStream, mirror, origin string) (uint64, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		o, err := streamState(ctx, js, origin)
		if err != nil {
			return 0, err
		}
		m, err := streamState(ctx, js, mirror)
		if err != nil {
			return 0, err
		}
		if m.Msgs == o.Msgs && m.LastSeq == o.LastSeq && (o.Msgs == 0 || m.FirstSeq == o.FirstSeq) {
			return m.LastSeq, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("jsstore: migrate subjects: %s holds %d messages up to %d, %s %d up to %d: %w",
				mirror, m.Msgs, m.LastSeq, origin, o.Msgs, o.LastSeq, ctx.Err())
		case <-tick.C:
		}
	}
}

func streamState(ctx context.Context, js jetstream.JetStream, name string) (jetstream.StreamState, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return jetstream.StreamState{}, fmt.Errorf("jsstore: migrate subjects: stream %s: %w", name, err)
	}
	return s.CachedInfo().State, nil
}
