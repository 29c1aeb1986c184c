package app_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

func allChecks(passed bool) []*eventsv1.CheckResult {
	return []*eventsv1.CheckResult{
		{Check: "fault_cleared", Passed: true}, {Check: "functional_test", Passed: true}, {Check: "electrical_safety", Passed: passed},
	}
}

// Given a hardware fault on site, when routing requests dispatch, the
// technician goes from assignment to a signed completion, and the slot is
// given back.
func TestOnSiteRepairFromRequestToSignedCompletion(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-near", "east")
	h.register(a, "tech-west", "west")
	spec := h.onSiteSpec("east")
	spec.PreferredTechnicianId = "tech-near"

	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c1", "wo1", spec)); err != nil {
		t.Fatal(err)
	}
	o := h.order("c1", "wo1")
	if o.Status != domain.StatusAssigned || o.TechnicianID != "tech-near" {
		t.Fatalf("after dispatch: %s to %q", o.Status, o.TechnicianID)
	}
	recs := h.complaintEvents("c1")
	assigned := eventlog.Payload(recs[len(recs)-1].Event).(*eventsv1.TechnicianAssigned)
	if !strings.Contains(assigned.GetReason(), "preferred technician") || !strings.Contains(assigned.GetReason(), "territory 1") {
		t.Errorf("assignment reason %q does not explain the choice", assigned.GetReason())
	}
	if len(assigned.GetCandidates()) == 0 || assigned.GetCandidates()[0].GetTechnicianId() != "tech-near" {
		t.Errorf("candidates %v", assigned.GetCandidates())
	}
	// A redelivered request changes nothing.
	before := len(h.complaintEvents("c1"))
	if err := a.HandleComplaintEvent(h.ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if n := len(h.complaintEvents("c1")); n != before {
		t.Fatalf("redelivery appended %d events", n-before)
	}

	if _, err := a.Accept(h.ctx, "tech-west", "wo1"); !errors.Is(err, domain.ErrNotAssignee) {
		t.Fatalf("accept by another technician: %v, want ErrNotAssignee", err)
	}
	if _, err := a.ReportEnRoute(h.ctx, "tech-near", "wo1"); !errors.Is(err, domain.ErrWrongState) {
		t.Fatalf("en route before accepting: %v, want ErrWrongState", err)
	}
	must := func(_ *domain.WorkOrder, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Accept(h.ctx, "tech-near", "wo1"))
	h.clock.Advance(10 * time.Minute)
	must(a.ReportContacted(h.ctx, "tech-near", "wo1", h.clock.Now().Add(2*time.Hour), "confirmed by phone"))
	must(a.ReportEnRoute(h.ctx, "tech-near", "wo1"))
	h.clock.Advance(2 * time.Hour)
	must(a.ReportArrived(h.ctx, "tech-near", "wo1"))
	if jobs := a.ListMyJobs("tech-near"); len(jobs) != 1 || jobs[0].Status != domain.StatusOnSite {
		t.Fatalf("ListMyJobs: %v", jobs)
	}

	image := []byte("PNG…signature strokes")
	done := app.Completion{
		WorkDone: "replaced compressor relay", PartsUsed: []*eventsv1.PartUsed{{PartNumber: "RLY-7", Quantity: 1}},
		Checks: allChecks(false), SignerName: "Li Wei", SignedAt: h.clock.Now(), SignatureImage: image,
	}
	before = len(h.complaintEvents("c1"))
	var ve *domain.ValidationError
	if _, err := a.Complete(h.ctx, "tech-near", "wo1", done); !errors.As(err, &ve) || !strings.Contains(err.Error(), "electrical_safety") {
		t.Fatalf("completion with a failed required check: %v", err)
	}
	done.Checks = allChecks(true)[:2]
	if _, err := a.Complete(h.ctx, "tech-near", "wo1", done); !errors.As(err, &ve) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("completion with a missing required check: %v", err)
	}
	if n := len(h.complaintEvents("c1")); n != before {
		t.Fatalf("refused completions appended %d events", n-before)
	}
	done.Checks = allChecks(true)
	must(a.Complete(h.ctx, "tech-near", "wo1", done))

	recs = h.complaintEvents("c1")
	want := []string{"ComplaintReceived", "DispatchRequested", "WorkOrderOpened", "TechnicianAssigned", "TechnicianAccepted", "CustomerContacted", "TechnicianEnRoute", "TechnicianArrived", "WorkCompleted"}
	if got := typesOf(recs); !slices.Equal(got, want) {
		t.Fatalf("complaint stream %v, want %v", got, want)
	}
	last := recs[len(recs)-1]
	if bytes.Contains(last.Raw, []byte("Li Wei")) {
		t.Fatal("the signer's name is stored in clear")
	}
	so := eventlog.Payload(last.Event).(*eventsv1.WorkCompleted).GetReport().GetSignOff()
	sum := sha256.Sum256(image)
	if so.GetSignatureSha256() != hex.EncodeToString(sum[:]) || so.GetSignatureAttachmentRef() != "sha256:"+hex.EncodeToString(sum[:]) {
		t.Errorf("signature digest %q ref %q", so.GetSignatureSha256(), so.GetSignatureAttachmentRef())
	}
	signer, err := h.keys.Open(h.ctx, so.GetSigner())
	if err != nil || signer.GetName() != "Li Wei" {
		t.Fatalf("sealed signer opens to %v, %v", signer, err)
	}
	if last.Event.GetActor() != "tech-near" || last.Event.GetProducer() != "dispatch" {
		t.Errorf("actor %q producer %q", last.Event.GetActor(), last.Event.GetProducer())
	}
	tech := h.technician("tech-near")
	if tech.OpenJobs() != 0 || tech.JobsOn(domain.Day(nil, start)) != 1 {
		t.Fatalf("after completion: %d open jobs, %d today", tech.OpenJobs(), tech.JobsOn(domain.Day(nil, start)))
	}
	if _, err := a.Complete(h.ctx, "tech-near", "wo1", done); !errors.Is(err, domain.ErrWrongState) {
		t.Fatalf("second completion: %v, want ErrWrongState", err)
	}
}

