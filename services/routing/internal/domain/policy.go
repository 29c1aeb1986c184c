package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Policy is the classification policy: data, not code. It is versioned, and
// every ComplaintClassified names the version it was decided with.
type Policy struct {
	Version          string `json:"version"`
	RepeatWindowDays int    `json:"repeat_window_days"`
	Default          struct {
		Category string `json:"category"`
		Severity string `json:"severity"`
		Priority string `json:"priority"`
	} `json:"default"`
	Rules []Rule `json:"rules"`
	// Handling says, per severity, what a resolution needs (see Handling).
	Handling Handling `json:"handling"`
	// Reviews is the place the review levels had before the handling
	// section: a file that still has it is refused, naming where they went.
	Reviews json.RawMessage `json:"reviews,omitempty"`
	// Teams maps a severity to the team that handles it.
	Teams map[string]string `json:"teams"`
	// Skills maps a category to the skill an owner should have.
	Skills map[string]string `json:"skills"`

	defaults   Classification
	rules      []compiledRule
	classifier Classifier
	handling   map[eventsv1.Severity]handlingRule
}

// Handling is the policy's handling rules, versioned on their own: what a
// complaint needs before it may be resolved, per severity ("L1".."L4").
type Handling struct {
	Version    string                  `json:"version"`
	BySeverity map[string]HandlingRule `json:"by_severity"`
}

// HandlingRule is one severity's rules. Response must be true: every
// complaint is answered before it is resolved. Solution is "always" or
// "after_reopen" (once the customer was dissatisfied, a new solution is
// needed: domain.md §6, re-evaluation). Reviews are the levels that must
// approve the solution, each by a different person, none by its proposer.
type HandlingRule struct {
	Response bool     `json:"response"`
	Solution string   `json:"solution"`
	Reviews  []string `json:"reviews"`
}

// When a solution is required.
const (
	SolutionAlways      = "always"
	SolutionAfterReopen = "after_reopen"
)

type handlingRule struct {
	response bool
	solution string
	reviews  []eventsv1.ReviewLevel
}

// Rule matches when all of its conditions hold (keywords: any one of them
// in the description or the request, after the except terms are blanked
// out; with: and also any one of these; channels, tiers: any one; repeat:
// the complaint is a repeat). Its effects: category (the first matching
// rule that sets one wins, over the model's too), severity and priority as
// floors (the highest wins: rules only ever raise the model's verdict),
// dispatch (the first that sets one wins over the model's), and
// raise_priority steps added after the floors (capped at urgent).
type Rule struct {
	ID            string   `json:"id"`
	Why           string   `json:"why,omitempty"`
	Keywords      []string `json:"keywords,omitempty"`
	With          []string `json:"with,omitempty"`
	Except        []string `json:"except,omitempty"`
	Dispatch      string   `json:"dispatch,omitempty"`
	Channels      []string `json:"channels,omitempty"`
	Tiers         []string `json:"tiers,omitempty"`
	Repeat        bool     `json:"repeat,omitempty"`
	Category      string   `json:"category,omitempty"`
	Severity      string   `json:"severity,omitempty"`
	Priority      string   `json:"priority,omitempty"`
	RaisePriority int      `json:"raise_priority,omitempty"`
}

type compiledRule struct {
	Rule
	keywords []keyword
	with     []keyword
	except   []string
	dispatch eventsv1.ServiceMode
	channels []eventsv1.Channel
	tiers    []eventsv1.CustomerTier
	category eventsv1.Category
	severity eventsv1.Severity
	priority eventsv1.Priority
}

// keyword is a lower-cased term. Terms in a script without spaces (Chinese)
// match anywhere; other terms match whole words, or word prefixes when
// written with a trailing '*' ("explod*" matches "exploded").
type keyword struct {
	term   string
	prefix bool
	words  bool
}

