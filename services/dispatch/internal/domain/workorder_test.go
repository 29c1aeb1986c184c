package domain

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// given folds events into a complaint, as the stream would.
func given(evs ...proto.Message) *Complaint {
	var c *Complaint
	for i, e := range evs {
		c = EvolveComplaint(c, "c1", uint64(i+1), t0, e)
	}
	if c == nil {
		c = &Complaint{ID: "c1", Orders: map[string]*WorkOrder{}}
	}
	return c
}

var (
	sealed   = &eventsv1.SealedPersonalData{KeyId: "cr_x.1", Nonce: []byte{1}, Ciphertext: []byte{2}}
	specOn   = &eventsv1.WorkOrderSpec{Region: "east", ServiceType: repair, Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, RequiredBy: timestamppb.New(t0.Add(24 * time.Hour)), SiteContact: sealed}
	specRem  = &eventsv1.WorkOrderSpec{Region: "east", ServiceType: remote, Mode: eventsv1.ServiceMode_SERVICE_MODE_REMOTE, RequiredBy: timestamppb.New(t0.Add(48 * time.Hour)), SiteContact: sealed}
	opened   = &eventsv1.WorkOrderOpened{WorkOrderId: "w", Spec: specOn}
	openedR  = &eventsv1.WorkOrderOpened{WorkOrderId: "w", Spec: specRem}
	assigned = &eventsv1.TechnicianAssigned{WorkOrderId: "w", TechnicianId: "a", AcceptBy: timestamppb.New(t0.Add(10 * time.Minute))}
	accepted = &eventsv1.TechnicianAccepted{WorkOrderId: "w", TechnicianId: "a"}
	contactd = &eventsv1.CustomerContacted{WorkOrderId: "w", TechnicianId: "a", Eta: timestamppb.New(t0.Add(time.Hour))}
	enRoute  = &eventsv1.TechnicianEnRoute{WorkOrderId: "w", TechnicianId: "a"}
	arrived  = &eventsv1.TechnicianArrived{WorkOrderId: "w", TechnicianId: "a"}
	declined = &eventsv1.TechnicianDeclined{WorkOrderId: "w", TechnicianId: "a", Reason: "sick"}
	started  = &eventsv1.RemoteSessionStarted{WorkOrderId: "w", TechnicianId: "a", SessionRef: "s"}
)

func report(checks ...*eventsv1.CheckResult) *eventsv1.WorkReport {
	return &eventsv1.WorkReport{WorkDone: "fixed", Checks: checks, SignOff: &eventsv1.CustomerSignOff{
		Signer: sealed, SignedAt: timestamppb.New(t0), SignatureSha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", SignatureAttachmentRef: "sha256:e3b0",
	}}
}

var passAll = []*eventsv1.CheckResult{{Check: "fault_cleared", Passed: true}, {Check: "functional_test", Passed: true}, {Check: "electrical_safety", Passed: true}}

