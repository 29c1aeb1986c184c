package jsstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func responseBy(t testing.TB, producer, id string) *eventsv1.Envelope {
	return signingtest.Event(t, producer, id, &eventsv1.ResponseRecorded{Summary: "called back", RespondedBy: "agent-7"})
}

// A correctly chained event that is unsigned, or signed by a service that
// may not write its type, is named by verify with a keyring and rejected by
// the readers' Verifier; the events the store signed pass both.
func TestForgedEventsFailVerificationAndTheVerifier(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	routing := signingtest.Signer(t, "routing-1", "routing")
	dispatch := signingtest.Signer(t, "dispatch-1", "dispatch")
	keys := signingtest.Keyring(t, routing, dispatch)
	s := newStore(t, js, jsstore.Config{Signer: routing})
	v, err := eventlog.NewVerifier(s, eventlog.VerifierOptions{Keys: keys})
	must(t, err)

	cases := []struct {
		name   string
		forge  func(stream eventlog.StreamID, id string) uint64
		reason string
	}{
		{"unsigned", func(stream eventlog.StreamID, id string) uint64 {
			return signingtest.Forge(t, ctx, js, s, stream, responseBy(t, "routing", id), nil)
		}, "unsigned"},
		{"dispatch writing a routing type", func(stream eventlog.StreamID, id string) uint64 {
			return signingtest.Forge(t, ctx, js, s, stream, responseBy(t, "dispatch", id), dispatch)
		}, "dispatch may not write ResponseRecorded"},
		{"dispatch's key on routing's name", func(stream eventlog.StreamID, id string) uint64 {
			return signingtest.Forge(t, ctx, js, s, stream, responseBy(t, "routing", id), dispatch)
		}, "names producer \"routing\""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := uuid.NewString()
			stream := eventlog.ComplaintStream(id)
			// One append of two: the second is signed once restamped.
			_, err := s.Append(ctx, stream, 0, responseBy(t, "routing", id), responseBy(t, "routing", id))
			must(t, err)
			pos := c.forge(stream, id)

			if broken, _, err := eventlog.VerifyStream(ctx, s, stream); err != nil || broken != nil {
				t.Fatalf("chain only: %v, %v; want it whole (the forgery is chained correctly)", broken, err)
			}
			broken, n, err := eventlog.VerifyStream(ctx, s, stream, keys)
			must(t, err)
			if n != 3 || broken == nil || broken.Version != 3 || broken.Position != pos || !strings.Contains(broken.Reason, c.reason) {
				t.Fatalf("verify with the keyring = %v (%d events), want version 3 at position %d broken on %q", broken, n, pos, c.reason)
			}
			rep, err := eventlog.VerifyLog(ctx, s, 0, keys)
			must(t, err)
			if !namesPosition(rep.Broken, pos, c.reason) {
				t.Fatalf("VerifyLog broken = %v, want position %d on %q", rep.Broken, pos, c.reason)
			}

			recs, err := s.ReadStream(ctx, stream, 1)
			must(t, err)
			for _, r := range recs[:2] {
				if err := v.Check(ctx, "test", r); err != nil {
					t.Fatalf("signed event at version %d: %v", r.Event.GetVersion(), err)
				}
			}
			var rej *eventlog.Rejected
			if err := v.Check(ctx, "test", recs[2]); !errors.As(err, &rej) || rej.Position != pos || !strings.Contains(rej.Reason, c.reason) {
				t.Fatalf("Check(forged) = %v, want it rejected on %q", err, c.reason)
			}
		})
	}
}

func namesPosition(broken []*eventlog.BrokenLink, pos uint64, reason string) bool {
	for _, b := range broken {
		if b.Position == pos && strings.Contains(b.Reason, reason) {
			return true
		}
	}
	return false
}

