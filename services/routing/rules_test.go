package routing

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// ruleStep is one call of a handling-rules case and what it must answer:
// codes.OK, or the code with a text the message (and, for a failed
// precondition, its PreconditionFailure details) must name.
type ruleStep struct {
	call    func(k *ruleCase) error
	code    codes.Code
	mention string
}

// ruleCase is one complaint driven through the gRPC API; solution is the
// id of the latest proposal.
type ruleCase struct {
	t        *testing.T
	e        *env
	c        routingv1.RoutingServiceClient
	id       string
	solution string
}

func respond(token string) func(*ruleCase) error {
	return func(k *ruleCase) error {
		_, err := k.c.RecordResponse(as(k.e.ctx, token), &routingv1.RecordResponseRequest{ComplaintId: k.id, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called the customer back"})
		return err
	}
}

func propose(token string) func(*ruleCase) error {
	return func(k *ruleCase) error {
		r, err := k.c.ProposeSolution(as(k.e.ctx, token), &routingv1.ProposeSolutionRequest{ComplaintId: k.id, Summary: "replace the unit"})
		if err == nil {
			k.solution = r.GetSolutionId()
		}
		return err
	}
}

func review(token string, level eventsv1.ReviewLevel) func(*ruleCase) error {
	return func(k *ruleCase) error {
		_, err := k.c.ReviewSolution(as(k.e.ctx, token), &routingv1.ReviewSolutionRequest{ComplaintId: k.id, SolutionId: k.solution, Level: level, Approved: true, Comment: "ok"})
		return err
	}
}

func resolve(token string) func(*ruleCase) error {
	return func(k *ruleCase) error {
		_, err := k.c.Resolve(as(k.e.ctx, token), &routingv1.ResolveRequest{ComplaintId: k.id, ResolutionCode: "FIXED", Summary: "fixed"})
		return err
	}
}

// reopen writes what follow-up writes for a dissatisfied customer, and
// waits for routing's reaction (the escalation), so that it does not land
// between a later refusal and the check that the refusal changed nothing.
func reopen(k *ruleCase) error {
	k.e.write(k.t, k.id, &eventsv1.ComplaintReopened{Reason: "still broken", Satisfaction: 1, ReopenCount: 1})
	checkFor(k.t, 10*time.Second, func() error {
		if k.e.count(k.t, k.id)["ComplaintEscalated"] == 0 {
			return fmt.Errorf("%s: the reopen is not escalated yet", k.id)
		}
		return nil
	})
	return nil
}

// TestHandlingRules: each handling rule of the policy (handling.v1),
// through the gRPC API of a running routing on an embedded NATS. A refusal
// is FAILED_PRECONDITION naming the rule, and changes nothing: the next
// step that supplies what was missing succeeds.
func TestHandlingRules(t *testing.T) {
	e := newEnv(t)
	svc := e.start(t, "routing")
	c := client(t, svc)
	roster(t, e.ctx, c)
	const (
		owner = "agent-token" // cs-1, the owner of every case
		admin = "admin-token" // a manager and team lead
		lead  = "lead-token"
		qa    = "qa-token"
		sm    = "sm-token"
		boss  = "boss-token" // a team lead who is also a quality reviewer
	)
	sup, qual, snr := eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY, eventsv1.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT
	ok := func(call func(*ruleCase) error) ruleStep { return ruleStep{call: call} }
	refused := func(call func(*ruleCase) error, mention string) ruleStep {
		return ruleStep{call: call, code: codes.FailedPrecondition, mention: mention}
	}
	for _, tc := range []struct {
		name     string
		severity eventsv1.Severity
		steps    []ruleStep
	}{
		{"resolve without a response", eventsv1.Severity_SEVERITY_L1, []ruleStep{
			refused(resolve(owner), "a response to the customer (RecordResponse)"),
			ok(respond(owner)),
			ok(resolve(owner)),
		}},
		{"L3 without an approved solution", eventsv1.Severity_SEVERITY_L3, []ruleStep{
			ok(respond(owner)),
			refused(resolve(owner), "a solution proposal (reviews required: supervisor, quality)"),
			ok(propose(owner)),
			refused(resolve(owner), "supervisor review"),
			ok(review(lead, sup)),
			refused(resolve(owner), "quality review"),
			ok(review(qa, qual)),
			ok(resolve(owner)),
		}},
		{"self-approval", eventsv1.Severity_SEVERITY_L2, []ruleStep{
			ok(respond(admin)),
			ok(propose(admin)), // a team lead acting for the owner
			refused(review(admin, sup), "four eyes (handling.v1): admin proposed this solution and may not review it"),
			refused(resolve(admin), "supervisor review"),
			ok(review(lead, sup)),
			ok(resolve(admin)),
		}},
		{"same person at two review levels", eventsv1.Severity_SEVERITY_L4, []ruleStep{
			ok(respond(owner)),
			ok(propose(owner)),
			ok(review(boss, sup)),
			refused(review(boss, qual), "four eyes (handling.v1): boss-1 gave this solution's supervisor review; each review level needs a different person"),
			refused(resolve(owner), "quality review"),
			ok(review(qa, qual)),
			ok(review(sm, snr)),
			ok(resolve(owner)),
		}},
		{"after a reopen the old solution does not count", eventsv1.Severity_SEVERITY_L2, []ruleStep{
			ok(respond(owner)),
			ok(propose(owner)),
			ok(review(lead, sup)),
			ok(resolve(owner)),
			ok(reopen),
			refused(resolve(owner), "a new solution proposal since the reopen (the one before it no longer counts) (reviews required: supervisor)"),
			ok(propose(owner)),
			refused(resolve(owner), "supervisor review"),
			ok(review(lead, sup)),
			ok(resolve(owner)),
		}},
		{"a reopened L1 needs a new solution too", eventsv1.Severity_SEVERITY_L1, []ruleStep{
			ok(respond(owner)),
			ok(resolve(owner)),
			ok(reopen),
			refused(resolve(owner), "a new solution proposal since the reopen"),
			ok(propose(owner)),
			ok(resolve(owner)),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := &ruleCase{t: t, e: e, c: c, id: "c-rule-" + strings.ReplaceAll(tc.name, " ", "-")}
			k.newComplaint(tc.severity)
			for i, s := range tc.steps {
				before := e.count(t, k.id)
				err := s.call(k)
				if s.code == codes.OK {
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					continue
				}
				if status.Code(err) != s.code || !strings.Contains(err.Error(), s.mention) || !namedInDetails(err, s.mention) {
					t.Fatalf("step %d: %v (details %v), want %s naming %q", i, err, status.Convert(err).Details(), s.code, s.mention)
				}
				if after := e.count(t, k.id); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("step %d: a refusal changed the complaint: %v, was %v", i, after, before)
				}
			}
			r, err := c.GetComplaint(as(e.ctx, owner), &routingv1.GetComplaintRequest{ComplaintId: k.id})
			if err != nil || r.GetComplaint().GetStatus() != "resolved" {
				t.Fatalf("after the steps: %v %v, want resolved", r, err)
			}
		})
	}
}

// namedInDetails: a missing step is also a PreconditionFailure violation
// (for forms that show a checklist); a rule broken by the caller is named
// in the message only.
func namedInDetails(err error, mention string) bool {
	if strings.HasPrefix(mention, "four eyes") {
		return true
	}
	return slices.ContainsFunc(status.Convert(err).Details(), func(d any) bool {
		pf, ok := d.(*errdetails.PreconditionFailure)
		return ok && slices.ContainsFunc(pf.GetViolations(), func(v *errdetails.PreconditionFailure_Violation) bool {
			return strings.Contains(v.GetSubject(), mention)
		})
	})
}

// newComplaint: a complaint, classified at the severity by an override and
// owned by cs-1.
func (k *ruleCase) newComplaint(sev eventsv1.Severity) {
	k.t.Helper()
	k.e.intake(k.t, k.id, "快递一直没收到", "cust-"+k.id)
	var got *routingv1.Complaint
	checkFor(k.t, 10*time.Second, func() error {
		r, err := k.c.GetComplaint(as(k.e.ctx, "admin-token"), &routingv1.GetComplaintRequest{ComplaintId: k.id})
		if err != nil {
			return err
		}
		if got = r.GetComplaint(); got.GetOwner() == "" {
			return fmt.Errorf("%s not assigned yet", k.id)
		}
		return nil
	})
	ctx := as(k.e.ctx, "admin-token")
	if _, err := k.c.OverrideClassification(ctx, &routingv1.OverrideClassificationRequest{ComplaintId: k.id,
		Category: eventsv1.Category_CATEGORY_PRODUCT_QUALITY, Severity: sev, Priority: eventsv1.Priority_PRIORITY_IMPORTANT, Reason: "test case"}); err != nil {
		k.t.Fatal(err)
	}
	if got.GetOwner() != "cs-1" {
		if _, err := k.c.Reassign(ctx, &routingv1.ReassignRequest{ComplaintId: k.id, Team: "customer-service", Owner: "cs-1", Reason: "test case"}); err != nil {
			k.t.Fatal(err)
		}
	}
}
