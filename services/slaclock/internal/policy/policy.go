// Package policy reads SLA policy documents: per target a limit in business
// or calendar time, overrides by severity, priority, customer tier and
// category, warning thresholds, and the hold reasons that pause the clock.
// A document has a version; clocks record the version they started with.
package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Document is the JSON form of a policy (services/slaclock/policy/sla.v1.json).
type Document struct {
	Version      string                `json:"version"`
	Calendar     string                `json:"calendar"`
	WarnPercents []uint32              `json:"warn_percents"`
	Targets      map[string]TargetSpec `json:"targets"`
}

// TargetSpec is one target's rule.
type TargetSpec struct {
	Limit string `json:"limit"`
	// Time is "business" (working time of the calendar) or "calendar".
	Time string `json:"time"`
	// PauseOn lists the hold reasons (WAITING_FOR_CUSTOMER, WAITING_FOR_PARTS)
	// that pause this target's clock.
	PauseOn      []string   `json:"pause_on"`
	WarnPercents []uint32   `json:"warn_percents,omitempty"`
	Disabled     bool       `json:"disabled,omitempty"`
	Overrides    []Override `json:"overrides,omitempty"`
}

// Override replaces the limit when the complaint matches; the first match wins.
type Override struct {
	When  Match  `json:"when"`
	Limit string `json:"limit"`
	Time  string `json:"time"`
}

// Match selects complaints; an empty list matches anything. Values are the
// enum names without prefix: severity L1..L4, priority GENERAL/IMPORTANT/URGENT,
// tier REGULAR/VIP, category PRODUCT_QUALITY/SERVICE/DELIVERY/PRICE_PROMOTION/OTHER.
type Match struct {
	Severity []string `json:"severity,omitempty"`
	Priority []string `json:"priority,omitempty"`
	Tier     []string `json:"tier,omitempty"`
	Category []string `json:"category,omitempty"`
}

// Facts are what a target's terms depend on.
type Facts struct {
	Severity eventsv1.Severity
	Priority eventsv1.Priority
	Tier     eventsv1.CustomerTier
	Category eventsv1.Category
}

// Terms are the resolved rule for one clock.
type Terms struct {
	Budget       time.Duration
	Business     bool
	CalendarID   string
	WarnPercents []uint32
	PauseOn      []eventsv1.HoldReason
}

// Pauses reports whether a hold for reason pauses the clock.
func (t Terms) Pauses(reason eventsv1.HoldReason) bool { return slices.Contains(t.PauseOn, reason) }

// Policy is a parsed, validated document.
type Policy struct {
	Version  string
	Document []byte
	targets  map[eventsv1.SlaTarget]compiled
}

type compiled struct {
	base      Terms
	disabled  bool
	overrides []compiledOverride
}

type compiledOverride struct {
	sev  []eventsv1.Severity
	pri  []eventsv1.Priority
	tier []eventsv1.CustomerTier
	cat  []eventsv1.Category
	b    time.Duration
	bus  bool
}

// TargetName is the document's key of a target ("first_response").
func TargetName(t eventsv1.SlaTarget) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "SLA_TARGET_"))
}

// Parse reads and validates a document; errors name the field and the rule.
func Parse(raw []byte) (*Policy, error) {
	var doc Document
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("policy: not a policy document: %w", err)
	}
	if doc.Version == "" {
		return nil, fmt.Errorf("policy: version: required")
	}
	warn, err := checkPercents("warn_percents", doc.WarnPercents)
	if err != nil {
		return nil, err
	}
	p := &Policy{Version: doc.Version, Document: raw, targets: map[eventsv1.SlaTarget]compiled{}}
	for name := range doc.Targets {
		v, ok := eventsv1.SlaTarget_value["SLA_TARGET_"+strings.ToUpper(name)]
		if !ok || v == 0 {
			return nil, fmt.Errorf("policy: targets.%s: not a target", name)
		}
	}
	for v := range eventsv1.SlaTarget_name {
		t := eventsv1.SlaTarget(v)
		if t == eventsv1.SlaTarget_SLA_TARGET_UNSPECIFIED {
			continue
		}
		name := TargetName(t)
		spec, ok := doc.Targets[name]
		if !ok {
			return nil, fmt.Errorf("policy: targets.%s: required", name)
		}
		c, err := compile("targets."+name, spec, doc.Calendar, warn)
		if err != nil {
			return nil, err
		}
		p.targets[t] = c
	}
	return p, nil
}