// ClassifyInput is what the policy looks at.
type ClassifyInput struct {
	Text string // description and customer request: what the rules read
	// Description is what the text model reads: it was trained on
	// descriptions, and a request ("上门维修", come and repair it) would
	// pull a product fault towards a service complaint.
	Description string
	Channel     eventsv1.Channel
	Tier        eventsv1.CustomerTier
	Repeat      bool
}

// Classification is the policy's verdict.
type Classification struct {
	Category   eventsv1.Category
	Severity   eventsv1.Severity
	Priority   eventsv1.Priority
	RulesFired []string
	// The text model's part (Decide): its version, its confidence, the
	// features that weighed most, whether a person should triage, and the
	// dispatch suggested (UNSPECIFIED: none).
	ModelVersion string
	Confidence   float64
	Deciding     []string
	NeedsTriage  bool
	Dispatch     eventsv1.ServiceMode
}

// ParsePolicy reads and validates a policy document.
func ParsePolicy(doc []byte) (*Policy, error) {
	var p Policy
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if err := p.compile(); err != nil {
		return nil, err
	}
	return &p, nil
}

func (p *Policy) compile() error {
	if p.Version == "" {
		return fmt.Errorf("policy: version: required")
	}
	if p.RepeatWindowDays <= 0 {
		return fmt.Errorf("policy: repeat_window_days: must be positive, got %d", p.RepeatWindowDays)
	}
	var err error
	if p.defaults.Category, err = ParseCategory(p.Default.Category); err != nil {
		return fmt.Errorf("policy: default.category: %w", err)
	}
	if p.defaults.Severity, err = ParseSeverity(p.Default.Severity); err != nil {
		return fmt.Errorf("policy: default.severity: %w", err)
	}
	if p.defaults.Priority, err = ParsePriority(p.Default.Priority); err != nil {
		return fmt.Errorf("policy: default.priority: %w", err)
	}
	seen := map[string]bool{}
	for i, r := range p.Rules {
		where := fmt.Sprintf("policy: rules[%d] (%s)", i, r.ID)
		if r.ID == "" || seen[r.ID] {
			return fmt.Errorf("%s: id: required and unique", where)
		}
		seen[r.ID] = true
		c := compiledRule{Rule: r}
		for _, k := range r.Keywords {
			kw, err := compileKeyword(k)
			if err != nil {
				return fmt.Errorf("%s: keywords: %w", where, err)
			}
			c.keywords = append(c.keywords, kw)
		}
		for _, k := range r.With {
			kw, err := compileKeyword(k)
			if err != nil {
				return fmt.Errorf("%s: with: %w", where, err)
			}
			c.with = append(c.with, kw)
		}
		if len(c.with) > 0 && len(c.keywords) == 0 {
			return fmt.Errorf("%s: with: needs keywords too", where)
		}
		for _, k := range r.Except {
			k = strings.ToLower(strings.TrimSpace(k))
			if k == "" {
				return fmt.Errorf("%s: except: empty term", where)
			}
			c.except = append(c.except, k)
		}
		if r.Dispatch != "" {
			if c.dispatch, err = ParseDispatch(r.Dispatch); err != nil || c.dispatch == eventsv1.ServiceMode_SERVICE_MODE_UNSPECIFIED {
				return fmt.Errorf("%s: dispatch: unknown value %q (one of on_site, remote)", where, r.Dispatch)
			}
		}
		for _, ch := range r.Channels {
			v, err := ParseChannel(ch)
			if err != nil {
				return fmt.Errorf("%s: channels: %w", where, err)
			}
			c.channels = append(c.channels, v)
		}
		for _, t := range r.Tiers {
			v, err := ParseTier(t)
			if err != nil {
				return fmt.Errorf("%s: tiers: %w", where, err)
			}
			c.tiers = append(c.tiers, v)
		}
		if len(c.keywords) == 0 && len(c.channels) == 0 && len(c.tiers) == 0 && !r.Repeat {
			return fmt.Errorf("%s: needs at least one condition (keywords, channels, tiers, repeat)", where)
		}
		if r.Category != "" {
			if c.category, err = ParseCategory(r.Category); err != nil {
				return fmt.Errorf("%s: category: %w", where, err)
			}
		}
		if r.Severity != "" {
			if c.severity, err = ParseSeverity(r.Severity); err != nil {
				return fmt.Errorf("%s: severity: %w", where, err)
			}
		}
		if r.Priority != "" {
			if c.priority, err = ParsePriority(r.Priority); err != nil {
				return fmt.Errorf("%s: priority: %w", where, err)
			}
		}
		if r.RaisePriority < 0 || r.RaisePriority > 2 {
			return fmt.Errorf("%s: raise_priority: must be 0..2, got %d", where, r.RaisePriority)
		}
		p.rules = append(p.rules, c)
	}
	for _, sev := range []eventsv1.Severity{eventsv1.Severity_SEVERITY_L1, eventsv1.Severity_SEVERITY_L2, eventsv1.Severity_SEVERITY_L3, eventsv1.Severity_SEVERITY_L4} {
		if name := SeverityName(sev); p.Teams[name] == "" {
			return fmt.Errorf("policy: teams.%s: required", name)
		}
	}
	if len(p.Reviews) > 0 {
		return fmt.Errorf("policy: reviews: moved to handling.by_severity.<severity>.reviews")
	}
	return p.compileHandling()
}

