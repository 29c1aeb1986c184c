package app

import (
	"errors"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/faulty"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// A read that ends before the event being handled is refused, for the bus to
// retry: decided on, it would show a complaint not yet accepted, and routing
// would ack the acceptance having done nothing.
func TestShortReadIsRetriedNotDecided(t *testing.T) {
	h := newHarness(t)
	id := "short-1"
	envs := []*eventsv1.Envelope{
		mustEvent(t, id, "intake", &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "ref-short-1", Description: "the pump leaks", FirstReceiver: "hotline-7",
			Customer: &eventsv1.Customer{CustomerRef: "c-9", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR}}),
		mustEvent(t, id, "intake", &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true}),
	}
	if _, err := h.store.Append(h.ctx, eventlog.ComplaintStream(id), 0, envs...); err != nil {
		t.Fatal(err)
	}
	recs, err := h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(&faulty.ShortRead{Store: h.store}, h.clock, noop.NewTracerProvider(), loadPolicy(t), h.app.View(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.HandleEvent(h.ctx, recs[1]); !errors.Is(err, eventlog.ErrShortRead) {
		t.Fatalf("HandleEvent on a short read = %v, want ErrShortRead", err)
	}
	if got := h.types(id); len(got) != 2 {
		t.Fatalf("stream after the short read: %v, want nothing added", got)
	}
	if err := a.HandleEvent(h.ctx, recs[1]); err != nil {
		t.Fatal(err)
	}
	if got := h.types(id); !slices.Contains(got, "ComplaintAssigned") {
		t.Fatalf("stream after the retry: %v, want the complaint assigned", got)
	}
}

func mustEvent(t *testing.T, id, producer string, payload proto.Message) *eventsv1.Envelope {
	t.Helper()
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: producer, Actor: "system", OccurredAt: t0}, payload)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
