package domain

import (
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Status is where a work order is in its life.
type Status int

// Work order statuses. Open means waiting for a technician: just opened, or
// declined and waiting to be dispatched again.
const (
	StatusOpen Status = iota + 1
	StatusUnassignable
	StatusAssigned
	StatusAccepted
	StatusContacted
	StatusEnRoute
	StatusOnSite
	StatusRemoteSession
	StatusCompleted
	StatusResolvedRemotely
	StatusEscalated
	StatusFailed
	StatusCancelled
)

var statusNames = map[Status]string{
	StatusOpen: "open", StatusUnassignable: "unassignable", StatusAssigned: "assigned", StatusAccepted: "accepted",
	StatusContacted: "contacted", StatusEnRoute: "en_route", StatusOnSite: "on_site", StatusRemoteSession: "remote_session",
	StatusCompleted: "completed", StatusResolvedRemotely: "resolved_remotely", StatusEscalated: "escalated",
	StatusFailed: "failed", StatusCancelled: "cancelled",
}

func (s Status) String() string { return statusNames[s] }

// Terminal reports whether nothing more happens to the order.
func (s Status) Terminal() bool { return s >= StatusCompleted }

// Holding reports whether a technician holds a booking for the order.
func (s Status) Holding() bool { return s >= StatusAssigned && s <= StatusRemoteSession }

// Finished reports whether the order has ended (completed, resolved,
// escalated, failed or cancelled): no event changes it any more.
func (s Status) Finished() bool { return s >= StatusCompleted }

// Unassigned reports whether the order waits for a technician.
func (s Status) Unassigned() bool { return s == StatusOpen || s == StatusUnassignable }

// WorkOrder is the state of one work order, folded from the complaint stream.
type WorkOrder struct {
	ID           string
	ComplaintID  string
	Spec         *eventsv1.WorkOrderSpec
	FollowsID    string
	Status       Status
	TechnicianID string
	AcceptBy     time.Time
	// Technicians who declined (by hand or by timeout): not asked again.
	Declined   []string
	OpenedAt   time.Time
	ETA        time.Time
	FollowOnID string
	UpdatedAt  time.Time
}

// Complaint is what dispatch knows of one complaint stream: its version (for
// optimistic appends) and its work orders.
type Complaint struct {
	ID      string
	Version uint64
	Orders  map[string]*WorkOrder
	// Order ids in the order they were opened.
	Sequence []string
}

// Order returns the work order with id, or nil.
func (c *Complaint) Order(id string) *WorkOrder {
	if c == nil {
		return nil
	}
	return c.Orders[id]
}

// EvolveComplaint applies one event of a complaint stream at its version.
// Events of other services only move the version.
func EvolveComplaint(c *Complaint, complaintID string, version uint64, at time.Time, ev proto.Message) *Complaint {
	if c == nil {
		c = &Complaint{ID: complaintID, Orders: map[string]*WorkOrder{}}
	}
	c.Version = version
	set := func(id string, fn func(o *WorkOrder)) {
		if o := c.Orders[id]; o != nil {
			fn(o)
			o.UpdatedAt = at
		}
	}
	switch e := ev.(type) {
	case *eventsv1.WorkOrderOpened:
		if c.Orders[e.GetWorkOrderId()] != nil {
			break
		}
		c.Orders[e.GetWorkOrderId()] = &WorkOrder{
			ID: e.GetWorkOrderId(), ComplaintID: c.ID, Spec: e.GetSpec(), FollowsID: e.GetFollowsWorkOrderId(),
			Status: StatusOpen, OpenedAt: at, UpdatedAt: at,
		}
		c.Sequence = append(c.Sequence, e.GetWorkOrderId())
	case *eventsv1.TechnicianAssigned:
		set(e.GetWorkOrderId(), func(o *WorkOrder) {
			o.Status, o.TechnicianID, o.AcceptBy = StatusAssigned, e.GetTechnicianId(), e.GetAcceptBy().AsTime()
		})
	case *eventsv1.WorkOrderUnassignable:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusUnassignable })
	case *eventsv1.TechnicianAccepted:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusAccepted })
	case *eventsv1.TechnicianDeclined:
		set(e.GetWorkOrderId(), func(o *WorkOrder) {
			o.Status, o.TechnicianID, o.AcceptBy = StatusOpen, "", time.Time{}
			o.Declined = append(o.Declined, e.GetTechnicianId())
		})
	case *eventsv1.CustomerContacted:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status, o.ETA = StatusContacted, e.GetEta().AsTime() })
	case *eventsv1.TechnicianEnRoute:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusEnRoute })
	case *eventsv1.TechnicianArrived:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusOnSite })
	case *eventsv1.RemoteSessionStarted:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusRemoteSession })
	case *eventsv1.WorkCompleted:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusCompleted })
	case *eventsv1.RemoteResolved:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusResolvedRemotely })
	case *eventsv1.EscalatedToOnSite:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status, o.FollowOnID = StatusEscalated, e.GetFollowOnWorkOrderId() })
	case *eventsv1.WorkOrderFailed:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status, o.FollowOnID = StatusFailed, e.GetFollowOnWorkOrderId() })
	case *eventsv1.WorkOrderCancelled:
		set(e.GetWorkOrderId(), func(o *WorkOrder) { o.Status = StatusCancelled })
	}
	return c
}

