package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
)

// Cookie names.
const (
	sessionCookie = "closeloop_session"
	// loginCookie carries the sign-in form's CSRF token before there is a
	// session (double submit: the form must echo it).
	loginCookie = "closeloop_login"
	langCookie  = "closeloop_lang"
	csrfField   = "csrf"
)

// session is one signed-in person. The bearer token stays on the server
// (never in the cookie): actions call the owning service with it, so the
// log records the person as the actor.
type session struct {
	id        string
	principal auth.Principal
	token     string
	csrf      string
	lastSeen  time.Time
}

// sessions keeps the signed-in sessions in memory: a restart signs
// everyone out.
type sessions struct {
	clock clock.Clock
	idle  time.Duration

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(c clock.Clock, idle time.Duration) *sessions {
	return &sessions{clock: c, idle: idle, byID: map[string]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *sessions) create(p auth.Principal, token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	// Expired sessions go when someone signs in: their number stays that
	// of the people active within the idle time.
	for id, x := range s.byID {
		if now.Sub(x.lastSeen) > s.idle {
			delete(s.byID, id)
		}
	}
	ss := &session{id: randomToken(), principal: p, token: token, csrf: randomToken(), lastSeen: now}
	s.byID[ss.id] = ss
	return ss
}

// lookup returns the live session of id and touches it; expired says an
// idle session was found and ended.
func (s *sessions) lookup(id string) (ss *session, expired bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.byID[id]
	if x == nil {
		return nil, false
	}
	now := s.clock.Now()
	if now.Sub(x.lastSeen) > s.idle {
		delete(s.byID, id)
		return nil, true
	}
	x.lastSeen = now
	c := *x
	return &c, false
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

// sameToken compares in constant time.
func sameToken(a, b string) bool {
	return a != "" && len(a) == len(b) && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// cookie makes a cookie the browser keeps from scripts (HttpOnly), sends
// only to this site's own navigations and forms (SameSite=Lax) and, over
// TLS, only over TLS (Secure).
func (srv *Server) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: r.TLS != nil || srv.opts.SecureCookies,
	}
}
