package domain

import (
	"slices"
	"strings"
	"time"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Status of a complaint as routing sees it.
type Status string

const (
	StatusNone       Status = ""
	StatusReceived   Status = "received"
	StatusAccepted   Status = "accepted"
	StatusClassified Status = "classified"
	StatusAssigned   Status = "assigned"
	StatusInProgress Status = "in_progress"
	StatusOnHold     Status = "on_hold"
	StatusResolved   Status = "resolved"
	StatusClosed     Status = "closed"
	StatusWithdrawn  Status = "withdrawn"
)

// Solution is a proposed solution and the reviews it got.
type Solution struct {
	ID         string
	Summary    string
	ProposedBy string
	Required   []eventsv1.ReviewLevel
	Reviews    []Review
}

// Review is one level's verdict on a solution.
type Review struct {
	Level    eventsv1.ReviewLevel
	Approved bool
	By       string
	Comment  string
}

// Complaint is routing's state of one complaint, rebuilt from its stream.
// It keeps no personal data in the clear: the description is only read to
// classify, and the customer's contact only as intake sealed it (Contact),
// to fill in a work order's site contact.
type Complaint struct {
	ID      string
	Version uint64
	Status  Status

	CustomerRef   string
	Tier          eventsv1.CustomerTier
	Channel       eventsv1.Channel
	ProductModel  string
	Fingerprint   string
	Text          string // description and customer request
	Description   string
	FirstReceiver string

	// What a work order defaults to (see WorkOrderDefaults). Contact is
	// ciphertext under the customer's data key: never opened, never logged;
	// nil when the customer left no contact or was erased.
	Contact      *eventsv1.SealedPersonalData
	Anonymous    bool
	Erased       bool
	Organisation string
	SerialNumber string
	Region       string

	AcceptedAt      time.Time
	AcceptedEventID string

	Classified    bool
	Category      eventsv1.Category
	Severity      eventsv1.Severity
	Priority      eventsv1.Priority
	RulesFired    []string
	PolicyVersion string

	Repeat  bool
	Earlier []string

	Team          string
	Owner         string
	OwnerAccepted bool
	AssignedAt    time.Time
	Assignments   int

	Level eventsv1.EscalationLevel
	// escalated and notified record the causes already acted on, so each
	// cause is acted on once, whoever decides.
	escalated map[string]bool
	notified  map[string]bool

	// Solutions proposed since the complaint was (re)opened.
	Solutions        []Solution
	RootCause        bool
	WorkOrders       []string
	Hold             eventsv1.HoldReason
	statusBeforeHold Status
	Responses        int
	ReopenCount      uint32
	ResolutionCode   string
	ResolvedAt       time.Time
}

// Exists tells whether any event of the complaint was seen.
func (c *Complaint) Exists() bool { return c.Version > 0 }

// Open tells whether the complaint is still being handled by its owner.
func (c *Complaint) Open() bool {
	switch c.Status {
	case StatusResolved, StatusClosed, StatusWithdrawn:
		return false
	}
	return true
}

// RootCauseRequired: repeats need a 5W1H record before resolution.
func (c *Complaint) RootCauseRequired() bool { return c.Repeat }

// Escalated tells whether an escalation for this cause was already recorded.
func (c *Complaint) Escalated(cause eventsv1.EscalationCause, causeEventID string) bool {
	return c.escalated[causeKey(cause, causeEventID)]
}

// Notified tells whether stakeholders were already notified for a cause event.
func (c *Complaint) Notified(causeEventID string) bool { return c.notified[causeEventID] }

func causeKey(cause eventsv1.EscalationCause, id string) string {
	return cause.String() + "/" + id
}

// Evolve applies one stored event of the complaint's stream.
func (c *Complaint) Evolve(e *eventsv1.Envelope) {
	c.Version = e.GetVersion()
	if c.ID == "" {
		c.ID = e.GetComplaintId()
	}
	at := e.GetOccurredAt().AsTime()
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		r := p.ComplaintReceived
		c.Status = StatusReceived
		c.CustomerRef = r.GetCustomer().GetCustomerRef()
		c.Tier = r.GetCustomer().GetTier()
		c.Channel = r.GetChannel()
		c.ProductModel = r.GetProduct().GetModel()
		c.Fingerprint = r.GetProblemFingerprint()
		c.Text = strings.TrimSpace(r.GetDescription() + "\n" + r.GetCustomerRequest())
		c.Description = r.GetDescription()
		c.FirstReceiver = r.GetFirstReceiver()
		c.Contact = r.GetCustomer().GetPersonal()
		c.Anonymous = r.GetCustomer().GetAnonymous()
		c.Organisation = r.GetCustomer().GetOrganisation()
		c.SerialNumber = r.GetProduct().GetSerialNumber()
		c.Region = r.GetPlace().GetRegion()
	case *eventsv1.Envelope_ComplaintAccepted:
		c.Status = StatusAccepted
		c.AcceptedAt = at
		c.AcceptedEventID = e.GetEventId()
	case *eventsv1.Envelope_CustomerDetailsAmended:
		// An amendment replaces the customer's details, as in intake.
		x := p.CustomerDetailsAmended
		if t := x.GetTier(); t != eventsv1.CustomerTier_CUSTOMER_TIER_UNSPECIFIED {
			c.Tier = t
		}
		c.Contact, c.Organisation, c.Anonymous = x.GetPersonal(), x.GetOrganisation(), false
	case *eventsv1.Envelope_CustomerErased:
		// The data key is gone: the sealed contact can no longer be read.
		c.Contact, c.Erased = nil, true
	case *eventsv1.Envelope_ComplaintWithdrawn:
		c.Status = StatusWithdrawn
	case *eventsv1.Envelope_ComplaintClassified:
		x := p.ComplaintClassified
		c.Classified = true
		c.Category, c.Severity, c.Priority = x.GetCategory(), x.GetSeverity(), x.GetPriority()
		c.RulesFired = x.GetRulesFired()
		c.PolicyVersion = e.GetPolicyVersion()
		if c.Status == StatusAccepted || c.Status == StatusReceived {
			c.Status = StatusClassified
		}
	case *eventsv1.Envelope_RepeatComplaintFlagged:
		c.Repeat = true
		c.Earlier = p.RepeatComplaintFlagged.GetEarlierComplaintIds()
		c.Priority = max(c.Priority, p.RepeatComplaintFlagged.GetRaisedPriority())
	case *eventsv1.Envelope_ComplaintAssigned:
		x := p.ComplaintAssigned
		c.Team, c.Owner, c.OwnerAccepted, c.AssignedAt = x.GetTeam(), x.GetOwner(), false, at
		c.Assignments++
		if c.FirstReceiver == "" {
			c.FirstReceiver = x.GetFirstReceiver()
		}
		if c.Status == StatusClassified {
			c.Status = StatusAssigned
		}
	case *eventsv1.Envelope_AssignmentAccepted:
		c.OwnerAccepted = true
		c.startWork()
	case *eventsv1.Envelope_ComplaintEscalated:
		x := p.ComplaintEscalated
		c.Level = x.GetToLevel()
		if c.escalated == nil {
			c.escalated = map[string]bool{}
		}
		c.escalated[causeKey(x.GetCause(), x.GetCauseEventId())] = true
	case *eventsv1.Envelope_StakeholdersNotified:
		if id := p.StakeholdersNotified.GetCauseEventId(); id != "" {
			if c.notified == nil {
				c.notified = map[string]bool{}
			}
			c.notified[id] = true
		}
	case *eventsv1.Envelope_ResponseRecorded:
		c.Responses++
		c.startWork()
	case *eventsv1.Envelope_SolutionProposed:
		x := p.SolutionProposed
		c.Solutions = append(c.Solutions, Solution{ID: x.GetSolutionId(), Summary: x.GetSummary(), ProposedBy: x.GetProposedBy(), Required: x.GetRequiredReviews()})
		c.startWork()
	case *eventsv1.Envelope_SolutionReviewed:
		x := p.SolutionReviewed
		if s := c.solution(x.GetSolutionId()); s != nil {
			s.Reviews = append(s.Reviews, Review{Level: x.GetLevel(), Approved: x.GetApproved(), By: x.GetReviewedBy(), Comment: x.GetComment()})
		}
	case *eventsv1.Envelope_DispatchRequested:
		c.WorkOrders = append(c.WorkOrders, p.DispatchRequested.GetWorkOrderId())
		c.startWork()
	case *eventsv1.Envelope_RootCauseRecorded:
		c.RootCause = true
	case *eventsv1.Envelope_ComplaintPutOnHold:
		if c.Status != StatusOnHold {
			c.statusBeforeHold = c.Status
		}
		c.Status, c.Hold = StatusOnHold, p.ComplaintPutOnHold.GetReason()
	case *eventsv1.Envelope_ComplaintTakenOffHold:
		c.Status, c.Hold = c.statusBeforeHold, eventsv1.HoldReason_HOLD_REASON_UNSPECIFIED
		c.startWork()
	case *eventsv1.Envelope_ComplaintResolved:
		c.Status = StatusResolved
		c.ResolutionCode = p.ComplaintResolved.GetResolutionCode()
		c.ResolvedAt = at
	case *eventsv1.Envelope_ComplaintReopened:
		// Back to the owner: the old solution did not satisfy, a new one
		// (and its reviews) is needed before the next resolution.
		c.Status = StatusInProgress
		c.ReopenCount = p.ComplaintReopened.GetReopenCount()
		c.Solutions = nil
		c.ResolutionCode, c.ResolvedAt = "", time.Time{}
	case *eventsv1.Envelope_ComplaintClosed:
		c.Status = StatusClosed
	}
}