// ValidateSpec checks a work sheet (domain.md §5) before an order is opened.
func ValidateSpec(spec *eventsv1.WorkOrderSpec) error {
	var vs violations
	validateSpec(spec, "spec", &vs)
	return vs.err()
}

func validateSpec(spec *eventsv1.WorkOrderSpec, prefix string, vs *violations) {
	if spec == nil {
		vs.add(prefix, "required", "the work sheet is required")
		return
	}
	if spec.GetServiceType() == eventsv1.ServiceType_SERVICE_TYPE_UNSPECIFIED {
		vs.add(prefix+".service_type", "required", "installation, commissioning, repair, maintenance or remote support")
	} else if _, ok := eventsv1.ServiceType_name[int32(spec.GetServiceType())]; !ok {
		vs.add(prefix+".service_type", "enum", "unknown service type")
	}
	switch spec.GetMode() {
	case eventsv1.ServiceMode_SERVICE_MODE_ON_SITE:
		if spec.GetServiceType() == eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT {
			vs.add(prefix+".mode", "consistent", "remote support is done remotely")
		}
	case eventsv1.ServiceMode_SERVICE_MODE_REMOTE:
	default:
		vs.add(prefix+".mode", "required", "on site (hardware) or remote (software)")
	}
	if spec.GetRegion() == "" {
		vs.add(prefix+".region", "required", "the region of the site")
	}
	if spec.GetRequiredBy() == nil {
		vs.add(prefix+".required_by", "required", "the time by which the technician must be on site")
	}
	if spec.GetMode() == eventsv1.ServiceMode_SERVICE_MODE_ON_SITE && spec.GetSiteContact() == nil {
		vs.add(prefix+".site_contact", "required", "an on-site order needs the sealed address and contact")
	}
}

// OpenWorkOrder opens a work order on the complaint; opening an existing id
// decides nothing (a redelivered DispatchRequested).
func OpenWorkOrder(c *Complaint, id string, spec *eventsv1.WorkOrderSpec, follows string) ([]proto.Message, error) {
	var vs violations
	if id == "" {
		vs.add("work_order_id", "required", "a work order id is required")
	}
	validateSpec(spec, "spec", &vs)
	if err := vs.err(); err != nil {
		return nil, err
	}
	if c.Order(id) != nil {
		return nil, nil
	}
	return []proto.Message{&eventsv1.WorkOrderOpened{WorkOrderId: id, Spec: spec, FollowsWorkOrderId: follows}}, nil
}

func order(c *Complaint, id string) (*WorkOrder, error) {
	o := c.Order(id)
	if o == nil {
		return nil, fmt.Errorf("work order %s: %w", id, ErrNotFound)
	}
	return o, nil
}

