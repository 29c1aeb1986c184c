package web

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
)

// The manager's dashboard: follow-up's KPIs (KpiService.QueryKpis, called
// with the manager's own token) as a table, server-drawn SVG charts each
// with its own table, and the same rows as CSV.

// mayReadDashboard: managers, senior managers, admins.
func mayReadDashboard(p auth.Principal) bool {
	return p.HasRole(auth.RoleManager, auth.RoleSeniorManager, auth.RoleAdmin)
}

// The groups and periods QueryKpis offers, by their names in the form.
var (
	kpiGroups = map[string]followupv1.KpiGroup{"all": followupv1.KpiGroup_KPI_GROUP_ALL, "team": followupv1.KpiGroup_KPI_GROUP_TEAM,
		"owner": followupv1.KpiGroup_KPI_GROUP_OWNER, "technician": followupv1.KpiGroup_KPI_GROUP_TECHNICIAN, "category": followupv1.KpiGroup_KPI_GROUP_CATEGORY}
	kpiPeriods = map[string]followupv1.KpiPeriod{"all": followupv1.KpiPeriod_KPI_PERIOD_ALL, "day": followupv1.KpiPeriod_KPI_PERIOD_DAY,
		"week": followupv1.KpiPeriod_KPI_PERIOD_WEEK, "month": followupv1.KpiPeriod_KPI_PERIOD_MONTH}
	kpiGroupNames  = []string{"team", "owner", "all", "technician", "category"}
	kpiPeriodNames = []string{"week", "all", "day", "month"}
)

// kpiForm is the dashboard's query as typed.
type kpiForm struct {
	Group, Period, From, To string
}

