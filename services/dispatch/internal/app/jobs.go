package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// ListMyJobs returns the technician's work orders that are not finished.
func (a *App) ListMyJobs(technicianID string) []*domain.WorkOrder {
	return a.view.Orders(func(o *domain.WorkOrder) bool {
		return o.TechnicianID == technicianID && o.Status.Holding()
	})
}

// jobCommand runs the command name of caller on one work order, then
// settles the order's bookings (releases the slot of a finished order,
// re-dispatches a declined one, dispatches a follow-on). All it writes
// continues the correlation of the event that opened the order.
func (a *App) jobCommand(ctx context.Context, name, caller, workOrderID string, decide func(*domain.Complaint, time.Time) ([]proto.Message, error)) (*domain.WorkOrder, error) {
	complaintID := a.view.ComplaintOf(workOrderID)
	if complaintID == "" {
		return nil, fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotFound)
	}
	by := a.orderCause(caller, workOrderID)
	c, err := a.onComplaint(ctx, name, complaintID, by, decide)
	if err != nil {
		return nil, err
	}
	o := c.Order(workOrderID)
	if err := a.Settle(ctx, complaintID, workOrderID, by); err != nil {
		// The change is stored; the bus settles it again on delivery.
		a.logger.Warn("settle after command failed", "work_order_id", workOrderID, "err", err)
	}
	if o.FollowOnID != "" {
		if err := a.Settle(ctx, complaintID, o.FollowOnID, by); err != nil {
			a.logger.Warn("dispatch of follow-on failed", "work_order_id", o.FollowOnID, "err", err)
		}
	}
	cp := *o
	return &cp, nil
}

// Accept is the technician taking the job.
func (a *App) Accept(ctx context.Context, caller, workOrderID string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "Accept", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Accept(c, workOrderID, caller)
	})
}

// Decline is the technician refusing the job; it is dispatched again to someone else.
func (a *App) Decline(ctx context.Context, caller, workOrderID, reason string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "Decline", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Decline(c, workOrderID, caller, reason)
	})
}

// ReportContacted records the first contact with the customer and the ETA.
func (a *App) ReportContacted(ctx context.Context, caller, workOrderID string, eta time.Time, note string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "ReportContacted", caller, workOrderID, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return domain.ReportContacted(c, workOrderID, caller, eta, note, now)
	})
}

// ReportEnRoute records the technician leaving for the site.
func (a *App) ReportEnRoute(ctx context.Context, caller, workOrderID string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "ReportEnRoute", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.ReportEnRoute(c, workOrderID, caller)
	})
}

// ReportArrived records the technician on site.
func (a *App) ReportArrived(ctx context.Context, caller, workOrderID string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "ReportArrived", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.ReportArrived(c, workOrderID, caller)
	})
}

// Completion is what the technician's app sends when the work is done.
type Completion struct {
	WorkDone  string
	PartsUsed []*eventsv1.PartUsed
	Checks    []*eventsv1.CheckResult
	// The customer's sign-off: the name is sealed here with the customer's
	// key; the signature image is kept only as its SHA-256.
	SignerName     string
	SignedAt       time.Time
	SignatureImage []byte
	// SignatureRef is where the app stored the image; defaults to its content address.
	SignatureRef string
}

// maxSignatureImage bounds the signature image a completion may carry.
const maxSignatureImage = 512 << 10

