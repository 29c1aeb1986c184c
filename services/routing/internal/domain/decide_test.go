package domain

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

var now = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// given folds events into a complaint state, versions 1, 2, 3…
func given(t *testing.T, msgs ...proto.Message) *Complaint {
	t.Helper()
	c := &Complaint{}
	for i, m := range msgs {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", OccurredAt: now}, m)
		if err != nil {
			t.Fatal(err)
		}
		e.Version = uint64(i + 1)
		c.Evolve(e)
	}
	return c
}

func received(text string) *eventsv1.ComplaintReceived {
	return &eventsv1.ComplaintReceived{Description: text, FirstReceiver: "fr", Channel: eventsv1.Channel_CHANNEL_PHONE,
		Customer: &eventsv1.Customer{CustomerRef: "cu", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR}}
}

func classified(sev eventsv1.Severity) *eventsv1.ComplaintClassified {
	return &eventsv1.ComplaintClassified{Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: sev, Priority: eventsv1.Priority_PRIORITY_IMPORTANT}
}

var (
	accepted = &eventsv1.ComplaintAccepted{AcceptedBy: "system"}
	assigned = &eventsv1.ComplaintAssigned{Team: "t", Owner: "ag", FirstReceiver: "fr"}
	owner    = Actor{ID: "ag", Roles: []Role{RoleAgent}}
	teamLead = Actor{ID: "tl", Roles: []Role{RoleTeamLead}}
	qa       = Actor{ID: "qa", Roles: []Role{RoleQualityReviewer}}
	vp       = Actor{ID: "vp", Roles: []Role{RoleSeniorManager}}
	sup      = eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR
	qual     = eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY
	snr      = eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT
)

func proposed(levels ...eventsv1.ReviewLevel) *eventsv1.SolutionProposed {
	return &eventsv1.SolutionProposed{SolutionId: "s1", Summary: "fix", ProposedBy: "ag", RequiredReviews: levels}
}

// reviewers give each level by default: a different person each.
var reviewers = map[eventsv1.ReviewLevel]string{sup: "tl", qual: "qa", snr: "vp"}

func reviewed(l eventsv1.ReviewLevel, ok bool) *eventsv1.SolutionReviewed {
	return reviewedBy(reviewers[l], l, ok)
}

func reviewedBy(by string, l eventsv1.ReviewLevel, ok bool) *eventsv1.SolutionReviewed {
	return &eventsv1.SolutionReviewed{SolutionId: "s1", Level: l, Approved: ok, ReviewedBy: by}
}

