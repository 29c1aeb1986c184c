package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/followup/internal/kpi"
)

// maxFormBytes bounds a survey submission.
const maxFormBytes = 64 << 10

// HTTP serves what is not a gRPC method: the customer's survey (an HTML
// page that works without JavaScript, and its JSON twin) and the KPI CSV
// export. The survey is authenticated by its link's token alone; the export
// needs a bearer token with a KPI role.
type HTTP struct {
	GRPC *GRPC
	Auth auth.Authenticator
	// Logger gets the errors a caller is only told "internal error" of.
	Logger *slog.Logger
	// Ready is closed once the KPI model has caught up with the log; until
	// then the export answers 503 rather than the figures of a partial
	// view (nil: ready). The survey pages read the complaint's stream and
	// need no view.
	Ready <-chan struct{}
}

// Register adds the routes to mux.
func (h *HTTP) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /survey/{complaint}", h.surveyPage)
	mux.HandleFunc("POST /survey/{complaint}", h.surveySubmit)
	mux.HandleFunc("GET /v1/survey/{complaint}", h.surveyJSON)
	mux.HandleFunc("POST /v1/survey/{complaint}", h.surveySubmitJSON)
	mux.HandleFunc("GET /v1/kpi/export.csv", h.exportCSV)
}

// status maps err as libs/api's server maps a handler's error: these
// routes call the handlers directly, outside its interceptors.
func (h *HTTP) status(r *http.Request, err error) error {
	log := h.Logger
	if log == nil {
		log = slog.Default()
	}
	return api.Status(r.Context(), log, r.Method+" "+r.Pattern, err)
}

// pageError tells a customer what went wrong, in words, in l; sw is the
// page's language switch (nil after a submission).
func (h *HTTP) pageError(w http.ResponseWriter, r *http.Request, l *texts, sw *langSwitch, err error) {
	err = h.status(r, err)
	st := status.Convert(err)
	code, msg := api.HTTPStatus(st.Code()), l.Failed
	switch st.Code() {
	case codes.PermissionDenied:
		msg = l.Invalid
	case codes.NotFound:
		msg = l.NotFound
	case codes.InvalidArgument:
		var parts []string
		for _, v := range api.Violations(err) {
			parts = append(parts, l.violation(v))
		}
		msg = l.CheckAnswer + strings.Join(parts, l.Sep) + l.End
	case codes.FailedPrecondition:
		// Expired, already answered, closed or overtaken by a later resolution.
		code, msg = http.StatusGone, l.Closed
	}
	renderPage(w, code, pageData{L: l, Message: msg, Error: true, Switch: sw})
}

func (h *HTTP) surveyPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	l := language(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
	if _, err := h.GRPC.GetSurvey(r.Context(), &followupv1.GetSurveyRequest{ComplaintId: r.PathValue("complaint"), Token: token}); err != nil {
		h.pageError(w, r, l, switchTo(l, token), err)
		return
	}
	renderPage(w, http.StatusOK, pageData{L: l, Form: true, Token: token, Switch: switchTo(l, token)})
}

func (h *HTTP) surveySubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		l := language(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
		renderPage(w, http.StatusBadRequest, pageData{L: l, Message: l.FormUnreadable, Error: true})
		return
	}
	// The form's lang is the page's (the switch's choice); r.Form also
	// holds the link's query.
	l := language(r.Form.Get("lang"), r.Header.Get("Accept-Language"))
	req := &followupv1.SubmitSurveyRequest{ComplaintId: r.PathValue("complaint"), Token: r.PostForm.Get("t"), Comment: r.PostForm.Get("comment")}
	var bad []kernel.Violation
	if n, err := strconv.ParseUint(r.PostForm.Get("satisfaction"), 10, 32); err == nil {
		req.Satisfaction = uint32(n)
	} else {
		bad = append(bad, kernel.Violation{Field: "satisfaction", Rule: "range", Message: "must be 1 to 5"})
	}
	switch r.PostForm.Get("resolved") {
	case "yes":
		req.Resolved = true
	case "no":
	default:
		bad = append(bad, kernel.Violation{Field: "resolved", Rule: "enum", Message: "must be yes or no"})
	}
	if len(bad) > 0 {
		h.pageError(w, r, l, nil, kernel.Invalid(bad...))
		return
	}
	if _, err := h.GRPC.SubmitSurvey(r.Context(), req); err != nil {
		h.pageError(w, r, l, nil, err)
		return
	}
	renderPage(w, http.StatusOK, pageData{L: l, Message: l.Thanks})
}

var jsonOut = protojson.MarshalOptions{}

