package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// parseQuery reads the filters shared by the queue page and the query API
// from URL parameters; every bad parameter is named. It only reads the
// syntax; checkQuery holds the rules, shared with the gRPC QueueService.
func parseQuery(v url.Values) (view.Query, []kernel.Violation) {
	var q view.Query
	var errs []kernel.Violation
	bad := func(field, rule, m string) {
		errs = append(errs, kernel.Violation{Field: field, Rule: rule, Message: m})
	}
	q.Owner, q.Team, q.Text, q.Serial = v.Get("owner"), v.Get("team"), strings.TrimSpace(v.Get("q")), strings.TrimSpace(v.Get("serial"))
	q.Status, q.Sort = v.Get("status"), v.Get("sort")
	enum := func(field, prefix string, values map[string]int32) int32 {
		s := v.Get(field)
		if s == "" {
			return 0
		}
		n, ok := values[prefix+strings.ToUpper(s)]
		if !ok || n == 0 {
			bad(field, "enum", "unknown "+field+" "+strconv.Quote(s))
		}
		return n
	}
	q.Severity = eventsv1.Severity(enum("severity", "SEVERITY_", eventsv1.Severity_value))
	q.Priority = eventsv1.Priority(enum("priority", "PRIORITY_", eventsv1.Priority_value))
	q.Channel = eventsv1.Channel(enum("channel", "CHANNEL_", eventsv1.Channel_value))
	flag := func(field string) bool {
		switch v.Get(field) {
		case "", "0", "false":
			return false
		case "1", "true", "on":
			return true
		}
		bad(field, "bool", "must be true or false")
		return false
	}
	q.Breached, q.Escalated, q.Unassigned = flag("breached"), flag("escalated"), flag("unassigned")
	if s := v.Get("due_before"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			bad("due_before", "rfc3339", "must be a time like 2026-11-02T09:00:00+08:00")
		}
		q.DueBefore = t
	}
	num := func(field string) int {
		s := v.Get(field)
		if s == "" {
			return 0
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			bad(field, "range", rangeRule[field])
		}
		return n
	}
	q.Limit, q.Offset = num("limit"), num("offset")
	return q, append(errs, checkQuery(q)...)
}

// maxOffset bounds how deep a query may page.
const maxOffset = 1_000_000

var rangeRule = map[string]string{
	"limit":  "must be a whole number from 0 to " + strconv.Itoa(view.MaxLimit),
	"offset": "must be a whole number from 0 to " + strconv.Itoa(maxOffset),
}

// checkQuery holds the rules of a query, however it arrived (URL
// parameters or a gRPC request): the one place they are decided.
func checkQuery(q view.Query) []kernel.Violation {
	var errs []kernel.Violation
	bad := func(field, rule, m string) {
		errs = append(errs, kernel.Violation{Field: field, Rule: rule, Message: m})
	}
	if q.Status != "" && !slices.Contains(view.Statuses, q.Status) {
		bad("status", "enum", "must be one of "+strings.Join(view.Statuses, ", "))
	}
	// The URL's names are checked as they are read; a gRPC caller can
	// still send a number no enum value has.
	for i, e := range []protoreflect.Enum{q.Severity, q.Priority, q.Channel} {
		if e.Descriptor().Values().ByNumber(e.Number()) == nil {
			field := [...]string{"severity", "priority", "channel"}[i]
			bad(field, "enum", "unknown "+field+" "+strconv.Itoa(int(e.Number())))
		}
	}
	switch q.Sort {
	case "", view.SortDue, view.SortReceived, view.SortPriority:
	default:
		bad("sort", "enum", "must be due, received or priority")
	}
	if q.Limit < 0 || q.Limit > view.MaxLimit {
		bad("limit", "range", rangeRule["limit"])
	}
	if q.Offset < 0 || q.Offset > maxOffset {
		bad("offset", "range", rangeRule["offset"])
	}
	if len([]rune(q.Text)) > 200 {
		bad("q", "length", "at most 200 characters")
	}
	return errs
}