// parseKpiForm checks the query; every bad field is named.
func parseKpiForm(v url.Values) (kpiForm, *followupv1.QueryKpisRequest, []kernel.Violation) {
	f := kpiForm{Group: v.Get("group"), Period: v.Get("period"), From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to"))}
	if f.Group == "" {
		f.Group = "team"
	}
	if f.Period == "" {
		f.Period = "week"
	}
	var errs []kernel.Violation
	req := &followupv1.QueryKpisRequest{Group: kpiGroups[f.Group], Period: kpiPeriods[f.Period]}
	if req.Group == 0 {
		errs = append(errs, kernel.Violation{Field: "group", Rule: "enum", Message: "must be one of " + strings.Join(kpiGroupNames, ", ")})
	}
	if req.Period == 0 {
		errs = append(errs, kernel.Violation{Field: "period", Rule: "enum", Message: "must be one of " + strings.Join(kpiPeriodNames, ", ")})
	}
	day := func(field, s string) *timestamppb.Timestamp {
		if s == "" {
			return nil
		}
		t, err := time.ParseInLocation("2006-01-02", s, chinaTime)
		if err != nil {
			errs = append(errs, kernel.Violation{Field: field, Rule: "date", Message: "must be a date like 2026-11-02"})
			return nil
		}
		return timestamppb.New(t)
	}
	req.From, req.To = day("from", f.From), day("to", f.To)
	if req.From != nil && req.To != nil && !req.To.AsTime().After(req.From.AsTime()) {
		errs = append(errs, kernel.Violation{Field: "to", Rule: "after_from", Message: "must be after from"})
	}
	return f, req, errs
}

// kpiRow is one row of the dashboard, as shown and exported.
type kpiRow struct {
	Group, Period                   string
	Received, Resolved, Surveys     uint32
	CSI                             float64
	Resolution, FCR, Reopen, Repeat float64
	SLA                             map[eventsv1.SlaTarget]float64
}

// Label names a row in charts: the group and the period ("—" for the
// one row of group "all" over all time).
func (r kpiRow) Label() string {
	if l := strings.TrimSpace(r.Group + " " + r.Period); l != "" {
		return l
	}
	return "—"
}

type dashboardData struct {
	Form    kpiForm
	Errors  map[string]string
	Rows    []kpiRow
	Targets []eventsv1.SlaTarget // the SLA targets any row has, in enum order
	Charts  []chart
	CSV     string // the export link of the same query
	Groups  []string
	Periods []string
}

func (srv *Server) dashboard(w http.ResponseWriter, r *http.Request, ss *session) {
	if !mayReadDashboard(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return
	}
	lang := langOf(r)
	f, req, errs := parseKpiForm(r.URL.Query())
	d := dashboardData{Form: f, Errors: map[string]string{}, Groups: kpiGroupNames, Periods: kpiPeriodNames}
	for _, v := range errs {
		d.Errors[v.Field] = msg(lang, "kpi.err."+v.Rule) // the page speaks the person's language
	}
	p := page{User: &ss.principal, CSRF: ss.csrf, Data: &d}
	if len(errs) > 0 {
		p.Message, p.IsError = msg(lang, "err.form"), true
		srv.render(w, r, http.StatusBadRequest, "dashboard", p)
		return
	}
	rows, targets, err := srv.queryKpis(asUser(r.Context(), ss), req)
	if err != nil {
		code, key := kpiError(err)
		if code == http.StatusServiceUnavailable {
			srv.opts.Logger.Warn("console: dashboard: QueryKpis", "err", err)
		}
		p.Message, p.IsError = msg(lang, key), true
		srv.render(w, r, code, "dashboard", p)
		return
	}
	d.Rows, d.Targets, d.Charts = rows, targets, kpiCharts(lang, rows, targets)
	d.CSV = "/dashboard.csv?" + url.Values{"group": {f.Group}, "period": {f.Period}, "from": {f.From}, "to": {f.To}}.Encode()
	srv.render(w, r, http.StatusOK, "dashboard", p)
}

// kpiError maps a refusal of follow-up to a status and a message key.
func kpiError(err error) (int, string) {
	switch status.Code(err) {
	case codes.PermissionDenied, codes.Unauthenticated:
		return http.StatusForbidden, "err.denied"
	case codes.InvalidArgument:
		return http.StatusBadRequest, "err.form"
	}
	return http.StatusServiceUnavailable, "err.unavailable"
}

func (srv *Server) queryKpis(ctx context.Context, req *followupv1.QueryKpisRequest) ([]kpiRow, []eventsv1.SlaTarget, error) {
	if srv.opts.Kpis == nil {
		return nil, nil, status.Error(codes.Unavailable, "no follow-up address configured (CONSOLE_FOLLOWUP_ADDR)")
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	resp, err := srv.opts.Kpis.QueryKpis(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	seen := map[eventsv1.SlaTarget]bool{}
	var rows []kpiRow
	for _, x := range resp.GetRows() {
		row := kpiRow{Group: x.GetGroupKey(), Received: x.GetReceived(), Resolved: x.GetResolved(), Surveys: x.GetSurveysAnswered(),
			CSI: x.GetCsiAverage(), Resolution: x.GetResolutionRate(), FCR: x.GetFirstContactResolutionRate(),
			Reopen: x.GetReopenRate(), Repeat: x.GetRepeatRate(), SLA: map[eventsv1.SlaTarget]float64{}}
		if ps := x.GetPeriodStart(); ps != nil {
			row.Period = ps.AsTime().In(chinaTime).Format("2006-01-02")
		}
		for _, s := range x.GetSla() {
			row.SLA[s.GetTarget()], seen[s.GetTarget()] = s.GetRate(), true
		}
		rows = append(rows, row)
	}
	var targets []eventsv1.SlaTarget
	for t := range eventsv1.SlaTarget_name {
		if seen[eventsv1.SlaTarget(t)] {
			targets = append(targets, eventsv1.SlaTarget(t))
		}
	}
	slices.Sort(targets)
	return rows, targets, nil
}

// dashboardCSV exports the dashboard's rows: GET /dashboard.csv with the
// page's parameters.
func (srv *Server) dashboardCSV(w http.ResponseWriter, r *http.Request, ss *session) {
	if !mayReadDashboard(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return
	}
	f, req, errs := parseKpiForm(r.URL.Query())
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad query", "violations": errs})
		return
	}
	rows, targets, err := srv.queryKpis(asUser(r.Context(), ss), req)
	if err != nil {
		code, key := kpiError(err)
		http.Error(w, msg(langEN, key), code)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="kpis-%s-%s.csv"`, f.Group, f.Period))
	w.Header().Set("Cache-Control", "no-store")
	writeKpiCSV(w, rows, targets)
}

// writeKpiCSV writes the header and one line a row; rates are fractions 0–1.
func writeKpiCSV(w http.ResponseWriter, rows []kpiRow, targets []eventsv1.SlaTarget) {
	cw := csv.NewWriter(w)
	head := []string{"group", "period_start", "received", "resolved", "surveys_answered", "csi_average",
		"resolution_rate", "first_contact_resolution_rate", "reopen_rate", "repeat_rate"}
	for _, t := range targets {
		head = append(head, "sla_"+enumName(t)+"_rate")
	}
	_ = cw.Write(head)
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }
	u := func(n uint32) string { return strconv.FormatUint(uint64(n), 10) }
	for _, x := range rows {
		line := []string{csvCell(x.Group), x.Period, u(x.Received), u(x.Resolved), u(x.Surveys), num(x.CSI),
			num(x.Resolution), num(x.FCR), num(x.Reopen), num(x.Repeat)}
		for _, t := range targets {
			if v, ok := x.SLA[t]; ok {
				line = append(line, num(v))
			} else {
				line = append(line, "")
			}
		}
		_ = cw.Write(line)
	}
	cw.Flush()
}

// csvCell keeps a spreadsheet from reading a name as a formula.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