// A producer's own key cannot hide a broken link: a signed event whose
// prev_hash is not its predecessor's is rejected by the Verifier, whether
// the predecessor's hash is cached or read from the log.
func TestVerifierRejectsASignedEventOffTheChain(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	routing := signingtest.Signer(t, "routing-1", "routing")
	keys := signingtest.Keyring(t, routing)
	s := newStore(t, js, jsstore.Config{Signer: routing})
	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)
	for v := range 2 {
		_, err := s.Append(ctx, stream, uint64(v), responseBy(t, "routing", id))
		must(t, err)
	}
	recs, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	forged := responseBy(t, "routing", id)
	forged.StreamId, forged.Version, forged.PrevHash, forged.PrevPosition = string(stream), 3, eventlog.Hash(recs[0].Raw), recs[1].Position
	raw, err := proto.Marshal(forged)
	must(t, err)
	rec := eventlog.Record{Event: forged, Raw: routing.Sign(raw), Position: recs[1].Position + 1}

	for _, warm := range []bool{false, true} {
		v, err := eventlog.NewVerifier(s, eventlog.VerifierOptions{Keys: keys})
		must(t, err)
		if warm {
			for _, r := range recs {
				must(t, v.Check(ctx, "test", r))
			}
		}
		var rej *eventlog.Rejected
		if err := v.Check(ctx, "test", rec); !errors.As(err, &rej) || !strings.Contains(rej.Reason, "prev_hash") {
			t.Fatalf("warm cache %v: Check = %v, want rejected on prev_hash", warm, err)
		}
	}
}

// Rotation: a service moves to a new key; the events its old key signed
// still verify, as long as the keyring keeps the old key.
func TestEventsOfARotatedKeyStillVerify(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	old := signingtest.Signer(t, "routing-2026-01", "routing")
	fresh := signingtest.Signer(t, "routing-2026-12", "routing")
	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)

	before := newStore(t, js, jsstore.Config{Signer: old})
	for v := range 2 {
		_, err := before.Append(ctx, stream, uint64(v), responseBy(t, "routing", id))
		must(t, err)
	}
	after := newStore(t, js, jsstore.Config{Signer: fresh})
	for v := 2; v < 4; v++ {
		_, err := after.Append(ctx, stream, uint64(v), responseBy(t, "routing", id))
		must(t, err)
	}

	both := signingtest.Keyring(t, old, fresh)
	broken, n, err := eventlog.VerifyStream(ctx, after, stream, both)
	must(t, err)
	if n != 4 || broken != nil {
		t.Fatalf("verify with both keys = %v (%d events), want 4 events whole", broken, n)
	}
	recs, err := after.ReadStream(ctx, stream, 1)
	must(t, err)
	v, err := eventlog.NewVerifier(after, eventlog.VerifierOptions{Keys: both})
	must(t, err)
	for _, r := range recs {
		if err := v.Check(ctx, "test", r); err != nil {
			t.Fatalf("version %d: %v", r.Event.GetVersion(), err)
		}
	}
	for i, r := range recs {
		want := "routing-2026-01"
		if i >= 2 {
			want = "routing-2026-12"
		}
		if got := r.Event.GetSignature().GetKeyId(); got != want {
			t.Errorf("version %d signed by %q, want %q", i+1, got, want)
		}
	}

	// Without the old key its events no longer verify: the keyring is what
	// vouches for them.
	broken, _, err = eventlog.VerifyStream(ctx, after, stream, signingtest.Keyring(t, fresh))
	must(t, err)
	if broken == nil || broken.Version != 1 || !strings.Contains(broken.Reason, "unknown key") {
		t.Fatalf("verify without the old key = %v, want version 1 refused for an unknown key", broken)
	}
}

// A store signs only its own service's events: another producer's event is
// refused and nothing of its batch is stored.
func TestAStoreSignsOnlyItsOwnProducersEvents(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	s := newStore(t, js, jsstore.Config{Signer: signingtest.Signer(t, "routing-1", "routing")})
	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)
	_, err := s.Append(ctx, stream, 0, responseBy(t, "routing", id), responseBy(t, "dispatch", id))
	if !errors.Is(err, eventlog.ErrInvalidEvent) || !strings.Contains(err.Error(), "producer") {
		t.Fatalf("Append = %v, want ErrInvalidEvent naming the producer", err)
	}
	recs, err := s.ReadStream(ctx, stream, 1)
	must(t, err)
	if len(recs) != 0 {
		t.Fatalf("%d events stored, want none", len(recs))
	}
}

