package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// The services' HTTP/JSON faces (libs/api: POST /v1/<service>/<Method>) on
// the ports of the standalone runner; --api names the host.
var servicePorts = map[string]string{
	"intake":   "8001",
	"routing":  "8002",
	"slaclock": "8003",
	"dispatch": "8004",
	"followup": "8005",
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
	url := fmt.Sprintf("%s:%s/v1/%s/%s", strings.TrimRight(o.api, "/"), servicePorts[service], serviceNames[service], method)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
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
func submit(ctx context.Context, o options, args []string, out io.Writer) error {
	fs := newFlagSet("submit")
	channel := fs.String("channel", "web_form", "channel: phone, email, web_form, online_chat, ecommerce, social_media…")
	ref := fs.String("ref", "", "the channel's own reference (default: a new one); the same reference again returns the same complaint")
	desc := fs.String("description", "The air conditioner makes a loud rattling noise and stops cooling.", "what the customer says")
	model := fs.String("model", "AC-3000", "product model")
	serial := fs.String("serial", "SN-DEMO-0001", "product serial number")
	if err := fs.Parse(args); err != nil {
		return usageErr("submit: %v", err)
	}
	if *ref == "" {
		*ref = fmt.Sprintf("TEST-%d", time.Now().UnixNano())
	}
	req := map[string]any{
		"channel":       "CHANNEL_" + strings.ToUpper(*channel),
		"channelRef":    *ref,
		"receivedAt":    time.Now().UTC().Add(-time.Minute).Format(time.RFC3339),
		"customer":      map[string]any{"name": "Test Customer", "phone": "+8613800000000", "tier": "CUSTOMER_TIER_REGULAR"},
		"product":       map[string]any{"model": *model, "serialNumber": *serial},
		"place":         map[string]any{"region": "east", "city": "Shanghai"},
		"description":   *desc,
		"emotion":       "EMOTION_DISSATISFIED",
		"firstReceiver": "agent-dev",
	}
	res, err := call(ctx, o, "intake", "SubmitComplaint", req)
	if err != nil {
		return err
	}
	return printJSONOrLine(o, out, res, fmt.Sprintf("complaint %v (created=%v accepted=%v linked=%v)", res["complaintId"], res["created"] == true, res["accepted"] == true, res["linked"] == true))
}

// show asks every service for its own view of a complaint: each keeps a
// projection of its own, rebuilt from the log. Dispatch keeps work orders,
// found through the complaint's WorkOrderOpened events.
func show(ctx context.Context, c *conn, o options, id string, out io.Writer) error {
	views := map[string]any{}
	queries := []struct{ service, method string }{
		{"intake", "GetComplaint"},
		{"routing", "GetComplaint"},
		{"slaclock", "GetClocks"},
		{"followup", "GetFollowUp"},
	}
	found := false
	for _, q := range queries {
		res, err := call(ctx, o, q.service, q.method, map[string]any{"complaintId": id})
		if err != nil {
			views[q.service] = map[string]any{"error": err.Error()}
			continue
		}
		found = true
		views[q.service] = res
	}
	if !found {
		return &exitError{exitNotFound, fmt.Errorf("complaint %s: no service knows it (%v)", id, views["intake"])}
	}
	recs, err := c.store.ReadStream(ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		return err
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
