// Package ports is follow-up's API: the gRPC services (and through libs/api
// their HTTP/JSON face), the customer's survey pages and the KPI CSV export.
package ports

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/followup/internal/app"
	"github.com/closeloop/closeloop/services/followup/internal/domain"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// Who may do what.
var (
	agentRoles = []string{auth.RoleAgent, auth.RoleTeamLead, auth.RoleManager, auth.RoleAdmin}
	// readRoles may read a complaint's follow-up: who acts on it, who passes
	// the customer's links on, and the auditor (as routing, sla-clock and
	// dispatch let them read).
	readRoles = append([]string{auth.RoleAuditor, auth.RoleCustomerLinks}, agentRoles...)
	// linkRoles get the customer's survey link, which answers the survey in
	// the customer's name: those who pass it on, not an auditor.
	linkRoles = append([]string{auth.RoleCustomerLinks}, agentRoles...)
	kpiRoles  = []string{auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager, auth.RoleQualityReviewer, auth.RoleAuditor, auth.RoleAdmin}
)

// GRPC implements FollowupService and KpiService. Its methods return the
// kernel's kinds of error; libs/api's server maps them to gRPC statuses.
type GRPC struct {
	followupv1.UnimplementedFollowupServiceServer
	followupv1.UnimplementedKpiServiceServer
	App *app.App
	KPI *kpi.Model
	// KPILocation cuts KPI days, weeks and months.
	KPILocation *time.Location
}

func cause(ctx context.Context) kernel.Cause {
	p, _ := auth.FromContext(ctx)
	return kernel.Cause{Actor: p.ID}
}

func requireID(id string) error {
	if id == "" {
		return kernel.Invalid(kernel.Violation{Field: "complaint_id", Rule: "required", Message: "is required"})
	}
	return nil
}

func (g *GRPC) DeliverFeedback(ctx context.Context, r *followupv1.DeliverFeedbackRequest) (*followupv1.DeliverFeedbackResponse, error) {
	if err := auth.RequireRole(ctx, agentRoles...); err != nil {
		return nil, err
	}
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	v, err := g.App.DeliverFeedback(ctx, r.GetComplaintId(), domain.DeliverFeedback{
		TaskID: r.GetTaskId(), Channel: r.GetChannel(), DeliveredBy: r.GetDeliveredBy(), Summary: r.GetSummary(),
	}, cause(ctx))
	if err != nil {
		return nil, err
	}
	return &followupv1.DeliverFeedbackResponse{Version: v}, nil
}

func (g *GRPC) RecordSurveyAnswer(ctx context.Context, r *followupv1.RecordSurveyAnswerRequest) (*followupv1.RecordSurveyAnswerResponse, error) {
	if err := auth.RequireRole(ctx, agentRoles...); err != nil {
		return nil, err
	}
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	out, v, err := g.App.RecordPhoneAnswer(ctx, r.GetComplaintId(), domain.AnswerSurvey{
		SurveyID: r.GetSurveyId(), Satisfaction: r.GetSatisfaction(), Resolved: r.GetResolved(),
		Comment: r.GetComment(), RecordedBy: r.GetRecordedBy(),
	}, cause(ctx))
	if err != nil {
		return nil, err
	}
	return &followupv1.RecordSurveyAnswerResponse{Outcome: outcomePB(out), Version: v}, nil
}

func (g *GRPC) GetSurvey(ctx context.Context, r *followupv1.GetSurveyRequest) (*followupv1.GetSurveyResponse, error) {
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	open, err := g.App.CheckSurveyLink(ctx, r.GetComplaintId(), r.GetToken())
	if err != nil {
		return nil, err
	}
	return &followupv1.GetSurveyResponse{SurveyId: open.SurveyID, ExpiresAt: timestamppb.New(open.ExpiresAt), Questions: app.Questions}, nil
}

func (g *GRPC) SubmitSurvey(ctx context.Context, r *followupv1.SubmitSurveyRequest) (*followupv1.SubmitSurveyResponse, error) {
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	out, err := g.App.AnswerByLink(ctx, r.GetComplaintId(), r.GetToken(), app.LinkAnswer{
		Satisfaction: r.GetSatisfaction(), Resolved: r.GetResolved(), Comment: r.GetComment(),
	})
	if err != nil {
		return nil, err
	}
	return &followupv1.SubmitSurveyResponse{Outcome: outcomePB(out)}, nil
}