// A log written before signing keeps its events: up to the keyring's
// UnsignedUntil position an unsigned event is vouched for by its chain; past
// it an unsigned event is refused as any other.
func TestUnsignedEventsOfALogFromBeforeSigningVerify(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	s := signingtest.Signer(t, "routing-2026-12", "routing")
	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)

	unsigned := newStore(t, js, jsstore.Config{})
	res, err := unsigned.Append(ctx, stream, 0, responseBy(t, "routing", id))
	must(t, err)
	signed := newStore(t, js, jsstore.Config{Signer: s})
	_, err = signed.Append(ctx, stream, 1, responseBy(t, "routing", id))
	must(t, err)

	ring := signingtest.Keyring(t, s).WithUnsignedUntil(res.Position)
	broken, n, err := eventlog.VerifyStream(ctx, signed, stream, ring)
	must(t, err)
	if n != 2 || broken != nil {
		t.Fatalf("verify with the boundary = %v (%d events), want 2 events whole", broken, n)
	}
	_, err = unsigned.Append(ctx, stream, 2, responseBy(t, "routing", id))
	must(t, err)
	broken, _, err = eventlog.VerifyStream(ctx, signed, stream, ring)
	must(t, err)
	if broken == nil || broken.Version != 3 || !strings.Contains(broken.Reason, "unsigned") {
		t.Fatalf("an unsigned event past the boundary = %v, want version 3 refused as unsigned", broken)
	}
}

// What a command or a query reads is verified too: a stream holding a
// forged event reads as damaged, naming it, so no decision is folded from
// it; a stream the verifier has already vouched for up to its tip is
// checked only past it.
func TestVerifiedReadsRefuseAForgedStream(t *testing.T) {
	_, js := startServer(t, natsembed.Options{NoSync: true})
	ctx := testContext(t)
	routing := signingtest.Signer(t, "routing-1", "routing")
	s := newStore(t, js, jsstore.Config{Signer: routing})
	v, err := eventlog.NewVerifier(s, eventlog.VerifierOptions{Keys: signingtest.Keyring(t, routing)})
	must(t, err)
	read := eventlog.Verified(s, v)

	id := uuid.NewString()
	stream := eventlog.ComplaintStream(id)
	_, err = s.Append(ctx, stream, 0, responseBy(t, "routing", id), responseBy(t, "routing", id))
	must(t, err)
	recs, err := read.ReadStream(ctx, stream, 1)
	if err != nil || len(recs) != 2 {
		t.Fatalf("a signed stream: %d events, %v; want 2, nil", len(recs), err)
	}
	_, err = s.Append(ctx, stream, 2, responseBy(t, "routing", id)) // past the tip: checked
	must(t, err)
	if recs, err = read.ReadStream(ctx, stream, 1); err != nil || len(recs) != 3 {
		t.Fatalf("the stream grown: %d events, %v; want 3, nil", len(recs), err)
	}

	pos := signingtest.Forge(t, ctx, js, s, stream, responseBy(t, "routing", id), nil)
	for name, readIt := range map[string]func() ([]eventlog.Record, error){
		"whole": func() ([]eventlog.Record, error) { return read.ReadStream(ctx, stream, 1) },
		"tail":  func() ([]eventlog.Record, error) { return eventlog.ReadTail(ctx, read, stream, 4, recs[2].Position) },
	} {
		_, err := readIt()
		var broken *eventlog.BrokenLink
		if !errors.As(err, &broken) || !errors.Is(err, eventlog.ErrDamaged) || broken.Version != 4 || broken.Position != pos ||
			!strings.Contains(broken.Reason, "unsigned") {
			t.Fatalf("%s read of a forged stream: %v, want version 4 at position %d damaged: unsigned", name, err, pos)
		}
	}
}