// startWork moves an assigned complaint to in progress.
func (c *Complaint) startWork() {
	if c.Status == StatusAssigned || c.Status == StatusClassified {
		c.Status = StatusInProgress
	}
}

func (c *Complaint) solution(id string) *Solution {
	for i := range c.Solutions {
		if c.Solutions[i].ID == id {
			return &c.Solutions[i]
		}
	}
	return nil
}

// Current is the latest proposed solution, or nil.
func (c *Complaint) Current() *Solution {
	if len(c.Solutions) == 0 {
		return nil
	}
	return &c.Solutions[len(c.Solutions)-1]
}

// Verdict is a solution's review state against the levels required, in
// chain order. An approval counts only under four eyes: not given by the
// proposer, nor by someone whose approval counts at another level (the log
// may hold such reviews from before the rule; they count for nothing, and
// the level is pending again). Any rejection rejects the solution.
func (s *Solution) Verdict(required []eventsv1.ReviewLevel) (approved bool, rejected bool, pending []eventsv1.ReviewLevel) {
	got := map[eventsv1.ReviewLevel]bool{}
	approvers := map[string]bool{}
	for _, r := range s.Reviews {
		if !r.Approved {
			return false, true, nil
		}
		if got[r.Level] || r.By == s.ProposedBy || approvers[r.By] {
			continue
		}
		got[r.Level], approvers[r.By] = true, true
	}
	for _, l := range required {
		if !got[l] {
			pending = append(pending, l)
		}
	}
	return len(pending) == 0, false, pending
}

// RequiredReviews are the levels a solution of the complaint needs: those
// recorded when it was proposed and those its severity needs now (a
// reclassification after the proposal may add levels, never remove them).
func (c *Complaint) RequiredReviews(s *Solution, p *Policy) []eventsv1.ReviewLevel {
	out := append(slices.Clone(s.Required), p.RequiredReviews(c.Severity)...)
	slices.Sort(out)
	return slices.Compact(out)
}