// compileHandling checks the handling section: a version, and a rule for
// every severity and no other.
func (p *Policy) compileHandling() error {
	h := p.Handling
	if h.Version == "" {
		return fmt.Errorf("policy: handling.version: required")
	}
	for name := range h.BySeverity {
		if _, err := ParseSeverity(name); err != nil {
			return fmt.Errorf("policy: handling.by_severity.%s: %w", name, err)
		}
	}
	p.handling = map[eventsv1.Severity]handlingRule{}
	for _, sev := range []eventsv1.Severity{eventsv1.Severity_SEVERITY_L1, eventsv1.Severity_SEVERITY_L2, eventsv1.Severity_SEVERITY_L3, eventsv1.Severity_SEVERITY_L4} {
		where := "policy: handling.by_severity." + SeverityName(sev)
		r, ok := h.BySeverity[SeverityName(sev)]
		if !ok {
			return fmt.Errorf("%s: required", where)
		}
		if !r.Response {
			return fmt.Errorf("%s.response: must be true (every complaint is answered before it is resolved)", where)
		}
		if r.Solution != SolutionAlways && r.Solution != SolutionAfterReopen {
			return fmt.Errorf("%s.solution: unknown value %q (one of %s, %s)", where, r.Solution, SolutionAlways, SolutionAfterReopen)
		}
		c := handlingRule{response: r.Response, solution: r.Solution}
		for _, l := range r.Reviews {
			v, err := ParseReviewLevel(l)
			if err != nil {
				return fmt.Errorf("%s.reviews: %w", where, err)
			}
			if slices.Contains(c.reviews, v) {
				return fmt.Errorf("%s.reviews: %q twice", where, l)
			}
			c.reviews = append(c.reviews, v)
		}
		slices.Sort(c.reviews)
		p.handling[sev] = c
	}
	return nil
}

func compileKeyword(k string) (keyword, error) {
	k = strings.ToLower(strings.TrimSpace(k))
	kw := keyword{}
	if strings.HasSuffix(k, "*") {
		kw.prefix = true
		k = strings.TrimSuffix(k, "*")
	}
	if k == "" {
		return kw, fmt.Errorf("empty keyword")
	}
	kw.term = k
	for _, r := range k {
		if unicode.IsLetter(r) && r < utf8.RuneSelf {
			kw.words = true
			break
		}
	}
	return kw, nil
}

func (k keyword) in(text string) bool {
	if !k.words {
		return strings.Contains(text, k.term)
	}
	for from := 0; from < len(text); {
		i := strings.Index(text[from:], k.term)
		if i < 0 {
			return false
		}
		start, end := from+i, from+i+len(k.term)
		if isWordBoundary(text, start, true) && (k.prefix || isWordBoundary(text, end, false)) {
			return true
		}
		from = start + 1
	}
	return false
}

