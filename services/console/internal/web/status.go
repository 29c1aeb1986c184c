package web

import (
	"context"
	"html/template"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// The customer's status page: no sign-in, the signed link is the
// credential (statuslink.go). It shows what happens now, which team is
// responsible, the next deadline and the survey link, and never personal
// data (nothing sealed is opened; no owner's name, no description).

// statusPage is parsed on its own: it is not the staff's layout (no
// navigation into the desk).
var statusPage = template.Must(template.New("status.html").Funcs(funcs).ParseFS(templateFS, "templates/status.html"))

// chinaTime is how deadlines are shown to customers (UTC+8, no DST).
var chinaTime = time.FixedZone("UTC+8", 8*3600)

type statusData struct {
	Lang      string
	ID        string
	Status    string // the status in the customer's words
	Team      string
	Received  string
	Due       string // next deadline, "" when none is running
	DueTarget string
	SurveyURL string
}

// customerStatus turns a complaint's status into what happens now, in
// plain words.
var customerStatus = map[string][2]string{
	view.StatusReceived:         {"我们已收到您的投诉，正在登记。", "We have received your complaint and are registering it."},
	view.StatusAccepted:         {"您的投诉已受理，正在安排负责团队。", "Your complaint is accepted; we are choosing the team to handle it."},
	view.StatusAssigned:         {"负责团队已收到您的投诉，即将开始处理。", "The responsible team has your complaint and will start shortly."},
	view.StatusInProgress:       {"我们正在处理您的投诉。", "We are working on your complaint."},
	view.StatusResponded:        {"我们已与您联系，正在处理中。", "We have been in touch with you and are working on it."},
	view.StatusSolutionProposed: {"解决方案已拟定，正在审核。", "A solution has been drawn up and is being reviewed."},
	view.StatusDispatched:       {"已安排技术人员为您服务。", "A technician has been sent to help you."},
	view.StatusOnHold:           {"处理暂停，等待所需信息或配件。", "Handling is paused while we wait for information or parts."},
	view.StatusResolved:         {"您的投诉已解决，请告诉我们您是否满意。", "Your complaint is resolved; please tell us whether you are satisfied."},
	view.StatusReopened:         {"您的投诉已重新打开，我们会继续处理。", "Your complaint has been reopened; we are working on it again."},
	view.StatusClosed:           {"您的投诉已结案。感谢您的耐心。", "Your complaint is closed. Thank you for your patience."},
	view.StatusWithdrawn:        {"您的投诉已撤回。", "Your complaint was withdrawn."},
}

// teamNames are the teams in the customer's words; another team shows its id.
var teamNames = map[string][2]string{
	"customer-service":        {"客户服务部", "Customer service"},
	"technical-support":       {"技术支持部", "Technical support"},
	"management-coordination": {"管理协调部", "Management coordination"},
	"emergency-response":      {"应急响应组", "Emergency response"},
}

// targetNames say what the next deadline is for.
var targetNames = map[eventsv1.SlaTarget][2]string{
	eventsv1.SlaTarget_SLA_TARGET_ACCEPTANCE:         {"受理", "Acceptance"},
	eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE:     {"首次答复", "First reply to you"},
	eventsv1.SlaTarget_SLA_TARGET_TECHNICIAN_CONTACT: {"技术人员联系您", "A technician contacts you"},
	eventsv1.SlaTarget_SLA_TARGET_ONSITE_ARRIVAL:     {"技术人员上门", "A technician arrives"},
	eventsv1.SlaTarget_SLA_TARGET_REMOTE_SUPPORT:     {"远程支持", "Remote support"},
	eventsv1.SlaTarget_SLA_TARGET_RESOLUTION:         {"解决", "Resolution"},
	eventsv1.SlaTarget_SLA_TARGET_FIRST_FEEDBACK:     {"第一次回访", "First follow-up call"},
	eventsv1.SlaTarget_SLA_TARGET_SECOND_FEEDBACK:    {"第二次回访", "Second follow-up call"},
}

func pick(lang string, m [2]string) string {
	if lang == langEN {
		return m[1]
	}
	return m[0]
}

// statusPageHandler serves /s/{link}. A tampered, expired or unknown link
// is the same bare 404 as any missing page.
func (srv *Server) statusPageHandler(w http.ResponseWriter, r *http.Request) {
	if len(srv.opts.StatusSecret) == 0 {
		http.NotFound(w, r)
		return
	}
	now := srv.opts.Clock.Now()
	id, ok := checkStatusLink(srv.opts.StatusSecret, r.PathValue("link"), now)
	if !ok {
		http.NotFound(w, r)
		return
	}
	recs, err := srv.opts.Log.ReadStream(r.Context(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		srv.opts.Logger.Error("console: status page: read complaint", "complaint_id", id, "err", err)
		http.Error(w, "temporarily unavailable / 暂时无法访问", http.StatusServiceUnavailable)
		return
	}
	c, ok := view.Fold(recs)
	if !ok {
		http.NotFound(w, r)
		return
	}
	lang := langZH // the customer's page is Chinese unless they switch
	if r.URL.Query().Get("lang") == langEN {
		lang = langEN
	}
	d := statusData{Lang: lang, ID: c.ID, Status: pick(lang, customerStatus[c.Status]),
		Received: c.ReceivedAt.In(chinaTime).Format("2006-01-02 15:04")}
	if t, ok := teamNames[c.Team]; ok {
		d.Team = pick(lang, t)
	} else {
		d.Team = c.Team
	}
	if due, target := c.NextDue(); !due.IsZero() && c.Status != view.StatusClosed && c.Status != view.StatusWithdrawn {
		d.Due, d.DueTarget = due.In(chinaTime).Format("2006-01-02 15:04"), pick(lang, targetNames[target])
	}
	if c.Status == view.StatusResolved {
		if u := srv.surveyURL(r.Context(), id); u != "" {
			d.SurveyURL = u + "&lang=" + lang // follow-up's page speaks both too
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the link is the customer's credential
	h.Set("X-Robots-Tag", "noindex")
	if err := statusPage.Execute(w, d); err != nil {
		srv.opts.Logger.Error("console: render status page", "err", err)
	}
}

// surveyURL is the customer's open survey link, asked of follow-up with
// the console's own token; "" when there is none or it cannot be asked.
func (srv *Server) surveyURL(ctx context.Context, id string) string {
	if srv.opts.Followup == nil || srv.opts.StatusToken == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+srv.opts.StatusToken), 5*time.Second)
	defer cancel()
	f, err := srv.opts.Followup.GetFollowUp(ctx, &followupv1.GetFollowUpRequest{ComplaintId: id})
	if err != nil {
		srv.opts.Logger.Warn("console: status page: follow-up", "complaint_id", id, "err", err)
		return ""
	}
	if f.GetStatus() != followupv1.FollowUpStatus_FOLLOW_UP_STATUS_AWAITING_ANSWER {
		return ""
	}
	if u := f.GetSurveyUrl(); (strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")) && strings.Contains(u, "?") {
		return u
	}
	return ""
}

// apiStatusLink gives staff a complaint's signed status link to send to
// the customer: GET /api/v1/complaints/{id}/status-link.
func (srv *Server) apiStatusLink(w http.ResponseWriter, r *http.Request) {
	if len(srv.opts.StatusSecret) == 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "status links are not configured (CONSOLE_STATUS_SECRET)"})
		return
	}
	id := r.PathValue("id")
	recs, err := srv.opts.Log.ReadStream(r.Context(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		srv.opts.Logger.Error("console: status link: read complaint", "complaint_id", id, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"error": "the log is unavailable; try again"})
		return
	}
	if _, ok := view.Fold(recs); !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no complaint " + id})
		return
	}
	exp := srv.opts.Clock.Now().Add(srv.opts.StatusLinkTTL).Truncate(time.Second)
	path := statusPath(srv.opts.StatusSecret, id, exp)
	base := strings.TrimSuffix(srv.opts.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	writeJSON(w, http.StatusOK, map[string]any{"complaint_id": id, "path": path, "url": base + path, "expires_at": exp.UTC()})
}
