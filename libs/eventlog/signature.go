package eventlog

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/closeloop/closeloop/libs/eventlog/signing"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Producers are the services that write events, by the hundreds of their
// payloads' field numbers in the envelope (envelope.proto: 100–199 intake,
// 200–299 routing, …). This is the one table of who may write which event
// type; deploy/deploy_test.go holds NATS's publish permissions to it.
var producers = map[protoreflect.FieldNumber]string{
	1: "intake",
	2: "routing",
	3: "slaclock",
	4: "dispatch",
	5: "followup",
}

// Writers are the services that write events, in the order of their
// field-number ranges: each needs a signing key of its own.
func Writers() []string {
	out := make([]string, 0, len(producers))
	for n := protoreflect.FieldNumber(1); len(out) < len(producers); n++ {
		if p, ok := producers[n]; ok {
			out = append(out, p)
		}
	}
	return out
}

// WriterOf names the service that may write e's event type ("" when the
// payload is missing or outside every producer's range).
func WriterOf(e *eventsv1.Envelope) string {
	er := e.ProtoReflect()
	f := er.WhichOneof(er.Descriptor().Oneofs().ByName("payload"))
	if f == nil {
		return ""
	}
	return producers[f.Number()/100]
}

// CheckSignature checks that a stored event was signed by a key of keys,
// that the key's producer is the event's producer, and that this producer
// may write the event's type. It returns nil when it holds and otherwise an
// error saying why (no personal data: key ids, producers and types only).
func CheckSignature(keys *signing.Keyring, r Record) error {
	e := r.Event
	if e == nil {
		var err error
		if e, err = DecodeStored(r.Raw); err != nil {
			return fmt.Errorf("stored bytes do not decode: %w", err)
		}
	}
	key, err := keys.Verify(r.Raw)
	if errors.Is(err, signing.ErrUnsigned) {
		if r.Position != 0 && r.Position <= keys.UnsignedUntil() {
			return nil // written before signing: its chain vouches for it
		}
		return errors.New("unsigned event (every event must be signed by its producer)")
	}
	if err != nil {
		return err
	}
	if key.Producer != e.GetProducer() {
		return fmt.Errorf("signed by key %s of %s, but the event names producer %q", key.KeyID, key.Producer, e.GetProducer())
	}
	if w := WriterOf(e); w != key.Producer {
		return fmt.Errorf("%s may not write %s (written by %q), signed by its key %s", key.Producer, TypeOf(e), w, key.KeyID)
	}
	return nil
}

// Sign signs the bytes Seal or Restamp returned for e with signer, which
// signs only its own producer's events (see MaySign). A nil signer returns
// raw unchanged (signing off).
func Sign(signer *signing.Signer, e *eventsv1.Envelope, raw []byte) ([]byte, error) {
	if signer == nil {
		return raw, nil
	}
	if err := MaySign(signer, e); err != nil {
		return nil, err
	}
	return signer.Sign(raw), nil
}

// MaySign refuses, with ErrInvalidEvent, an event whose producer is not the
// signer's: a store signs for one service. A nil signer signs nothing and
// refuses nothing.
func MaySign(signer *signing.Signer, e *eventsv1.Envelope) error {
	if signer != nil && e.GetProducer() != signer.Producer() {
		return fmt.Errorf("%w: producer: %q, but this store signs the events of %q", ErrInvalidEvent, e.GetProducer(), signer.Producer())
	}
	return nil
}