func TestWorkOrderDecide(t *testing.T) {
	next := FollowOn{ID: "w2", RequiredBy: t0.Add(24 * time.Hour)}
	tests := []struct {
		name    string
		given   []proto.Message
		when    func(c *Complaint) ([]proto.Message, error)
		want    []string // event type names
		wantErr error
	}{
		{"open", nil, func(c *Complaint) ([]proto.Message, error) { return OpenWorkOrder(c, "w", specOn, "") }, []string{"WorkOrderOpened"}, nil},
		{"open twice is a no-op", []proto.Message{opened}, func(c *Complaint) ([]proto.Message, error) { return OpenWorkOrder(c, "w", specOn, "") }, nil, nil},
		{"assign an open order", []proto.Message{opened}, func(c *Complaint) ([]proto.Message, error) { return Assign(c, "w", "a", nil, "", t0) }, []string{"TechnicianAssigned"}, nil},
		{"assign again to the same technician is a no-op", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return Assign(c, "w", "a", nil, "", t0) }, nil, nil},
		{"assign to another once assigned", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return Assign(c, "w", "b", nil, "", t0) }, nil, ErrWrongState},
		{"never back to a decliner", []proto.Message{opened, assigned, declined}, func(c *Complaint) ([]proto.Message, error) { return Assign(c, "w", "a", nil, "", t0) }, nil, ErrWrongState},
		{"accept by the assignee", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return Accept(c, "w", "a") }, []string{"TechnicianAccepted"}, nil},
		{"accept by someone else", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return Accept(c, "w", "b") }, nil, ErrNotAssignee},
		{"accept twice", []proto.Message{opened, assigned, accepted}, func(c *Complaint) ([]proto.Message, error) { return Accept(c, "w", "a") }, nil, ErrWrongState},
		{"unknown order", nil, func(c *Complaint) ([]proto.Message, error) { return Accept(c, "w", "a") }, nil, ErrNotFound},
		{"timeout before accept-by decides nothing", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return DeclineOnTimeout(c, "w", t0.Add(9*time.Minute)) }, nil, nil},
		{"timeout at accept-by declines", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return DeclineOnTimeout(c, "w", t0.Add(10*time.Minute)) }, []string{"TechnicianDeclined"}, nil},
		{"timeout after accepting decides nothing", []proto.Message{opened, assigned, accepted}, func(c *Complaint) ([]proto.Message, error) { return DeclineOnTimeout(c, "w", t0.Add(time.Hour)) }, nil, nil},
		{"contact needs acceptance", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) {
			return ReportContacted(c, "w", "a", t0.Add(time.Hour), "", t0)
		}, nil, ErrWrongState},
		{"contact with an ETA", []proto.Message{opened, assigned, accepted}, func(c *Complaint) ([]proto.Message, error) {
			return ReportContacted(c, "w", "a", t0.Add(time.Hour), "", t0)
		}, []string{"CustomerContacted"}, nil},
		{"arrive without going en route", []proto.Message{opened, assigned, accepted, contactd}, func(c *Complaint) ([]proto.Message, error) { return ReportArrived(c, "w", "a") }, nil, ErrWrongState},
		{"complete before arriving", []proto.Message{opened, assigned, accepted, contactd, enRoute}, func(c *Complaint) ([]proto.Message, error) {
			return Complete(c, "w", "a", report(passAll...), DefaultChecklists(), t0)
		}, nil, ErrWrongState},
		{"complete on site with every check", []proto.Message{opened, assigned, accepted, contactd, enRoute, arrived}, func(c *Complaint) ([]proto.Message, error) {
			return Complete(c, "w", "a", report(passAll...), DefaultChecklists(), t0)
		}, []string{"WorkCompleted"}, nil},
		{"fail on site opens the follow-on", []proto.Message{opened, assigned, accepted, contactd, enRoute, arrived}, func(c *Complaint) ([]proto.Message, error) {
			return ReportFailed(c, "w", "a", "no parts", next)
		}, []string{"WorkOrderFailed", "WorkOrderOpened"}, nil},
		{"fail before accepting", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return ReportFailed(c, "w", "a", "no parts", next) }, nil, ErrWrongState},
		{"remote session on an on-site order", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return StartRemoteSession(c, "w", "a", "s") }, nil, ErrWrongState},
		{"remote session on assignment", []proto.Message{openedR, assigned}, func(c *Complaint) ([]proto.Message, error) { return StartRemoteSession(c, "w", "a", "s") }, []string{"RemoteSessionStarted"}, nil},
		{"resolve remotely", []proto.Message{openedR, assigned, started}, func(c *Complaint) ([]proto.Message, error) { return ResolveRemotely(c, "w", "a", "reset firmware") }, []string{"RemoteResolved"}, nil},
		{"escalate to on site", []proto.Message{openedR, assigned, started}, func(c *Complaint) ([]proto.Message, error) { return EscalateToOnSite(c, "w", "a", "board dead", next) }, []string{"EscalatedToOnSite", "WorkOrderOpened"}, nil},
		{"escalate an on-site order", []proto.Message{opened, assigned, accepted}, func(c *Complaint) ([]proto.Message, error) { return EscalateToOnSite(c, "w", "a", "x", next) }, nil, ErrWrongState},
		{"cancel an assigned order", []proto.Message{opened, assigned}, func(c *Complaint) ([]proto.Message, error) { return Cancel(c, "w", "withdrawn", "agent") }, []string{"WorkOrderCancelled"}, nil},
		{"cancel a finished order", []proto.Message{opened, assigned, &eventsv1.WorkOrderCancelled{WorkOrderId: "w"}}, func(c *Complaint) ([]proto.Message, error) { return Cancel(c, "w", "again", "agent") }, nil, ErrWrongState},
		{"unassignable once", []proto.Message{opened, &eventsv1.WorkOrderUnassignable{WorkOrderId: "w"}}, func(c *Complaint) ([]proto.Message, error) { return MarkUnassignable(c, "w", "none", nil) }, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := tc.when(given(tc.given...))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if len(evs) != len(tc.want) {
				t.Fatalf("events %v, want %v", evs, tc.want)
			}
			for i, e := range evs {
				if got := string(e.ProtoReflect().Descriptor().Name()); got != tc.want[i] {
					t.Errorf("event %d is %s, want %s", i, got, tc.want[i])
				}
			}
		})
	}
}

