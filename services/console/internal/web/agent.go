package web

// The agent's forms on the complaint page beyond accept, respond and
// propose — request dispatch with its work sheet, root cause (5W1H),
// resolve, reassign, put on hold and take off hold — and what the page
// shows of the complaint's links: earlier complaints of a repeat, linked
// duplicate reports, work orders. Every action is routing's command, sent
// in the person's name; which forms are shown is only a hint (routing
// decides).

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// workOrder is one of the complaint's work orders, as its events tell.
type workOrder struct {
	ID          string
	Mode        string // on_site, remote
	ServiceType string
	RequiredBy  time.Time
	State       string // the type of its latest event, e.g. TechnicianAssigned
	Technician  string
}

// duplicate is a later report of the same problem that intake linked to
// this complaint instead of opening another.
type duplicate struct {
	Channel    eventsv1.Channel
	Ref        string
	ReceivedAt time.Time
}

// note takes from one event of the stream what the page shows besides the
// timeline: links, work orders, whether a root cause is on record.
func (d *complaintData) note(e *eventsv1.Envelope) {
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_RepeatComplaintFlagged:
		for _, id := range p.RepeatComplaintFlagged.GetEarlierComplaintIds() {
			if !contains(d.Earlier, id) {
				d.Earlier = append(d.Earlier, id)
			}
		}
	case *eventsv1.Envelope_DuplicateLinked:
		x := p.DuplicateLinked
		d.Duplicates = append(d.Duplicates, duplicate{Channel: x.GetChannel(), Ref: x.GetChannelRef(), ReceivedAt: x.GetReceivedAt().AsTime().UTC()})
	case *eventsv1.Envelope_RootCauseRecorded:
		d.RootCauseRecorded = true
	case *eventsv1.Envelope_ComplaintPutOnHold:
		d.HoldReason, d.HoldNote = p.ComplaintPutOnHold.GetReason().String(), p.ComplaintPutOnHold.GetNote()
	case *eventsv1.Envelope_ComplaintTakenOffHold:
		d.HoldReason, d.HoldNote = "", ""
	case *eventsv1.Envelope_DispatchRequested:
		d.addWorkOrder(p.DispatchRequested.GetWorkOrderId(), p.DispatchRequested.GetSpec(), eventlog.TypeOf(e))
	case *eventsv1.Envelope_WorkOrderOpened:
		// Dispatch opens a follow-up order itself when one cannot be completed.
		if d.workOrder(p.WorkOrderOpened.GetWorkOrderId()) == nil {
			d.addWorkOrder(p.WorkOrderOpened.GetWorkOrderId(), p.WorkOrderOpened.GetSpec(), eventlog.TypeOf(e))
			return
		}
	}
	if id, tech := workOrderOf(e); id != "" {
		if w := d.workOrder(id); w != nil {
			w.State = eventlog.TypeOf(e)
			if tech != "" {
				w.Technician = tech
			}
		}
	}
}

func (d *complaintData) addWorkOrder(id string, spec *eventsv1.WorkOrderSpec, state string) {
	w := workOrder{ID: id, Mode: enumName(spec.GetMode()), ServiceType: enumName(spec.GetServiceType()), State: state}
	if spec.GetRequiredBy() != nil {
		w.RequiredBy = spec.GetRequiredBy().AsTime().UTC()
	}
	d.WorkOrders = append(d.WorkOrders, w)
}

func (d *complaintData) workOrder(id string) *workOrder {
	for i := range d.WorkOrders {
		if d.WorkOrders[i].ID == id {
			return &d.WorkOrders[i]
		}
	}
	return nil
}

// workOrderOf reads work_order_id and technician_id from any event of a
// work order: dispatch's events all name them so.
func workOrderOf(e *eventsv1.Envelope) (id, technician string) {
	p := eventlog.Payload(e)
	if p == nil {
		return "", ""
	}
	pm := p.ProtoReflect()
	get := func(name protoreflect.Name) string {
		if f := pm.Descriptor().Fields().ByName(name); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
			return pm.Get(f).String()
		}
		return ""
	}
	return get("work_order_id"), get("technician_id")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// Can says whether the page offers an action's form: the complaint's state
