// Package domain is intake's model of a complaint: its state rebuilt from
// intake's own events (Evolve), the rules that turn a command into new
// events (Decide…), the validation of a submission and the identities
// (complaint id, problem key) derived from it. No I/O here.
package domain

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Status of a complaint as intake sees it.
type Status int

const (
	StatusNone Status = iota
	StatusReceived
	StatusAccepted
	StatusWithdrawn
)

// Errors of the decide functions, of the kernel's kinds (libs/api maps
// them to status codes). Their messages name no complaint: a complaint id
// derives from a channel reference, which may be a customer's message id.
var (
	ErrNotFound        = fmt.Errorf("complaint %w", kernel.ErrNotFound)
	ErrAlreadyReceived = &kernel.PreconditionError{Reason: "complaint already received"}
	ErrWithdrawn       = &kernel.PreconditionError{Reason: "complaint is withdrawn"}
	ErrErased          = &kernel.PreconditionError{Reason: "customer personal data is erased"}
	// ErrTooManyAttach is turned into a violation of attachments by the
	// caller, which knows the limit.
	ErrTooManyAttach = errors.New("too many attachments")
)

// SystemActor accepts a complaint complete on arrival.
const SystemActor = "system"

// Link is another channel's report of the same problem.
type Link struct {
	Channel    eventsv1.Channel
	ChannelRef string
	AdapterID  string
	ReceivedAt time.Time
}

// State is one complaint rebuilt from its stream.
type State struct {
	ID           string
	Version      uint64
	Status       Status
	Received     *eventsv1.ComplaintReceived
	RecordedAt   time.Time
	Customer     *eventsv1.Customer
	Attachments  []*eventsv1.Attachment
	AcceptedBy   string
	AcceptedAuto bool
	Links        []Link
	Erased       bool
	WithdrawnBy  string
	WithdrawnWhy string
	// Resolved: routing resolved the complaint or follow-up closed it, and
	// it was not reopened since. Intake writes neither event; it reads them
	// to tell a duplicate (the first complaint still open) from a repeat.
	Resolved bool
}

// Exists reports whether the complaint was received.
func (s State) Exists() bool { return s.Status != StatusNone }

// Open reports whether the complaint is still being handled: received, not
// withdrawn, not resolved or closed (or reopened since). Only an open
// complaint takes in another channel's report as a duplicate; a report
// after it ended is a complaint of its own, which routing flags as a repeat
// (a withdrawn complaint counts for neither).
func (s State) Open() bool {
	return s.Exists() && s.Status != StatusWithdrawn && !s.Resolved
}

// Evolve applies one stored event to the state. Of other services' events
// only the end and reopening of handling count (Open); the rest, and
// unknown events, only advance the version.
func Evolve(s State, e *eventsv1.Envelope) State {
	s.Version = e.GetVersion()
	if s.ID == "" {
		s.ID = e.GetComplaintId()
	}
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		r := p.ComplaintReceived
		s.Status = StatusReceived
		s.Received = r
		s.RecordedAt = e.GetRecordedAt().AsTime()
		s.Customer = proto.Clone(r.GetCustomer()).(*eventsv1.Customer)
		s.Attachments = append([]*eventsv1.Attachment(nil), r.GetAttachments()...)
	case *eventsv1.Envelope_ComplaintAccepted:
		if s.Status == StatusReceived {
			s.Status = StatusAccepted
		}
		s.AcceptedBy = p.ComplaintAccepted.GetAcceptedBy()
		s.AcceptedAuto = p.ComplaintAccepted.GetAutomatic()
	case *eventsv1.Envelope_DuplicateLinked:
		d := p.DuplicateLinked
		s.Links = append(s.Links, Link{d.GetChannel(), d.GetChannelRef(), d.GetAdapterId(), d.GetReceivedAt().AsTime()})
	case *eventsv1.Envelope_CustomerDetailsAmended:
		a := p.CustomerDetailsAmended
		if s.Customer == nil {
			s.Customer = &eventsv1.Customer{}
		}
		s.Customer.Personal = a.GetPersonal()
		s.Customer.Organisation = a.GetOrganisation()
		s.Customer.Tier = a.GetTier()
		s.Customer.Anonymous = false
	case *eventsv1.Envelope_EvidenceAttached:
		s.Attachments = append(s.Attachments, p.EvidenceAttached.GetAttachments()...)
	case *eventsv1.Envelope_ComplaintWithdrawn:
		s.Status = StatusWithdrawn
		s.WithdrawnBy = p.ComplaintWithdrawn.GetWithdrawnBy()
		s.WithdrawnWhy = p.ComplaintWithdrawn.GetReason()
	case *eventsv1.Envelope_CustomerErased:
		s.Erased = true
	case *eventsv1.Envelope_ComplaintResolved, *eventsv1.Envelope_ComplaintClosed:
		s.Resolved = true
	case *eventsv1.Envelope_ComplaintReopened:
		s.Resolved = false
	}
	return s
}