func compile(field string, spec TargetSpec, cal string, warn []uint32) (compiled, error) {
	b, bus, err := limit(field, spec.Limit, spec.Time)
	if err != nil {
		return compiled{}, err
	}
	if bus && cal == "" {
		return compiled{}, fmt.Errorf("policy: calendar: required when %s uses business time", field)
	}
	if len(spec.WarnPercents) > 0 {
		if warn, err = checkPercents(field+".warn_percents", spec.WarnPercents); err != nil {
			return compiled{}, err
		}
	}
	c := compiled{base: Terms{Budget: b, Business: bus, CalendarID: cal, WarnPercents: warn}, disabled: spec.Disabled}
	for i, r := range spec.PauseOn {
		v, ok := eventsv1.HoldReason_value["HOLD_REASON_"+r]
		if !ok || v == 0 {
			return compiled{}, fmt.Errorf("policy: %s.pause_on[%d]: %q is not a hold reason", field, i, r)
		}
		c.base.PauseOn = append(c.base.PauseOn, eventsv1.HoldReason(v))
	}
	for i, o := range spec.Overrides {
		f := fmt.Sprintf("%s.overrides[%d]", field, i)
		var co compiledOverride
		if co.b, co.bus, err = limit(f, o.Limit, o.Time); err != nil {
			return compiled{}, err
		}
		if co.bus && cal == "" {
			return compiled{}, fmt.Errorf("policy: calendar: required when %s uses business time", f)
		}
		if co.sev, err = enums[eventsv1.Severity](f+".when.severity", "SEVERITY_", o.When.Severity, eventsv1.Severity_value); err != nil {
			return compiled{}, err
		}
		if co.pri, err = enums[eventsv1.Priority](f+".when.priority", "PRIORITY_", o.When.Priority, eventsv1.Priority_value); err != nil {
			return compiled{}, err
		}
		if co.tier, err = enums[eventsv1.CustomerTier](f+".when.tier", "CUSTOMER_TIER_", o.When.Tier, eventsv1.CustomerTier_value); err != nil {
			return compiled{}, err
		}
		if co.cat, err = enums[eventsv1.Category](f+".when.category", "CATEGORY_", o.When.Category, eventsv1.Category_value); err != nil {
			return compiled{}, err
		}
		c.overrides = append(c.overrides, co)
	}
	return c, nil
}

func limit(field, s, kind string) (time.Duration, bool, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false, fmt.Errorf("policy: %s.limit: %q must be a positive duration like 24h or 15m", field, s)
	}
	switch kind {
	case "business":
		return d, true, nil
	case "calendar":
		return d, false, nil
	}
	return 0, false, fmt.Errorf("policy: %s.time: %q must be business or calendar", field, kind)
}

func checkPercents(field string, ps []uint32) ([]uint32, error) {
	if len(ps) > 8 {
		return nil, fmt.Errorf("policy: %s: at most 8 thresholds", field)
	}
	for i, p := range ps {
		if p == 0 || p >= 100 || (i > 0 && p <= ps[i-1]) {
			return nil, fmt.Errorf("policy: %s[%d]: %d must be between 1 and 99 and increasing", field, i, p)
		}
	}
	return ps, nil
}

func enums[E ~int32](field, prefix string, names []string, values map[string]int32) ([]E, error) {
	var out []E
	for i, n := range names {
		v, ok := values[prefix+strings.ToUpper(n)]
		if !ok || v == 0 {
			return nil, fmt.Errorf("policy: %s[%d]: %q is not a value", field, i, n)
		}
		out = append(out, E(v))
	}
	return out, nil
}

func matches[E comparable](set []E, v E) bool { return len(set) == 0 || slices.Contains(set, v) }

// Terms resolves a target for a complaint; ok is false when the target is disabled.
func (p *Policy) Terms(t eventsv1.SlaTarget, f Facts) (Terms, bool) {
	c, ok := p.targets[t]
	if !ok || c.disabled {
		return Terms{}, false
	}
	terms := c.base
	for _, o := range c.overrides {
		if matches(o.sev, f.Severity) && matches(o.pri, f.Priority) && matches(o.tier, f.Tier) && matches(o.cat, f.Category) {
			terms.Budget, terms.Business = o.b, o.bus
			break
		}
	}
	return terms, true
}

// Book holds every policy version seen, and which one is current. Clocks
// resolve their pause rules under the version they started with.
type Book struct {
	mu       sync.RWMutex
	versions map[string]*Policy
	current  *Policy
}

// NewBook starts a book with its current policy.
func NewBook(current *Policy) *Book {
	return &Book{versions: map[string]*Policy{current.Version: current}, current: current}
}

// Publish adds a version and makes it current.
func (b *Book) Publish(p *Policy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.versions[p.Version] = p
	b.current = p
}

// Current is the policy new clocks start under.
func (b *Book) Current() *Policy {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.current
}

// Version returns a known version, or the current one when it is unknown.
func (b *Book) Version(v string) *Policy {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if p, ok := b.versions[v]; ok {
		return p
	}
	return b.current
}

// Reset forgets every published version: the book holds current alone, as
// NewBook made it (a view restored from a snapshot publishes again what it
// had learned).
func (b *Book) Reset(current *Policy) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.versions = map[string]*Policy{current.Version: current}
	b.current = current
}