// assignee finds the order and checks the caller is its technician.
func assignee(c *Complaint, id, caller string) (*WorkOrder, error) {
	o, err := order(c, id)
	if err != nil {
		return nil, err
	}
	if caller == "" || o.TechnicianID != caller {
		return nil, fmt.Errorf("work order %s: %w", id, ErrNotAssignee)
	}
	return o, nil
}

func inState(o *WorkOrder, allowed ...Status) error {
	if slices.Contains(allowed, o.Status) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, s := range allowed {
		names[i] = s.String()
	}
	return fmt.Errorf("work order %s is %s, needs %v: %w", o.ID, o.Status, names, ErrWrongState)
}

// Assign gives an unassigned order to the technician matching chose (and
// booked). Assigning it again to the same technician decides nothing.
func Assign(c *Complaint, id, technicianID string, candidates []*eventsv1.CandidateScore, reason string, acceptBy time.Time) ([]proto.Message, error) {
	o, err := order(c, id)
	if err != nil {
		return nil, err
	}
	if o.Status.Holding() && o.TechnicianID == technicianID {
		return nil, nil
	}
	if err := inState(o, StatusOpen, StatusUnassignable); err != nil {
		return nil, err
	}
	if slices.Contains(o.Declined, technicianID) {
		return nil, fmt.Errorf("technician %s declined work order %s: %w", technicianID, id, ErrWrongState)
	}
	return []proto.Message{&eventsv1.TechnicianAssigned{
		WorkOrderId: id, TechnicianId: technicianID, Candidates: candidates, Reason: reason, AcceptBy: timestamppb.New(acceptBy),
	}}, nil
}

// MarkUnassignable records that no technician fits; routing escalates it.
// Nothing is decided when the order is already marked (a redelivery).
func MarkUnassignable(c *Complaint, id, reason string, candidates []*eventsv1.CandidateScore) ([]proto.Message, error) {
	o, err := order(c, id)
	if err != nil {
		return nil, err
	}
	if o.Status == StatusUnassignable {
		return nil, nil
	}
	if err := inState(o, StatusOpen); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.WorkOrderUnassignable{WorkOrderId: id, Reason: reason, Candidates: candidates}}, nil
}

// Accept is the technician taking the job.
func Accept(c *Complaint, id, caller string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := inState(o, StatusAssigned); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.TechnicianAccepted{WorkOrderId: id, TechnicianId: caller}}, nil
}

// Decline is the technician refusing the job before accepting it.
func Decline(c *Complaint, id, caller, reason string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, (&violations{{Field: "reason", Rule: "required", Message: "say why the job is declined"}}).err()
	}
	if err := inState(o, StatusAssigned); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.TechnicianDeclined{WorkOrderId: id, TechnicianId: caller, Reason: reason}}, nil
}

// DeclineOnTimeout declines for a technician who did not accept by the
// order's accept-by time. Before that, or once accepted, it decides nothing.
func DeclineOnTimeout(c *Complaint, id string, now time.Time) ([]proto.Message, error) {
	o, err := order(c, id)
	if err != nil {
		return nil, err
	}
	if o.Status != StatusAssigned || now.Before(o.AcceptBy) {
		return nil, nil
	}
	return []proto.Message{&eventsv1.TechnicianDeclined{
		WorkOrderId: id, TechnicianId: o.TechnicianID, Reason: "not accepted by " + o.AcceptBy.UTC().Format(time.RFC3339), Automatic: true,
	}}, nil
}

// ReportContacted records the first contact with the customer and the ETA.
func ReportContacted(c *Complaint, id, caller string, eta time.Time, note string, now time.Time) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if eta.IsZero() {
		return nil, (&violations{{Field: "eta", Rule: "required", Message: "the arrival time given to the customer"}}).err()
	}
	if eta.Before(now) {
		return nil, (&violations{{Field: "eta", Rule: "not_past", Message: "the arrival time must not be in the past"}}).err()
	}
	if o.Spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_ON_SITE {
		return nil, fmt.Errorf("work order %s is remote: %w", id, ErrWrongState)
	}
	if err := inState(o, StatusAccepted, StatusContacted); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.CustomerContacted{WorkOrderId: id, TechnicianId: caller, Eta: timestamppb.New(eta), Note: note}}, nil
}

