// Package web serves the console: server-rendered pages (html/template,
// Chinese and English), the sign-in with its session cookie and CSRF
// tokens, the actions (forwarded to the owning service's API with the
// signed-in person's own token), and the query API of the read model: JSON
// over HTTP and the gRPC QueueService (queue_grpc.go).
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options of the web server.
type Options struct {
	View          *view.View
	Log           eventlog.Store // the complaint page reads its timeline here
	Routing       routingv1.RoutingServiceClient
	Authenticator auth.Authenticator
	Clock         clock.Clock
	Logger        *slog.Logger
	// SessionIdle ends a session unused for this long.
	SessionIdle time.Duration
	// SecureCookies marks cookies Secure even over plain HTTP (behind a
	// TLS-terminating proxy); over TLS they always are.
	SecureCookies bool
	// Ready is closed once the view has caught up with the log.
	Ready <-chan struct{}
	// Health, if set, is asked by /readyz once ready (platform.Deps.LogHealth).
	Health func(context.Context) error
	// Kpis (follow-up) feeds the dashboard; SLAClock its what-if report.
	Kpis     followupv1.KpiServiceClient
	SLAClock slaclockv1.SlaClockServiceClient
	// Followup gives the status page its survey link, asked with
	// StatusToken (the console's own token; empty: no survey link).
	Followup    followupv1.FollowupServiceClient
	StatusToken string
	// StatusSecret signs the customers' status links (empty: none), valid
	// for StatusLinkTTL; PublicURL is where customers reach the console.
	StatusSecret  []byte
	StatusLinkTTL time.Duration
	PublicURL     string
}

// Server is the console's HTTP face.
type Server struct {
	opts     Options
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
}

// New checks opts and parses the templates.
func New(opts Options) (*Server, error) {
	switch {
	case opts.View == nil, opts.Log == nil, opts.Routing == nil, opts.Authenticator == nil, opts.Clock == nil:
		return nil, errors.New("web: options View, Log, Routing, Authenticator and Clock are required")
	case opts.SessionIdle <= 0:
		return nil, errors.New("web: options SessionIdle: must be positive")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	srv := &Server{opts: opts, sessions: newSessions(opts.Clock, opts.SessionIdle), pages: map[string]*template.Template{}}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	for _, page := range []string{"login", "queue", "complaint", "message", "dashboard", "whatif"} {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", page, err)
		}
		srv.pages[page] = t
	}
	if err := srv.addPages(base, "team", "roster"); err != nil { // team.go
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	m.HandleFunc("GET /readyz", srv.readyz)
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /lang", srv.setLang)
	m.HandleFunc("GET /login", srv.loginPage)
	m.HandleFunc("POST /login", srv.login)
	m.HandleFunc("POST /logout", srv.withSession(srv.logout))
	m.HandleFunc("GET /{$}", srv.withSession(srv.queue))
	m.HandleFunc("GET /complaints/{id}", srv.withSession(srv.complaint))
	m.HandleFunc("POST /complaints/{id}/{action}", srv.withSession(srv.act))
	m.HandleFunc("GET /team", srv.withSession(srv.team))
	m.HandleFunc("POST /team/review", srv.withSession(srv.review))
	m.HandleFunc("POST /team/reassign", srv.withSession(srv.reassign))
	m.HandleFunc("GET /team/roster", srv.withSession(srv.roster))
	m.HandleFunc("POST /team/roster/shift", srv.withSession(srv.shift))
	m.HandleFunc("POST /team/roster/member", srv.withSession(srv.saveMember))
	m.HandleFunc("GET /api/v1/complaints", srv.apiAuth(srv.apiList))
	m.HandleFunc("GET /api/v1/complaints/{id}", srv.apiAuth(srv.apiGet))
	m.HandleFunc("GET /dashboard", srv.withSession(srv.dashboard))
	m.HandleFunc("GET /dashboard.csv", srv.withSession(srv.dashboardCSV))
	m.HandleFunc("GET /dashboard/whatif", srv.withSession(srv.whatIfPage))
	m.HandleFunc("POST /dashboard/whatif", srv.withSession(srv.whatIfPage))
	m.HandleFunc("GET /s/{link}", srv.statusPageHandler)
	m.HandleFunc("GET /api/v1/complaints/{id}/status-link", srv.apiAuth(srv.apiStatusLink))
	srv.mux = m
	return srv, nil
}

// ServeHTTP sets the headers every answer carries: no framing, no
// scripts or styles but the console's own, no sniffing.
func (srv *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	srv.mux.ServeHTTP(w, r)
}

func (srv *Server) readyz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-srv.opts.Ready:
		if srv.opts.Health != nil {
			if err := srv.opts.Health(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		w.WriteHeader(http.StatusOK)
	default:
		http.Error(w, "read model catching up with the log", http.StatusServiceUnavailable)
	}
}

// setLang keeps the chosen language and goes back to a page of this site.
func (srv *Server) setLang(w http.ResponseWriter, r *http.Request) {
	lang := r.URL.Query().Get("to")
	if lang != langZH && lang != langEN {
		http.Error(w, "to: must be zh or en", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, srv.cookie(r, langCookie, lang, 365*24*3600))
	back := r.URL.Query().Get("back")
	if !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") || strings.Contains(back, `\`) {
		back = "/"
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// page is what every template gets.
type page struct {
	Lang    string
	Path    string
	Now     time.Time
	User    *auth.Principal
	CSRF    string
	Message string // a notice at the top (done, or an error)
	IsError bool
	Data    any
}

// render writes a page with status.
func (srv *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Lang, p.Path, p.Now = langOf(r), r.URL.RequestURI(), srv.opts.Clock.Now()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := srv.pages[name].ExecuteTemplate(w, "layout.html", p); err != nil {
		srv.opts.Logger.Error("console: render", "page", name, "err", err)
	}
}

func (srv *Server) message(w http.ResponseWriter, r *http.Request, status int, ss *session, key string) {
	p := page{Message: msg(langOf(r), key), IsError: status >= 400}
	if ss != nil {
		p.User, p.CSRF = &ss.principal, ss.csrf
	}
	srv.render(w, r, status, "message", p)
}

// withSession runs h for a signed-in person (else to the sign-in page) and
// refuses a POST whose CSRF token is not the session's, changing nothing.
func (srv *Server) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var ss *session
		expired := false
		if c, err := r.Cookie(sessionCookie); err == nil {
			ss, expired = srv.sessions.lookup(c.Value)
		}
		if ss == nil {
			if r.Method != http.MethodGet {
				srv.message(w, r, http.StatusForbidden, nil, "forged")
				return
			}
			to := "/login"
			if expired {
				to += "?expired=1"
			}
			http.Redirect(w, r, to, http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !sameToken(r.PostFormValue(csrfField), ss.csrf) {
				srv.message(w, r, http.StatusForbidden, ss, "forged")
				return
			}
		}
		h(w, r, ss)
	}
}

// asUser is a context calling another service as the signed-in person.
func asUser(ctx context.Context, ss *session) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+ss.token)
}

