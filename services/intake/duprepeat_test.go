package intake_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/adapters"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// appendAs writes events of another service on a complaint's stream, as
// routing (ComplaintResolved) and follow-up (ComplaintClosed,
// ComplaintReopened) do: intake only reads them.
func (e *env) appendAs(t *testing.T, producer, id string, msgs ...proto.Message) {
	t.Helper()
	w, err := kernel.NewWriter(e.store, producer, e.clock, noop.NewTracerProvider())
	if err != nil {
		t.Fatal(err)
	}
	_, err = kernel.Execute(context.Background(), w, kernel.Command[int]{
		Name: "test", Stream: eventlog.ComplaintStream(id), ComplaintID: id, Cause: kernel.Cause{Actor: producer},
		Fold:   func(recs []eventlog.Record) (int, error) { return len(recs), nil },
		Decide: func(int, time.Time) ([]proto.Message, error) { return msgs, nil },
	})
	if err != nil {
		t.Fatalf("append %s events: %v", producer, err)
	}
}

var (
	resolvedEv = &eventsv1.ComplaintResolved{ResolutionCode: "REPAIRED", Summary: "fixed", ResolvedBy: "ts-1"}
	closedEv   = &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED, ClosedBy: "cs-1"}
	reopenedEv = &eventsv1.ComplaintReopened{Reason: "not fixed", Satisfaction: 2, ReopenCount: 1}
)

// A report of the same customer and problem is a duplicate of the earlier
// complaint only while that complaint is open; once it was resolved, closed
// or withdrawn the report is a complaint of its own (routing then flags a
// repeat of a resolved or closed one). Within the duplicate window all
// along: the claim on the problem has not expired.
func TestDuplicateOnlyOfAnOpenComplaint(t *testing.T) {
	for _, tc := range []struct {
		name string
		// then happens to the first complaint before the second report.
		then      []proto.Message
		withdraw  bool // an agent withdraws the first complaint
		otherUnit bool // the second report is about another product
		linked    bool
	}{
		{name: "first still open: duplicate", linked: true},
		{name: "first resolved: its own complaint", then: []proto.Message{resolvedEv}},
		{name: "first closed: its own complaint", then: []proto.Message{resolvedEv, closedEv}},
		{name: "first reopened: duplicate again", then: []proto.Message{resolvedEv, reopenedEv}, linked: true},
		{name: "first withdrawn: its own complaint", withdraw: true},
		{name: "another product while the first is open: its own complaint", otherUnit: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			r := e.start(t, testConfig(t), nil)
			first, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-1"))
			if err != nil || !first.GetCreated() {
				t.Fatalf("first report: %v %v", first, err)
			}
			for _, m := range tc.then {
				producer := "followup"
				if _, ok := m.(*eventsv1.ComplaintResolved); ok {
					producer = "routing"
				}
				e.appendAs(t, producer, first.GetComplaintId(), m)
			}
			if tc.withdraw {
				if _, err := r.client.WithdrawComplaint(as(tokAgent), &intakev1.WithdrawComplaintRequest{ComplaintId: first.GetComplaintId(), Reason: "customer withdrew"}); err != nil {
					t.Fatal(err)
				}
			}
			mail := e.phoneSubmission("MAIL-2")
			mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
			if tc.otherUnit {
				mail.Product = &eventsv1.Product{Model: "WM-8KG", SerialNumber: "SN-1"}
			}
			for attempt := range 2 { // the adapter's retry answers the same
				got, err := r.client.SubmitComplaint(as(tokEmail), mail)
				if err != nil {
					t.Fatalf("second report, attempt %d: %v", attempt+1, err)
				}
				if tc.linked != got.GetLinked() || tc.linked != (got.GetComplaintId() == first.GetComplaintId()) || got.GetCreated() != (!tc.linked && attempt == 0) {
					t.Fatalf("second report, attempt %d: %v; want linked=%v to %s", attempt+1, got, tc.linked, first.GetComplaintId())
				}
			}
			all := e.allEvents(t)
			wantReceived, wantLinks := 2, 0
			if tc.linked {
				wantReceived, wantLinks = 1, 1
			}
			if all["ComplaintReceived"] != wantReceived || all["DuplicateLinked"] != wantLinks {
				t.Fatalf("log = %v, want %d ComplaintReceived, %d DuplicateLinked", all, wantReceived, wantLinks)
			}
		})
	}
}

// The third report of the same fault on the same unit, after two earlier
// complaints both resolved within the duplicate window, is a complaint of
// its own, not a duplicate of either; a retry of the second report after
// the third took the problem over still answers the second.
func TestThirdReportAfterTwoResolvedIsItsOwnComplaint(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	var ids []string
	for i, ref := range []string{"HOT-A", "HOT-B", "HOT-C"} {
		got, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission(ref))
		if err != nil || !got.GetCreated() || got.GetLinked() {
			t.Fatalf("report %d: %v %v, want a complaint of its own", i+1, got, err)
		}
		ids = append(ids, got.GetComplaintId())
		if i < 2 {
			e.appendAs(t, "routing", got.GetComplaintId(), resolvedEv)
		}
	}
	retry, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-B"))
	if err != nil || retry.GetComplaintId() != ids[1] || retry.GetCreated() || retry.GetLinked() {
		t.Fatalf("retry of the second report: %v %v, want %s again", retry, err, ids[1])
	}
	// A fourth report while the third is open joins the third.
	mail := e.phoneSubmission("MAIL-D")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	got, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if err != nil || !got.GetLinked() || got.GetComplaintId() != ids[2] {
		t.Fatalf("fourth report: %v %v, want linked to the third, %s", got, err, ids[2])
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 3 || all["DuplicateLinked"] != 1 {
		t.Fatalf("log = %v", all)
	}
}

// A link decided while the first complaint was open but not yet recorded on
// it (a crash in between, or the complaint resolved in the meantime) is
// void once the first complaint has ended: the retry opens a complaint of
// its own instead of joining an ended one.
func TestLinkNotRecordedBeforeTheFirstEndedIsVoid(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	first, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-V"))
	if err != nil {
		t.Fatal(err)
	}
	mail := e.phoneSubmission("MAIL-V")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	ctx := context.Background()
	links, err := e.js.KeyValue(ctx, adapters.LinksBucket)
	if err != nil {
		t.Fatal(err)
	}
	// What a crash right after the link index write leaves.
	ownID := domain.ComplaintID(mail.GetChannel(), mail.GetChannelRef())
	if _, err := links.Create(ctx, ownID, []byte(first.GetComplaintId())); err != nil {
		t.Fatal(err)
	}
	e.appendAs(t, "routing", first.GetComplaintId(), resolvedEv)

	got, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if err != nil || got.GetLinked() || !got.GetCreated() || got.GetComplaintId() != ownID {
		t.Fatalf("retry after the first was resolved: %v %v, want complaint %s of its own", got, err, ownID)
	}
	if _, err := links.Get(ctx, ownID); err == nil {
		t.Fatal("the void link is still in the link index")
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 2 || all["DuplicateLinked"] != 0 {
		t.Fatalf("log = %v", all)
	}
}
