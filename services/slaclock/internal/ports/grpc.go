// Package ports is the sla-clock's gRPC API (served over HTTP/JSON too by
// libs/api): validation, roles, and mapping between the app and the wire.
// Handlers return the kinds of libs/kernel; libs/api maps them to codes.
package ports

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/app"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
)

// Server implements slaclockv1.SlaClockServiceServer.
type Server struct {
	slaclockv1.UnimplementedSlaClockServiceServer
	app *app.App
}

// NewServer serves a.
func NewServer(a *app.App) *Server { return &Server{app: a} }

var (
	readers  = []string{auth.RoleAgent, auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager, auth.RoleQualityReviewer, auth.RoleAuditor, auth.RoleAdmin}
	planners = []string{auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager, auth.RoleAdmin}
	owners   = []string{auth.RoleManager, auth.RoleSeniorManager, auth.RoleAdmin}
)

func required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return kernel.Invalid(kernel.Violation{Field: field, Rule: "required", Message: field + " is required"})
	}
	return nil
}

// caller is who makes the call (the actor of what it writes).
func caller(ctx context.Context) string {
	p, _ := auth.FromContext(ctx)
	return p.ID
}

func (s *Server) GetClocks(ctx context.Context, r *slaclockv1.GetClocksRequest) (*slaclockv1.GetClocksResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	if err := required("complaint_id", r.GetComplaintId()); err != nil {
		return nil, err
	}
	views, at, err := s.app.Clocks(ctx, r.GetComplaintId(), time.Time{})
	if err != nil {
		return nil, err
	}
	return &slaclockv1.GetClocksResponse{Clocks: toWire(r.GetComplaintId(), views), AsOf: timestamppb.New(at)}, nil
}

func (s *Server) GetClocksAsOf(ctx context.Context, r *slaclockv1.GetClocksAsOfRequest) (*slaclockv1.GetClocksAsOfResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	if err := required("complaint_id", r.GetComplaintId()); err != nil {
		return nil, err
	}
	if r.GetAsOf() == nil || r.GetAsOf().CheckValid() != nil {
		return nil, kernel.Invalid(kernel.Violation{Field: "as_of", Rule: "required", Message: "as_of must be a valid timestamp"})
	}
	views, at, err := s.app.Clocks(ctx, r.GetComplaintId(), r.GetAsOf().AsTime())
	if err != nil {
		return nil, err
	}
	return &slaclockv1.GetClocksAsOfResponse{Clocks: toWire(r.GetComplaintId(), views), AsOf: timestamppb.New(at)}, nil
}