func (h *HTTP) writeProto(w http.ResponseWriter, r *http.Request, m proto.Message) {
	b, err := jsonOut.Marshal(m)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// writeErr answers like the api package's HTTP face does.
func (h *HTTP) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	err = h.status(r, err)
	st := status.Convert(err)
	if d, ok := api.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(api.HTTPStatus(st.Code()))
	_ = json.NewEncoder(w).Encode(api.ErrorBody{Code: st.Code().String(), Message: st.Message(), Violations: api.Violations(err)})
}

func (h *HTTP) surveyJSON(w http.ResponseWriter, r *http.Request) {
	resp, err := h.GRPC.GetSurvey(r.Context(), &followupv1.GetSurveyRequest{ComplaintId: r.PathValue("complaint"), Token: r.URL.Query().Get("t")})
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	h.writeProto(w, r, resp)
}

func (h *HTTP) surveySubmitJSON(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFormBytes))
	if err != nil {
		h.writeErr(w, r, kernel.Invalid(kernel.Violation{Field: "body", Rule: "readable", Message: "too large or unreadable"}))
		return
	}
	req := &followupv1.SubmitSurveyRequest{}
	if err := (protojson.UnmarshalOptions{}).Unmarshal(body, req); err != nil {
		h.writeErr(w, r, kernel.Invalid(kernel.Violation{Field: "body", Rule: "json", Message: "is not a valid SubmitSurveyRequest"}))
		return
	}
	req.ComplaintId = r.PathValue("complaint")
	resp, err := h.GRPC.SubmitSurvey(r.Context(), req)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	h.writeProto(w, r, resp)
}

// exportCSV: GET /v1/kpi/export.csv?group=team&period=month&from=2026-03-01&to=2026-04-01
// (from/to as RFC 3339 or YYYY-MM-DD in the KPI time zone).
func (h *HTTP) exportCSV(w http.ResponseWriter, r *http.Request) {
	if h.Ready != nil {
		select {
		case <-h.Ready:
		default:
			h.writeErr(w, r, fmt.Errorf("the KPI model is catching up with the log: %w", kernel.ErrRetryLater))
			return
		}
	}
	ctx, err := h.authenticate(r)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	if err := auth.RequireRole(ctx, kpiRoles...); err != nil {
		h.writeErr(w, r, err)
		return
	}
	req, err := kpiRequestFromURL(r, h.GRPC.KPILocation)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	q, err := KPIQuery(req, h.GRPC.KPILocation)
	if err != nil {
		h.writeErr(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="kpi.csv"`)
	_ = kpi.WriteCSV(w, h.GRPC.KPI.Query(q))
}

func (h *HTTP) authenticate(r *http.Request) (context.Context, error) {
	if h.Auth == nil {
		return nil, status.Error(codes.Unauthenticated, "no authenticator configured")
	}
	token := ""
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "bearer") {
		token = strings.TrimSpace(tok)
	}
	p, err := h.Auth.Authenticate(r.Context(), token)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "missing or unknown bearer token")
	}
	return auth.WithPrincipal(r.Context(), p), nil
}

func kpiRequestFromURL(r *http.Request, loc *time.Location) (*followupv1.QueryKpisRequest, error) {
	v := r.URL.Query()
	req := &followupv1.QueryKpisRequest{}
	var bad []kernel.Violation
	if g := v.Get("group"); g != "" {
		n, ok := followupv1.KpiGroup_value["KPI_GROUP_"+strings.ToUpper(g)]
		if !ok {
			bad = append(bad, kernel.Violation{Field: "group", Rule: "enum", Message: "must be all, team, owner, technician or category"})
		}
		req.Group = followupv1.KpiGroup(n)
	}
	if p := v.Get("period"); p != "" {
		n, ok := followupv1.KpiPeriod_value["KPI_PERIOD_"+strings.ToUpper(p)]
		if !ok {
			bad = append(bad, kernel.Violation{Field: "period", Rule: "enum", Message: "must be all, day, week or month"})
		}
		req.Period = followupv1.KpiPeriod(n)
	}
	for _, f := range []struct {
		name string
		dst  **timestamppb.Timestamp
	}{{"from", &req.From}, {"to", &req.To}} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		t, err := parseTime(s, loc)
		if err != nil {
			bad = append(bad, kernel.Violation{Field: f.name, Rule: "time", Message: "must be RFC 3339 or YYYY-MM-DD"})
			continue
		}
		*f.dst = timestamppb.New(t)
	}
	if len(bad) > 0 {
		return nil, kernel.Invalid(bad...)
	}
	return req, nil
}

func parseTime(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	t, err := time.ParseInLocation(time.DateOnly, s, loc)
	if err != nil {
		return time.Time{}, errors.New("not a time")
	}
	return t, nil
}
