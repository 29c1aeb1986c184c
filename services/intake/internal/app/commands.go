package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// Accept formally accepts (受理) a complaint on an agent's word.
func (a *App) Accept(ctx context.Context, p auth.Principal, id string) (domain.State, error) {
	if err := requireRole(p, "accepting a complaint", auth.RoleAgent); err != nil {
		return domain.State{}, err
	}
	if err := invalid(domain.ValidateID("complaint_id", id)); err != nil {
		return domain.State{}, err
	}
	return a.update(ctx, "AcceptComplaint", id, p, func(s domain.State) ([]proto.Message, error) {
		return domain.DecideAccept(s, p.ID)
	})
}

// AmendCustomer replaces the customer's details, sealed under the same
// customer key as the original record.
func (a *App) AmendCustomer(ctx context.Context, p auth.Principal, id string, ci *intakev1.CustomerInput) error {
	if err := requireRole(p, "amending customer details", auth.RoleAgent); err != nil {
		return err
	}
	if err := invalid(append(domain.ValidateID("complaint_id", id), domain.ValidateCustomer("customer", ci)...)); err != nil {
		return err
	}
	_, err := a.update(ctx, "AmendCustomerDetails", id, p, func(s domain.State) ([]proto.Message, error) {
		if s.Erased {
			return domain.DecideAmend(s, nil)
		}
		sealed, err := a.seal(ctx, s.Customer.GetCustomerRef(), ci)
		if err != nil {
			return nil, err
		}
		tier := ci.GetTier()
		if tier == eventsv1.CustomerTier_CUSTOMER_TIER_UNSPECIFIED {
			tier = s.Customer.GetTier()
		}
		return domain.DecideAmend(s, &eventsv1.CustomerDetailsAmended{Personal: sealed, Organisation: ci.GetOrganisation(), Tier: tier, AmendedBy: p.ID})
	})
	return err
}

// AttachEvidence adds attachments; agents, or the adapter of the channel
// the complaint came through.
func (a *App) AttachEvidence(ctx context.Context, p auth.Principal, id string, atts []*eventsv1.Attachment) (domain.State, error) {
	if !p.HasRole(auth.RoleAgent) && p.Kind != auth.KindAdapter {
		return domain.State{}, fmt.Errorf("%w: attaching evidence needs role agent or an adapter", kernel.ErrPermission)
	}
	if err := invalid(append(domain.ValidateID("complaint_id", id), domain.ValidateAttachments("attachments", atts, a.cfg.Limits.MaxAttachments)...)); err != nil {
		return domain.State{}, err
	}
	s, err := a.update(ctx, "AttachEvidence", id, p, func(s domain.State) ([]proto.Message, error) {
		if !p.HasRole(auth.RoleAgent) && !ownChannel(p, s) {
			return nil, errNotYours
		}
		return domain.DecideAttach(s, &eventsv1.EvidenceAttached{Attachments: atts, AttachedBy: p.ID}, a.cfg.Limits.MaxAttachments)
	})
	if errors.Is(err, domain.ErrTooManyAttach) {
		return s, invalid([]domain.Violation{{Field: "attachments", Rule: "max_items", Message: fmt.Sprintf("a complaint holds at most %d attachments", a.cfg.Limits.MaxAttachments)}})
	}
	return s, err
}

// Withdraw records the customer's withdrawal.
func (a *App) Withdraw(ctx context.Context, p auth.Principal, id, reason string) error {
	if err := requireRole(p, "withdrawing a complaint", auth.RoleAgent); err != nil {
		return err
	}
	if err := invalid(append(domain.ValidateID("complaint_id", id), domain.ValidateText("reason", reason, true)...)); err != nil {
		return err
	}
	_, err := a.update(ctx, "WithdrawComplaint", id, p, func(s domain.State) ([]proto.Message, error) {
		return domain.DecideWithdraw(s, &eventsv1.ComplaintWithdrawn{Reason: reason, WithdrawnBy: p.ID})
	})
	return err
}

// EraseCustomer destroys the data key of the complaint's customer (every
// complaint sealed under it becomes unreadable) and records CustomerErased;
// only the admin role may. The order is key, event, key again:
//   - the key goes before the event, so the log never claims an erasure
//     that did not happen; a crash in between leaves the data unreadable
//     and the call failed, and the retry (idempotent) records the event;
//   - the key goes again after the event, because a seal racing with the
//     erasure (an amendment, a new complaint of the same customer) may have
//     made a new key in between; after the event, this complaint's
//     amendments see it erased and seal nothing.
func (a *App) EraseCustomer(ctx context.Context, p auth.Principal, id, legalBasis string) (string, error) {
	if err := requireRole(p, "erasing a customer", eraseRoles...); err != nil {
		return "", err
	}
	if err := invalid(append(domain.ValidateID("complaint_id", id), domain.ValidateText("legal_basis", legalBasis, true)...)); err != nil {
		return "", err
	}
	s, err := a.load(ctx, id)
	if err != nil {
		return "", err
	}
	ref := s.Customer.GetCustomerRef()
	if err := a.keys.Erase(ctx, ref); err != nil {
		return "", fmt.Errorf("erase data key: %w", err)
	}
	if _, err = a.update(ctx, "EraseCustomer", id, p, func(s domain.State) ([]proto.Message, error) {
		return domain.DecideErase(s, &eventsv1.CustomerErased{KeyId: ref, ErasedBy: p.ID, LegalBasis: legalBasis})
	}); err != nil {
		return "", err
	}
	if err := a.keys.Erase(ctx, ref); err != nil {
		return "", fmt.Errorf("erase data key: %w", err)
	}
	return ref, nil
}