func TestCompletionRefusedNamesTheField(t *testing.T) {
	c := given(opened, assigned, accepted, contactd, enRoute, arrived)
	tests := []struct {
		name   string
		report *eventsv1.WorkReport
		field  string
		rule   string
	}{
		{"missing check", report(passAll[:2]...), "report.checks", "required_check:electrical_safety"},
		{"failed check", report(passAll[0], passAll[1], &eventsv1.CheckResult{Check: "electrical_safety"}), "report.checks", "check_passed:electrical_safety"},
		{"passed then failed", report(append(passAll, &eventsv1.CheckResult{Check: "functional_test"})...), "report.checks", "check_passed:functional_test"},
		{"no sign-off", &eventsv1.WorkReport{WorkDone: "x", Checks: passAll}, "report.sign_off", "required"},
		{"bad digest", func() *eventsv1.WorkReport { r := report(passAll...); r.SignOff.SignatureSha256 = "abc"; return r }(), "report.sign_off.signature_sha256", "sha256_hex"},
		{"signer in clear", func() *eventsv1.WorkReport { r := report(passAll...); r.SignOff.Signer = nil; return r }(), "report.sign_off.signer", "sealed"},
		{"future signature", func() *eventsv1.WorkReport {
			r := report(passAll...)
			r.SignOff.SignedAt = timestamppb.New(t0.Add(time.Hour))
			return r
		}(), "report.sign_off.signed_at", "not_future"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Complete(c, "w", "a", tc.report, DefaultChecklists(), t0)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a ValidationError", err)
			}
			for _, v := range ve.Violations {
				if v.Field == tc.field && v.Rule == tc.rule {
					return
				}
			}
			t.Fatalf("violations %+v lack %s/%s", ve.Violations, tc.field, tc.rule)
		})
	}
}

func TestDeclineReopensAndRemembersTheDecliner(t *testing.T) {
	c := given(opened, assigned, declined)
	o := c.Order("w")
	if o.Status != StatusOpen || o.TechnicianID != "" || len(o.Declined) != 1 || o.Declined[0] != "a" {
		t.Fatalf("after decline: %+v", o)
	}
}

func TestTechnicianBooking(t *testing.T) {
	day := "2026-03-10"
	tech := EvolveTechnician(nil, t0, &eventsv1.TechnicianRegistered{TechnicianId: "a", Services: []eventsv1.ServiceType{repair}, MaxConcurrentJobs: 1, MaxDailyJobs: 2})
	evs, err := BookJob(tech, "w1", "c1", day)
	if err != nil || len(evs) != 1 {
		t.Fatalf("first booking: %v %v", evs, err)
	}
	tech = EvolveTechnician(tech, t0, evs[0])
	if evs, err := BookJob(tech, "w1", "c1", day); err != nil || len(evs) != 0 {
		t.Fatalf("booking the same order again: %v %v, want nothing", evs, err)
	}
	if _, err := BookJob(tech, "w2", "c2", day); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("over concurrent capacity: %v", err)
	}
	tech = EvolveTechnician(tech, t0, ReleaseJob(tech, "w1", ReleaseCompleted)[0])
	if ReleaseJob(tech, "w1", ReleaseCompleted) != nil {
		t.Fatal("releasing twice decides an event")
	}
	evs, _ = BookJob(tech, "w2", "c2", day)
	tech = EvolveTechnician(tech, t0, evs[0])
	tech = EvolveTechnician(tech, t0, ReleaseJob(tech, "w2", ReleaseCompleted)[0])
	if _, err := BookJob(tech, "w3", "c3", day); !errors.Is(err, ErrNoCapacity) {
		t.Fatalf("over daily capacity: %v", err)
	}
	if evs, err := BookJob(tech, "w3", "c3", "2026-03-11"); err != nil || len(evs) != 1 {
		t.Fatalf("next day: %v %v", evs, err)
	}
	onLeave := EvolveTechnician(tech.Clone(), t0, &eventsv1.TechnicianStatusChanged{Status: eventsv1.TechnicianStatus_TECHNICIAN_STATUS_ON_LEAVE})
	if _, err := BookJob(onLeave, "w4", "c4", "2026-03-12"); !errors.Is(err, ErrWrongState) {
		t.Fatalf("booking a technician on leave: %v", err)
	}
}

func TestRegisterTechnicianValidates(t *testing.T) {
	_, err := RegisterTechnician(&Technician{}, "a", TechnicianProfile{MaxConcurrent: 3, MaxDaily: 2})
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err %v", err)
	}
	want := map[string]bool{"display_name": true, "services": true, "service_centre": true, "region": true, "max_daily_jobs": true}
	for _, v := range ve.Violations {
		delete(want, v.Field)
	}
	if len(want) != 0 {
		t.Fatalf("violations %+v miss %v", ve.Violations, want)
	}
}
