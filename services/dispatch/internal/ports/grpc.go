// Package ports serves dispatch's use cases: the gRPC API (and through
// libs/api its HTTP/JSON face) and the bus subscription to complaint events.
// Handlers return the app's errors as they are: they are of the kernel's
// kinds, and libs/api maps them to codes.
package ports

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// GRPC implements dispatchv1.DispatchServiceServer over the app.
type GRPC struct {
	dispatchv1.UnimplementedDispatchServiceServer
	app *app.App
}

// NewGRPC returns the gRPC face of the app.
func NewGRPC(a *app.App) *GRPC { return &GRPC{app: a} }

var managers = []string{auth.RoleAdmin, auth.RoleManager, auth.RoleTeamLead}

// technician returns the calling technician's id: their principal id.
func technician(ctx context.Context) (string, error) {
	if err := auth.RequireRole(ctx, auth.RoleTechnician); err != nil {
		return "", err
	}
	p, _ := auth.FromContext(ctx)
	return p.ID, nil
}

func actor(ctx context.Context) string {
	p, _ := auth.FromContext(ctx)
	return p.ID
}

func required(field, value string) error {
	if value != "" {
		return nil
	}
	return kernel.Invalid(kernel.Violation{Field: field, Rule: "required", Message: field + " is required"})
}

// RegisterTechnician implements dispatchv1.DispatchServiceServer.
func (g *GRPC) RegisterTechnician(ctx context.Context, r *dispatchv1.RegisterTechnicianRequest) (*dispatchv1.RegisterTechnicianResponse, error) {
	if err := auth.RequireRole(ctx, managers...); err != nil {
		return nil, err
	}
	t, err := g.app.RegisterTechnician(ctx, actor(ctx), r.GetTechnicianId(), profileFrom(r.GetProfile()))
	if err != nil {
		return nil, err
	}
	return &dispatchv1.RegisterTechnicianResponse{Technician: technicianTo(t)}, nil
}

// UpdateTechnician implements dispatchv1.DispatchServiceServer.
func (g *GRPC) UpdateTechnician(ctx context.Context, r *dispatchv1.UpdateTechnicianRequest) (*dispatchv1.UpdateTechnicianResponse, error) {
	if err := auth.RequireRole(ctx, managers...); err != nil {
		return nil, err
	}
	if err := required("technician_id", r.GetTechnicianId()); err != nil {
		return nil, err
	}
	t, err := g.app.UpdateTechnician(ctx, actor(ctx), r.GetTechnicianId(), profileFrom(r.GetProfile()))
	if err != nil {
		return nil, err
	}
	return &dispatchv1.UpdateTechnicianResponse{Technician: technicianTo(t)}, nil
}

// SetTechnicianStatus implements dispatchv1.DispatchServiceServer.
func (g *GRPC) SetTechnicianStatus(ctx context.Context, r *dispatchv1.SetTechnicianStatusRequest) (*dispatchv1.SetTechnicianStatusResponse, error) {
	if err := auth.RequireRole(ctx, managers...); err != nil {
		return nil, err
	}
	if err := required("technician_id", r.GetTechnicianId()); err != nil {
		return nil, err
	}
	t, err := g.app.SetTechnicianStatus(ctx, actor(ctx), r.GetTechnicianId(), r.GetStatus())
	if err != nil {
		return nil, err
	}
	return &dispatchv1.SetTechnicianStatusResponse{Technician: technicianTo(t)}, nil
}

// GetTechnician implements dispatchv1.DispatchServiceServer. A technician
// may read their own record.
func (g *GRPC) GetTechnician(ctx context.Context, r *dispatchv1.GetTechnicianRequest) (*dispatchv1.GetTechnicianResponse, error) {
	if err := required("technician_id", r.GetTechnicianId()); err != nil {
		return nil, err
	}
	if p, _ := auth.FromContext(ctx); !(p.HasRole(auth.RoleTechnician) && p.ID == r.GetTechnicianId()) {
		if err := auth.RequireRole(ctx, append(managers, auth.RoleAgent, auth.RoleAuditor)...); err != nil {
			return nil, err
		}
	}
	t, err := g.app.Technician(ctx, r.GetTechnicianId())
	if err != nil {
		return nil, err
	}
	return &dispatchv1.GetTechnicianResponse{Technician: technicianTo(t)}, nil
}

// GetWorkOrder implements dispatchv1.DispatchServiceServer.
func (g *GRPC) GetWorkOrder(ctx context.Context, r *dispatchv1.GetWorkOrderRequest) (*dispatchv1.GetWorkOrderResponse, error) {
	if err := auth.RequireRole(ctx, append(managers, auth.RoleAgent, auth.RoleAuditor)...); err != nil {
		return nil, err
	}
	if err := required("work_order_id", r.GetWorkOrderId()); err != nil {
		return nil, err
	}
	o := g.app.View().Order(r.GetWorkOrderId())
	if o == nil {
		return nil, fmt.Errorf("work order %s: %w", r.GetWorkOrderId(), kernel.ErrNotFound)
	}
	return &dispatchv1.GetWorkOrderResponse{Job: jobTo(o)}, nil
}

// CancelWorkOrder implements dispatchv1.DispatchServiceServer.
func (g *GRPC) CancelWorkOrder(ctx context.Context, r *dispatchv1.CancelWorkOrderRequest) (*dispatchv1.CancelWorkOrderResponse, error) {
	if err := auth.RequireRole(ctx, managers...); err != nil {
		return nil, err
	}
	if err := required("work_order_id", r.GetWorkOrderId()); err != nil {
		return nil, err
	}
	o, err := g.app.CancelWorkOrder(ctx, actor(ctx), r.GetWorkOrderId(), r.GetReason())
	if err != nil {
		return nil, err
	}
	return &dispatchv1.CancelWorkOrderResponse{Job: jobTo(o)}, nil
}

