package ports

import (
	"sort"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

func profileFrom(p *dispatchv1.TechnicianProfile) domain.TechnicianProfile {
	return domain.TechnicianProfile{
		DisplayName: p.GetDisplayName(), ProductLines: p.GetProductLines(), Services: p.GetServices(),
		ServiceCentre: p.GetServiceCentre(), Region: p.GetRegion(), Outsourced: p.GetOutsourced(),
		CalendarID: p.GetCalendarId(), MaxConcurrent: p.GetMaxConcurrentJobs(), MaxDaily: p.GetMaxDailyJobs(),
	}
}

func technicianTo(t *domain.Technician) *dispatchv1.Technician {
	open := make([]string, 0, len(t.Open))
	for id := range t.Open {
		open = append(open, id)
	}
	sort.Strings(open)
	return &dispatchv1.Technician{
		TechnicianId: t.ID, Status: t.Status, OpenWorkOrderIds: open, Version: t.Version,
		Profile: &dispatchv1.TechnicianProfile{
			DisplayName: t.DisplayName, ProductLines: t.ProductLines, Services: t.Services, ServiceCentre: t.ServiceCentre,
			Region: t.Region, Outsourced: t.Outsourced, CalendarId: t.CalendarID,
			MaxConcurrentJobs: t.MaxConcurrent, MaxDailyJobs: t.MaxDaily,
		},
	}
}

// statuses maps domain statuses to the API's; the names match one to one.
var statuses = map[domain.Status]dispatchv1.WorkOrderStatus{
	domain.StatusOpen:             dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_OPEN,
	domain.StatusUnassignable:     dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_UNASSIGNABLE,
	domain.StatusAssigned:         dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ASSIGNED,
	domain.StatusAccepted:         dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ACCEPTED,
	domain.StatusContacted:        dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_CONTACTED,
	domain.StatusEnRoute:          dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_EN_ROUTE,
	domain.StatusOnSite:           dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ON_SITE,
	domain.StatusRemoteSession:    dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_REMOTE_SESSION,
	domain.StatusCompleted:        dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_COMPLETED,
	domain.StatusResolvedRemotely: dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_RESOLVED_REMOTELY,
	domain.StatusEscalated:        dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_ESCALATED,
	domain.StatusFailed:           dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_FAILED,
	domain.StatusCancelled:        dispatchv1.WorkOrderStatus_WORK_ORDER_STATUS_CANCELLED,
}

func jobTo(o *domain.WorkOrder) *dispatchv1.Job {
	return &dispatchv1.Job{
		WorkOrderId: o.ID, ComplaintId: o.ComplaintID, Status: statuses[o.Status], TechnicianId: o.TechnicianID,
		Spec: o.Spec, AcceptBy: ts(o.AcceptBy), Eta: ts(o.ETA), FollowsWorkOrderId: o.FollowsID, FollowOnWorkOrderId: o.FollowOnID,
	}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
