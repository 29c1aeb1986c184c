package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
)

// The what-if report of an SLA policy or calendar change: sla-clock's
// WhatIf replays a candidate over past complaints and changes nothing. The
// form is a POST (a policy document is long), so it carries the CSRF token.

type whatIfData struct {
	Form   map[string]string
	Errors map[string]string
	Report *slaclockv1.WhatIfResponse
}

// whatIfFields maps WhatIf's request fields to the form's.
var whatIfFields = map[string]string{"policy_document": "policy", "calendar_id": "calendar", "from": "from", "to": "to"}

func (srv *Server) whatIfPage(w http.ResponseWriter, r *http.Request, ss *session) {
	if !mayReadDashboard(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return
	}
	d := &whatIfData{Form: map[string]string{}, Errors: map[string]string{}}
	p := page{User: &ss.principal, CSRF: ss.csrf, Data: d}
	if r.Method != http.MethodPost {
		srv.render(w, r, http.StatusOK, "whatif", p)
		return
	}
	lang := langOf(r)
	for _, k := range []string{"policy", "calendar", "from", "to"} {
		d.Form[k] = strings.TrimSpace(r.PostFormValue(k))
	}
	req := &slaclockv1.WhatIfRequest{PolicyDocument: []byte(d.Form["policy"]), CalendarId: d.Form["calendar"]}
	day := func(field string) *timestamppb.Timestamp {
		t, err := time.ParseInLocation("2006-01-02", d.Form[field], chinaTime)
		if err != nil {
			d.Errors[field] = msg(lang, "whatif.date")
			return nil
		}
		return timestamppb.New(t)
	}
	req.From, req.To = day("from"), day("to")
	if len(d.Errors) > 0 {
		p.Message, p.IsError = msg(lang, "err.form"), true
		srv.render(w, r, http.StatusBadRequest, "whatif", p)
		return
	}
	rep, err := srv.whatIf(asUser(r.Context(), ss), req)
	if err == nil {
		d.Report = rep
		srv.render(w, r, http.StatusOK, "whatif", p)
		return
	}
	code, key := kpiError(err)
	p.Message, p.IsError = msg(lang, key), true
	switch status.Code(err) {
	case codes.InvalidArgument:
		for _, v := range api.Violations(err) {
			f := whatIfFields[v.Field]
			if f == "" {
				f = "policy" // the document's own fields
			}
			d.Errors[f] = strings.TrimSpace(d.Errors[f] + " " + v.Message)
		}
		if len(d.Errors) == 0 {
			d.Errors["policy"] = status.Convert(err).Message()
		}
	case codes.FailedPrecondition, codes.NotFound:
		code = http.StatusBadRequest
		d.Errors["policy"] = status.Convert(err).Message()
	}
	if code == http.StatusServiceUnavailable {
		srv.opts.Logger.Warn("console: what-if", "err", err)
	}
	srv.render(w, r, code, "whatif", p)
}

func (srv *Server) whatIf(ctx context.Context, req *slaclockv1.WhatIfRequest) (*slaclockv1.WhatIfResponse, error) {
	if srv.opts.SLAClock == nil {
		return nil, status.Error(codes.Unavailable, "no sla-clock address configured (CONSOLE_SLACLOCK_ADDR)")
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return srv.opts.SLAClock.WhatIf(ctx, req)
}