var responded = &eventsv1.ResponseRecorded{Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called", RespondedBy: "ag"}

// TestResolve: given the history, Resolve succeeds or names what is missing.
func TestResolve(t *testing.T) {
	p := shippedPolicy(t)
	base := []proto.Message{received("x"), accepted}
	// with: a complaint of the severity, assigned and answered.
	with := func(sev eventsv1.Severity, more ...proto.Message) []proto.Message {
		return append(append(slices.Clone(base), classified(sev), assigned, responded), more...)
	}
	resolved, reopened := &eventsv1.ComplaintResolved{ResolutionCode: "X"}, &eventsv1.ComplaintReopened{ReopenCount: 1}
	for _, tc := range []struct {
		name    string
		history []proto.Message
		actor   Actor
		missing string // "" = resolves
		kind    string
	}{
		{"L1 needs a response", append(slices.Clone(base), classified(l1), assigned), owner, "a response to the customer", "precondition"},
		{"L1 answered", with(l1), owner, "", ""},
		{"L2 needs a proposal", with(l2), owner, "a solution proposal (reviews required: supervisor)", "precondition"},
		{"L2 needs the supervisor", with(l2, proposed(sup)), owner, "supervisor review", "precondition"},
		{"L2 approved", with(l2, proposed(sup), reviewed(sup, true)), owner, "", ""},
		{"L2 approved by its proposer does not count", with(l2, proposed(sup), reviewedBy("ag", sup, true)), owner, "supervisor review", "precondition"},
		{"L3 half reviewed", with(l3, proposed(sup, qual), reviewed(sup, true)), owner, "quality review", "precondition"},
		{"L3 both levels by one person count once", with(l3, proposed(sup, qual), reviewed(sup, true), reviewedBy("tl", qual, true)), owner, "quality review", "precondition"},
		{"L4 fully reviewed", with(l4, proposed(sup, qual, snr), reviewed(sup, true), reviewed(qual, true), reviewed(snr, true)), owner, "", ""},
		{"reclassified L2 to L3 after approval", with(l2, proposed(sup), reviewed(sup, true), classified(l3)), owner, "quality review", "precondition"},
		{"rejected", with(l2, proposed(sup), reviewed(sup, false)), owner, "a new solution proposal (the last one was rejected)", "precondition"},
		{"repeat needs root cause", with(l1, &eventsv1.RepeatComplaintFlagged{EarlierComplaintIds: []string{"c0"}}), owner, "root cause (5W1H)", "precondition"},
		{"repeat with root cause", with(l1, &eventsv1.RepeatComplaintFlagged{EarlierComplaintIds: []string{"c0"}}, &eventsv1.RootCauseRecorded{What: "w"}), owner, "", ""},
		{"on hold", with(l1, &eventsv1.ComplaintPutOnHold{Reason: eventsv1.HoldReason_HOLD_REASON_WAITING_FOR_PARTS}), owner, "take off hold", "precondition"},
		{"already resolved", with(l1, resolved), owner, "complaint is resolved", "precondition"},
		{"reopened L1 needs a new solution", with(l1, resolved, reopened), owner, "a new solution proposal since the reopen", "precondition"},
		{"reopened L1 with a new solution", with(l1, resolved, reopened, proposed()), owner, "", ""},
		{"reopened L2: the old approval does not count", with(l2, proposed(sup), reviewed(sup, true), resolved, reopened), owner, "a new solution proposal since the reopen (the one before it no longer counts) (reviews required: supervisor)", "precondition"},
		{"reopened L2: the new one needs its review", with(l2, proposed(sup), reviewed(sup, true), resolved, reopened, proposed(sup)), owner, "supervisor review", "precondition"},
		{"not assigned", append(slices.Clone(base), classified(l1)), teamLead, "assignment", "precondition"},
		{"another agent", with(l1), Actor{ID: "other", Roles: []Role{RoleAgent}}, "only the owner", "permission"},
		{"a quality reviewer", with(l1), qa, "needs one of the roles", "permission"},
		{"a team lead for the owner", with(l1), teamLead, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := given(t, tc.history...)
			out, err := Resolve(c, tc.actor, p, "FIXED", "done")
			if tc.missing == "" {
				if err != nil || len(out) != 1 {
					t.Fatalf("Resolve: %v %v", out, err)
				}
				return
			}
			var pre *kernel.PreconditionError
			kindOK := (tc.kind == "precondition" && errors.As(err, &pre)) || (tc.kind == "permission" && errors.Is(err, kernel.ErrPermission))
			if !kindOK || !strings.Contains(err.Error(), tc.missing) || out != nil {
				t.Fatalf("Resolve: %v (events %v), want a %s error mentioning %q", err, out, tc.kind, tc.missing)
			}
		})
	}
}