func (s *Server) ListDueWithin(ctx context.Context, r *slaclockv1.ListDueWithinRequest) (*slaclockv1.ListDueWithinResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	if r.GetWindow() == nil || r.GetWindow().CheckValid() != nil || r.GetWindow().AsDuration() <= 0 {
		vs = append(vs, kernel.Violation{Field: "window", Rule: "positive", Message: "window must be a positive duration"})
	}
	limit := int(r.GetLimit())
	if limit == 0 {
		limit = 100
	}
	if limit > 1000 {
		vs = append(vs, kernel.Violation{Field: "limit", Rule: "max", Message: "limit must be at most 1000"})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	resp := &slaclockv1.ListDueWithinResponse{}
	for _, u := range s.app.DueWithin(r.GetWindow().AsDuration(), limit) {
		resp.Clocks = append(resp.Clocks, &slaclockv1.Clock{ComplaintId: u.ComplaintID, ClockId: u.ClockID, Target: u.Target,
			Status: slaclockv1.ClockStatus_CLOCK_STATUS_RUNNING, Deadline: timestamppb.New(u.Deadline)})
	}
	return resp, nil
}

func (s *Server) ReapplyPolicy(ctx context.Context, r *slaclockv1.ReapplyPolicyRequest) (*slaclockv1.ReapplyPolicyResponse, error) {
	if err := auth.RequireRole(ctx, owners...); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	for field, v := range map[string]string{"complaint_id": r.GetComplaintId(), "reason": r.GetReason()} {
		if strings.TrimSpace(v) == "" {
			vs = append(vs, kernel.Violation{Field: field, Rule: "required", Message: field + " is required"})
		}
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	ids, err := s.app.Reapply(ctx, r.GetComplaintId(), r.GetReason(), caller(ctx))
	if err != nil {
		return nil, err
	}
	return &slaclockv1.ReapplyPolicyResponse{ReplacedClockIds: ids, PolicyVersion: s.app.CurrentPolicyVersion()}, nil
}

func (s *Server) PublishPolicy(ctx context.Context, r *slaclockv1.PublishPolicyRequest) (*slaclockv1.PublishPolicyResponse, error) {
	if err := auth.RequireRole(ctx, owners...); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	if len(r.GetDocument()) == 0 {
		vs = append(vs, kernel.Violation{Field: "document", Rule: "required", Message: "document is required"})
	}
	if strings.TrimSpace(r.GetPublishedBy()) == "" {
		vs = append(vs, kernel.Violation{Field: "published_by", Rule: "required", Message: "published_by is required"})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	v, err := s.app.PublishPolicy(ctx, r.GetDocument(), r.GetPublishedBy())
	if err != nil {
		return nil, err
	}
	return &slaclockv1.PublishPolicyResponse{PolicyVersion: v}, nil
}

func (s *Server) WhatIf(ctx context.Context, r *slaclockv1.WhatIfRequest) (*slaclockv1.WhatIfResponse, error) {
	if err := auth.RequireRole(ctx, planners...); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	if r.GetFrom() == nil || r.GetFrom().CheckValid() != nil {
		vs = append(vs, kernel.Violation{Field: "from", Rule: "required", Message: "from must be a valid timestamp"})
	}
	if r.GetTo() == nil || r.GetTo().CheckValid() != nil || (r.GetFrom() != nil && !r.GetTo().AsTime().After(r.GetFrom().AsTime())) {
		vs = append(vs, kernel.Violation{Field: "to", Rule: "after_from", Message: "to must be a valid timestamp after from"})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	rep, err := s.app.WhatIf(ctx, r.GetPolicyDocument(), r.GetCalendarId(), r.GetFrom().AsTime(), r.GetTo().AsTime())
	if err != nil {
		return nil, err
	}
	resp := &slaclockv1.WhatIfResponse{Complaints: uint32(rep.Complaints), CandidatePolicyVersion: rep.CandidateVersion}
	for v := range ev.SlaTarget_name {
		t := ev.SlaTarget(v)
		if x, ok := rep.Targets[t]; ok {
			resp.Targets = append(resp.Targets, &slaclockv1.TargetDiff{Target: t,
				MetBefore: uint32(x.MetBefore), BreachedBefore: uint32(x.BreachedBefore), MetAfter: uint32(x.MetAfter),
				BreachedAfter: uint32(x.BreachedAfter), NewlyBreached: uint32(x.NewlyBreached), NewlyMet: uint32(x.NewlyMet)})
		}
	}
	slices.SortFunc(resp.Targets, func(a, b *slaclockv1.TargetDiff) int { return int(a.GetTarget() - b.GetTarget()) })
	resp.ChangesTotal = uint32(rep.ChangesTotal)
	for _, c := range rep.Changes {
		resp.Changes = append(resp.Changes, &slaclockv1.ClockChange{ComplaintId: c.ComplaintID, ClockId: c.ClockID, Target: c.Target,
			SubjectId: c.Subject, StatusBefore: statusWire[c.Before.Status], StatusAfter: statusWire[c.After.Status],
			DeadlineBefore: wireTime(c.Before.Deadline), DeadlineAfter: wireTime(c.After.Deadline)})
	}
	return resp, nil
}

// wireTime is t, or unset when zero.
func wireTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var statusWire = map[domain.Status]slaclockv1.ClockStatus{
	domain.Running:   slaclockv1.ClockStatus_CLOCK_STATUS_RUNNING,
	domain.Paused:    slaclockv1.ClockStatus_CLOCK_STATUS_PAUSED,
	domain.Met:       slaclockv1.ClockStatus_CLOCK_STATUS_MET,
	domain.Breached:  slaclockv1.ClockStatus_CLOCK_STATUS_BREACHED,
	domain.Cancelled: slaclockv1.ClockStatus_CLOCK_STATUS_CANCELLED,
}

func toWire(complaintID string, views []app.ClockView) []*slaclockv1.Clock {
	out := make([]*slaclockv1.Clock, 0, len(views))
	for _, v := range views {
		c := &slaclockv1.Clock{
			ComplaintId: complaintID, ClockId: v.ID, Target: v.Target, Status: statusWire[v.Status],
			StartedAt: timestamppb.New(v.StartedAt), Budget: durationpb.New(v.Budget), BusinessTime: v.Business,
			Remaining: durationpb.New(v.Remaining), CalendarId: v.CalendarID, CalendarVersion: v.CalendarVersion,
			PolicyVersion: v.PolicyVersion, WarningsFired: v.Warned, Breached: v.WasBreached, SubjectId: v.Subject,
		}
		if v.Status != domain.Paused {
			c.Deadline = timestamppb.New(v.Deadline)
		}
		out = append(out, c)
	}
	return out
}

// maxDeadlineSpan bounds the calculator's input: far beyond any SLA, and
// well inside what a calendar walks (libs/calendar).
const (
	maxDeadlineHours = 10_000 * time.Hour
	maxDeadlineDays  = 1_000
)

func (s *Server) ComputeDeadline(ctx context.Context, r *slaclockv1.ComputeDeadlineRequest) (*slaclockv1.ComputeDeadlineResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	var vs []kernel.Violation
	if r.GetFrom() == nil || r.GetFrom().CheckValid() != nil {
		vs = append(vs, kernel.Violation{Field: "from", Rule: "required", Message: "from must be a valid timestamp"})
	}
	hasDur, days := r.GetDuration() != nil, r.GetWorkingDays()
	switch {
	case hasDur && days != 0:
		vs = append(vs, kernel.Violation{Field: "duration", Rule: "one_of", Message: "give either duration or working_days, not both"})
	case !hasDur && days == 0:
		vs = append(vs, kernel.Violation{Field: "duration", Rule: "one_of", Message: "give either duration (working time) or working_days"})
	case hasDur:
		if d := r.GetDuration(); d.CheckValid() != nil || d.AsDuration() <= 0 || d.AsDuration() > maxDeadlineHours {
			vs = append(vs, kernel.Violation{Field: "duration", Rule: "positive", Message: fmt.Sprintf("duration must be positive and at most %v", maxDeadlineHours)})
		}
	case days < 0 || days > maxDeadlineDays:
		vs = append(vs, kernel.Violation{Field: "working_days", Rule: "positive", Message: fmt.Sprintf("working_days must be between 1 and %d", maxDeadlineDays)})
	}
	if len(vs) > 0 {
		return nil, kernel.Invalid(vs...)
	}
	d, err := s.app.ComputeDeadline(r.GetCalendarId(), r.GetFrom().AsTime(), r.GetDuration().AsDuration(), int(days))
	if err != nil {
		return nil, err
	}
	resp := &slaclockv1.ComputeDeadlineResponse{Deadline: timestamppb.New(d.At), CalendarId: d.Calendar.ID(),
		CalendarVersion: d.Calendar.Version(), TimeZone: d.Calendar.Location().String(), Provisional: len(d.ProvisionalYears) > 0}
	for _, y := range d.ProvisionalYears {
		resp.ProvisionalYears = append(resp.ProvisionalYears, int32(y))
	}
	return resp, nil
}

func (s *Server) ListCalendars(ctx context.Context, _ *slaclockv1.ListCalendarsRequest) (*slaclockv1.ListCalendarsResponse, error) {
	if err := auth.RequireRole(ctx, readers...); err != nil {
		return nil, err
	}
	cals, def := s.app.Calendars()
	resp := &slaclockv1.ListCalendarsResponse{}
	for _, c := range cals {
		info := &slaclockv1.CalendarInfo{Id: c.ID(), Version: c.Version(), TimeZone: c.Location().String(), Default: c.ID() == def, Region: c.Region()}
		for _, y := range c.Years() {
			cy := &slaclockv1.CalendarYear{Year: int32(y.Year), Version: int32(y.Version), Provisional: y.HasProvisional(), Source: y.Source}
			for _, h := range y.Holidays {
				if y.Provisional || h.Provisional {
					cy.ProvisionalEntries = append(cy.ProvisionalEntries, fmt.Sprintf("%s %s..%s", h.Name, h.OffFrom, h.OffTo))
				}
			}
			info.Years = append(info.Years, cy)
		}
		resp.Calendars = append(resp.Calendars, info)
	}
	return resp, nil
}

func (s *Server) PublishCalendarYear(ctx context.Context, r *slaclockv1.PublishCalendarYearRequest) (*slaclockv1.PublishCalendarYearResponse, error) {
	if err := auth.RequireRole(ctx, auth.RoleAdmin); err != nil {
		return nil, err
	}
	if len(r.GetDocument()) == 0 {
		return nil, kernel.Invalid(kernel.Violation{Field: "document", Rule: "required", Message: "document (the year as JSON) is required"})
	}
	res, err := s.app.PublishCalendarYear(ctx, r.GetDocument(), caller(ctx))
	if err != nil {
		return nil, err
	}
	return &slaclockv1.PublishCalendarYearResponse{Region: res.Region, Year: int32(res.Year), Version: int32(res.Version),
		Published: res.Published, CalendarVersions: res.CalendarVersions}, nil
}