// and the person's role allow it. A hint only: routing decides.
func (d *complaintData) Can(action string) bool {
	handler := d.Owns || d.Supervisor
	open := d.C.Owner != "" && d.C.Status != view.StatusResolved && d.C.Status != view.StatusClosed && d.C.Status != view.StatusWithdrawn
	onHold := d.C.Status == view.StatusOnHold
	switch action {
	case "accept":
		return d.C.Status == view.StatusAssigned
	case "respond":
		return handler && open
	case "propose", "dispatch", "resolve", "hold":
		return handler && open && !onHold
	case "unhold":
		return handler && onHold
	case "rootcause":
		// Required of a repeat before it may be resolved (routing's handling rules).
		return handler && open && d.C.Repeat && !d.RootCauseRecorded
	case "reassign":
		return d.Supervisor && d.C.Status != view.StatusReceived && d.C.Status != view.StatusClosed && d.C.Status != view.StatusWithdrawn
	}
	return false
}

// supervises: the roles that may act for an owner and reassign.
func supervises(p auth.Principal) bool {
	return p.HasRole(auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager)
}

// field is one labelled input of an agent form, with its value as typed
// and routing's error for it.
type field struct {
	ID, Name, Kind     string // Kind: text, number, datetime-local, textarea, select
	Label, Help, Error string
	Value              string
	Options            []option
}

type option struct{ Value, Label string }