// isWordBoundary tells whether the byte offset i of text is at the edge of a
// Latin word: the rune before (or at) it is not an ASCII letter or digit.
func isWordBoundary(text string, i int, before bool) bool {
	if before {
		if i == 0 {
			return true
		}
		r, _ := utf8.DecodeLastRuneInString(text[:i])
		return !isASCIIWordRune(r)
	}
	if i >= len(text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return !isASCIIWordRune(r)
}

func isASCIIWordRune(r rune) bool {
	return r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
}

func (c compiledRule) matches(in ClassifyInput, text string) bool {
	for _, e := range c.except {
		text = strings.ReplaceAll(text, e, " ")
	}
	if len(c.keywords) > 0 && !slices.ContainsFunc(c.keywords, func(k keyword) bool { return k.in(text) }) {
		return false
	}
	if len(c.with) > 0 && !slices.ContainsFunc(c.with, func(k keyword) bool { return k.in(text) }) {
		return false
	}
	if len(c.channels) > 0 && !slices.Contains(c.channels, in.Channel) {
		return false
	}
	if len(c.tiers) > 0 && !slices.Contains(c.tiers, in.Tier) {
		return false
	}
	if c.Repeat && !in.Repeat {
		return false
	}
	return true
}

// Classify applies every rule, in order, to a complaint, over the
// policy's defaults: the rules alone, without the text model.
func (p *Policy) Classify(in ClassifyInput) Classification {
	f := p.floors(in)
	out := Classification{Category: f.category, Severity: max(p.defaults.Severity, f.severity), Priority: max(p.defaults.Priority, f.priority), RulesFired: f.fired}
	if out.Category == eventsv1.Category_CATEGORY_UNSPECIFIED {
		out.Category = p.defaults.Category
	}
	out.Priority = RaisePriority(out.Priority, f.raise)
	return out
}

// ruleEffects are what the firing rules decide.
type ruleEffects struct {
	fired    []string
	category eventsv1.Category
	severity eventsv1.Severity
	priority eventsv1.Priority
	dispatch eventsv1.ServiceMode
	raise    int
}

func (p *Policy) floors(in ClassifyInput) ruleEffects {
	text := strings.ToLower(in.Text)
	var out ruleEffects
	for _, r := range p.rules {
		if !r.matches(in, text) {
			continue
		}
		out.fired = append(out.fired, r.ID)
		if out.category == eventsv1.Category_CATEGORY_UNSPECIFIED {
			out.category = r.category
		}
		if out.dispatch == eventsv1.ServiceMode_SERVICE_MODE_UNSPECIFIED {
			out.dispatch = r.dispatch
		}
		out.severity = max(out.severity, r.severity)
		out.priority = max(out.priority, r.priority)
		out.raise += r.RaisePriority
	}
	return out
}

// RaisePriority moves a priority up by steps, capped at urgent.
func RaisePriority(p eventsv1.Priority, steps int) eventsv1.Priority {
	return min(p+eventsv1.Priority(steps), eventsv1.Priority_PRIORITY_URGENT)
}

// RequiredReviews are the review levels a solution for a complaint of this
// severity needs, in chain order.
func (p *Policy) RequiredReviews(s eventsv1.Severity) []eventsv1.ReviewLevel {
	return slices.Clone(p.handling[s].reviews)
}

// ResponseRequired tells whether a complaint of this severity needs a
// recorded response before it is resolved.
func (p *Policy) ResponseRequired(s eventsv1.Severity) bool { return p.handling[s].response }

// SolutionRequired tells whether a complaint of this severity needs an
// approved solution before it is resolved, reopened or not.
func (p *Policy) SolutionRequired(s eventsv1.Severity, reopened bool) bool {
	return p.handling[s].solution == SolutionAlways || reopened
}

// TeamFor is the team that handles a severity.
func (p *Policy) TeamFor(s eventsv1.Severity) string { return p.Teams[SeverityName(s)] }

// SkillFor is the skill an owner of a complaint of this category should have.
func (p *Policy) SkillFor(c eventsv1.Category) string { return p.Skills[CategoryName(c)] }

// Names of the enums as the policy file and the API spell them.
var (
	categoryNames = map[eventsv1.Category]string{
		eventsv1.Category_CATEGORY_PRODUCT_QUALITY: "product_quality",
		eventsv1.Category_CATEGORY_SERVICE:         "service",
		eventsv1.Category_CATEGORY_DELIVERY:        "delivery",
		eventsv1.Category_CATEGORY_PRICE_PROMOTION: "price_promotion",
		eventsv1.Category_CATEGORY_OTHER:           "other",
	}
	severityNames = map[eventsv1.Severity]string{
		eventsv1.Severity_SEVERITY_L1: "L1", eventsv1.Severity_SEVERITY_L2: "L2",
		eventsv1.Severity_SEVERITY_L3: "L3", eventsv1.Severity_SEVERITY_L4: "L4",
	}
	priorityNames = map[eventsv1.Priority]string{
		eventsv1.Priority_PRIORITY_GENERAL:   "general",
		eventsv1.Priority_PRIORITY_IMPORTANT: "important",
		eventsv1.Priority_PRIORITY_URGENT:    "urgent",
	}
	reviewNames = map[eventsv1.ReviewLevel]string{
		eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR:        "supervisor",
		eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY:           "quality",
		eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT: "senior_management",
	}
	dispatchNames = map[eventsv1.ServiceMode]string{
		eventsv1.ServiceMode_SERVICE_MODE_ON_SITE:     "on_site",
		eventsv1.ServiceMode_SERVICE_MODE_REMOTE:      "remote",
		eventsv1.ServiceMode_SERVICE_MODE_UNSPECIFIED: "none",
	}
	tierNames = map[eventsv1.CustomerTier]string{
		eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR: "regular",
		eventsv1.CustomerTier_CUSTOMER_TIER_VIP:     "vip",
	}
)

func CategoryName(c eventsv1.Category) string           { return categoryNames[c] }
func SeverityName(s eventsv1.Severity) string           { return severityNames[s] }
func PriorityName(p eventsv1.Priority) string           { return priorityNames[p] }
func ReviewName(r eventsv1.ReviewLevel) string          { return reviewNames[r] }
func ParseCategory(s string) (eventsv1.Category, error) { return parseName(categoryNames, s) }
func ParseSeverity(s string) (eventsv1.Severity, error) { return parseName(severityNames, s) }
func ParsePriority(s string) (eventsv1.Priority, error) { return parseName(priorityNames, s) }
func ParseReviewLevel(s string) (eventsv1.ReviewLevel, error) {
	return parseName(reviewNames, s)
}
func ParseTier(s string) (eventsv1.CustomerTier, error) { return parseName(tierNames, s) }

// Dispatch kinds as the policy and the model spell them; "none" is
// SERVICE_MODE_UNSPECIFIED (no technician).
func DispatchName(m eventsv1.ServiceMode) string { return dispatchNames[m] }
func ParseDispatch(s string) (eventsv1.ServiceMode, error) {
	return parseName(dispatchNames, s)
}

// ParseChannel reads a channel as its enum name without the prefix, lower
// case ("social_media", "press").
func ParseChannel(s string) (eventsv1.Channel, error) {
	v, ok := eventsv1.Channel_value["CHANNEL_"+strings.ToUpper(s)]
	if !ok || v == 0 {
		return 0, fmt.Errorf("unknown channel %q", s)
	}
	return eventsv1.Channel(v), nil
}

func parseName[E comparable](names map[E]string, s string) (E, error) {
	for k, v := range names {
		if v == s {
			return k, nil
		}
	}
	var zero E
	known := make([]string, 0, len(names))
	for _, v := range names {
		known = append(known, v)
	}
	slices.Sort(known)
	return zero, fmt.Errorf("unknown value %q (one of %s)", s, strings.Join(known, ", "))
}
