package policy

import (
	"strings"
	"testing"
	"time"

	policydata "github.com/closeloop/closeloop/services/slaclock/policy"

	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func TestShippedDefaults(t *testing.T) {
	p, err := Parse(policydata.Default)
	if err != nil {
		t.Fatal(err)
	}
	regular := Facts{Severity: ev.Severity_SEVERITY_L2}
	major := Facts{Severity: ev.Severity_SEVERITY_L3}
	cases := []struct {
		target   ev.SlaTarget
		facts    Facts
		budget   time.Duration
		business bool
	}{
		{ev.SlaTarget_SLA_TARGET_ACCEPTANCE, regular, 24 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_FIRST_RESPONSE, regular, 24 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_FIRST_RESPONSE, major, 48 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_TECHNICIAN_CONTACT, regular, 15 * time.Minute, false},
		{ev.SlaTarget_SLA_TARGET_ONSITE_ARRIVAL, regular, 24 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_REMOTE_SUPPORT, regular, 48 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_RESOLUTION, regular, 48 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_RESOLUTION, major, 16 * time.Hour, true},
		{ev.SlaTarget_SLA_TARGET_FIRST_FEEDBACK, regular, 24 * time.Hour, false},
		{ev.SlaTarget_SLA_TARGET_SECOND_FEEDBACK, regular, 72 * time.Hour, false},
	}
	for _, tc := range cases {
		terms, ok := p.Terms(tc.target, tc.facts)
		if !ok || terms.Budget != tc.budget || terms.Business != tc.business {
			t.Errorf("%s %v: got %+v ok=%v, want %v business=%v", tc.target, tc.facts.Severity, terms, ok, tc.budget, tc.business)
		}
		if len(terms.WarnPercents) != 3 || terms.CalendarID != "cn-standard" {
			t.Errorf("%s: warn %v calendar %q", tc.target, terms.WarnPercents, terms.CalendarID)
		}
	}
	r, _ := p.Terms(ev.SlaTarget_SLA_TARGET_RESOLUTION, regular)
	if !r.Pauses(ev.HoldReason_HOLD_REASON_WAITING_FOR_PARTS) {
		t.Error("resolution does not pause while waiting for parts")
	}
	a, _ := p.Terms(ev.SlaTarget_SLA_TARGET_ACCEPTANCE, regular)
	if a.Pauses(ev.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER) {
		t.Error("acceptance pauses on hold")
	}
}

func TestParseRejects(t *testing.T) {
	good := string(policydata.Default)
	cases := []struct{ name, doc, wantField string }{
		{"no version", strings.Replace(good, `"version": "sla.v1"`, `"version": ""`, 1), "version"},
		{"bad limit", strings.Replace(good, `"limit": "15m"`, `"limit": "soon"`, 1), "targets.technician_contact.limit"},
		{"bad time", strings.Replace(good, `"limit": "15m",   "time": "calendar"`, `"limit": "15m", "time": "lunar"`, 1), "targets.technician_contact.time"},
		{"bad warn", strings.Replace(good, `[50, 75, 90]`, `[75, 50]`, 1), "warn_percents[1]"},
		{"bad severity", strings.Replace(good, `"severity": ["L3"]`, `"severity": ["L9"]`, 1), "when.severity[0]"},
		{"bad hold reason", strings.Replace(good, `["WAITING_FOR_CUSTOMER"]`, `["NAP"]`, 1), "pause_on[0]"},
		{"unknown field", strings.Replace(good, `"calendar": "cn-standard"`, `"calendar": "cn-standard", "x": 1`, 1), "unknown field"},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.doc))
		if err == nil || !strings.Contains(err.Error(), tc.wantField) {
			t.Errorf("%s: err = %v, want mention of %q", tc.name, err, tc.wantField)
		}
	}
}

func TestBookKeepsVersions(t *testing.T) {
	v1, _ := Parse(policydata.Default)
	v2, err := Parse([]byte(strings.Replace(string(policydata.Default), `"version": "sla.v1"`, `"version": "sla.v2"`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	b := NewBook(v1)
	b.Publish(v2)
	if b.Current().Version != "sla.v2" || b.Version("sla.v1") != v1 {
		t.Fatal("book lost a version")
	}
}