// apiAuth authenticates a query API call: a bearer token (another tool)
// or a signed-in browser's session. Adapters and technicians are refused.
func (srv *Server) apiAuth(h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var p auth.Principal
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			var err error
			if p, err = srv.opts.Authenticator.Authenticate(r.Context(), tok); err != nil {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "unknown bearer token"})
				return
			}
		} else if c, err := r.Cookie(sessionCookie); err == nil {
			ss, _ := srv.sessions.lookup(c.Value)
			if ss == nil {
				writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "session ended; sign in again"})
				return
			}
			p = ss.principal
		} else {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "a bearer token or a session is required"})
			return
		}
		if !mayUseAPI(p) {
			writeJSON(w, http.StatusForbidden, map[string]any{"error": p.ID + " may not read the queues"})
			return
		}
		h(w, r)
	}
}

// mayUseAPI is who may call the query API (HTTP and gRPC): services, and
// people who may read the queues (not technicians, not adapters).
func mayUseAPI(p auth.Principal) bool {
	return p.Kind == auth.KindService || mayReadQueues(p)
}

// apiComplaint is a row of the query API (what the view keeps, named;
// never its blind-index terms).
type apiComplaint struct {
	ID         string     `json:"id"`
	Version    uint64     `json:"version"`
	Status     string     `json:"status"`
	Channel    string     `json:"channel"`
	ReceivedAt time.Time  `json:"received_at"`
	Category   string     `json:"category,omitempty"`
	Severity   string     `json:"severity,omitempty"`
	Priority   string     `json:"priority,omitempty"`
	Rules      []string   `json:"rules_fired,omitempty"`
	Team       string     `json:"team,omitempty"`
	Owner      string     `json:"owner,omitempty"`
	Escalation string     `json:"escalation,omitempty"`
	Repeat     bool       `json:"repeat,omitempty"`
	NextDue    *time.Time `json:"next_due,omitempty"`
	NextTarget string     `json:"next_due_target,omitempty"`
	Breached   bool       `json:"breached"`
	Clocks     []apiClock `json:"clocks,omitempty"`
}

type apiClock struct {
	Target   string    `json:"target"`
	Deadline time.Time `json:"deadline"`
	Paused   bool      `json:"paused,omitempty"`
	Warned   uint32    `json:"warned_percent,omitempty"`
	Breached bool      `json:"breached,omitempty"`
}

func toAPI(c view.Complaint) apiComplaint {
	a := apiComplaint{ID: c.ID, Version: c.Version, Status: c.Status, Channel: enumName(c.Channel), ReceivedAt: c.ReceivedAt,
		Rules: c.Rules, Team: c.Team, Owner: c.Owner, Repeat: c.Repeat, Breached: c.Breached()}
	if c.Category != 0 {
		a.Category, a.Severity, a.Priority = enumName(c.Category), enumName(c.Severity), enumName(c.Priority)
	}
	if c.Escalation != 0 {
		a.Escalation = enumName(c.Escalation)
	}
	if due, target := c.NextDue(); !due.IsZero() {
		a.NextDue, a.NextTarget = &due, enumName(target)
	}
	for _, k := range c.Clocks {
		a.Clocks = append(a.Clocks, apiClock{Target: enumName(k.Target), Deadline: k.Deadline, Paused: k.Paused, Warned: k.Warned, Breached: k.Breached})
	}
	return a
}

func (srv *Server) apiList(w http.ResponseWriter, r *http.Request) {
	q, errs := parseQuery(r.URL.Query())
	if len(errs) > 0 {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "bad query", "violations": errs})
		return
	}
	p := srv.opts.View.Find(q)
	out := struct {
		Total      int            `json:"total"`
		Position   uint64         `json:"position"`
		Complaints []apiComplaint `json:"complaints"`
	}{Total: p.Total, Position: p.Position, Complaints: make([]apiComplaint, 0, len(p.Complaints))}
	for _, c := range p.Complaints {
		out.Complaints = append(out.Complaints, toAPI(c))
	}
	writeJSON(w, http.StatusOK, out)
}

func (srv *Server) apiGet(w http.ResponseWriter, r *http.Request) {
	c, ok := srv.opts.View.Get(r.PathValue("id"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": "no open complaint " + strconv.Quote(r.PathValue("id"))})
		return
	}
	writeJSON(w, http.StatusOK, toAPI(c))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
