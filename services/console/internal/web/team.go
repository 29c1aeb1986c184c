package web

// The team lead's pages: the team page (/team: the team's queue, its
// unassigned and escalated complaints, the board of running clocks by how
// far they are, the reviews waiting for the signed-in person, and
// reassignment) and the roster (/team/roster: members, shifts, adding and
// updating members). Every action goes to routing with the person's own
// token; routing decides (four eyes included), the pages only hide what
// the person cannot do.

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// addPages parses more pages on the layout (New's own list is shared).
func (srv *Server) addPages(base *template.Template, names ...string) error {
	for _, name := range names {
		t, err := template.Must(base.Clone()).Funcs(teamFuncs).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("web: template %s: %w", name, err)
		}
		srv.pages[name] = t
	}
	return nil
}

// teamFuncs are the team pages' own template functions.
var teamFuncs = template.FuncMap{
	// reviewState says where a complaint's current solution stands.
	"reviewState": func(lang string, c view.Complaint) string {
		if c.Solution == nil {
			return msg(lang, "none")
		}
		next, rejected := c.Solution.Next()
		switch {
		case rejected:
			return msg(lang, "review.rejected")
		case next == 0:
			return msg(lang, "review.approved")
		}
		return msg(lang, "review.waiting") + " " + enumName(next)
	},
	"join": func(ss []string) string { return strings.Join(ss, ", ") },
	// dict passes named values to a sub-template: dict "k1" v1 "k2" v2.
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}

// mayLeadTeams: the roles that see the team pages. Routing decides what
// each may do there (reviews: team leads and managers; rosters: team
// leads and managers).
func mayLeadTeams(p auth.Principal) bool {
	return p.HasRole(auth.RoleTeamLead, auth.RoleManager, auth.RoleAdmin)
}

// teamsFor are the teams a person may open: a team lead those they are on
// the roster of; managers and admins every team with a roster.
func (srv *Server) teamsFor(p auth.Principal) []string {
	if p.HasRole(auth.RoleManager, auth.RoleAdmin) {
		return srv.opts.View.Teams()
	}
	return srv.opts.View.TeamsOf(p.ID, "")
}

// reviewerRoles: the roles that may give each review level (routing's
// rule, mirrored to offer the forms; routing still decides).
var reviewerRoles = map[eventsv1.ReviewLevel][]string{
	eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR:        {auth.RoleTeamLead, auth.RoleManager},
	eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY:           {auth.RoleQualityReviewer},
	eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT: {auth.RoleSeniorManager},
}

// ownerRoles are roster roles that own complaints (routing's rule).
var ownerRoles = []string{"agent", "team_lead", "manager"}

// rosterRoles are the roles a roster may give.
var rosterRoles = []string{"agent", "team_lead", "manager", "quality_reviewer", "senior_manager"}

// Board bands: a clock is in the highest it reached.
var bands = []string{"breached", "90", "75", "50"}

// pendingReview is a solution waiting for a level the person may give.
type pendingReview struct {
	C       view.Complaint
	Level   eventsv1.ReviewLevel
	Summary string
	Own     bool // the person proposed it: four eyes, no form
	Done    bool // the person already reviewed it at another level
}

// boardClock is one running clock on the board.
type boardClock struct {
	C     view.Complaint
	Clock view.Clock
}

type teamData struct {
	Team       string
	Teams      []string
	Queue      view.Page
	Unassigned view.Page
	Escalated  view.Page
	Board      map[string][]boardClock // by band
	BoardTotal int                     // complaints with a clock on the board; the first 500 by deadline are listed
	Bands      []string
	Reviews    []pendingReview
	Members    []*routingv1.TeamMember // those who may own complaints
	// Movable: the complaints the reassignment form offers (the queue's
	// page, then the unassigned ones without a team).
	Movable  []view.Complaint
	Reassign string // the complaint preselected in the form
	Form     map[string]string
	Errors   map[string]string
}

// team renders the team page.
func (srv *Server) team(w http.ResponseWriter, r *http.Request, ss *session) {
	d, code := srv.teamPage(w, r, ss)
	if d == nil {
		return
	}
	p := page{User: &ss.principal, CSRF: ss.csrf, Data: d}
	if done := r.URL.Query().Get("done"); teamDone[done] {
		p.Message = msg(langOf(r), "done.team."+done)
	}
	srv.render(w, r, code, "team", p)
}

var teamDone = map[string]bool{"approved": true, "rejected": true, "reassigned": true, "shift": true, "member": true}