// TestReviewChain: levels in order, by the right role, once.
func TestReviewChain(t *testing.T) {
	l4History := []proto.Message{received("x"), accepted, classified(l4), assigned, proposed(sup, qual, snr)}
	for _, tc := range []struct {
		name  string
		more  []proto.Message
		actor Actor
		level eventsv1.ReviewLevel
		err   string
	}{
		{"supervisor first", nil, teamLead, sup, ""},
		{"quality before supervisor", nil, qa, qual, "supervisor review"},
		{"quality after supervisor", []proto.Message{reviewed(sup, true)}, qa, qual, ""},
		{"agent cannot review", nil, owner, sup, "permission denied"},
		{"quality reviewer cannot give supervisor review", nil, qa, sup, "permission denied"},
		{"senior last", []proto.Message{reviewed(sup, true), reviewed(qual, true)}, vp, snr, ""},
		{"twice", []proto.Message{reviewed(sup, true)}, teamLead, sup, "quality review"},
		{"after approval", []proto.Message{reviewed(sup, true), reviewed(qual, true), reviewed(snr, true)}, vp, snr, "already approved"},
		{"after rejection", []proto.Message{reviewed(sup, false)}, qa, qual, "rejected"},
		{"unknown level", nil, teamLead, 0, "level"},
		{"the proposer reviews", nil, Actor{ID: "ag", Roles: []Role{RoleTeamLead}}, sup, "four eyes (handling.v1): ag proposed this solution"},
		{"one person at two levels", []proto.Message{reviewedBy("boss", sup, true)}, Actor{ID: "boss", Roles: []Role{RoleManager, RoleQualityReviewer}}, qual, "each review level needs a different person"},
		{"a self-approval in the log leaves the level pending", []proto.Message{reviewedBy("ag", sup, true)}, teamLead, sup, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := given(t, append(slices.Clone(l4History), tc.more...)...)
			out, err := ReviewSolution(c, tc.actor, shippedPolicy(t), "s1", tc.level, true, "")
			if tc.err == "" {
				if err != nil || len(out) != 1 || out[0].(*eventsv1.SolutionReviewed).GetReviewedBy() != tc.actor.ID {
					t.Fatalf("review: %v %v", out, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("review: %v, want an error mentioning %q", err, tc.err)
			}
		})
	}
}

type dir map[string]*Team

func (d dir) Team(id string) *Team { return d[id] }
func (d dir) WithRole(r Role) []string {
	var out []string
	for _, t := range d {
		out = append(out, t.WithRole(r)...)
	}
	slices.Sort(out)
	return out
}

func team(id string, ms ...Member) *Team {
	t := NewTeam(id)
	for _, m := range ms {
		t.Members[m.ID] = m
	}
	t.Version = 1
	return t
}

// TestEscalationLadder: each cause moves one level, once; L4 starts at
// emergency response; the top notifies instead.
func TestEscalationLadder(t *testing.T) {
	d := dir{
		"t":                  team("t", Member{ID: "ag", Role: RoleAgent, OnShift: true}, Member{ID: "tl", Role: RoleTeamLead}),
		"board":              team("board", Member{ID: "vp", Role: RoleSeniorManager}, Member{ID: "dm", Role: RoleManager}),
		"emergency-response": team("emergency-response", Member{ID: "er", Role: RoleAgent, OnShift: true}),
	}
	breach := eventsv1.EscalationCause_ESCALATION_CAUSE_SLA_BREACH
	for _, tc := range []struct {
		name     string
		history  []proto.Message
		causeID  string
		from, to eventsv1.EscalationLevel
		notified []string
		notify   bool // at the top: StakeholdersNotified instead
		none     bool
	}{
		{"owner to team lead", nil, "b1", 1, 2, []string{"ag", "fr", "tl"}, false, false},
		{"team lead to manager", []proto.Message{&eventsv1.ComplaintEscalated{ToLevel: 2, Cause: breach, CauseEventId: "b1"}}, "b2", 2, 3, []string{"ag", "dm", "fr"}, false, false},
		{"manager to senior", []proto.Message{&eventsv1.ComplaintEscalated{ToLevel: 3, Cause: breach, CauseEventId: "b2"}}, "b3", 3, 4, []string{"ag", "fr", "vp"}, false, false},
		{"senior stays, notifies", []proto.Message{&eventsv1.ComplaintEscalated{ToLevel: 4, Cause: breach, CauseEventId: "b3"}}, "b4", 4, 4, []string{"ag", "fr", "vp"}, true, false},
		{"emergency to senior", []proto.Message{&eventsv1.ComplaintEscalated{ToLevel: 5, Cause: eventsv1.EscalationCause_ESCALATION_CAUSE_SEVERITY, CauseEventId: "a"}}, "b1", 5, 4, []string{"ag", "fr", "vp"}, false, false},
		{"same cause twice", []proto.Message{&eventsv1.ComplaintEscalated{ToLevel: 2, Cause: breach, CauseEventId: "b1"}}, "b1", 0, 0, nil, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := given(t, append([]proto.Message{received("x"), accepted, classified(l2), assigned}, tc.history...)...)
			out := Escalate(c, d, breach, tc.causeID, "late")
			if tc.none {
				if len(out) != 0 {
					t.Fatalf("escalated again: %v", out)
				}
				return
			}
			if len(out) != 1 {
				t.Fatalf("events %v", out)
			}
			if tc.notify {
				n, ok := out[0].(*eventsv1.StakeholdersNotified)
				if !ok || n.GetCauseEventId() != tc.causeID || !slices.Equal(n.GetRecipients(), tc.notified) {
					t.Fatalf("got %v, want a notification of %v", out[0], tc.notified)
				}
				return
			}
			e, ok := out[0].(*eventsv1.ComplaintEscalated)
			if !ok || e.GetFromLevel() != tc.from || e.GetToLevel() != tc.to || e.GetCauseEventId() != tc.causeID || !slices.Equal(e.GetNotified(), tc.notified) {
				t.Fatalf("got %v, want %s → %s notifying %v", out[0], tc.from, tc.to, tc.notified)
			}
		})
	}
	// L4 on arrival: straight to emergency response, its on-shift members told.
	c := given(t, received("x"), accepted, classified(l4), assigned)
	out := EscalateOnArrival(c, d, "acc")
	if e, ok := out[0].(*eventsv1.ComplaintEscalated); len(out) != 1 || !ok || e.GetToLevel() != eventsv1.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE || !slices.Contains(e.GetNotified(), "er") {
		t.Fatalf("L4 arrival: %v", out)
	}
}

