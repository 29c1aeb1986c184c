package app_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// Dispatch opens the customers' keys read-only, as in production: after
// the customer's erasure the sign-off is refused (there is no key to seal
// the signer's name under, and dispatch never makes one) and stores nothing.
func TestSignOffAfterTheCustomersErasureIsRefused(t *testing.T) {
	h := newHarness(t)
	spec := h.onSiteSpec("east") // intake's key, made by the writer
	keks, err := pii.ParseKeyring(strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	writer := h.keys
	if h.keys, err = pii.New(h.ctx, h.js, pii.Config{KEKs: keks, ReadOnly: true}); err != nil {
		t.Fatal(err)
	}
	a := h.newApp()
	h.register(a, "tech-near", "east")
	spec.PreferredTechnicianId = "tech-near"
	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c1", "wo1", spec)); err != nil {
		t.Fatal(err)
	}
	must := func(_ *domain.WorkOrder, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Accept(h.ctx, "tech-near", "wo1"))
	must(a.ReportContacted(h.ctx, "tech-near", "wo1", h.clock.Now().Add(time.Hour), "by phone"))
	must(a.ReportEnRoute(h.ctx, "tech-near", "wo1"))
	must(a.ReportArrived(h.ctx, "tech-near", "wo1"))

	if err := writer.Erase(h.ctx, pii.KeyRef(spec.GetSiteContact())); err != nil {
		t.Fatal(err)
	}
	before := len(h.complaintEvents("c1"))
	_, err = a.Complete(h.ctx, "tech-near", "wo1", app.Completion{
		WorkDone: "replaced relay", PartsUsed: []*eventsv1.PartUsed{{PartNumber: "RLY-7", Quantity: 1}},
		Checks: allChecks(true), SignerName: "Li Wei", SignedAt: h.clock.Now(), SignatureImage: []byte("png"),
	})
	if !errors.Is(err, kernel.ErrPrecondition) || !strings.Contains(err.Error(), "erased") {
		t.Fatalf("sign-off after erasure: %v, want a precondition error saying the data was erased", err)
	}
	if n := len(h.complaintEvents("c1")); n != before {
		t.Fatalf("the refused sign-off appended %d events", n-before)
	}
	kv, err := h.js.KeyValue(h.ctx, pii.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(h.ctx, pii.KeyRef(spec.GetSiteContact())); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Fatalf("after the refused sign-off the customer has a key again (%v): dispatch made one", err)
	}
}