// ListMyJobs implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ListMyJobs(ctx context.Context, _ *dispatchv1.ListMyJobsRequest) (*dispatchv1.ListMyJobsResponse, error) {
	me, err := technician(ctx)
	if err != nil {
		return nil, err
	}
	resp := &dispatchv1.ListMyJobsResponse{}
	for _, o := range g.app.ListMyJobs(me) {
		resp.Jobs = append(resp.Jobs, jobTo(o))
	}
	return resp, nil
}

// job runs one technician command on a work order.
func (g *GRPC) job(ctx context.Context, workOrderID string, run func(me string) (*domain.WorkOrder, error)) (*dispatchv1.Job, error) {
	me, err := technician(ctx)
	if err != nil {
		return nil, err
	}
	if err := required("work_order_id", workOrderID); err != nil {
		return nil, err
	}
	o, err := run(me)
	if err != nil {
		return nil, err
	}
	return jobTo(o), nil
}

// Accept implements dispatchv1.DispatchServiceServer.
func (g *GRPC) Accept(ctx context.Context, r *dispatchv1.AcceptRequest) (*dispatchv1.AcceptResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.Accept(ctx, me, r.GetWorkOrderId())
	})
	return &dispatchv1.AcceptResponse{Job: j}, err
}

// Decline implements dispatchv1.DispatchServiceServer.
func (g *GRPC) Decline(ctx context.Context, r *dispatchv1.DeclineRequest) (*dispatchv1.DeclineResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.Decline(ctx, me, r.GetWorkOrderId(), r.GetReason())
	})
	return &dispatchv1.DeclineResponse{Job: j}, err
}

// ReportContacted implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ReportContacted(ctx context.Context, r *dispatchv1.ReportContactedRequest) (*dispatchv1.ReportContactedResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.ReportContacted(ctx, me, r.GetWorkOrderId(), timeOf(r.GetEta()), r.GetNote())
	})
	return &dispatchv1.ReportContactedResponse{Job: j}, err
}

// ReportEnRoute implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ReportEnRoute(ctx context.Context, r *dispatchv1.ReportEnRouteRequest) (*dispatchv1.ReportEnRouteResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.ReportEnRoute(ctx, me, r.GetWorkOrderId())
	})
	return &dispatchv1.ReportEnRouteResponse{Job: j}, err
}

// ReportArrived implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ReportArrived(ctx context.Context, r *dispatchv1.ReportArrivedRequest) (*dispatchv1.ReportArrivedResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.ReportArrived(ctx, me, r.GetWorkOrderId())
	})
	return &dispatchv1.ReportArrivedResponse{Job: j}, err
}

// Complete implements dispatchv1.DispatchServiceServer.
func (g *GRPC) Complete(ctx context.Context, r *dispatchv1.CompleteRequest) (*dispatchv1.CompleteResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.Complete(ctx, me, r.GetWorkOrderId(), app.Completion{
			WorkDone: r.GetWorkDone(), PartsUsed: r.GetPartsUsed(), Checks: r.GetChecks(), SignerName: r.GetSignerName(),
			SignedAt: timeOf(r.GetSignedAt()), SignatureImage: r.GetSignatureImage(), SignatureRef: r.GetSignatureAttachmentRef(),
		})
	})
	return &dispatchv1.CompleteResponse{Job: j}, err
}

// ReportFailed implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ReportFailed(ctx context.Context, r *dispatchv1.ReportFailedRequest) (*dispatchv1.ReportFailedResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.ReportFailed(ctx, me, r.GetWorkOrderId(), r.GetReason())
	})
	return &dispatchv1.ReportFailedResponse{Job: j}, err
}

// StartRemoteSession implements dispatchv1.DispatchServiceServer.
func (g *GRPC) StartRemoteSession(ctx context.Context, r *dispatchv1.StartRemoteSessionRequest) (*dispatchv1.StartRemoteSessionResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.StartRemoteSession(ctx, me, r.GetWorkOrderId(), r.GetSessionRef())
	})
	return &dispatchv1.StartRemoteSessionResponse{Job: j}, err
}

// ResolveRemotely implements dispatchv1.DispatchServiceServer.
func (g *GRPC) ResolveRemotely(ctx context.Context, r *dispatchv1.ResolveRemotelyRequest) (*dispatchv1.ResolveRemotelyResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.ResolveRemotely(ctx, me, r.GetWorkOrderId(), r.GetSummary())
	})
	return &dispatchv1.ResolveRemotelyResponse{Job: j}, err
}

// EscalateToOnSite implements dispatchv1.DispatchServiceServer.
func (g *GRPC) EscalateToOnSite(ctx context.Context, r *dispatchv1.EscalateToOnSiteRequest) (*dispatchv1.EscalateToOnSiteResponse, error) {
	j, err := g.job(ctx, r.GetWorkOrderId(), func(me string) (*domain.WorkOrder, error) {
		return g.app.EscalateToOnSite(ctx, me, r.GetWorkOrderId(), r.GetReason())
	})
	return &dispatchv1.EscalateToOnSiteResponse{Job: j}, err
}

func timeOf(ts *timestamppb.Timestamp) (t time.Time) {
	if ts != nil {
		t = ts.AsTime()
	}
	return t
}
