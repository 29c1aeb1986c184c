// Package ports serves routing's API: the gRPC RoutingService (and through
// libs/api its HTTP/JSON face). It maps callers to actors and requests to
// application calls; libs/api maps the errors they return to status codes.
package ports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/routing/internal/app"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// GRPC implements routingv1.RoutingServiceServer.
type GRPC struct {
	routingv1.UnimplementedRoutingServiceServer
	app *app.Application
}

// NewGRPC refuses a nil application.
func NewGRPC(a *app.Application) (*GRPC, error) {
	if a == nil {
		return nil, errors.New("ports: application: required")
	}
	return &GRPC{app: a}, nil
}

// actor is the authenticated caller as the domain sees it.
func actor(ctx context.Context) (domain.Actor, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return domain.Actor{}, status.Error(codes.Unauthenticated, "not authenticated")
	}
	a := domain.Actor{ID: p.ID}
	for _, r := range p.Roles {
		a.Roles = append(a.Roles, domain.Role(r))
	}
	return a, nil
}

func result(id string, v uint64) *routingv1.CommandResult {
	return &routingv1.CommandResult{ComplaintId: id, Version: v}
}

func target(id string, v uint64) app.Target { return app.Target{ComplaintID: id, ExpectedVersion: v} }

// command runs a call for the authenticated caller. Its errors are the
// kernel's kinds, which libs/api's server maps to gRPC and HTTP.
// A refused call answers no result, whatever do built.
func command[R any](ctx context.Context, do func(domain.Actor) (R, error)) (R, error) {
	var zero R
	a, err := actor(ctx)
	if err != nil {
		return zero, err
	}
	r, err := do(a)
	if err != nil {
		return zero, err
	}
	return r, nil
}

// readers read complaints and team rosters: the back office, as in intake.
// Technicians see their work orders through dispatch; adapters read only
// their own channels' complaints.
var readers = []string{auth.RoleAgent, auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager, auth.RoleQualityReviewer, auth.RoleAuditor}

// channelName is a channel as adapters' credentials name it (libs/auth):
// the enum name without its prefix, lower case ("phone", "web_form").
func channelName(ch eventsv1.Channel) string {
	return strings.ToLower(strings.TrimPrefix(ch.String(), "CHANNEL_"))
}

func (s *GRPC) GetComplaint(ctx context.Context, req *routingv1.GetComplaintRequest) (*routingv1.GetComplaintResponse, error) {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "not authenticated")
	}
	adapter := p.Kind == auth.KindAdapter && !p.HasRole(readers...)
	if !adapter {
		if err := auth.RequireRole(ctx, readers...); err != nil {
			return nil, err
		}
	}
	return command(ctx, func(domain.Actor) (*routingv1.GetComplaintResponse, error) {
		c, err := s.app.Load(ctx, req.GetComplaintId())
		if err != nil {
			return nil, err
		}
		if adapter && auth.RequireChannel(ctx, channelName(c.Channel)) != nil {
			// What an unknown id answers (app.Load): a refusal would tell the
			// adapter that another channel's complaint exists.
			return nil, fmt.Errorf("complaint_id %q: %w", req.GetComplaintId(), kernel.ErrNotFound)
		}
		return &routingv1.GetComplaintResponse{Complaint: complaintView(c)}, nil
	})
}

func (s *GRPC) OverrideClassification(ctx context.Context, req *routingv1.OverrideClassificationRequest) (*routingv1.OverrideClassificationResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.OverrideClassificationResponse, error) {
		v, err := s.app.OverrideClassification(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetCategory(), req.GetSeverity(), req.GetPriority(), req.GetReason())
		return &routingv1.OverrideClassificationResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) Reassign(ctx context.Context, req *routingv1.ReassignRequest) (*routingv1.ReassignResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.ReassignResponse, error) {
		v, team, owner, err := s.app.Reassign(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetTeam(), req.GetOwner(), req.GetReason())
		return &routingv1.ReassignResponse{Result: result(req.GetComplaintId(), v), Team: team, Owner: owner}, err
	})
}