// teamPage gathers the team page, or answers (403, no team) and returns nil.
func (srv *Server) teamPage(w http.ResponseWriter, r *http.Request, ss *session) (*teamData, int) {
	if !mayLeadTeams(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return nil, 0
	}
	team, teams, ok := srv.chooseTeam(r, ss)
	if !ok {
		srv.message(w, r, http.StatusForbidden, ss, "team.notyours")
		return nil, 0
	}
	d := &teamData{Team: team, Teams: teams, Bands: bands, Board: map[string][]boardClock{},
		Form: map[string]string{}, Errors: map[string]string{}, Reassign: r.URL.Query().Get("reassign")}
	if team == "" {
		return d, http.StatusOK
	}
	v := srv.opts.View
	d.Queue = v.Find(view.Query{Team: team})
	d.Unassigned = srv.unassigned(team)
	d.Movable = append(d.Movable, d.Queue.Complaints...)
	for _, c := range d.Unassigned.Complaints {
		if c.Team == "" {
			d.Movable = append(d.Movable, c)
		}
	}
	d.Escalated = v.Find(view.Query{Team: team, Escalated: true})
	board := v.Find(view.Query{Team: team, MinWarned: 50, Limit: view.MaxLimit})
	d.BoardTotal = board.Total
	for _, c := range board.Complaints {
		for _, k := range c.Clocks {
			if band := bandOf(k); band != "" {
				d.Board[band] = append(d.Board[band], boardClock{C: c, Clock: k})
			}
		}
	}
	for _, b := range bands {
		slices.SortStableFunc(d.Board[b], func(x, y boardClock) int { return x.Clock.Deadline.Compare(y.Clock.Deadline) })
	}
	me := ss.principal
	for _, c := range v.Find(view.Query{Team: team, AwaitingReview: true, Limit: view.MaxLimit}).Complaints {
		next, _ := c.Solution.Next()
		if !me.HasRole(reviewerRoles[next]...) {
			continue // waits for someone else's level
		}
		if len(d.Reviews) == 50 {
			break // each one's proposal text is read from the log
		}
		d.Reviews = append(d.Reviews, pendingReview{C: c, Level: next, Summary: srv.solutionSummary(r.Context(), c),
			Own: c.Solution.ProposedBy == me.ID, Done: c.Solution.Reviewed(me.ID)})
	}
	if t, err := srv.opts.Routing.GetTeam(asUser(r.Context(), ss), &routingv1.GetTeamRequest{Team: team}); err == nil {
		for _, m := range t.GetMembers() {
			if slices.Contains(ownerRoles, m.GetRole()) {
				d.Members = append(d.Members, m)
			}
		}
	}
	return d, http.StatusOK
}

// unassigned are the team's complaints without an owner, and those
// classified but waiting for anyone on shift: routing gives those no team
// until it assigns them (by severity), so every team lead sees them and
// may take them into their team (Reassign).
func (srv *Server) unassigned(team string) view.Page {
	own := srv.opts.View.Find(view.Query{Team: team, Unassigned: true})
	waiting := srv.opts.View.Find(view.Query{NoTeam: true, Unassigned: true, Limit: view.MaxLimit})
	for _, c := range waiting.Complaints {
		if c.Severity == 0 {
			continue // not classified yet: routing assigns it first
		}
		own.Total++
		if len(own.Complaints) < 50 {
			own.Complaints = append(own.Complaints, c)
		}
	}
	return own
}

// chooseTeam is the team asked for (?team=, or the form's team), else the
// person's first; ok is false for a team the person may not open.
func (srv *Server) chooseTeam(r *http.Request, ss *session) (team string, teams []string, ok bool) {
	teams = srv.teamsFor(ss.principal)
	team = r.FormValue("team")
	if team == "" {
		if len(teams) > 0 {
			team = teams[0]
		}
		return team, teams, true
	}
	return team, teams, slices.Contains(teams, team)
}

// bandOf is the board band of a clock ("" below 50 %).
func bandOf(k view.Clock) string {
	switch {
	case k.Breached:
		return "breached"
	case k.Warned >= 90:
		return "90"
	case k.Warned >= 75:
		return "75"
	case k.Warned >= 50:
		return "50"
	}
	return ""
}

// solutionSummary reads the proposal's text from the log (the view keeps
// no free text).
func (srv *Server) solutionSummary(ctx context.Context, c view.Complaint) string {
	recs, err := srv.opts.Log.ReadStream(ctx, eventlog.ComplaintStream(c.ID), 1)
	if err != nil {
		srv.opts.Logger.Warn("console: read complaint", "complaint_id", c.ID, "err", err)
		return ""
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if p, ok := recs[i].Event.GetPayload().(*eventsv1.Envelope_SolutionProposed); ok && p.SolutionProposed.GetSolutionId() == c.Solution.ID {
			return p.SolutionProposed.GetSummary()
		}
	}
	return ""
}

