package intake_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// sealedOf returns the sealed personal data of a complaint's first event.
func (e *env) sealedOf(t *testing.T, id string) *eventsv1.SealedPersonalData {
	t.Helper()
	recs, err := e.store.ReadStream(context.Background(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	return recs[0].Event.GetComplaintReceived().GetCustomer().GetPersonal()
}

func TestOnlyAdminErasesAndAlwaysWithCustomerErased(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	sub, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-ERASE-ROLES"))
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetComplaintId()
	sealed := e.sealedOf(t, id)
	keys, err := pii.New(ctx, e.js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{tokAgent, tokLead, tokAuditor, tokPhone} {
		_, err := r.client.EraseCustomer(as(tok), &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "x"})
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s erases: %v, want PermissionDenied", tok, err)
		}
	}
	if _, err := keys.Open(ctx, sealed); err != nil {
		t.Fatalf("a refused erasure destroyed the key: %v", err)
	}
	if evs := e.events(t, id); count(evs, "CustomerErased") != 0 {
		t.Fatalf("a refused erasure recorded %v", evs)
	}

	if _, err := r.client.EraseCustomer(as(tokAdmin), &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "PIPL art. 47"}); err != nil {
		t.Fatal(err)
	}
	recs, err := e.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	got := recs[len(recs)-1].Event.GetCustomerErased()
	if got.GetErasedBy() != "dpo" || got.GetLegalBasis() != "PIPL art. 47" || got.GetKeyId() != pii.KeyRef(sealed) {
		t.Fatalf("last event = %v, want CustomerErased by dpo with the legal basis and the customer ref", recs[len(recs)-1].Event)
	}
	if _, err := keys.Open(ctx, sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open after erasure: %v, want ErrErased", err)
	}
}

// A crash before CustomerErased is stored leaves the data unreadable and
// the call failed; the retry records the erasure, once.
func TestEraseKilledBeforeTheEventIsCompletedByTheRetry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	sub, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-ERASE-CRASH"))
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetComplaintId()
	sealed := e.sealedOf(t, id)
	r.stop()

	dying := e.start(t, testConfig(t), &lossyStore{Store: e.store, failBefore: true})
	req := &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "PIPL art. 47"}
	if _, err := dying.client.EraseCustomer(as(tokAdmin), req); err == nil {
		t.Fatal("the dying instance reported the erasure done")
	}
	dying.stop()
	keys, err := pii.New(ctx, e.js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Open(ctx, sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("after the crash Open = %v, want ErrErased (key first)", err)
	}

	fresh := e.start(t, testConfig(t), nil)
	if _, err := fresh.client.EraseCustomer(as(tokAdmin), req); err != nil {
		t.Fatal(err)
	}
	if evs := e.events(t, id); count(evs, "CustomerErased") != 1 {
		t.Fatalf("stream = %v, want one CustomerErased", evs)
	}
}

// racingSealStore seals under the customer's ref just before
// CustomerErased is stored: a submission of the same customer racing
// with the erasure.
type racingSealStore struct {
	eventlog.Store
	keys  *pii.Keystore
	ref   string
	raced *eventsv1.SealedPersonalData
}

func (s *racingSealStore) Append(ctx context.Context, stream eventlog.StreamID, v uint64, evs ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	for _, ev := range evs {
		if ev.GetCustomerErased() != nil && s.raced == nil {
			sealed, err := s.keys.Seal(ctx, s.ref, &eventsv1.PersonalData{Name: "racing"})
			if err != nil {
				return eventlog.AppendResult{}, err
			}
			s.raced = sealed
		}
	}
	return s.Store.Append(ctx, stream, v, evs...)
}

// A key made between the first destruction and the event goes too.
func TestEraseDestroysAKeyMadeDuringTheErasure(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	sub, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-ERASE-RACE"))
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetComplaintId()
	ref := pii.KeyRef(e.sealedOf(t, id))
	r.stop()

	keys, err := pii.New(ctx, e.js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	racing := &racingSealStore{Store: e.store, keys: keys, ref: ref}
	r = e.start(t, testConfig(t), racing)
	if _, err := r.client.EraseCustomer(as(tokAdmin), &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "PIPL art. 47"}); err != nil {
		t.Fatal(err)
	}
	if racing.raced == nil {
		t.Fatal("no seal raced with the erasure: the test proves nothing")
	}
	if _, err := keys.Open(ctx, racing.raced); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("data sealed during the erasure: Open = %v, want ErrErased", err)
	}
}