// Given an assigned technician who never answers, when the accept timeout
// passes on the clock, the order is declined for them and dispatched to the
// next technician, never back to them.
func TestDeclineTimeoutRedispatches(t *testing.T) {
	h := newHarness(t)
	a := h.newApp(func(c *app.Config) { c.AcceptTimeout = 10 * time.Minute })
	h.register(a, "tech-a", "east")
	h.register(a, "tech-b", "east")
	spec := h.onSiteSpec("east")
	spec.PreferredTechnicianId = "tech-a"
	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c2", "wo2", spec)); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c2", "wo2"); o.TechnicianID != "tech-a" || !o.AcceptBy.Equal(start.Add(10*time.Minute)) {
		t.Fatalf("assigned to %q accept by %s", o.TechnicianID, o.AcceptBy)
	}
	h.runAcceptTimeouts(a)
	h.clock.Advance(9 * time.Minute)
	if o := h.order("c2", "wo2"); o.TechnicianID != "tech-a" {
		t.Fatalf("declined before the timeout: now %q", o.TechnicianID)
	}
	h.clock.Advance(time.Minute)
	checkFor(t, 5*time.Second, func() error {
		if o := h.order("c2", "wo2"); o.Status != domain.StatusAssigned || o.TechnicianID != "tech-b" {
			return fmt.Errorf("after the timeout: %s to %q", o.Status, o.TechnicianID)
		}
		return nil
	})
	var declined *eventsv1.TechnicianDeclined
	for _, r := range h.complaintEvents("c2") {
		if d, ok := eventlog.Payload(r.Event).(*eventsv1.TechnicianDeclined); ok {
			declined = d
		}
	}
	if declined == nil || !declined.GetAutomatic() || declined.GetTechnicianId() != "tech-a" {
		t.Fatalf("declined event %v", declined)
	}
	if o := h.order("c2", "wo2"); !slices.Equal(o.Declined, []string{"tech-a"}) {
		t.Fatalf("decliners %v", o.Declined)
	}
	checkFor(t, 5*time.Second, func() error {
		if n := h.technician("tech-a").OpenJobs(); n != 0 {
			return fmt.Errorf("tech-a still holds %d jobs", n)
		}
		return nil
	})
	if _, ok := h.technician("tech-b").Open["wo2"]; !ok {
		t.Fatal("tech-b holds no booking for wo2")
	}
}

// Given a technician on site who cannot finish, when they report failure,
// a follow-on order with the same work sheet is opened and dispatched.
func TestCouldNotCompleteOpensFollowOn(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-a", "east")
	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c3", "wo3", h.onSiteSpec("east"))); err != nil {
		t.Fatal(err)
	}
	steps := []func() (*domain.WorkOrder, error){
		func() (*domain.WorkOrder, error) { return a.Accept(h.ctx, "tech-a", "wo3") },
		func() (*domain.WorkOrder, error) {
			return a.ReportContacted(h.ctx, "tech-a", "wo3", h.clock.Now().Add(time.Hour), "")
		},
		func() (*domain.WorkOrder, error) { return a.ReportEnRoute(h.ctx, "tech-a", "wo3") },
		func() (*domain.WorkOrder, error) { return a.ReportArrived(h.ctx, "tech-a", "wo3") },
	}
	for _, s := range steps {
		if _, err := s(); err != nil {
			t.Fatal(err)
		}
	}
	var ve *domain.ValidationError
	if _, err := a.ReportFailed(h.ctx, "tech-a", "wo3", ""); !errors.As(err, &ve) {
		t.Fatalf("failure without a reason: %v", err)
	}
	o, err := a.ReportFailed(h.ctx, "tech-a", "wo3", "compressor not in stock")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != domain.StatusFailed || o.FollowOnID == "" {
		t.Fatalf("failed order %s follow-on %q", o.Status, o.FollowOnID)
	}
	next := h.order("c3", o.FollowOnID)
	if next.FollowsID != "wo3" || next.Spec.GetEquipmentModel() != "CH-200" || !next.Spec.GetRequiredBy().AsTime().Equal(h.clock.Now().Add(24*time.Hour)) {
		t.Fatalf("follow-on %+v", next)
	}
	if next.Status != domain.StatusAssigned || next.TechnicianID != "tech-a" {
		t.Fatalf("follow-on not dispatched: %s to %q", next.Status, next.TechnicianID)
	}
	tech := h.technician("tech-a")
	if _, held := tech.Open["wo3"]; held {
		t.Fatal("the failed order still holds its slot")
	}
	if _, held := tech.Open[o.FollowOnID]; !held {
		t.Fatal("the follow-on holds no slot")
	}
}