// Describedby lists the ids of the help and error texts of the field.
func (f field) Describedby() string {
	var ids []string
	if f.Help != "" {
		ids = append(ids, f.ID+"-help")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

// Field is the named input of an action's form. Its name is the request
// field routing names in a violation ("spec.region"), so the error lands
// beside it; its label is message "f.<action>.<name>", its help (if any)
// that key + ".help".
func (d *complaintData) Field(lang, action, name, kind string) field {
	key := "f." + action + "." + name
	f := field{
		ID:   action + "-" + strings.NewReplacer("spec.", "", "_", "-").Replace(name),
		Name: name, Kind: kind, Label: msg(lang, key),
		Value: d.Form[action+"."+name], Error: d.Errors[action+"."+name],
	}
	if _, ok := messages[key+".help"]; ok {
		f.Help = msg(lang, key+".help")
	}
	if kind == "number" && f.Value == "" && f.Error == "" {
		f.Value = "1"
	}
	for _, v := range choices[action+"."+name] {
		f.Options = append(f.Options, option{Value: v, Label: msg(lang, "opt."+v)})
	}
	return f
}

// choices are the values offered by the select fields, by action and name.
var choices = map[string][]string{
	"dispatch.spec.mode": {eventsv1.ServiceMode_SERVICE_MODE_ON_SITE.String(), eventsv1.ServiceMode_SERVICE_MODE_REMOTE.String()},
	"dispatch.spec.service_type": {eventsv1.ServiceType_SERVICE_TYPE_REPAIR.String(), eventsv1.ServiceType_SERVICE_TYPE_INSTALLATION.String(),
		eventsv1.ServiceType_SERVICE_TYPE_COMMISSIONING.String(), eventsv1.ServiceType_SERVICE_TYPE_MAINTENANCE.String(),
		eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT.String()},
	"hold.reason": {eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER.String(), eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_PARTS.String()},
}

// requiredByLayout is what a datetime-local input sends; the page reads
// and writes times in UTC.
const requiredByLayout = "2006-01-02T15:04"

// agentAction sends one of this file's actions to routing (act has
// checked the action is known).
func (srv *Server) agentAction(ctx context.Context, r *http.Request, action, id string) error {
	const version = 0 // the latest: see act
	form := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	rc := srv.opts.Routing
	var err error
	switch action {
	case "dispatch":
		var spec *eventsv1.WorkOrderSpec
		if spec, err = workOrderSpec(form); err == nil {
			_, err = rc.RequestDispatch(ctx, &routingv1.RequestDispatchRequest{ComplaintId: id, ExpectedVersion: version, Spec: spec})
		}
	case "rootcause":
		_, err = rc.RecordRootCause(ctx, &routingv1.RecordRootCauseRequest{ComplaintId: id, ExpectedVersion: version,
			What: form("what"), Why: form("why"), Where: form("where"), When: form("when"), Who: form("who"), How: form("how")})
	case "resolve":
		_, err = rc.Resolve(ctx, &routingv1.ResolveRequest{ComplaintId: id, ExpectedVersion: version,
			ResolutionCode: form("resolution_code"), Summary: form("summary")})
	case "reassign":
		_, err = rc.Reassign(ctx, &routingv1.ReassignRequest{ComplaintId: id, ExpectedVersion: version,
			Team: form("team"), Owner: form("owner"), Reason: form("reason")})
	case "hold":
		reason := eventsv1.HoldReason(eventsv1.HoldReason_value[form("reason")])
		_, err = rc.PutOnHold(ctx, &routingv1.PutOnHoldRequest{ComplaintId: id, ExpectedVersion: version, Reason: reason, Note: form("note")})
	case "unhold":
		_, err = rc.TakeOffHold(ctx, &routingv1.TakeOffHoldRequest{ComplaintId: id, ExpectedVersion: version})
	default:
		err = fmt.Errorf("console: unknown action %q", action)
	}
	return err
}

// workOrderSpec reads the dispatch form. What the caller leaves empty
// routing fills in from the complaint (the sealed site contact always:
// the console never sees it). A number or time that does not parse is
// refused here, named like routing names its fields; the rest routing
// checks.
func workOrderSpec(form func(string) string) (*eventsv1.WorkOrderSpec, error) {
	spec := &eventsv1.WorkOrderSpec{
		Mode:                  eventsv1.ServiceMode(eventsv1.ServiceMode_value[form("spec.mode")]),
		ServiceType:           eventsv1.ServiceType(eventsv1.ServiceType_value[form("spec.service_type")]),
		Region:                form("spec.region"),
		EquipmentModel:        form("spec.equipment_model"),
		CustomerOrganisation:  form("spec.customer_organisation"),
		ProductLine:           form("spec.product_line"),
		PreferredTechnicianId: form("spec.preferred_technician_id"),
		SerialNumbers: strings.FieldsFunc(form("spec.serial_numbers"), func(r rune) bool {
			return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' || r == '，'
		}),
	}
	var vs []api.Violation
	if q := form("spec.quantity"); q != "" {
		n, err := strconv.ParseUint(q, 10, 32)
		if err != nil {
			vs = append(vs, api.Violation{Field: "spec.quantity", Rule: "number", Message: "must be a whole number"})
		}
		spec.Quantity = uint32(n)
	}
	if s := form("spec.required_by"); s != "" {
		t, err := time.ParseInLocation(requiredByLayout, s, time.UTC)
		if err != nil {
			t, err = time.ParseInLocation(requiredByLayout+":05", s, time.UTC)
		}
		if err != nil {
			vs = append(vs, api.Violation{Field: "spec.required_by", Rule: "datetime", Message: "must be a date and time (UTC), e.g. 2026-11-03T18:00"})
		} else {
			spec.RequiredBy = timestamppb.New(t)
		}
	}
	if len(vs) > 0 {
		return nil, api.InvalidArgument("bad work order", vs...)
	}
	return spec, nil
}

// describeAgent summarises the timeline's events of this file's actions
// that describe (funcs.go) leaves blank.
func describeAgent(e *eventsv1.Envelope) string {
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_DispatchRequested:
		s := p.DispatchRequested.GetSpec()
		return fmt.Sprintf("%s: %s %s", p.DispatchRequested.GetWorkOrderId(), enumName(s.GetMode()), enumName(s.GetServiceType()))
	case *eventsv1.Envelope_RootCauseRecorded:
		x := p.RootCauseRecorded
		return fmt.Sprintf("what: %s; why: %s; where: %s; when: %s; who: %s; how: %s", x.GetWhat(), x.GetWhy(), x.GetWhere(), x.GetWhen(), x.GetWho(), x.GetHow())
	}
	if id, tech := workOrderOf(e); id != "" {
		return strings.TrimSpace(id + " " + tech)
	}
	return ""
}
