package web

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// The page follows each work order through dispatch's events, including
// the follow-up order dispatch opens itself; other events leave them be.
func TestWorkOrdersFollowDispatchEvents(t *testing.T) {
	due := time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)
	spec := &eventsv1.WorkOrderSpec{Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR, RequiredBy: timestamppb.New(due)}
	d := &complaintData{}
	for _, e := range []*eventsv1.Envelope{
		{Payload: &eventsv1.Envelope_RepeatComplaintFlagged{RepeatComplaintFlagged: &eventsv1.RepeatComplaintFlagged{EarlierComplaintIds: []string{"c-1", "c-2"}}}},
		{Payload: &eventsv1.Envelope_DispatchRequested{DispatchRequested: &eventsv1.DispatchRequested{WorkOrderId: "wo-1", Spec: spec}}},
		{Payload: &eventsv1.Envelope_WorkOrderOpened{WorkOrderOpened: &eventsv1.WorkOrderOpened{WorkOrderId: "wo-1", Spec: spec}}},
		{Payload: &eventsv1.Envelope_TechnicianAssigned{TechnicianAssigned: &eventsv1.TechnicianAssigned{WorkOrderId: "wo-1", TechnicianId: "tech-ann"}}},
		{Payload: &eventsv1.Envelope_TechnicianDeclined{TechnicianDeclined: &eventsv1.TechnicianDeclined{WorkOrderId: "wo-1", TechnicianId: "tech-ann"}}},
		{Payload: &eventsv1.Envelope_WorkOrderOpened{WorkOrderOpened: &eventsv1.WorkOrderOpened{WorkOrderId: "wo-2", Spec: spec, FollowsWorkOrderId: "wo-1"}}},
		{Payload: &eventsv1.Envelope_ResponseRecorded{ResponseRecorded: &eventsv1.ResponseRecorded{Summary: "called"}}},
		{Payload: &eventsv1.Envelope_RepeatComplaintFlagged{RepeatComplaintFlagged: &eventsv1.RepeatComplaintFlagged{EarlierComplaintIds: []string{"c-2"}}}},
		{Payload: &eventsv1.Envelope_RootCauseRecorded{RootCauseRecorded: &eventsv1.RootCauseRecorded{What: "w"}}},
	} {
		d.note(e)
	}
	want := []workOrder{
		{ID: "wo-1", Mode: "on_site", ServiceType: "repair", RequiredBy: due, State: "TechnicianDeclined", Technician: "tech-ann"},
		{ID: "wo-2", Mode: "on_site", ServiceType: "repair", RequiredBy: due, State: "WorkOrderOpened"},
	}
	if !slices.Equal(d.WorkOrders, want) {
		t.Fatalf("work orders\n%+v\nwant\n%+v", d.WorkOrders, want)
	}
	if !slices.Equal(d.Earlier, []string{"c-1", "c-2"}) || !d.RootCauseRecorded {
		t.Fatalf("earlier %v, root cause recorded %t", d.Earlier, d.RootCauseRecorded)
	}
}

// The forms offered by state and role.
func TestFormsOfferedByStateAndRole(t *testing.T) {
	forms := []string{"accept", "respond", "propose", "dispatch", "rootcause", "hold", "unhold", "resolve", "reassign"}
	for _, tc := range []struct {
		name   string
		d      complaintData
		offers []string
	}{
		{"owner, in progress", complaintData{C: view.Complaint{Status: view.StatusInProgress, Owner: "a"}, Owns: true},
			[]string{"respond", "propose", "dispatch", "hold", "resolve"}},
		{"owner, a repeat", complaintData{C: view.Complaint{Status: view.StatusResponded, Owner: "a", Repeat: true}, Owns: true},
			[]string{"respond", "propose", "dispatch", "rootcause", "hold", "resolve"}},
		{"owner, a repeat with its root cause", complaintData{C: view.Complaint{Status: view.StatusResponded, Owner: "a", Repeat: true}, Owns: true, RootCauseRecorded: true},
			[]string{"respond", "propose", "dispatch", "hold", "resolve"}},
		{"owner, on hold", complaintData{C: view.Complaint{Status: view.StatusOnHold, Owner: "a"}, Owns: true},
			[]string{"respond", "unhold"}},
		{"owner, resolved", complaintData{C: view.Complaint{Status: view.StatusResolved, Owner: "a"}, Owns: true}, nil},
		{"supervisor, assigned", complaintData{C: view.Complaint{Status: view.StatusAssigned, Owner: "a"}, Supervisor: true},
			[]string{"accept", "respond", "propose", "dispatch", "hold", "resolve", "reassign"}},
		{"supervisor, waiting for an owner", complaintData{C: view.Complaint{Status: view.StatusAccepted}, Supervisor: true},
			[]string{"reassign"}},
		{"another agent", complaintData{C: view.Complaint{Status: view.StatusInProgress, Owner: "a"}}, nil},
	} {
		var got []string
		for _, f := range forms {
			if tc.d.Can(f) {
				got = append(got, f)
			}
		}
		if !slices.Equal(got, tc.offers) {
			t.Errorf("%s: offers %v, want %v", tc.name, got, tc.offers)
		}
	}
}

// The work sheet as the form sends it; what does not parse is named like
// routing names it, and nothing is sent.
func TestWorkOrderSpecFromTheForm(t *testing.T) {
	form := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	spec, err := workOrderSpec(form(map[string]string{"spec.mode": "SERVICE_MODE_REMOTE", "spec.service_type": "SERVICE_TYPE_REMOTE_SUPPORT",
		"spec.required_by": "2026-11-03T18:30", "spec.quantity": "2", "spec.serial_numbers": "SN-1, SN-2，SN-3 SN-4"}))
	if err != nil {
		t.Fatal(err)
	}
	if spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_REMOTE || spec.GetServiceType() != eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT ||
		spec.GetQuantity() != 2 || !spec.GetRequiredBy().AsTime().Equal(time.Date(2026, 11, 3, 18, 30, 0, 0, time.UTC)) ||
		!slices.Equal(spec.GetSerialNumbers(), []string{"SN-1", "SN-2", "SN-3", "SN-4"}) {
		t.Fatalf("spec %v", spec)
	}
	_, err = workOrderSpec(form(map[string]string{"spec.quantity": "two", "spec.required_by": "tomorrow"}))
	var fields []string
	for _, v := range api.Violations(err) {
		fields = append(fields, v.Field)
	}
	if !slices.Equal(fields, []string{"spec.quantity", "spec.required_by"}) {
		t.Fatalf("violations %v (%v)", fields, err)
	}
}
