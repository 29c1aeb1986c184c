package memstore_test

import (
	"errors"
	"testing"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/conformance"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) eventlog.Store { return memstore.New(nil) }, conformance.AtomicBatches())
}

// A signed memstore stores what the JetStream store would: each event
// signed (a batch's later events once chained), its producer's only.
func TestSignedStoreSignsEveryEventOfItsProducer(t *testing.T) {
	routing := signingtest.Signer(t, "routing-1", "routing")
	s := memstore.NewSigned(nil, routing)
	stream := eventlog.ComplaintStream("c-1")
	ev := func(producer string) *eventsv1.Envelope {
		return signingtest.Event(t, producer, "c-1", &eventsv1.ResponseRecorded{Summary: "called back"})
	}
	if _, err := s.Append(t.Context(), stream, 0, ev("routing"), ev("routing"), ev("routing")); err != nil {
		t.Fatal(err)
	}
	recs, err := s.ReadStream(t.Context(), stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	if broken := eventlog.VerifyChain(stream, recs, signingtest.Keyring(t, routing)); len(recs) != 3 || broken != nil {
		t.Fatalf("%d events, verify = %v; want 3 signed and chained", len(recs), broken)
	}
	if _, err := s.Append(t.Context(), stream, 3, ev("dispatch")); !errors.Is(err, eventlog.ErrInvalidEvent) {
		t.Fatalf("another producer's event: %v, want ErrInvalidEvent", err)
	}
}
