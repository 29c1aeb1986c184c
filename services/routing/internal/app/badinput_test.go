package app

import (
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// TestBadInputChangesNothing: each refused command gets an error naming
// what is wrong, and the log is exactly as it was.
func TestBadInputChangesNothing(t *testing.T) {
	h := newHarness(t)
	id := "c-bad"
	h.intake(id, complaintSpec{text: "冰箱买了一个月就不制冷了", customer: "bad"})
	anon := "c-bad-anon"
	h.intake(anon, complaintSpec{text: "冰箱买了一个月就不制冷了", customer: "anon", anonymous: true})
	owner := agentOf("tech-1")
	if c := h.complaint(anon); c.Owner != owner.ID {
		t.Fatalf("anonymous complaint owned by %q", c.Owner)
	}
	_, sol, _, err := h.app.ProposeSolution(h.ctx, Target{ComplaintID: id}, owner, "replace compressor")
	if err != nil {
		t.Fatal(err)
	}
	version := h.complaint(id).Version
	var (
		notFound     = func(err error) bool { return errors.Is(err, kernel.ErrNotFound) }
		stale        = func(err error) bool { return errors.Is(err, kernel.ErrStale) }
		precondition = func(err error) bool { var e *kernel.PreconditionError; return errors.As(err, &e) }
		invalid      = func(err error) bool { var e *kernel.InvalidError; return errors.As(err, &e) }
		denied       = func(err error) bool { return errors.Is(err, kernel.ErrPermission) }
	)
	for _, tc := range []struct {
		name    string
		run     func() error
		is      func(error) bool
		mention string
	}{
		{"unknown complaint", func() error {
			_, err := h.app.Resolve(h.ctx, Target{ComplaintID: "c-nope"}, owner, "X", "y")
			return err
		}, notFound, `complaint_id "c-nope"`},
		{"stale version", func() error {
			_, err := h.app.RecordResponse(h.ctx, Target{ComplaintID: id, ExpectedVersion: version - 1}, owner, eventsv1.Channel_CHANNEL_PHONE, "called")
			return err
		}, stale, "expected_version"},
		{"resolve without the required review", func() error {
			_, err := h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "FIXED", "compressor replaced")
			return err
		}, precondition, "missing: a response to the customer (RecordResponse), supervisor review"},
		{"unknown team", func() error {
			_, _, _, err := h.app.Reassign(h.ctx, Target{ComplaintID: id}, lead, "no-such-team", "", "try elsewhere")
			return err
		}, notFound, `team "no-such-team"`},
		{"unknown member", func() error {
			_, _, _, err := h.app.Reassign(h.ctx, Target{ComplaintID: id}, lead, "technical-support", "ghost", "try elsewhere")
			return err
		}, notFound, `owner "ghost"`},
		{"malformed team id", func() error {
			_, _, _, err := h.app.Reassign(h.ctx, Target{ComplaintID: id}, lead, "Bad Team!", "", "x")
			return err
		}, invalid, "team"},
		{"review out of order", func() error {
			_, err := h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, quality, sol, revQual, true, "")
			return err
		}, invalid, "quality review is not required"},
		{"unknown solution", func() error {
			_, err := h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, lead, "sol-x", revSup, true, "")
			return err
		}, notFound, "solution_id"},
		{"agent reviews", func() error {
			_, err := h.app.ReviewSolution(h.ctx, Target{ComplaintID: id}, owner, sol, revSup, true, "")
			return err
		}, denied, "team_lead"},
		{"another agent resolves", func() error {
			_, err := h.app.Resolve(h.ctx, Target{ComplaintID: id}, stranger, "X", "y")
			return err
		}, denied, "only the owner"},
		{"agent reassigns", func() error {
			_, _, _, err := h.app.Reassign(h.ctx, Target{ComplaintID: id}, owner, "", "cs-1", "x")
			return err
		}, denied, "reassign"},
		{"quality reviewer manages rosters", func() error {
			_, err := h.app.AddTeamMember(h.ctx, quality, domain.MemberChange{Team: "customer-service", MemberID: "x", Role: domain.RoleAgent})
			return err
		}, denied, "manage team rosters"},
		{"bad role", func() error {
			_, err := h.app.AddTeamMember(h.ctx, lead, domain.MemberChange{Team: "customer-service", MemberID: "x", Role: "boss"})
			return err
		}, invalid, "role"},
		{"empty summary", func() error {
			_, err := h.app.RecordResponse(h.ctx, Target{ComplaintID: id}, owner, eventsv1.Channel_CHANNEL_PHONE, " ")
			return err
		}, invalid, "summary"},
		{"incomplete root cause", func() error {
			_, err := h.app.RecordRootCause(h.ctx, Target{ComplaintID: id}, owner, domain.RootCause{What: "x"})
			return err
		}, invalid, "why"},
		{"work order in the past", func() error {
			_, _, err := h.app.RequestDispatch(h.ctx, Target{ComplaintID: id}, owner, &eventsv1.WorkOrderSpec{
				Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR,
				EquipmentModel: "BCD-520", Quantity: 1, Region: "east", RequiredBy: timestamppb.New(t0.Add(-time.Hour))})
			return err
		}, invalid, "spec.required_by"},
		{"on-site order for an anonymous customer without contact", func() error {
			_, _, err := h.app.RequestDispatch(h.ctx, Target{ComplaintID: anon}, owner, &eventsv1.WorkOrderSpec{
				Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR,
				EquipmentModel: "BCD-520", Quantity: 1, Region: "east", RequiredBy: timestamppb.New(t0.Add(time.Hour))})
			return err
		}, invalid, "spec.site_contact: an on-site order needs the sealed site address and contact, and the customer is anonymous"},
		{"override without reason", func() error {
			_, err := h.app.OverrideClassification(h.ctx, Target{ComplaintID: id}, owner, eventsv1.Category_CATEGORY_SERVICE, eventsv1.Severity_SEVERITY_L1, eventsv1.Priority_PRIORITY_GENERAL, "")
			return err
		}, invalid, "reason"},
		{"take off hold when not on hold", func() error {
			_, err := h.app.TakeOffHold(h.ctx, Target{ComplaintID: id}, owner)
			return err
		}, precondition, "not on hold"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := h.store.ReadAll(h.ctx, 1, 10000)
			if err != nil {
				t.Fatal(err)
			}
			err = tc.run()
			if err == nil || !tc.is(err) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("err %v: want the right kind, mentioning %q", err, tc.mention)
			}
			after, err := h.store.ReadAll(h.ctx, 1, 10000)
			if err != nil {
				t.Fatal(err)
			}
			if len(after) != len(before) {
				t.Fatalf("the log grew from %d to %d events", len(before), len(after))
			}
		})
	}
}