func (s *GRPC) AcceptAssignment(ctx context.Context, req *routingv1.AcceptAssignmentRequest) (*routingv1.AcceptAssignmentResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.AcceptAssignmentResponse, error) {
		v, err := s.app.AcceptAssignment(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a)
		return &routingv1.AcceptAssignmentResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) RecordResponse(ctx context.Context, req *routingv1.RecordResponseRequest) (*routingv1.RecordResponseResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.RecordResponseResponse, error) {
		v, err := s.app.RecordResponse(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetChannel(), req.GetSummary())
		return &routingv1.RecordResponseResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) ProposeSolution(ctx context.Context, req *routingv1.ProposeSolutionRequest) (*routingv1.ProposeSolutionResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.ProposeSolutionResponse, error) {
		v, id, required, err := s.app.ProposeSolution(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetSummary())
		return &routingv1.ProposeSolutionResponse{Result: result(req.GetComplaintId(), v), SolutionId: id, RequiredReviews: required}, err
	})
}

func (s *GRPC) ReviewSolution(ctx context.Context, req *routingv1.ReviewSolutionRequest) (*routingv1.ReviewSolutionResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.ReviewSolutionResponse, error) {
		v, err := s.app.ReviewSolution(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetSolutionId(), req.GetLevel(), req.GetApproved(), req.GetComment())
		return &routingv1.ReviewSolutionResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) RequestDispatch(ctx context.Context, req *routingv1.RequestDispatchRequest) (*routingv1.RequestDispatchResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.RequestDispatchResponse, error) {
		v, id, err := s.app.RequestDispatch(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetSpec())
		return &routingv1.RequestDispatchResponse{Result: result(req.GetComplaintId(), v), WorkOrderId: id}, err
	})
}

func (s *GRPC) RecordRootCause(ctx context.Context, req *routingv1.RecordRootCauseRequest) (*routingv1.RecordRootCauseResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.RecordRootCauseResponse, error) {
		rc := domain.RootCause{What: req.GetWhat(), Why: req.GetWhy(), Where: req.GetWhere(), When: req.GetWhen(), Who: req.GetWho(), How: req.GetHow()}
		v, err := s.app.RecordRootCause(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, rc)
		return &routingv1.RecordRootCauseResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) PutOnHold(ctx context.Context, req *routingv1.PutOnHoldRequest) (*routingv1.PutOnHoldResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.PutOnHoldResponse, error) {
		v, err := s.app.PutOnHold(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetReason(), req.GetNote())
		return &routingv1.PutOnHoldResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) TakeOffHold(ctx context.Context, req *routingv1.TakeOffHoldRequest) (*routingv1.TakeOffHoldResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.TakeOffHoldResponse, error) {
		v, err := s.app.TakeOffHold(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a)
		return &routingv1.TakeOffHoldResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func (s *GRPC) Resolve(ctx context.Context, req *routingv1.ResolveRequest) (*routingv1.ResolveResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.ResolveResponse, error) {
		v, err := s.app.Resolve(ctx, target(req.GetComplaintId(), req.GetExpectedVersion()), a, req.GetResolutionCode(), req.GetSummary())
		return &routingv1.ResolveResponse{Result: result(req.GetComplaintId(), v)}, err
	})
}

func memberChange(team, id, name string, skills []string, role string, onShift bool) domain.MemberChange {
	return domain.MemberChange{Team: team, MemberID: id, DisplayName: name, Skills: skills, Role: domain.Role(role), OnShift: onShift}
}

func (s *GRPC) AddTeamMember(ctx context.Context, req *routingv1.AddTeamMemberRequest) (*routingv1.AddTeamMemberResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.AddTeamMemberResponse, error) {
		v, err := s.app.AddTeamMember(ctx, a, memberChange(req.GetTeam(), req.GetMemberId(), req.GetDisplayName(), req.GetSkills(), req.GetRole(), req.GetOnShift()))
		return &routingv1.AddTeamMemberResponse{Version: v}, err
	})
}

