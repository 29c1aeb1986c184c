package web

import (
	"net/http"
	"strings"

	"github.com/closeloop/closeloop/libs/auth"
)

type loginForm struct {
	Error string
}

// loginPage shows the sign-in form with a CSRF token tied to a cookie of
// this browser (there is no session yet to tie it to).
func (srv *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	token := ""
	if c, err := r.Cookie(loginCookie); err == nil && len(c.Value) == 43 {
		token = c.Value
	} else {
		token = randomToken()
		http.SetCookie(w, srv.cookie(r, loginCookie, token, 3600))
	}
	p := page{CSRF: token, Data: loginForm{}}
	if r.URL.Query().Get("expired") == "1" {
		p.Message = msg(langOf(r), "expired")
	}
	srv.render(w, r, http.StatusOK, "login", p)
}

// login checks the form's CSRF token, then the access token: a person's
// token (libs/auth) starts a session. The token is kept on the server,
// for the calls made in the person's name.
func (srv *Server) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	c, err := r.Cookie(loginCookie)
	if err != nil || !sameToken(r.PostFormValue(csrfField), c.Value) {
		srv.message(w, r, http.StatusForbidden, nil, "forged")
		return
	}
	lang := langOf(r)
	fail := func(status int, key string) {
		srv.render(w, r, status, "login", page{CSRF: c.Value, Data: loginForm{Error: msg(lang, key)}})
	}
	token := strings.TrimSpace(r.PostFormValue("token"))
	p, err := srv.opts.Authenticator.Authenticate(r.Context(), token)
	if err != nil || token == "" {
		fail(http.StatusUnauthorized, "token.bad")
		return
	}
	if p.Kind != auth.KindUser {
		fail(http.StatusForbidden, "token.notperson")
		return
	}
	ss := srv.sessions.create(p, token)
	srv.opts.Logger.Info("console: signed in", "principal", p.ID)
	http.SetCookie(w, srv.cookie(r, sessionCookie, ss.id, 0))
	http.SetCookie(w, srv.cookie(r, loginCookie, "", -1))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (srv *Server) logout(w http.ResponseWriter, r *http.Request, ss *session) {
	srv.sessions.end(ss.id)
	http.SetCookie(w, srv.cookie(r, sessionCookie, "", -1))
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