// mayReadQueues: the roles whose work is complaints. Technicians get their
// jobs page in a later round; adapters and services sign in nowhere.
func mayReadQueues(p auth.Principal) bool {
	return p.HasRole(auth.RoleAgent, auth.RoleTeamLead, auth.RoleManager, auth.RoleSeniorManager,
		auth.RoleQualityReviewer, auth.RoleAuditor, auth.RoleAdmin)
}

// refusal turns routing's refusal into a status, a notice and field errors
// (prefix.field), keeping the form as typed.
func (srv *Server) refusal(r *http.Request, prefix string, form, errs map[string]string, err error) (int, string) {
	lang := langOf(r)
	for k, v := range r.PostForm {
		if k != csrfField {
			form[prefix+"."+k] = v[0]
		}
	}
	st, _ := status.FromError(err)
	code, text := http.StatusServiceUnavailable, msg(lang, "err.unavailable")
	switch st.Code() {
	case codes.InvalidArgument:
		code, text = http.StatusBadRequest, msg(lang, "err.form")
		for _, v := range api.Violations(err) {
			errs[prefix+"."+v.Field] = v.Message
			text += " " + v.Field + ": " + v.Message // also those of hidden fields
		}
		if len(errs) == 0 {
			text = st.Message()
		}
	case codes.FailedPrecondition:
		code, text = http.StatusConflict, msg(lang, "err.precondition")+st.Message()
	case codes.Aborted:
		code, text = http.StatusConflict, msg(lang, "err.stale")
	case codes.PermissionDenied, codes.Unauthenticated:
		code, text = http.StatusForbidden, msg(lang, "err.denied")
	case codes.NotFound:
		code, text = http.StatusNotFound, msg(lang, "err.notfound")+st.Message()
	}
	if code == http.StatusServiceUnavailable {
		srv.opts.Logger.Warn("console: action failed", "form", prefix, "err", errors.Unwrap(err))
	}
	return code, text
}
