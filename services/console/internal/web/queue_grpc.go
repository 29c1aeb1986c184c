package web

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	consolev1 "github.com/closeloop/closeloop/proto/gen/closeloop/console/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// QueueService is the query API on gRPC (closeloop.console.v1): the same
// queries, rules and callers as GET /api/v1/complaints. Register it on a
// libs/api server, which authenticates the call.
type QueueService struct {
	consolev1.UnimplementedQueueServiceServer
	view *view.View
}

// NewQueueService serves v.
func NewQueueService(v *view.View) *QueueService { return &QueueService{view: v} }

var sortNames = map[consolev1.Sort]string{
	consolev1.Sort_SORT_UNSPECIFIED: "",
	consolev1.Sort_SORT_DUE:         view.SortDue,
	consolev1.Sort_SORT_RECEIVED:    view.SortReceived,
	consolev1.Sort_SORT_PRIORITY:    view.SortPriority,
}

// ListComplaints answers one page of a query.
func (s *QueueService) ListComplaints(ctx context.Context, r *consolev1.ListComplaintsRequest) (*consolev1.ListComplaintsResponse, error) {
	if err := mayQuery(ctx); err != nil {
		return nil, err
	}
	q, errs := queryOf(r)
	if len(errs) > 0 {
		return nil, kernel.Invalid(errs...)
	}
	p := s.view.Find(q)
	out := &consolev1.ListComplaintsResponse{Total: int64(p.Total), Position: p.Position, Complaints: make([]*consolev1.Complaint, 0, len(p.Complaints))}
	for _, c := range p.Complaints {
		out.Complaints = append(out.Complaints, toProto(c))
	}
	return out, nil
}

// GetComplaint answers one open complaint.
func (s *QueueService) GetComplaint(ctx context.Context, r *consolev1.GetComplaintRequest) (*consolev1.GetComplaintResponse, error) {
	if err := mayQuery(ctx); err != nil {
		return nil, err
	}
	if r.GetId() == "" {
		return nil, kernel.Invalid(kernel.Violation{Field: "id", Rule: "required", Message: "must not be empty"})
	}
	c, ok := s.view.Get(r.GetId())
	if !ok {
		return nil, fmt.Errorf("%w: no open complaint %s", kernel.ErrNotFound, strconv.Quote(r.GetId()))
	}
	return &consolev1.GetComplaintResponse{Complaint: toProto(c)}, nil
}

// mayQuery applies the query API's rule (mayUseAPI) to the caller the
// server authenticated.
func mayQuery(ctx context.Context) error {
	p, ok := auth.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "not authenticated")
	}
	if !mayUseAPI(p) {
		return fmt.Errorf("%w: %s may not read the queues", kernel.ErrPermission, p.ID)
	}
	return nil
}

// queryOf turns a request into a view.Query under checkQuery's rules, the
// HTTP API's.
func queryOf(r *consolev1.ListComplaintsRequest) (view.Query, []kernel.Violation) {
	q := view.Query{
		Owner: r.GetOwner(), Team: r.GetTeam(), Status: r.GetStatus(),
		Severity: r.GetSeverity(), Priority: r.GetPriority(), Channel: r.GetChannel(),
		Breached: r.GetBreached(), Escalated: r.GetEscalated(), Unassigned: r.GetUnassigned(),
		Text: strings.TrimSpace(r.GetQ()), Serial: strings.TrimSpace(r.GetSerial()),
		Limit: int(r.GetLimit()), Offset: int(r.GetOffset()),
	}
	var errs []kernel.Violation
	if s, ok := sortNames[r.GetSort()]; ok {
		q.Sort = s
	} else {
		q.Sort = "sort " + strconv.Itoa(int(r.GetSort())) // refused by checkQuery
	}
	if r.DueBefore != nil {
		if err := r.DueBefore.CheckValid(); err != nil {
			errs = append(errs, kernel.Violation{Field: "due_before", Rule: "timestamp", Message: "must be a valid timestamp"})
		} else {
			q.DueBefore = r.DueBefore.AsTime()
		}
	}
	return q, append(errs, checkQuery(q)...)
}

// toProto is the row of the gRPC API: the JSON row (toAPI), with the
// events' enums and timestamps.
func toProto(c view.Complaint) *consolev1.Complaint {
	p := &consolev1.Complaint{Id: c.ID, Version: c.Version, Status: c.Status, Channel: c.Channel,
		ReceivedAt: timestamppb.New(c.ReceivedAt), Category: c.Category, Severity: c.Severity, Priority: c.Priority,
		RulesFired: c.Rules, Team: c.Team, Owner: c.Owner, Escalation: c.Escalation, Repeat: c.Repeat, Breached: c.Breached()}
	if due, target := c.NextDue(); !due.IsZero() {
		p.NextDue, p.NextDueTarget = timestamppb.New(due), target
	}
	for _, k := range c.Clocks {
		p.Clocks = append(p.Clocks, &consolev1.Clock{Target: k.Target, Deadline: timestamppb.New(k.Deadline), Paused: k.Paused, WarnedPercent: k.Warned, Breached: k.Breached})
	}
	return p
}