// ReportEnRoute records the technician leaving for the site.
func ReportEnRoute(c *Complaint, id, caller string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := inState(o, StatusContacted); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.TechnicianEnRoute{WorkOrderId: id, TechnicianId: caller}}, nil
}

// ReportArrived records the technician on site.
func ReportArrived(c *Complaint, id, caller string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := inState(o, StatusEnRoute); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.TechnicianArrived{WorkOrderId: id, TechnicianId: caller}}, nil
}

// Complete closes an on-site order with the work report. It is refused
// when a required check of the service type is missing or failed, or the
// customer's sign-off is incomplete.
func Complete(c *Complaint, id, caller string, report *eventsv1.WorkReport, checklists Checklists, now time.Time) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := inState(o, StatusOnSite); err != nil {
		return nil, err
	}
	var vs violations
	if report.GetWorkDone() == "" {
		vs.add("report.work_done", "required", "describe the work done")
	}
	for i, p := range report.GetPartsUsed() {
		if p.GetPartNumber() == "" {
			vs.add(fmt.Sprintf("report.parts_used[%d].part_number", i), "required", "part number is required")
		}
		if p.GetQuantity() == 0 {
			vs.add(fmt.Sprintf("report.parts_used[%d].quantity", i), "min:1", "quantity must be at least 1")
		}
	}
	checklists.verify(o.Spec.GetServiceType(), report.GetChecks(), &vs)
	so := report.GetSignOff()
	switch {
	case so == nil:
		vs.add("report.sign_off", "required", "the customer must sign the work sheet")
	default:
		if so.GetSigner().GetKeyId() == "" || len(so.GetSigner().GetCiphertext()) == 0 {
			vs.add("report.sign_off.signer", "sealed", "the signer's name must be sealed personal data")
		}
		if so.GetSignedAt() == nil {
			vs.add("report.sign_off.signed_at", "required", "when the customer signed")
		} else if so.GetSignedAt().AsTime().After(now) {
			vs.add("report.sign_off.signed_at", "not_future", "the signature cannot be in the future")
		}
		if b, err := hex.DecodeString(so.GetSignatureSha256()); err != nil || len(b) != 32 {
			vs.add("report.sign_off.signature_sha256", "sha256_hex", "must be the 64-hex-digit SHA-256 of the signature image")
		}
		if so.GetSignatureAttachmentRef() == "" {
			vs.add("report.sign_off.signature_attachment_ref", "required", "reference of the stored signature image")
		}
	}
	if err := vs.err(); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.WorkCompleted{WorkOrderId: id, TechnicianId: caller, Report: report}}, nil
}

// FollowOn describes the order that replaces one that could not be finished.
type FollowOn struct {
	ID         string
	RequiredBy time.Time
}

// ReportFailed records that the work could not be completed and opens the
// follow-on order with the same work sheet, in the same append.
func ReportFailed(c *Complaint, id, caller, reason string, next FollowOn) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := followOnValid(reason, next); err != nil {
		return nil, err
	}
	if err := inState(o, StatusAccepted, StatusContacted, StatusEnRoute, StatusOnSite); err != nil {
		return nil, err
	}
	spec := proto.Clone(o.Spec).(*eventsv1.WorkOrderSpec)
	spec.RequiredBy = timestamppb.New(next.RequiredBy)
	return []proto.Message{
		&eventsv1.WorkOrderFailed{WorkOrderId: id, TechnicianId: caller, Reason: reason, FollowOnWorkOrderId: next.ID},
		&eventsv1.WorkOrderOpened{WorkOrderId: next.ID, Spec: spec, FollowsWorkOrderId: id},
	}, nil
}