// Given remote support that cannot fix the fault, when the technician
// escalates, an on-site repair follows and goes to a technician of the site's
// region, and the remote technician's slot is freed.
func TestRemoteSupportEscalatedToOnSite(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "remote-1", "north", func(p *domain.TechnicianProfile) {
		p.Services = []eventsv1.ServiceType{eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT}
	})
	h.register(a, "field-1", "east")
	spec := h.onSiteSpec("east")
	spec.ServiceType = eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT
	spec.Mode = eventsv1.ServiceMode_SERVICE_MODE_REMOTE
	spec.RequiredBy = timestamppb.New(start.Add(48 * time.Hour))
	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c4", "wo4", spec)); err != nil {
		t.Fatal(err)
	}
	if o := h.order("c4", "wo4"); o.TechnicianID != "remote-1" {
		t.Fatalf("remote order assigned to %q", o.TechnicianID)
	}
	if _, err := a.ReportContacted(h.ctx, "remote-1", "wo4", h.clock.Now().Add(time.Hour), ""); !errors.Is(err, domain.ErrWrongState) {
		t.Fatalf("on-site step on a remote order: %v", err)
	}
	if _, err := a.StartRemoteSession(h.ctx, "remote-1", "wo4", "rs-42"); err != nil {
		t.Fatal(err)
	}
	o, err := a.EscalateToOnSite(h.ctx, "remote-1", "wo4", "controller board dead")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != domain.StatusEscalated {
		t.Fatalf("escalated order is %s", o.Status)
	}
	next := h.order("c4", o.FollowOnID)
	if next.Spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_ON_SITE || next.Spec.GetServiceType() != eventsv1.ServiceType_SERVICE_TYPE_REPAIR {
		t.Fatalf("follow-on spec %v", next.Spec)
	}
	if next.Status != domain.StatusAssigned || next.TechnicianID != "field-1" {
		t.Fatalf("on-site follow-on: %s to %q", next.Status, next.TechnicianID)
	}
	if n := h.technician("remote-1").OpenJobs(); n != 0 {
		t.Fatalf("remote technician still holds %d jobs", n)
	}
	want := []string{"ComplaintReceived", "DispatchRequested", "WorkOrderOpened", "TechnicianAssigned", "RemoteSessionStarted", "EscalatedToOnSite", "WorkOrderOpened", "TechnicianAssigned"}
	if got := typesOf(h.complaintEvents("c4")); !slices.Equal(got, want) {
		t.Fatalf("complaint stream %v, want %v", got, want)
	}
}

// Given nobody who can do the work, the order is unassignable with the reason.
func TestNoCandidateIsUnassignable(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	h.register(a, "tech-w", "west")
	if err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c5", "wo5", h.onSiteSpec("east"))); err != nil {
		t.Fatal(err)
	}
	recs := h.complaintEvents("c5")
	u, ok := eventlog.Payload(recs[len(recs)-1].Event).(*eventsv1.WorkOrderUnassignable)
	if !ok || !strings.Contains(u.GetReason(), "territory 1") {
		t.Fatalf("last event %s %v", recs[len(recs)-1].Event.GetType(), u)
	}
}

// A malformed work sheet is refused with the field named, and nothing is stored.
func TestMalformedDispatchRequestIsUnusable(t *testing.T) {
	h := newHarness(t)
	a := h.newApp()
	spec := h.onSiteSpec("east")
	spec.Region = ""
	err := a.HandleComplaintEvent(h.ctx, h.requestDispatch("c6", "wo6", spec))
	if !errors.Is(err, app.ErrUnusable) || !strings.Contains(err.Error(), "spec.region") {
		t.Fatalf("err %v", err)
	}
	if n := len(h.complaintEvents("c6")); n != 2 {
		t.Fatalf("%d events on the stream, want only the complaint and the request", n)
	}
}
