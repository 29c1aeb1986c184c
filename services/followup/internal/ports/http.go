package ports

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
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
	"github.com/closeloop/closeloop/services/followup/internal/app"
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

var page = template.Must(template.New("survey").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Your feedback</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Form}}
<h1>How did we do?</h1>
<form method="post" action="">
<input type="hidden" name="t" value="{{.Token}}">
<fieldset><legend>{{index .Questions 0}}</legend>
{{range .Scores}}<label><input type="radio" name="satisfaction" value="{{.}}" required> {{.}}</label>
{{end}}</fieldset>
<fieldset><legend>{{index .Questions 1}}</legend>
<label><input type="radio" name="resolved" value="yes" required> Yes</label>
<label><input type="radio" name="resolved" value="no"> No</label>
</fieldset>
<p><label>{{index .Questions 2}}<br><textarea name="comment" rows="5" cols="60" maxlength="2000"></textarea></label></p>
<p><button type="submit">Send</button></p>
</form>
{{end}}
</body></html>
`))

type pageData struct {
	Message   string
	Form      bool
	Token     string
	Questions []string
	Scores    []int
}

func renderPage(w http.ResponseWriter, code int, d pageData) {
	d.Questions, d.Scores = app.Questions, []int{1, 2, 3, 4, 5}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the token is in the URL
	w.WriteHeader(code)
	_ = page.Execute(w, d)
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

// pageError tells a customer what went wrong, in words.
func (h *HTTP) pageError(w http.ResponseWriter, r *http.Request, err error) {
	err = h.status(r, err)
	st := status.Convert(err)
	code, msg := api.HTTPStatus(st.Code()), "Sorry, something went wrong. Please try again later."
	switch st.Code() {
	case codes.PermissionDenied:
		msg = "This survey link is not valid."
	case codes.NotFound:
		msg = "We could not find this survey."
	case codes.InvalidArgument:
		var parts []string
		for _, v := range api.Violations(err) {
			parts = append(parts, v.Field+" "+v.Message)
		}
		msg = "Please check your answer: " + strings.Join(parts, "; ") + "."
	case codes.FailedPrecondition:
		// Expired, already answered, closed or overtaken by a later resolution.
		code, msg = http.StatusGone, "This survey is no longer open (it has expired or was already answered). Thank you."
	}
	renderPage(w, code, pageData{Message: msg})
}

func (h *HTTP) surveyPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	if _, err := h.GRPC.GetSurvey(r.Context(), &followupv1.GetSurveyRequest{ComplaintId: r.PathValue("complaint"), Token: token}); err != nil {
		h.pageError(w, r, err)
		return
	}
	renderPage(w, http.StatusOK, pageData{Form: true, Token: token})
}

func (h *HTTP) surveySubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		renderPage(w, http.StatusBadRequest, pageData{Message: "The form could not be read."})
		return
	}
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
		h.pageError(w, r, kernel.Invalid(bad...))
		return
	}
	if _, err := h.GRPC.SubmitSurvey(r.Context(), req); err != nil {
		h.pageError(w, r, err)
		return
	}
	renderPage(w, http.StatusOK, pageData{Message: "Thank you for your feedback."})
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
