package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// ErrUnusable marks an event no retry can help (a malformed work sheet):
// the bus dead-letters it.
var ErrUnusable = errors.New("event cannot be handled")

// HandleComplaintEvent reacts to events of complaint streams (the durable
// "dispatch" consumer): DispatchRequested opens and dispatches a work order;
// every dispatch event settles its order (dispatch an open order, release
// the slot of a finished one); a withdrawn complaint cancels its orders.
// Idempotent: every step re-reads the stream it decides on. Everything it
// writes, on the complaint's stream or a technician's, is caused by rec.
func (a *App) HandleComplaintEvent(ctx context.Context, rec eventlog.Record) error {
	complaintID := rec.Event.GetComplaintId()
	by := kernel.CauseOf(rec.Event, true)
	var workOrderID string
	switch e := eventlog.Payload(rec.Event).(type) {
	case *eventsv1.DispatchRequested:
		err := a.OpenWorkOrder(ctx, complaintID, e.GetWorkOrderId(), e.GetSpec(), by)
		var ve *domain.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("%w: DispatchRequested %s: %w", ErrUnusable, rec.Event.GetEventId(), err)
		}
		if err != nil {
			return err
		}
		// Dispatch, not Settle: a repeated request retries an unassignable order.
		_, err = a.Dispatch(ctx, complaintID, e.GetWorkOrderId(), by)
		return err
	case *eventsv1.ComplaintWithdrawn:
		return a.cancelAll(ctx, complaintID, by)
	case *eventsv1.WorkOrderOpened:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.TechnicianAssigned:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.TechnicianDeclined:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.WorkCompleted:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.WorkOrderFailed:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.WorkOrderCancelled:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.RemoteResolved:
		workOrderID = e.GetWorkOrderId()
	case *eventsv1.EscalatedToOnSite:
		workOrderID = e.GetWorkOrderId()
	default:
		return nil
	}
	return a.Settle(ctx, complaintID, workOrderID, by)
}

func (a *App) cancelAll(ctx context.Context, complaintID string, by kernel.Cause) error {
	c, err := a.loadComplaint(ctx, complaintID, by)
	if err != nil {
		return err
	}
	for _, id := range c.Sequence {
		if c.Orders[id].Status.Terminal() {
			continue
		}
		_, err := a.onComplaint(ctx, "CancelOnWithdrawn", complaintID, by, func(c *domain.Complaint, _ time.Time) ([]proto.Message, error) {
			if c.Order(id).Status.Terminal() {
				return nil, nil
			}
			return domain.Cancel(c, id, "complaint withdrawn", actorOf(by))
		})
		if err != nil {
			return err
		}
		if err := a.Settle(ctx, complaintID, id, by); err != nil {
			return err
		}
	}
	return nil
}
