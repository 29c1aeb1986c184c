package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/pii"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// Get returns the complaint as intake sees it. Agents and auditors read
// personal data in the clear, as does the adapter of the channel the
// complaint came through; team leads, managers, reviewers and adapters of a
// linked channel see it masked; to other adapters it does not exist.
func (a *App) Get(ctx context.Context, p auth.Principal, id string) (*intakev1.Complaint, error) {
	if err := invalid(domain.ValidateID("complaint_id", id)); err != nil {
		return nil, err
	}
	clear, masked, adapter := p.HasRole(clearReaders...), p.HasRole(maskedReaders...), p.Kind == auth.KindAdapter
	if !clear && !masked && !adapter {
		return nil, fmt.Errorf("%w: reading complaints needs role %s, %s or an adapter", kernel.ErrPermission, strings.Join(clearReaders, ", "), strings.Join(maskedReaders, ", "))
	}
	s, err := a.load(ctx, id)
	if err != nil {
		return nil, err
	}
	if !clear && !masked {
		if !ownChannel(p, s) {
			return nil, errNotYours
		}
		clear = adapterFor(p, s.Received.GetChannel())
	}
	return a.view(ctx, s, clear)
}

func (a *App) view(ctx context.Context, s domain.State, clear bool) (*intakev1.Complaint, error) {
	r := s.Received
	c := s.Customer
	cv := &intakev1.CustomerView{CustomerRef: c.GetCustomerRef(), Tier: c.GetTier(), Organisation: c.GetOrganisation(), Anonymous: c.GetAnonymous(), Masked: !clear, Erased: s.Erased}
	if c.GetPersonal() != nil && !s.Erased {
		pd, err := a.keys.Open(ctx, c.GetPersonal())
		switch {
		case errors.Is(err, pii.ErrErased):
			cv.Erased = true
		case err != nil:
			return nil, fmt.Errorf("open personal data: %w", err)
		case clear:
			cv.Name, cv.Phone, cv.Email, cv.Address = pd.GetName(), pd.GetPhone(), pd.GetEmail(), pd.GetAddress()
		default:
			cv.Name, cv.Phone, cv.Email, cv.Address = maskName(pd.GetName()), maskTail(pd.GetPhone(), 4), maskEmail(pd.GetEmail()), maskTail(pd.GetAddress(), 0)
		}
	}
	out := &intakev1.Complaint{
		ComplaintId:           s.ID,
		Channel:               r.GetChannel(),
		ChannelRef:            r.GetChannelRef(),
		AdapterId:             r.GetAdapterId(),
		ReceivedAt:            r.GetReceivedAt(),
		Customer:              cv,
		Product:               r.GetProduct(),
		Place:                 r.GetPlace(),
		Description:           r.GetDescription(),
		Emotion:               r.GetEmotion(),
		CustomerRequest:       r.GetCustomerRequest(),
		Attachments:           s.Attachments,
		FirstReceiver:         r.GetFirstReceiver(),
		AcceptedBy:            s.AcceptedBy,
		AcceptedAutomatically: s.AcceptedAuto,
		Version:               s.Version,
	}
	if !s.RecordedAt.IsZero() {
		out.RecordedAt = timestamppb.New(s.RecordedAt)
	}
	switch s.Status {
	case domain.StatusReceived:
		out.Status = intakev1.ComplaintStatus_COMPLAINT_STATUS_RECEIVED
	case domain.StatusAccepted:
		out.Status = intakev1.ComplaintStatus_COMPLAINT_STATUS_ACCEPTED
	case domain.StatusWithdrawn:
		out.Status = intakev1.ComplaintStatus_COMPLAINT_STATUS_WITHDRAWN
	}
	for _, l := range s.Links {
		out.Linked = append(out.Linked, &intakev1.LinkedSubmission{Channel: l.Channel, ChannelRef: l.ChannelRef, ReceivedAt: timestamppb.New(l.ReceivedAt)})
	}
	return out, nil
}

// maskName keeps the first character: "张三" -> "张*".
func maskName(s string) string {
	if s == "" {
		return ""
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(r) + strings.Repeat("*", utf8.RuneCountInString(s[n:]))
}

// maskTail keeps the last keep characters.
func maskTail(s string, keep int) string {
	n := utf8.RuneCountInString(s)
	if n <= keep {
		return strings.Repeat("*", n)
	}
	rs := []rune(s)
	return strings.Repeat("*", n-keep) + string(rs[n-keep:])
}

// maskEmail keeps the first character and the domain: "a***@example.com".
func maskEmail(s string) string {
	local, dom, ok := strings.Cut(s, "@")
	if !ok {
		return maskTail(s, 0)
	}
	return maskName(local) + "@" + dom
}