func followOnValid(reason string, next FollowOn) error {
	var vs violations
	if reason == "" {
		vs.add("reason", "required", "say why the work could not be completed")
	}
	if next.ID == "" {
		vs.add("follow_on_work_order_id", "required", "the follow-on order needs an id")
	}
	if next.RequiredBy.IsZero() {
		vs.add("follow_on_required_by", "required", "the follow-on order needs a due time")
	}
	return vs.err()
}

// StartRemoteSession starts remote support on a remote order; starting it
// also accepts the job.
func StartRemoteSession(c *Complaint, id, caller, sessionRef string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if sessionRef == "" {
		return nil, (&violations{{Field: "session_ref", Rule: "required", Message: "reference of the remote session"}}).err()
	}
	if o.Spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_REMOTE {
		return nil, fmt.Errorf("work order %s is on site: %w", id, ErrWrongState)
	}
	if err := inState(o, StatusAssigned, StatusAccepted); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.RemoteSessionStarted{WorkOrderId: id, TechnicianId: caller, SessionRef: sessionRef}}, nil
}

// ResolveRemotely closes a remote order whose session fixed the problem.
func ResolveRemotely(c *Complaint, id, caller, summary string) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if summary == "" {
		return nil, (&violations{{Field: "summary", Rule: "required", Message: "what the remote session fixed"}}).err()
	}
	if err := inState(o, StatusRemoteSession); err != nil {
		return nil, err
	}
	return []proto.Message{&eventsv1.RemoteResolved{WorkOrderId: id, TechnicianId: caller, Summary: summary}}, nil
}

// EscalateToOnSite ends a remote order that needs hands on the hardware and
// opens the on-site follow-on order (a repair, on site).
func EscalateToOnSite(c *Complaint, id, caller, reason string, next FollowOn) ([]proto.Message, error) {
	o, err := assignee(c, id, caller)
	if err != nil {
		return nil, err
	}
	if err := followOnValid(reason, next); err != nil {
		return nil, err
	}
	if err := inState(o, StatusAccepted, StatusRemoteSession); err != nil {
		return nil, err
	}
	if o.Spec.GetMode() != eventsv1.ServiceMode_SERVICE_MODE_REMOTE {
		return nil, fmt.Errorf("work order %s is already on site: %w", id, ErrWrongState)
	}
	spec := proto.Clone(o.Spec).(*eventsv1.WorkOrderSpec)
	spec.Mode = eventsv1.ServiceMode_SERVICE_MODE_ON_SITE
	if spec.ServiceType == eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT {
		spec.ServiceType = eventsv1.ServiceType_SERVICE_TYPE_REPAIR
	}
	spec.RequiredBy = timestamppb.New(next.RequiredBy)
	spec.PreferredTechnicianId = ""
	if spec.GetSiteContact() == nil {
		return nil, (&violations{{Field: "spec.site_contact", Rule: "required", Message: "an on-site order needs the sealed address and contact"}}).err()
	}
	return []proto.Message{
		&eventsv1.EscalatedToOnSite{WorkOrderId: id, TechnicianId: caller, Reason: reason, FollowOnWorkOrderId: next.ID},
		&eventsv1.WorkOrderOpened{WorkOrderId: next.ID, Spec: spec, FollowsWorkOrderId: id},
	}, nil
}

// Cancel cancels an order that is not finished (the complaint was withdrawn,
// or a supervisor called it off).
func Cancel(c *Complaint, id, reason, by string) ([]proto.Message, error) {
	o, err := order(c, id)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, (&violations{{Field: "reason", Rule: "required", Message: "say why the order is cancelled"}}).err()
	}
	if o.Status.Terminal() {
		return nil, fmt.Errorf("work order %s is %s: %w", id, o.Status, ErrWrongState)
	}
	return []proto.Message{&eventsv1.WorkOrderCancelled{WorkOrderId: id, Reason: reason, CancelledBy: by}}, nil
}