// review approves or rejects a solution (ReviewSolution) in the person's
// name.
func (srv *Server) review(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PostFormValue("complaint")
	if !srv.mayActForTeam(w, r, ss) || !srv.inTeam(w, r, ss, id) {
		return
	}
	approved := r.PostFormValue("verdict") == "approve"
	level := eventsv1.ReviewLevel(eventsv1.ReviewLevel_value[r.PostFormValue("level")])
	res, err := srv.opts.Routing.ReviewSolution(asUser(r.Context(), ss), &routingv1.ReviewSolutionRequest{
		ComplaintId: id, SolutionId: r.PostFormValue("solution"), Level: level, Approved: approved,
		Comment: strings.TrimSpace(r.PostFormValue("comment")),
	})
	done := "rejected"
	if approved {
		done = "approved"
	}
	srv.teamActed(w, r, ss, "review."+id, id, res.GetResult().GetVersion(), done, err)
}

// reassign moves a complaint to a member of the team (Reassign).
func (srv *Server) reassign(w http.ResponseWriter, r *http.Request, ss *session) {
	id := r.PostFormValue("complaint")
	if !srv.mayActForTeam(w, r, ss) || !srv.inTeam(w, r, ss, id) {
		return
	}
	res, err := srv.opts.Routing.Reassign(asUser(r.Context(), ss), &routingv1.ReassignRequest{
		ComplaintId: id, Team: r.PostFormValue("team"), Owner: r.PostFormValue("owner"),
		Reason: strings.TrimSpace(r.PostFormValue("reason")),
	})
	srv.teamActed(w, r, ss, "reassign", id, res.GetResult().GetVersion(), "reassigned", err)
}

// teamActed ends a team page action: on success, once the view shows it,
// back to the team page (POST-redirect-GET); on a refusal, the team page
// again with the form as typed and routing's field errors beside the
// fields (prefix names the form).
func (srv *Server) teamActed(w http.ResponseWriter, r *http.Request, ss *session, prefix, id string, version uint64, done string, err error) {
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		_ = srv.opts.View.WaitForComplaint(ctx, id, version) // late: the page shows it on the next load
		http.Redirect(w, r, "/team?"+url.Values{"team": {r.PostFormValue("team")}, "done": {done}}.Encode(), http.StatusSeeOther)
		return
	}
	d, _ := srv.teamPage(w, r, ss)
	if d == nil {
		return
	}
	code, text := srv.refusal(r, prefix, d.Form, d.Errors, err)
	srv.render(w, r, code, "team", page{User: &ss.principal, CSRF: ss.csrf, Data: d, Message: text, IsError: true})
}

type rosterData struct {
	Team    string
	Teams   []string
	Members []*routingv1.TeamMember
	Roles   []string
	Form    map[string]string
	Errors  map[string]string
}

// roster renders the team's roster (GetTeam, fresh from routing).
func (srv *Server) roster(w http.ResponseWriter, r *http.Request, ss *session) {
	d, code, text := srv.rosterPage(w, r, ss)
	if d == nil {
		return
	}
	p := page{User: &ss.principal, CSRF: ss.csrf, Data: d, Message: text, IsError: code >= 400}
	if done := r.URL.Query().Get("done"); teamDone[done] {
		p.Message = msg(langOf(r), "done.team."+done)
	}
	srv.render(w, r, code, "roster", p)
}

func (srv *Server) rosterPage(w http.ResponseWriter, r *http.Request, ss *session) (*rosterData, int, string) {
	if !mayLeadTeams(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return nil, 0, ""
	}
	team, teams, ok := srv.chooseTeam(r, ss)
	if !ok {
		srv.message(w, r, http.StatusForbidden, ss, "team.notyours")
		return nil, 0, ""
	}
	d := &rosterData{Team: team, Teams: teams, Roles: rosterRoles, Form: map[string]string{"member.on_shift": "1"}, Errors: map[string]string{}}
	if team == "" {
		return d, http.StatusOK, ""
	}
	t, err := srv.opts.Routing.GetTeam(asUser(r.Context(), ss), &routingv1.GetTeamRequest{Team: team})
	if err != nil {
		code, text := srv.refusal(r, "roster", d.Form, d.Errors, err)
		return d, code, text
	}
	d.Members = t.GetMembers()
	return d, http.StatusOK, ""
}