// TestHoldAndDispatch: the owner puts the complaint on hold (nothing but
// responses and root cause while on hold), takes it off, and asks for a
// technician with a full work order.
func TestHoldAndDispatch(t *testing.T) {
	h := newHarness(t)
	id := "c-hold"
	h.intake(id, complaintSpec{text: "洗碗机运行时异响很大", customer: "hold"})
	owner := agentOf("tech-1")
	ok(t)(h.app.PutOnHold(h.ctx, Target{ComplaintID: id}, owner, eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_PARTS, "compressor ordered"))
	if _, err := h.app.Resolve(h.ctx, Target{ComplaintID: id}, owner, "X", "y"); err == nil || !strings.Contains(err.Error(), "on hold") {
		t.Fatalf("resolve on hold: %v", err)
	}
	ok(t)(h.app.TakeOffHold(h.ctx, Target{ComplaintID: id}, owner))
	if c := h.complaint(id); c.Status != domain.StatusInProgress {
		t.Fatalf("status %s after hold", c.Status)
	}
	// No site contact: the customer's, as intake sealed it, is used.
	spec := &eventsv1.WorkOrderSpec{Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR,
		EquipmentModel: "DW-60", Quantity: 1, SerialNumbers: []string{"SN1"}, Region: "east", RequiredBy: timestamppb.New(t0.Add(24 * time.Hour))}
	_, wo, err := h.app.RequestDispatch(h.ctx, Target{ComplaintID: id}, owner, spec)
	if err != nil {
		t.Fatal(err)
	}
	d := events[*eventsv1.DispatchRequested](h, id)
	if len(d) != 1 || d[0].GetWorkOrderId() != wo || d[0].GetSpec().GetEquipmentModel() != "DW-60" || d[0].GetRequestedBy() != "tech-1" {
		t.Fatalf("dispatch requests %v", d)
	}
	received := events[*eventsv1.ComplaintReceived](h, id)[0].GetCustomer().GetPersonal()
	if got := d[0].GetSpec().GetSiteContact(); received == nil || !proto.Equal(got, received) {
		t.Fatalf("site contact %v, want the customer's sealed contact %v", got, received)
	}
}

// TestOverrideClassification records who overrode it and why.
func TestOverrideClassification(t *testing.T) {
	h := newHarness(t)
	id := "c-ovr"
	h.intake(id, complaintSpec{text: "Please call me back regarding my issue.", customer: "o"})
	ok(t)(h.app.OverrideClassification(h.ctx, Target{ComplaintID: id}, agentOf("cs-1"), eventsv1.Category_CATEGORY_SERVICE, eventsv1.Severity_SEVERITY_L2, eventsv1.Priority_PRIORITY_IMPORTANT, "third call about the same engineer"))
	cl := events[*eventsv1.ComplaintClassified](h, id)
	c := h.complaint(id)
	if len(cl) != 2 || !cl[1].GetOverridden() || cl[1].GetClassifiedBy() != "cs-1" || c.Severity != eventsv1.Severity_SEVERITY_L2 || c.Category != eventsv1.Category_CATEGORY_SERVICE {
		t.Fatalf("classifications %v state %s/%s", cl, c.Category, c.Severity)
	}
}