// Replay rebuilds a complaint from its events in order.
func Replay(events []*eventsv1.Envelope) State {
	var s State
	for _, e := range events {
		s = Evolve(s, e)
	}
	return s
}

// Complete reports whether a record can be accepted (受理) without an
// agent: the customer can be reached (a phone or an email), the product is
// identified (a model) and the problem is described.
func Complete(r *eventsv1.ComplaintReceived, contactReachable bool) bool {
	return contactReachable &&
		r.GetProduct().GetModel() != "" &&
		r.GetDescription() != ""
}

// DecideReceive records a new complaint, accepted at once when complete.
func DecideReceive(s State, r *eventsv1.ComplaintReceived, contactReachable bool) ([]proto.Message, error) {
	if s.Exists() {
		return nil, ErrAlreadyReceived
	}
	out := []proto.Message{r}
	if Complete(r, contactReachable) {
		out = append(out, &eventsv1.ComplaintAccepted{AcceptedBy: SystemActor, Automatic: true})
	}
	return out, nil
}

// DecideAccept records an agent's acceptance. Accepting an accepted
// complaint is a no-op (nil events, nil error).
func DecideAccept(s State, agent string) ([]proto.Message, error) {
	switch s.Status {
	case StatusNone:
		return nil, ErrNotFound
	case StatusWithdrawn:
		return nil, ErrWithdrawn
	case StatusAccepted:
		return nil, nil
	}
	return []proto.Message{&eventsv1.ComplaintAccepted{AcceptedBy: agent}}, nil
}

// ErrNotOpen refuses to link a report to a complaint that is no longer
// open: the report is a complaint of its own (see Open).
var ErrNotOpen = &kernel.PreconditionError{Reason: "complaint is no longer open"}

// DecideLink records another channel's report of the same problem, once per
// (channel, channel_ref), on a complaint still open. A link already
// recorded stays, whatever happened to the complaint since.
func DecideLink(s State, d *eventsv1.DuplicateLinked) ([]proto.Message, error) {
	switch {
	case !s.Exists():
		return nil, ErrNotFound
	case s.HasLink(d.GetChannel(), d.GetChannelRef()):
		return nil, nil
	case !s.Open():
		return nil, ErrNotOpen
	}
	return []proto.Message{d}, nil
}

// HasLink reports whether the submission (channel, ref) is linked here.
func (s State) HasLink(ch eventsv1.Channel, ref string) bool {
	_, ok := s.Link(ch, ref)
	return ok
}

// Link returns the link of the submission (channel, ref), if any.
func (s State) Link(ch eventsv1.Channel, ref string) (Link, bool) {
	for _, l := range s.Links {
		if l.Channel == ch && l.ChannelRef == ref {
			return l, true
		}
	}
	return Link{}, false
}

// DecideAmend replaces the customer's details.
func DecideAmend(s State, a *eventsv1.CustomerDetailsAmended) ([]proto.Message, error) {
	switch {
	case !s.Exists():
		return nil, ErrNotFound
	case s.Status == StatusWithdrawn:
		return nil, ErrWithdrawn
	case s.Erased:
		return nil, ErrErased
	}
	return []proto.Message{a}, nil
}

// DecideAttach adds evidence, within the limit of attachments per complaint.
func DecideAttach(s State, a *eventsv1.EvidenceAttached, maxAttachments int) ([]proto.Message, error) {
	switch {
	case !s.Exists():
		return nil, ErrNotFound
	case s.Status == StatusWithdrawn:
		return nil, ErrWithdrawn
	case len(s.Attachments)+len(a.GetAttachments()) > maxAttachments:
		return nil, ErrTooManyAttach
	}
	return []proto.Message{a}, nil
}

// DecideWithdraw records a withdrawal; withdrawing twice is a no-op.
func DecideWithdraw(s State, w *eventsv1.ComplaintWithdrawn) ([]proto.Message, error) {
	switch s.Status {
	case StatusNone:
		return nil, ErrNotFound
	case StatusWithdrawn:
		return nil, nil
	}
	return []proto.Message{w}, nil
}

// DecideErase records that the customer's key was destroyed; once only.
func DecideErase(s State, e *eventsv1.CustomerErased) ([]proto.Message, error) {
	switch {
	case !s.Exists():
		return nil, ErrNotFound
	case s.Erased:
		return nil, nil
	}
	return []proto.Message{e}, nil
}

// SameSubmission reports whether two ComplaintReceived record the same
// report: a retry of a submission, not another one under a reused channel
// reference. The adapter and the sealed personal data (sealed afresh on
// every attempt) are left out: the customer reference, a keyed hash of the
// contact, stands for the customer, and nothing personal is compared in
// clear.
func SameSubmission(stored, ours *eventsv1.ComplaintReceived) bool {
	a, b := proto.Clone(stored).(*eventsv1.ComplaintReceived), proto.Clone(ours).(*eventsv1.ComplaintReceived)
	for _, r := range []*eventsv1.ComplaintReceived{a, b} {
		r.AdapterId = ""
		if r.Customer != nil {
			r.Customer.Personal = nil
		}
	}
	return proto.Equal(a, b)
}
