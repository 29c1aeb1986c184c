package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The services' HTTP/JSON faces (libs/api: POST /v1/<service>/<Method>),
// in the order of their ports in the standalone runner (8001–8005).
var serviceOrder = []string{"intake", "routing", "slaclock", "dispatch", "followup"}

// firstPort is intake's port in the standalone runner; the others follow.
const firstPort = 8001

// apiBase is where the services' HTTP faces listen: a scheme and host, and
// the port of intake, the others following it.
type apiBase struct {
	scheme, host string
	intakePort   int
}

// parseAPI reads -api: "http://127.0.0.1", "127.0.0.1", "localhost:8001",
// "https://closeloop.example". No scheme means http. A port of the
// standalone layout (8001–8005) names that layout; any other port is
// intake's, the other services following it in order.
func parseAPI(s string) (apiBase, error) {
	bad := func(why string) (apiBase, error) {
		return apiBase{}, usageErr("-api %q: %s; give a host, host:port or http(s)://host[:port], e.g. 127.0.0.1 or http://localhost:8001", s, why)
	}
	raw := strings.TrimSpace(s)
	if raw == "" {
		return bad("empty")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return bad("not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return bad("scheme must be http or https")
	case u.Hostname() == "":
		return bad("no host")
	case u.User != nil, u.RawQuery != "", u.Fragment != "", strings.Trim(u.Path, "/") != "":
		return bad("only a scheme, host and port are allowed")
	}
	b := apiBase{scheme: u.Scheme, host: u.Hostname(), intakePort: firstPort}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535-len(serviceOrder)+1 {
			return bad("port out of range")
		}
		if n < firstPort || n >= firstPort+len(serviceOrder) {
			b.intakePort = n
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("empty port")
	}
	return b, nil
}

// url is the address of service's method.
func (b apiBase) url(service, method string) string {
	port := b.intakePort + slices.Index(serviceOrder, service)
	return fmt.Sprintf("%s://%s/v1/%s/%s", b.scheme, net.JoinHostPort(b.host, strconv.Itoa(port)), serviceNames[service], method)
}

var serviceNames = map[string]string{
	"intake":   "closeloop.intake.v1.IntakeService",
	"routing":  "closeloop.routing.v1.RoutingService",
	"slaclock": "closeloop.slaclock.v1.SlaClockService",
	"dispatch": "closeloop.dispatch.v1.DispatchService",
	"followup": "closeloop.followup.v1.FollowupService",
}

// apiError is a service's refusal, as libs/api writes it.
type apiError struct {
	Status     int    `json:"-"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	Violations []struct {
		Field, Rule, Message string
	} `json:"violations"`
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d): %s", e.Code, e.Status, e.Message)
	for _, v := range e.Violations {
		fmt.Fprintf(&b, "\n  %s: %s: %s", v.Field, v.Rule, v.Message)
	}
	return b.String()
}

// call posts req as JSON to service's method and decodes the answer.
func call(ctx context.Context, o options, service, method string, req any) (map[string]any, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	base, err := parseAPI(o.api)
	if err != nil {
		return nil, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, base.url(service, method), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if o.token != "" {
		hr.Header.Set("Authorization", "Bearer "+o.token)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", service, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			e.Code, e.Message = http.StatusText(resp.StatusCode), strings.TrimSpace(string(raw))
		}
		if resp.StatusCode == http.StatusNotFound {
			return nil, &exitError{exitNotFound, fmt.Errorf("%s.%s: %w", service, method, e)}
		}
		return nil, fmt.Errorf("%s.%s: %w", service, method, e)
	}
	out := map[string]any{}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("%s.%s: answer is not JSON: %w", service, method, err)
	}
	return out, nil
}

// submit sends a test complaint through intake, as a channel adapter would.
// Each call is a new complaint: a new channel reference, and a serial
// number of its own so that it is no duplicate of the last one. Given an
// earlier reference (--channel-ref) and the same flags, it resends that
// report: the same complaint, created=false.
func submit(ctx context.Context, o options, args []string, out io.Writer) error {
	req, err := submission(args, time.Now())
	if err != nil {
		return err
	}
	res, err := call(ctx, o, "intake", "SubmitComplaint", req)
	if err != nil {
		return err
	}
	return printJSONOrLine(o, out, res, fmt.Sprintf("complaint %v (created=%v accepted=%v linked=%v; channel-ref %v)", res["complaintId"], res["created"] == true, res["accepted"] == true, res["linked"] == true, req["channelRef"]))
}

// refPrefix starts the channel references submit makes; the rest is the
// instant of the report, so that resending the reference resends the report.
const refPrefix = "CTL-"

// submission builds submit's request from its arguments at now.
func submission(args []string, now time.Time) (map[string]any, error) {
	fs := newFlagSet("submit")
	channel := fs.String("channel", "web_form", "channel: phone, email, web_form, online_chat, ecommerce, social_media…")
	var ref, model string
	fs.StringVar(&ref, "channel-ref", "", "the channel's own reference (default: a new one); an earlier one with the same flags resends that report")
	fs.StringVar(&ref, "ref", "", "same as --channel-ref")
	name := fs.String("customer-name", "Test Customer", "customer's name")
	phone := fs.String("phone", "+8613800000000", "customer's phone")
	email := fs.String("email", "", "customer's email")
	fs.StringVar(&model, "product-model", "AC-3000", "product model")
	fs.StringVar(&model, "model", "AC-3000", "same as --product-model")
	serial := fs.String("serial", "", "product serial number (default: one of the reference's own, so no duplicate of another submission)")
	desc := fs.String("description", "The air conditioner makes a loud rattling noise and stops cooling.", "what the customer says")
	receivedAt := fs.String("received-at", "", "when the report came in, RFC 3339 (default: the instant in the reference, else now)")
	if err := fs.Parse(args); err != nil {
		return nil, usageErr("submit: %v", err)
	}
	if fs.NArg() != 0 {
		return nil, usageErr("submit: unexpected argument %q (flags only)", fs.Arg(0))
	}
	if ref == "" {
		ref = refPrefix + strconv.FormatInt(now.UnixNano(), 10)
	}
	at := now.UTC().Truncate(time.Second)
	if n, err := strconv.ParseInt(strings.TrimPrefix(ref, refPrefix), 10, 64); err == nil && strings.HasPrefix(ref, refPrefix) {
		at = time.Unix(0, n).UTC().Truncate(time.Second)
	}
	if *receivedAt != "" {
		t, err := time.Parse(time.RFC3339, *receivedAt)
		if err != nil {
			return nil, usageErr("submit: --received-at %q: must be RFC 3339, e.g. 2026-03-01T09:30:00+08:00", *receivedAt)
		}
		at = t
	}
	if *serial == "" {
		*serial = "SN-" + strings.TrimPrefix(ref, refPrefix)
	}
	customer := map[string]any{"name": *name, "tier": "CUSTOMER_TIER_REGULAR"}
	if *phone != "" {
		customer["phone"] = *phone
	}
	if *email != "" {
		customer["email"] = *email
	}
	return map[string]any{
		"channel":       "CHANNEL_" + strings.ToUpper(*channel),
		"channelRef":    ref,
		"receivedAt":    at.Format(time.RFC3339),
		"customer":      customer,
		"product":       map[string]any{"model": model, "serialNumber": *serial},
		"place":         map[string]any{"region": "east", "city": "Shanghai"},
		"description":   *desc,
		"emotion":       "EMOTION_DISSATISFIED",
		"firstReceiver": "agent-dev",
	}, nil
}

// show asks every service for its own view of a complaint: each keeps a
// projection of its own, rebuilt from the log. Dispatch keeps work orders,
// found through the complaint's WorkOrderOpened events. The log decides
// whether the complaint exists: a service may answer an empty view (no
// clocks) for one it never heard of.
func show(ctx context.Context, c *conn, o options, id string, out io.Writer) error {
	recs, broken, err := readComplaint(ctx, c, id)
	if err != nil {
		return err
	}
	if broken != nil {
		return damaged("show", broken)
	}
	views := map[string]any{}
	queries := []struct{ service, method string }{
		{"intake", "GetComplaint"},
		{"routing", "GetComplaint"},
		{"slaclock", "GetClocks"},
		{"followup", "GetFollowUp"},
	}
	var firstErr error
	found := false
	for _, q := range queries {
		res, err := call(ctx, o, q.service, q.method, map[string]any{"complaintId": id})
		if err != nil {
			views[q.service] = map[string]any{"error": err.Error()}
			firstErr = cmp.Or(firstErr, err)
			continue
		}
		found = true
		views[q.service] = res
	}
	if !found {
		return fmt.Errorf("complaint %s: no service answered: %w", id, firstErr)
	}
	var orders []any
	for _, r := range recs {
		if wo, ok := eventlog.Payload(r.Event).(*eventsv1.WorkOrderOpened); ok {
			res, err := call(ctx, o, "dispatch", "GetWorkOrder", map[string]any{"workOrderId": wo.GetWorkOrderId()})
			if err != nil {
				orders = append(orders, map[string]any{"workOrderId": wo.GetWorkOrderId(), "error": err.Error()})
				continue
			}
			orders = append(orders, res)
		}
	}
	views["dispatch"] = map[string]any{"workOrders": orders}
	if o.output == "json" {
		return json.NewEncoder(out).Encode(views)
	}
	for _, name := range []string{"intake", "routing", "slaclock", "dispatch", "followup"} {
		b, _ := json.MarshalIndent(views[name], "  ", "  ")
		fmt.Fprintf(out, "== %s ==\n  %s\n", name, b)
	}
	return nil
}

// seedDemo gives a fresh `make run` somebody to route to: one on-shift member
// per team (as the policy's four teams name them) and one technician.
// Repeating it changes nothing that exists.
func seedDemo(ctx context.Context, o options, out io.Writer) error {
	teams := []struct{ team, member, name string }{
		{"customer-service", "agent-dev", "Agent Dev"},
		{"technical-support", "tech-support-dev", "Support Dev"},
		{"management-coordination", "coordinator-dev", "Coordinator Dev"},
		{"emergency-response", "emergency-dev", "Emergency Dev"},
	}
	skills := []string{"product", "service", "logistics", "billing", "general"}
	for _, t := range teams {
		_, err := call(ctx, o, "routing", "AddTeamMember", map[string]any{"team": t.team, "memberId": t.member, "displayName": t.name, "skills": skills, "role": "agent", "onShift": true})
		if err != nil && !strings.Contains(err.Error(), "already") {
			return err
		}
		fmt.Fprintf(out, "team %s: member %s on shift\n", t.team, t.member)
	}
	_, err := call(ctx, o, "dispatch", "RegisterTechnician", map[string]any{
		"technicianId": "tech-dev-1",
		"profile": map[string]any{
			"displayName": "Technician Dev", "productLines": []string{"AC-3000"}, "region": "east", "serviceCentre": "shanghai-1",
			"services":          []string{"SERVICE_TYPE_REPAIR", "SERVICE_TYPE_INSTALLATION", "SERVICE_TYPE_MAINTENANCE", "SERVICE_TYPE_COMMISSIONING", "SERVICE_TYPE_REMOTE_SUPPORT"},
			"maxConcurrentJobs": 3, "maxDailyJobs": 6,
		},
	})
	if err != nil && !strings.Contains(err.Error(), "already") {
		return err
	}
	fmt.Fprintln(out, "technician tech-dev-1: registered (region east, product line AC-3000)")
	return nil
}

func printJSONOrLine(o options, out io.Writer, v any, line string) error {
	if o.output == "json" {
		return json.NewEncoder(out).Encode(v)
	}
	_, err := fmt.Fprintln(out, line)
	return err
}