func (s *GRPC) UpdateTeamMember(ctx context.Context, req *routingv1.UpdateTeamMemberRequest) (*routingv1.UpdateTeamMemberResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.UpdateTeamMemberResponse, error) {
		v, err := s.app.UpdateTeamMember(ctx, a, memberChange(req.GetTeam(), req.GetMemberId(), "", req.GetSkills(), req.GetRole(), req.GetOnShift()))
		return &routingv1.UpdateTeamMemberResponse{Version: v}, err
	})
}

func (s *GRPC) RemoveTeamMember(ctx context.Context, req *routingv1.RemoveTeamMemberRequest) (*routingv1.RemoveTeamMemberResponse, error) {
	return command(ctx, func(a domain.Actor) (*routingv1.RemoveTeamMemberResponse, error) {
		v, err := s.app.RemoveTeamMember(ctx, a, req.GetTeam(), req.GetMemberId())
		return &routingv1.RemoveTeamMemberResponse{Version: v}, err
	})
}

func (s *GRPC) GetTeam(ctx context.Context, req *routingv1.GetTeamRequest) (*routingv1.GetTeamResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	return command(ctx, func(domain.Actor) (*routingv1.GetTeamResponse, error) {
		t, err := s.app.LoadTeam(ctx, req.GetTeam())
		if err != nil {
			return nil, err
		}
		if t.Version == 0 {
			return nil, fmt.Errorf("team %q: %w", req.GetTeam(), kernel.ErrNotFound)
		}
		out := &routingv1.GetTeamResponse{Team: t.ID, Version: t.Version}
		for _, id := range sortedMembers(t) {
			m := t.Members[id]
			out.Members = append(out.Members, &routingv1.TeamMember{MemberId: m.ID, DisplayName: m.DisplayName, Skills: m.Skills, Role: string(m.Role), OnShift: m.OnShift, OpenLoad: uint32(s.app.View().Load(m.ID).Open)})
		}
		return out, nil
	})
}

// complaintView is routing's state of a complaint on the wire.
func complaintView(c *domain.Complaint) *routingv1.Complaint {
	out := &routingv1.Complaint{
		ComplaintId: c.ID, Version: c.Version, Status: string(c.Status), CustomerRef: c.CustomerRef, Tier: c.Tier, Channel: c.Channel,
		ProductModel: c.ProductModel, Category: c.Category, Severity: c.Severity, Priority: c.Priority, RulesFired: c.RulesFired,
		PolicyVersion: c.PolicyVersion, Repeat: c.Repeat, EarlierComplaintIds: c.Earlier, Team: c.Team, Owner: c.Owner,
		OwnerAccepted: c.OwnerAccepted, FirstReceiver: c.FirstReceiver, EscalationLevel: c.Level, RootCauseRecorded: c.RootCause,
		RootCauseRequired: c.RootCauseRequired(), WorkOrderIds: c.WorkOrders, HoldReason: c.Hold, ReopenCount: c.ReopenCount,
		ResolutionCode: c.ResolutionCode,
	}
	if !c.AcceptedAt.IsZero() {
		out.AcceptedAt = timestamppb.New(c.AcceptedAt)
	}
	if !c.ResolvedAt.IsZero() {
		out.ResolvedAt = timestamppb.New(c.ResolvedAt)
	}
	for _, s := range c.Solutions {
		sol := &routingv1.Solution{SolutionId: s.ID, Summary: s.Summary, ProposedBy: s.ProposedBy, RequiredReviews: s.Required}
		for _, r := range s.Reviews {
			sol.Reviews = append(sol.Reviews, &routingv1.Review{Level: r.Level, Approved: r.Approved, ReviewedBy: r.By, Comment: r.Comment})
		}
		out.Solutions = append(out.Solutions, sol)
	}
	return out
}

var _ routingv1.RoutingServiceServer = (*GRPC)(nil)

func sortedMembers(t *domain.Team) []string {
	ids := make([]string, 0, len(t.Members))
	for id := range t.Members {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
