package web

import (
	"cmp"
	"net/http"
	"strings"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

type queueData struct {
	Scope    string // "mine" or "all"
	Filter   map[string]string
	Errors   map[string]string
	Page     view.Page
	Statuses []string
}

// queue is "my queue" (the complaints the person owns, nearest deadline
// first) or all open work, with the filters of the query API.
func (srv *Server) queue(w http.ResponseWriter, r *http.Request, ss *session) {
	if !mayReadQueues(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return
	}
	q, errs := parseQuery(r.URL.Query())
	scope := r.URL.Query().Get("scope")
	if scope != "all" {
		scope, q.Owner = "mine", ss.principal.ID
	}
	d := queueData{Scope: scope, Filter: map[string]string{}, Errors: map[string]string{}, Statuses: view.Statuses}
	for k, v := range r.URL.Query() {
		d.Filter[k] = v[0]
	}
	for _, v := range errs {
		d.Errors[v.Field] = v.Message
	}
	status := http.StatusOK
	if len(errs) > 0 {
		status = http.StatusBadRequest
	} else {
		d.Page = srv.opts.View.Find(q)
	}
	srv.render(w, r, status, "queue", page{User: &ss.principal, CSRF: ss.csrf, Data: d})
}

// entry is one line of a complaint's timeline.
type entry struct {
	At      string
	Type    string
	Actor   string
	Details string
}

type complaintData struct {
	C           view.Complaint
	Description string
	Request     string
	Timeline    []entry
	Owns        bool // the signed-in person owns it
	Supervisor  bool // may act for the owner and reassign (team lead, manager, senior manager)
	Form        map[string]string
	Errors      map[string]string
	Channels    []eventsv1.Channel
	// From the stream (agent.go): earlier complaints of a repeat, linked
	// duplicate reports, work orders, whether a root cause is on record.
	Earlier           []string
	Duplicates        []duplicate
	WorkOrders        []workOrder
	RootCauseRecorded bool
	HoldReason        string // while on hold: the HoldReason's name, and the note
	HoldNote          string
}

// loadComplaint reads a complaint's stream from the log (its timeline and
// current state, fresher than the view right after an action).
func (srv *Server) loadComplaint(r *http.Request, ss *session) (*complaintData, error) {
	id := r.PathValue("id")
	recs, err := srv.opts.Log.ReadStream(r.Context(), eventlog.ComplaintStream(id), 1)
	if err != nil {
		return nil, err
	}
	c, ok := view.Fold(recs)
	if !ok {
		return nil, nil
	}
	d := &complaintData{C: c, Owns: c.Owner == ss.principal.ID, Supervisor: supervises(ss.principal),
		Form: map[string]string{}, Errors: map[string]string{}, Channels: responseChannels}
	for _, rec := range recs {
		e := rec.Event
		d.note(e)
		if p, ok := e.GetPayload().(*eventsv1.Envelope_ComplaintReceived); ok {
			d.Description, d.Request = p.ComplaintReceived.GetDescription(), p.ComplaintReceived.GetCustomerRequest()
		}
		d.Timeline = append(d.Timeline, entry{
			At: e.GetOccurredAt().AsTime().UTC().Format("2006-01-02 15:04:05Z"), Type: eventlog.TypeOf(e),
			Actor: e.GetActor(), Details: cmp.Or(describe(e), describeAgent(e)),
		})
	}
	return d, nil
}

func (srv *Server) complaint(w http.ResponseWriter, r *http.Request, ss *session) {
	if !mayReadQueues(ss.principal) {
		srv.message(w, r, http.StatusForbidden, ss, "forbidden")
		return
	}
	d, err := srv.loadComplaint(r, ss)
	if err != nil {
		srv.opts.Logger.Error("console: read complaint", "err", err)
		srv.message(w, r, http.StatusServiceUnavailable, ss, "err.unavailable")
		return
	}
	if d == nil {
		srv.message(w, r, http.StatusNotFound, ss, "notfound")
		return
	}
	p := page{User: &ss.principal, CSRF: ss.csrf, Data: d}
	if done := r.URL.Query().Get("done"); actions[done] {
		p.Message = msg(langOf(r), "done."+done)
	}
	srv.render(w, r, http.StatusOK, "complaint", p)
}

var actions = map[string]bool{"accept": true, "respond": true, "propose": true,
	"dispatch": true, "rootcause": true, "resolve": true, "reassign": true, "hold": true, "unhold": true}

// responseChannels are offered for recording a response.
var responseChannels = []eventsv1.Channel{eventsv1.Channel_CHANNEL_PHONE, eventsv1.Channel_CHANNEL_EMAIL,
	eventsv1.Channel_CHANNEL_ONLINE_CHAT, eventsv1.Channel_CHANNEL_CORPORATE_IM}

// act sends one action to routing in the person's name. Success goes back
// to the complaint page (POST-redirect-GET); a refusal shows the page
// again with the form as typed and the API's field errors beside the
// fields.
func (srv *Server) act(w http.ResponseWriter, r *http.Request, ss *session) {
	action, id := r.PathValue("action"), r.PathValue("id")
	if !actions[action] {
		http.NotFound(w, r)
		return
	}
	// Actions apply to the latest state (expected version 0): the SLA
	// clock's own events move the version just after most actions, so a
	// page's version would be refused as stale. Routing still refuses
	// what the current state forbids.
	const version = 0
	ctx := asUser(r.Context(), ss)
	var err error
	switch action {
	case "accept":
		_, err = srv.opts.Routing.AcceptAssignment(ctx, &routingv1.AcceptAssignmentRequest{ComplaintId: id, ExpectedVersion: version})
	case "respond":
		ch := eventsv1.Channel(eventsv1.Channel_value[r.PostFormValue("channel")])
		_, err = srv.opts.Routing.RecordResponse(ctx, &routingv1.RecordResponseRequest{ComplaintId: id, ExpectedVersion: version,
			Channel: ch, Summary: strings.TrimSpace(r.PostFormValue("summary"))})
	case "propose":
		_, err = srv.opts.Routing.ProposeSolution(ctx, &routingv1.ProposeSolutionRequest{ComplaintId: id, ExpectedVersion: version,
			Summary: strings.TrimSpace(r.PostFormValue("summary"))})
	default:
		err = srv.agentAction(ctx, r, action, id)
	}
	if err == nil {
		http.Redirect(w, r, "/complaints/"+id+"?done="+action, http.StatusSeeOther)
		return
	}
	d, lerr := srv.loadComplaint(r, ss)
	if lerr != nil || d == nil {
		srv.message(w, r, http.StatusNotFound, ss, "notfound")
		return
	}
	code, text := srv.refusal(r, action, d.Form, d.Errors, err)
	srv.render(w, r, code, "complaint", page{User: &ss.principal, CSRF: ss.csrf, Data: d, Message: text, IsError: true})
}