// TestPickOwner: on shift, able to own, skilled first, least loaded, longest idle.
func TestPickOwner(t *testing.T) {
	idle := func(open int, h int) Workload {
		return Workload{Open: open, LastAssigned: now.Add(time.Duration(h) * time.Hour)}
	}
	for _, tc := range []struct {
		name    string
		members []Member
		loads   map[string]Workload
		exclude string
		want    string
	}{
		{"nobody on shift", []Member{{ID: "a", Role: RoleAgent}}, nil, "", ""},
		{"reviewers do not own", []Member{{ID: "q", Role: RoleQualityReviewer, OnShift: true}}, nil, "", ""},
		{"skilled beats unskilled", []Member{{ID: "a", Role: RoleAgent, OnShift: true}, {ID: "b", Role: RoleAgent, OnShift: true, Skills: []string{"product"}}}, map[string]Workload{"b": idle(3, 0)}, "", "b"},
		{"no one skilled: least loaded", []Member{{ID: "a", Role: RoleAgent, OnShift: true}, {ID: "b", Role: RoleAgent, OnShift: true}}, map[string]Workload{"a": idle(2, 0), "b": idle(1, 0)}, "", "b"},
		{"tie: longest idle", []Member{{ID: "a", Role: RoleAgent, OnShift: true, Skills: []string{"product"}}, {ID: "b", Role: RoleAgent, OnShift: true, Skills: []string{"product"}}}, map[string]Workload{"a": idle(1, -1), "b": idle(1, -5)}, "", "b"},
		{"tie on both: smallest id", []Member{{ID: "b", Role: RoleAgent, OnShift: true}, {ID: "a", Role: RoleAgent, OnShift: true}}, nil, "", "a"},
		{"excluded current owner", []Member{{ID: "a", Role: RoleAgent, OnShift: true}, {ID: "b", Role: RoleAgent, OnShift: true}}, map[string]Workload{"b": idle(9, 0)}, "a", "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := PickOwner(team("t", tc.members...), "product", func(m string) Workload { return tc.loads[m] }, tc.exclude)
			if got != tc.want {
				t.Fatalf("picked %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClassifyOnce: an accepted complaint is classified once, with the
// repeat flag when earlier complaints are given.
func TestClassifyOnce(t *testing.T) {
	p := shippedPolicy(t)
	c := given(t, received("冰箱不制冷"), accepted)
	out := Classify(c, p, []string{"c0"})
	if len(out) != 2 {
		t.Fatalf("events %v", out)
	}
	cl := out[0].(*eventsv1.ComplaintClassified)
	rf := out[1].(*eventsv1.RepeatComplaintFlagged)
	if cl.GetPriority() != eventsv1.Priority_PRIORITY_URGENT || rf.GetRaisedPriority() != eventsv1.Priority_PRIORITY_URGENT || !slices.Equal(rf.GetEarlierComplaintIds(), []string{"c0"}) {
		t.Fatalf("classified %v flagged %v", cl, rf)
	}
	ApplyPending(c, out, now)
	if !c.Classified || !c.Repeat || Classify(c, p, nil) != nil {
		t.Fatal("classified twice")
	}
	if got := Classify(given(t, received("x")), p, nil); got != nil {
		t.Fatalf("classified before acceptance: %v", got)
	}

	// The log kept the classification of that append but not the flag
	// (another service appended in between): the retry flags it alone,
	// at the priority the classification already raised.
	c = given(t, received("冰箱不制冷"), accepted)
	ApplyPending(c, out[:1], now)
	rest := Classify(c, p, []string{"c0"})
	if len(rest) != 1 {
		t.Fatalf("retry after a partial append: %v, want the repeat flag alone", rest)
	}
	if rf, ok := rest[0].(*eventsv1.RepeatComplaintFlagged); !ok || rf.GetRaisedPriority() != eventsv1.Priority_PRIORITY_URGENT {
		t.Fatalf("retry after a partial append: %v", rest[0])
	}
}

func TestRequestDispatchValidatesTheWorkOrder(t *testing.T) {
	c := given(t, received("x"), accepted, classified(l2), assigned)
	_, err := RequestDispatch(c, owner, "wo", &eventsv1.WorkOrderSpec{}, now)
	var inv *kernel.InvalidError
	if !errors.As(err, &inv) || len(inv.Violations) != 6 {
		t.Fatalf("empty spec: %v", err)
	}
	spec := &eventsv1.WorkOrderSpec{Mode: eventsv1.ServiceMode_SERVICE_MODE_REMOTE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT,
		EquipmentModel: "m", Quantity: 1, Region: "r", RequiredBy: timestamppb.New(now.Add(time.Hour))}
	if out, err := RequestDispatch(c, owner, "wo", spec, now); err != nil || out[0].(*eventsv1.DispatchRequested).GetWorkOrderId() != "wo" {
		t.Fatalf("good spec: %v %v", out, err)
	}
}

// TestRequestDispatchDefaultsFromTheComplaint: what the caller leaves empty
// comes from the complaint (the latest sealed contact, organisation,
// product, place); the caller's values win; what cannot be filled in is
// refused naming the field and the rule.
func TestRequestDispatchDefaultsFromTheComplaint(t *testing.T) {
	sealed := func(key string) *eventsv1.SealedPersonalData {
		return &eventsv1.SealedPersonalData{KeyId: key, Nonce: []byte("n-" + key), Ciphertext: []byte("ct-" + key)}
	}
	rich := func(c *eventsv1.Customer) *eventsv1.ComplaintReceived {
		r := received("x")
		c.CustomerRef, c.Tier = "cu", eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR
		r.Customer = c
		r.Product = &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-1"}
		r.Place = &eventsv1.Place{Region: "east", City: "Shanghai"}
		return r
	}
	known := rich(&eventsv1.Customer{Organisation: "ACME", Personal: sealed("k1")})
	anonymous := rich(&eventsv1.Customer{Anonymous: true})
	handled := []proto.Message{accepted, classified(l2), assigned}
	onSite := func() *eventsv1.WorkOrderSpec {
		return &eventsv1.WorkOrderSpec{Mode: eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, ServiceType: eventsv1.ServiceType_SERVICE_TYPE_REPAIR,
			Quantity: 1, RequiredBy: timestamppb.New(now.Add(time.Hour))}
	}
	remote := func() *eventsv1.WorkOrderSpec {
		s := onSite()
		s.Mode, s.ServiceType = eventsv1.ServiceMode_SERVICE_MODE_REMOTE, eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT
		return s
	}
	type want struct {
		contact, org, model, region string // contact: the sealed key id, "" for none
		serials                     []string
	}
	for _, tc := range []struct {
		name    string
		history []proto.Message
		spec    func() *eventsv1.WorkOrderSpec
		want    want
		field   string // a refusal: the violation's field, rule and a word of its message
		rule    string
		mention string
	}{
		{name: "everything from the complaint", history: append([]proto.Message{known}, handled...), spec: onSite,
			want: want{contact: "k1", org: "ACME", model: "AC-3000", region: "east", serials: []string{"SN-1"}}},
		{name: "the caller's values win", history: append([]proto.Message{known}, handled...), spec: func() *eventsv1.WorkOrderSpec {
			s := onSite()
			s.SiteContact, s.CustomerOrganisation, s.EquipmentModel, s.Region, s.SerialNumbers = sealed("site"), "Other Ltd", "AC-9", "west", []string{"A", "B"}
			return s
		}, want: want{contact: "site", org: "Other Ltd", model: "AC-9", region: "west", serials: []string{"A", "B"}}},
		{name: "the latest amendment", history: append([]proto.Message{known, &eventsv1.CustomerDetailsAmended{Personal: sealed("k2"), Organisation: "ACME East"}}, handled...), spec: onSite,
			want: want{contact: "k2", org: "ACME East", model: "AC-3000", region: "east", serials: []string{"SN-1"}}},
		{name: "anonymous with a phone", history: append([]proto.Message{rich(&eventsv1.Customer{Anonymous: true, Personal: sealed("k3")})}, handled...), spec: onSite,
			want: want{contact: "k3", model: "AC-3000", region: "east", serials: []string{"SN-1"}}},
		{name: "remote needs no contact", history: append([]proto.Message{anonymous}, handled...), spec: remote,
			want: want{model: "AC-3000", region: "east", serials: []string{"SN-1"}}},
		{name: "anonymous without contact, on site", history: append([]proto.Message{anonymous}, handled...), spec: onSite,
			field: "spec.site_contact", rule: "required", mention: "anonymous"},
		{name: "erased", history: append([]proto.Message{known, &eventsv1.CustomerErased{KeyId: "cu", ErasedBy: "dpo"}}, handled...), spec: onSite,
			field: "spec.site_contact", rule: "required", mention: "erased"},
		{name: "contact that is not sealed", history: append([]proto.Message{known}, handled...), spec: func() *eventsv1.WorkOrderSpec {
			s := onSite()
			s.SiteContact = &eventsv1.SealedPersonalData{KeyId: "k1"}
			return s
		}, field: "spec.site_contact", rule: "sealed", mention: "ciphertext"},
		{name: "no place, no region", history: append([]proto.Message{received("x")}, handled...), spec: func() *eventsv1.WorkOrderSpec {
			s := remote()
			s.EquipmentModel = "AC-3000"
			return s
		}, field: "spec.region", rule: "required", mention: "place"},
		{name: "no product, no model", history: append([]proto.Message{received("x")}, handled...), spec: func() *eventsv1.WorkOrderSpec {
			s := remote()
			s.Region = "east"
			return s
		}, field: "spec.equipment_model", rule: "required", mention: "product"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := given(t, tc.history...)
			spec := tc.spec()
			before := proto.Clone(spec)
			out, err := RequestDispatch(c, owner, "wo", spec, now)
			if !proto.Equal(spec, before) {
				t.Fatalf("the caller's spec was changed: %v", spec)
			}
			if tc.field != "" {
				var inv *kernel.InvalidError
				if !errors.As(err, &inv) || len(inv.Violations) != 1 || out != nil {
					t.Fatalf("want one violation of %s, got %v %v", tc.field, out, err)
				}
				if v := inv.Violations[0]; v.Field != tc.field || v.Rule != tc.rule || !strings.Contains(v.Message, tc.mention) {
					t.Fatalf("violation %+v: want %s/%s mentioning %q", v, tc.field, tc.rule, tc.mention)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := out[0].(*eventsv1.DispatchRequested).GetSpec()
			if got.GetSiteContact().GetKeyId() != tc.want.contact || got.GetCustomerOrganisation() != tc.want.org || got.GetEquipmentModel() != tc.want.model ||
				got.GetRegion() != tc.want.region || !slices.Equal(got.GetSerialNumbers(), tc.want.serials) {
				t.Fatalf("spec %v, want %+v", got, tc.want)
			}
			if tc.want.contact != "" && (string(got.GetSiteContact().GetCiphertext()) != "ct-"+tc.want.contact || string(got.GetSiteContact().GetNonce()) != "n-"+tc.want.contact) {
				t.Fatalf("site contact not the sealed blob as stored: %v", got.GetSiteContact())
			}
		})
	}
}