// Complete closes an on-site order with the signed work report.
func (a *App) Complete(ctx context.Context, caller, workOrderID string, in Completion) (*domain.WorkOrder, error) {
	var vs []domain.Violation
	if in.SignerName == "" {
		vs = append(vs, domain.Violation{Field: "sign_off.signer_name", Rule: "required", Message: "the name of the customer who signed"})
	}
	if len(in.SignatureImage) == 0 {
		vs = append(vs, domain.Violation{Field: "sign_off.signature_image", Rule: "required", Message: "the customer's signature image"})
	} else if len(in.SignatureImage) > maxSignatureImage {
		vs = append(vs, domain.Violation{Field: "sign_off.signature_image", Rule: "max_bytes:524288", Message: "signature image too large"})
	}
	if len(vs) > 0 {
		return nil, &domain.ValidationError{Violations: vs}
	}
	o := a.view.Order(workOrderID)
	if o == nil {
		return nil, fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotFound)
	}
	if o.TechnicianID != caller {
		return nil, fmt.Errorf("work order %s: %w", workOrderID, domain.ErrNotAssignee)
	}
	signer, err := a.sealer.Seal(ctx, pii.KeyRef(o.Spec.GetSiteContact()), &eventsv1.PersonalData{Name: in.SignerName})
	if errors.Is(err, pii.ErrErased) {
		// Dispatch never makes a customer key: after an erasure there is
		// none to seal under, and the name is not stored in the clear.
		return nil, fmt.Errorf("%w: the customer's personal data was erased, so the signer's name cannot be sealed", kernel.ErrPrecondition)
	}
	if err != nil {
		return nil, fmt.Errorf("seal signer name: %w", err)
	}
	sum := sha256.Sum256(in.SignatureImage)
	digest := hex.EncodeToString(sum[:])
	ref := in.SignatureRef
	if ref == "" {
		ref = "sha256:" + digest
	}
	report := &eventsv1.WorkReport{
		WorkDone: in.WorkDone, PartsUsed: in.PartsUsed, Checks: in.Checks,
		SignOff: &eventsv1.CustomerSignOff{Signer: signer, SignatureSha256: digest, SignatureAttachmentRef: ref},
	}
	if !in.SignedAt.IsZero() {
		report.SignOff.SignedAt = timestamppb.New(in.SignedAt)
	}
	return a.jobCommand(ctx, "Complete", caller, workOrderID, func(c *domain.Complaint, now time.Time) ([]proto.Message, error) {
		return domain.Complete(c, workOrderID, caller, report, a.cfg.Checklists, now)
	})
}

// followOn names and times the order that replaces one not completed.
func (a *App) followOn(mode eventsv1.ServiceMode) domain.FollowOn {
	window := a.cfg.FollowOnOnSite
	if mode == eventsv1.ServiceMode_SERVICE_MODE_REMOTE {
		window = a.cfg.FollowOnRemote
	}
	return domain.FollowOn{ID: a.newID(), RequiredBy: a.clock.Now().Add(window)}
}

// ReportFailed records that the work could not be completed; a follow-on
// order with the same work sheet is opened and dispatched.
func (a *App) ReportFailed(ctx context.Context, caller, workOrderID, reason string) (*domain.WorkOrder, error) {
	next := a.followOn(eventsv1.ServiceMode_SERVICE_MODE_ON_SITE)
	return a.jobCommand(ctx, "ReportFailed", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		if o := c.Order(workOrderID); o != nil && o.Spec.GetMode() == eventsv1.ServiceMode_SERVICE_MODE_REMOTE {
			next.RequiredBy = a.followOn(eventsv1.ServiceMode_SERVICE_MODE_REMOTE).RequiredBy
		}
		return domain.ReportFailed(c, workOrderID, caller, reason, next)
	})
}

// StartRemoteSession starts remote support (and accepts the job).
func (a *App) StartRemoteSession(ctx context.Context, caller, workOrderID, sessionRef string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "StartRemoteSession", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.StartRemoteSession(c, workOrderID, caller, sessionRef)
	})
}

// ResolveRemotely closes a remote order the session fixed.
func (a *App) ResolveRemotely(ctx context.Context, caller, workOrderID, summary string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "ResolveRemotely", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.ResolveRemotely(c, workOrderID, caller, summary)
	})
}

// EscalateToOnSite ends a remote order and opens (and dispatches) an on-site one.
func (a *App) EscalateToOnSite(ctx context.Context, caller, workOrderID, reason string) (*domain.WorkOrder, error) {
	next := a.followOn(eventsv1.ServiceMode_SERVICE_MODE_ON_SITE)
	return a.jobCommand(ctx, "EscalateToOnSite", caller, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.EscalateToOnSite(c, workOrderID, caller, reason, next)
	})
}

// CancelWorkOrder calls an order off (a supervisor, or the complaint withdrawn).
func (a *App) CancelWorkOrder(ctx context.Context, actor, workOrderID, reason string) (*domain.WorkOrder, error) {
	return a.jobCommand(ctx, "CancelWorkOrder", actor, workOrderID, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
		return domain.Cancel(c, workOrderID, reason, actor)
	})
}