func (g *GRPC) CompleteReturnVisit(ctx context.Context, r *followupv1.CompleteReturnVisitRequest) (*followupv1.CompleteReturnVisitResponse, error) {
	if err := auth.RequireRole(ctx, agentRoles...); err != nil {
		return nil, err
	}
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	v, err := g.App.CompleteReturnVisit(ctx, r.GetComplaintId(), domain.CompleteReturnVisit{
		VisitID: r.GetVisitId(), VisitedBy: r.GetVisitedBy(), Notes: r.GetNotes(), Satisfaction: r.GetSatisfaction(),
	}, cause(ctx))
	if err != nil {
		return nil, err
	}
	return &followupv1.CompleteReturnVisitResponse{Version: v}, nil
}

func (g *GRPC) GetFollowUp(ctx context.Context, r *followupv1.GetFollowUpRequest) (*followupv1.GetFollowUpResponse, error) {
	if err := auth.RequireRole(ctx, readRoles...); err != nil {
		return nil, err
	}
	if err := requireID(r.GetComplaintId()); err != nil {
		return nil, err
	}
	s, err := g.App.FollowUp(ctx, r.GetComplaintId())
	if err != nil {
		return nil, err
	}
	resp := &followupv1.GetFollowUpResponse{
		ComplaintId: s.ComplaintID, Status: statusPB(s.Status), CloseOutcome: s.Outcome,
		ReopenCount: s.Reopens, Version: s.Version,
	}
	if auth.RequireRole(ctx, linkRoles...) == nil {
		resp.SurveyUrl = g.App.SurveyLink(s)
	}
	for _, t := range s.Tasks {
		if t.ResolutionID == s.Resolution {
			resp.FeedbackTasks = append(resp.FeedbackTasks, &followupv1.FeedbackTask{TaskId: t.ID, Round: t.Round, DueAt: timestamppb.New(t.DueAt), Delivered: t.Delivered})
		}
	}
	if sv := s.CurrentSurvey(); sv != nil {
		resp.SurveyId, resp.SurveyExpiresAt = sv.ID, timestamppb.New(sv.ExpiresAt)
	}
	for _, v := range s.Visits {
		resp.ReturnVisits = append(resp.ReturnVisits, &followupv1.ReturnVisit{VisitId: v.ID, DueAt: timestamppb.New(v.DueAt), Completed: v.Completed})
	}
	return resp, nil
}

// Limits of ListDueTasks.
const (
	defaultDueLimit = 100
	maxDueLimit     = 1000
)

func (g *GRPC) ListDueTasks(ctx context.Context, r *followupv1.ListDueTasksRequest) (*followupv1.ListDueTasksResponse, error) {
	if err := auth.RequireRole(ctx, agentRoles...); err != nil {
		return nil, err
	}
	limit := int(r.GetLimit())
	if limit > maxDueLimit {
		return nil, kernel.Invalid(kernel.Violation{Field: "limit", Rule: "max", Message: "must be at most 1000"})
	}
	if limit == 0 {
		limit = defaultDueLimit
	}
	var dueBy time.Time
	if r.GetDueBy() != nil {
		dueBy = r.GetDueBy().AsTime()
	}
	resp := &followupv1.ListDueTasksResponse{}
	for _, t := range g.App.DueTasks(dueBy, limit) {
		kind := followupv1.DueTaskKind_DUE_TASK_KIND_RETURN_VISIT
		if !t.Visit {
			kind = followupv1.DueTaskKind_DUE_TASK_KIND_FIRST_FEEDBACK
			if t.Round == 2 {
				kind = followupv1.DueTaskKind_DUE_TASK_KIND_SECOND_FEEDBACK
			}
		}
		resp.Tasks = append(resp.Tasks, &followupv1.DueTask{ComplaintId: t.ComplaintID, TaskId: t.TaskID, Kind: kind, DueAt: timestamppb.New(t.DueAt), Overdue: t.Overdue})
	}
	return resp, nil
}

func (g *GRPC) QueryKpis(ctx context.Context, r *followupv1.QueryKpisRequest) (*followupv1.QueryKpisResponse, error) {
	if err := auth.RequireRole(ctx, kpiRoles...); err != nil {
		return nil, err
	}
	q, err := KPIQuery(r, g.KPILocation)
	if err != nil {
		return nil, err
	}
	resp := &followupv1.QueryKpisResponse{}
	for _, row := range g.KPI.Query(q) {
		resp.Rows = append(resp.Rows, rowPB(row))
	}
	return resp, nil
}