// member finds a member of the team's roster (fresh from routing).
func (srv *Server) member(ctx context.Context, ss *session, team, id string) (*routingv1.TeamMember, error) {
	t, err := srv.opts.Routing.GetTeam(asUser(ctx, ss), &routingv1.GetTeamRequest{Team: team})
	if err != nil {
		return nil, err
	}
	for _, m := range t.GetMembers() {
		if m.GetMemberId() == id {
			return m, nil
		}
	}
	return nil, nil
}

// shift puts a member on or off shift (UpdateTeamMember with the member's
// current skills and role, read fresh: the form carries only the shift).
func (srv *Server) shift(w http.ResponseWriter, r *http.Request, ss *session) {
	if !srv.mayActForTeam(w, r, ss) {
		return
	}
	team, id := r.PostFormValue("team"), r.PostFormValue("member_id")
	m, err := srv.member(r.Context(), ss, team, id)
	if err == nil && m == nil {
		err = status.Errorf(codes.NotFound, "member_id %q is not in team %q", id, team)
	}
	if err == nil {
		_, err = srv.opts.Routing.UpdateTeamMember(asUser(r.Context(), ss), &routingv1.UpdateTeamMemberRequest{
			Team: team, MemberId: id, Skills: m.GetSkills(), Role: m.GetRole(), OnShift: r.PostFormValue("on_shift") == "1"})
	}
	srv.rosterActed(w, r, ss, "shift", "shift", err)
}

// saveMember adds a member to the roster, or updates one already on it
// (skills, role, shift; the name is set when the member is added).
func (srv *Server) saveMember(w http.ResponseWriter, r *http.Request, ss *session) {
	if !srv.mayActForTeam(w, r, ss) {
		return
	}
	team, id := r.PostFormValue("team"), strings.TrimSpace(r.PostFormValue("member_id"))
	var skills []string
	for _, s := range strings.Split(r.PostFormValue("skills"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			skills = append(skills, s)
		}
	}
	role, onShift := r.PostFormValue("role"), r.PostFormValue("on_shift") == "1"
	m, err := srv.member(r.Context(), ss, team, id)
	switch {
	case err != nil && status.Code(err) != codes.NotFound:
	case m != nil:
		_, err = srv.opts.Routing.UpdateTeamMember(asUser(r.Context(), ss), &routingv1.UpdateTeamMemberRequest{
			Team: team, MemberId: id, Skills: skills, Role: role, OnShift: onShift})
	default: // not on the roster, or the team has none yet
		_, err = srv.opts.Routing.AddTeamMember(asUser(r.Context(), ss), &routingv1.AddTeamMemberRequest{
			Team: team, MemberId: id, DisplayName: strings.TrimSpace(r.PostFormValue("display_name")), Skills: skills, Role: role, OnShift: onShift})
	}
	srv.rosterActed(w, r, ss, "member", "member", err)
}

// mayActForTeam refuses a form for a team the person may not open,
// changing nothing.
func (srv *Server) mayActForTeam(w http.ResponseWriter, r *http.Request, ss *session) bool {
	if !mayLeadTeams(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return false
	}
	if team := r.PostFormValue("team"); team == "" || !slices.Contains(srv.teamsFor(ss.principal), team) {
		srv.message(w, r, http.StatusForbidden, ss, "team.notyours")
		return false
	}
	return true
}

// inTeam refuses a complaint that is not open in the form's team (or
// waiting without one): a team page acts on its own team's work only.
func (srv *Server) inTeam(w http.ResponseWriter, r *http.Request, ss *session, id string) bool {
	if c, ok := srv.opts.View.Get(id); !ok || (c.Team != r.PostFormValue("team") && c.Team != "") {
		srv.message(w, r, http.StatusNotFound, ss, "notfound")
		return false
	}
	return true
}

func (srv *Server) rosterActed(w http.ResponseWriter, r *http.Request, ss *session, prefix, done string, err error) {
	if err == nil {
		http.Redirect(w, r, "/team/roster?"+url.Values{"team": {r.PostFormValue("team")}, "done": {done}}.Encode(), http.StatusSeeOther)
		return
	}
	d, _, _ := srv.rosterPage(w, r, ss)
	if d == nil {
		return
	}
	if prefix == "member" {
		delete(d.Form, "member.on_shift") // the form as sent: an unticked box is not
	}
	code, text := srv.refusal(r, prefix, d.Form, d.Errors, err)
	srv.render(w, r, code, "roster", page{User: &ss.principal, CSRF: ss.csrf, Data: d, Message: text, IsError: true})
}