// KPIQuery checks a KPI request; unspecified group and period mean ALL.
func KPIQuery(r *followupv1.QueryKpisRequest, loc *time.Location) (kpi.Query, error) {
	q := kpi.Query{Location: loc}
	var vs []kernel.Violation
	switch r.GetGroup() {
	case followupv1.KpiGroup_KPI_GROUP_UNSPECIFIED, followupv1.KpiGroup_KPI_GROUP_ALL:
		q.Group = kpi.GroupAll
	case followupv1.KpiGroup_KPI_GROUP_TEAM:
		q.Group = kpi.GroupTeam
	case followupv1.KpiGroup_KPI_GROUP_OWNER:
		q.Group = kpi.GroupOwner
	case followupv1.KpiGroup_KPI_GROUP_TECHNICIAN:
		q.Group = kpi.GroupTechnician
	case followupv1.KpiGroup_KPI_GROUP_CATEGORY:
		q.Group = kpi.GroupCategory
	default:
		vs = append(vs, kernel.Violation{Field: "group", Rule: "enum", Message: "must be all, team, owner, technician or category"})
	}
	switch r.GetPeriod() {
	case followupv1.KpiPeriod_KPI_PERIOD_UNSPECIFIED, followupv1.KpiPeriod_KPI_PERIOD_ALL:
		q.Period = kpi.PeriodAll
	case followupv1.KpiPeriod_KPI_PERIOD_DAY:
		q.Period = kpi.PeriodDay
	case followupv1.KpiPeriod_KPI_PERIOD_WEEK:
		q.Period = kpi.PeriodWeek
	case followupv1.KpiPeriod_KPI_PERIOD_MONTH:
		q.Period = kpi.PeriodMonth
	default:
		vs = append(vs, kernel.Violation{Field: "period", Rule: "enum", Message: "must be all, day, week or month"})
	}
	if r.GetFrom() != nil {
		q.From = r.GetFrom().AsTime()
	}
	if r.GetTo() != nil {
		q.To = r.GetTo().AsTime()
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		vs = append(vs, kernel.Violation{Field: "to", Rule: "after", Message: "must be after from"})
	}
	if len(vs) > 0 {
		return kpi.Query{}, kernel.Invalid(vs...)
	}
	return q, nil
}

func rowPB(r kpi.Row) *followupv1.KpiRow {
	d := func(x kpi.Durations) *followupv1.Durations {
		return &followupv1.Durations{Count: x.Count, Mean: durationpb.New(x.Mean), P90: durationpb.New(x.P90)}
	}
	out := &followupv1.KpiRow{
		GroupKey: r.GroupKey, Received: r.Received, Withdrawn: r.Withdrawn, Resolved: r.Resolved,
		Reopened: r.Reopened, Repeats: r.Repeats, FirstContactResolved: r.FirstContactResolved,
		SurveysAnswered: r.SurveysAnswered, CsiAverage: r.CSIAverage, CsiDistribution: r.CSIDistribution[:],
		ResolutionRate: r.ResolutionRate, ReopenRate: r.ReopenRate, RepeatRate: r.RepeatRate,
		FirstContactResolutionRate: r.FirstContactRate,
		TimeToAccept:               d(r.TimeToAccept), TimeToRespond: d(r.TimeToRespond), TimeToResolve: d(r.TimeToResolve),
		ClosedSatisfied: r.ClosedSatisfied, ClosedNeutral: r.ClosedNeutral, ClosedNoResponse: r.ClosedNoResponse,
	}
	if !r.PeriodStart.IsZero() {
		out.PeriodStart = timestamppb.New(r.PeriodStart)
	}
	for _, s := range r.SLA {
		out.Sla = append(out.Sla, &followupv1.SlaCompliance{Target: s.Target, Met: s.Met, Breached: s.Breached, Rate: s.Rate})
	}
	return out
}

func outcomePB(o app.Outcome) followupv1.SurveyOutcome {
	switch o {
	case app.OutcomeClosedSatisfied:
		return followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_SATISFIED
	case app.OutcomeClosedNeutral:
		return followupv1.SurveyOutcome_SURVEY_OUTCOME_CLOSED_NEUTRAL
	case app.OutcomeReopened:
		return followupv1.SurveyOutcome_SURVEY_OUTCOME_REOPENED
	default:
		return followupv1.SurveyOutcome_SURVEY_OUTCOME_UNSPECIFIED
	}
}

func statusPB(s domain.Status) followupv1.FollowUpStatus {
	switch s {
	case domain.StatusInHandling:
		return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_IN_HANDLING
	case domain.StatusResolved:
		return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_RESOLVED
	case domain.StatusAwaitingAnswer:
		return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_AWAITING_ANSWER
	case domain.StatusClosed:
		return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_CLOSED
	case domain.StatusWithdrawn:
		return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_WITHDRAWN
	}
	return followupv1.FollowUpStatus_FOLLOW_UP_STATUS_UNSPECIFIED
}
