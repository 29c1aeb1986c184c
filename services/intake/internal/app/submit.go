package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	otelcodes "go.opentelemetry.io/otel/codes"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake/internal/domain"
)

// SubmitResult tells the adapter which complaint its submission is.
type SubmitResult struct {
	ComplaintID string
	Created     bool // recorded by this call
	Linked      bool // joined an earlier complaint from another channel
	Accepted    bool
}

// Submit records a complaint from a channel adapter, exactly once per
// (channel, channel_ref), and links a second channel's report of the same
// customer and problem to the first complaint while that one is open; a
// report after it was resolved, closed or withdrawn is a complaint of its
// own (routing flags a repeat).
//
// Crash safety, step by step (a retry is the adapter resending the same
// request after a lost reply):
//  1. The complaint id is derived from (channel, channel_ref); no write.
//  2. A submission already linked elsewhere is found in the link index; the
//     DuplicateLinked event is (re)appended if a crash lost it.
//  3. The problem fingerprint is claimed in the duplicate index (KV Create),
//     while the personal data is sealed (KV Create of a new customer's data
//     key): two independent writes at once, see claimAndSeal, which also
//     overlaps step 2's read with the sealing.
//     A crash after the claim leaves an entry owned by this id: the retry
//     finds its own claim and carries on; if no retry ever comes, a later
//     submission of the same problem takes the stale claim over after
//     ClaimGrace. Nothing is lost, nothing is opened twice. A claim whose
//     complaint is no longer open is taken over at once, the same way.
//  4. ComplaintReceived is appended with expected version 0: one writer wins
//     however many run at once; the rest read the complaint back.
//  5. A duplicate first records the link (KV Create, first writer wins),
//     then appends DuplicateLinked on the first complaint, once per
//     (channel, channel_ref). If the first complaint ended before its
//     DuplicateLinked was appended, the link is void: it is deleted from
//     the index (at the revision read) and the submission starts over at
//     step 2; a crash in between leaves the same void link to the retry.
//
// A reference already used for a different report (another body, not a
// retry) is refused with *ReusedRefError at whichever step finds it, before
// anything is appended; a claim step 3 made for its problem is released.
func (a *App) Submit(ctx context.Context, p auth.Principal, req *intakev1.SubmitComplaintRequest) (res SubmitResult, err error) {
	// The submission is one decision across the indexes and the complaint
	// stream: one span, in which the events are stamped, and of which the
	// kernel's commands (a link, a settled receipt) are children.
	ctx, span := a.tracer.Start(ctx, "SubmitComplaint")
	defer func() {
		if err != nil {
			span.SetStatus(otelcodes.Error, err.Error())
		}
		span.End()
	}()
	now := a.clock.Now()
	if err := invalid(domain.ValidateSubmission(req, now, a.cfg.Limits)); err != nil {
		return SubmitResult{}, err
	}
	if !adapterFor(p, req.GetChannel()) {
		return SubmitResult{}, fmt.Errorf("%w: %s may not submit for %s", kernel.ErrPermission, p.ID, req.GetChannel())
	}
	id := domain.ComplaintID(req.GetChannel(), req.GetChannelRef())
	link := &eventsv1.DuplicateLinked{Channel: req.GetChannel(), ChannelRef: req.GetChannelRef(), AdapterId: p.ID, ReceivedAt: req.GetReceivedAt()}

	ci := req.GetCustomer()
	ref := pii.CustomerRef(a.cfg.Secret, ci.GetPhone(), ci.GetEmail())
	reachable := ref != ""
	if !reachable {
		// No contact to recognise the customer by: a key of its own.
		ref = "cx_" + pii.KeyedHash(a.cfg.Secret, "complaint:"+id)
	}
	fp := pii.KeyedHash(a.cfg.Secret, ref+"|"+domain.ProblemKey(req.GetProduct(), req.GetDescription()))
	for range kernel.MaxAttempts {
		own, err := a.claimAndSeal(ctx, p, req, ref, fp, id, now, reachable)
		if err != nil {
			return SubmitResult{}, err
		}
		first := own.first
		switch {
		case own.linked:
		case own.first != id:
			// The reference may already name a complaint of its own: then
			// this is a retry of it (its claim since taken over by a later
			// report, after it ended or after the window), answered as
			// such, or a reused reference, refused — not a duplicate.
			if _, err := a.load(ctx, id); err == nil {
				if own.sealErr != nil {
					return SubmitResult{}, own.sealErr
				}
				return a.receive(ctx, p, id, own.received, fp, reachable)
			} else if !errors.Is(err, kernel.ErrNotFound) {
				return SubmitResult{}, err
			}
			first, err = a.index.Link(ctx, id, own.first)
			if err != nil {
				return SubmitResult{}, fmt.Errorf("write link index: %w", err)
			}
		default:
			return a.receive(ctx, p, id, own.received, fp, reachable)
		}
		res, err := a.joinFirst(ctx, p, first, link, fp)
		if !errors.Is(err, domain.ErrNotOpen) {
			return res, err
		}
		// The first complaint was resolved, closed or withdrawn after the
		// link was decided and before it was recorded there (or a crash
		// came in between): the link is void. Drop it and decide again;
		// the claim, its owner no longer open, is then taken over.
		if err := a.index.Unlink(ctx, id, first); err != nil {
			return SubmitResult{}, fmt.Errorf("drop void link: %w", err)
		}
	}
	return SubmitResult{}, errClaimPending
}

// receive records a new complaint: ComplaintReceived (and the automatic
// acceptance) at version 0 of its stream.
func (a *App) receive(ctx context.Context, p auth.Principal, id string, received *eventsv1.ComplaintReceived, fp string, reachable bool) (SubmitResult, error) {
	msgs, err := domain.DecideReceive(domain.State{}, received, reachable)
	if err != nil {
		return SubmitResult{}, err
	}
	envs, err := a.receipt(ctx, id, p, msgs)
	if err != nil {
		return SubmitResult{}, err
	}
	// Stamped outside the kernel's loop: the first events of a new stream
	// go in at version 0 without a read, and a conflict is settled below.
	_, err = a.store.Append(ctx, eventlog.ComplaintStream(id), 0, envs...)
	if errors.Is(err, eventlog.ErrConflict) {
		res, storedFP, err := a.finishReceive(ctx, id, p, received, envs[0], msgs[1:])
		if errors.As(err, new(*ReusedRefError)) && reachable && storedFP != fp {
			// This attempt claimed another problem for a complaint that
			// does not report it: give the claim back.
			if rerr := a.index.Release(ctx, fp, id); rerr != nil {
				return SubmitResult{}, fmt.Errorf("release duplicate claim: %w", rerr)
			}
		}
		return res, err
	}
	if err != nil {
		return SubmitResult{}, fmt.Errorf("append: %w", err)
	}
	return SubmitResult{ComplaintID: id, Created: true, Accepted: len(msgs) > 1}, nil
}

// receipt stamps a new complaint's events: ComplaintReceived starts the
// submission's correlation, and what follows it (the automatic acceptance)
// is caused by it.
func (a *App) receipt(ctx context.Context, id string, p auth.Principal, msgs []proto.Message) ([]*eventsv1.Envelope, error) {
	now := a.clock.Now()
	envs, err := a.w.Envelopes(ctx, id, kernel.Cause{Actor: p.ID}, nil, now, msgs[0])
	if err != nil || len(msgs) == 1 {
		return envs, err
	}
	rest, err := a.w.Envelopes(ctx, id, receivedCause(p, envs[0]), nil, now, msgs[1:]...)
	return append(envs, rest...), err
}

// receivedCause is the cause of what follows a ComplaintReceived.
func receivedCause(p auth.Principal, received *eventsv1.Envelope) kernel.Cause {
	return kernel.Cause{Actor: p.ID, EventID: received.GetEventId(), CorrelationID: received.GetCorrelationId()}
}

// finishReceive settles a submission whose append conflicted: usually an
// earlier attempt stored the complaint. But the log stores a batch one event
// at a time, so another service reacting to this very ComplaintReceived may
// have appended before its ComplaintAccepted: the acceptance then follows.
// The same holds when an earlier attempt crashed between the two events: the
// retry appends the acceptance it would have made. A complaint still
// received is one no acceptance was stored for, so none is made twice.
// ours is the ComplaintReceived this attempt tried to store, rest what
// followed it in the decision.
//
// A stored ComplaintReceived that is not the same report as received is a
// reused channel reference: refused, nothing appended, and the stored
// report's problem fingerprint returned.
func (a *App) finishReceive(ctx context.Context, id string, p auth.Principal, received *eventsv1.ComplaintReceived, ours *eventsv1.Envelope, rest []proto.Message) (SubmitResult, string, error) {
	var stored *eventsv1.Envelope // the ComplaintReceived on the stream, ours or an earlier attempt's
	res, err := kernel.Execute(ctx, a.w, kernel.Command[domain.State]{
		Name:        "FinishReceive",
		Stream:      eventlog.ComplaintStream(id),
		ComplaintID: id,
		// The conflict showed the stream's first event: a read short of
		// it must not pass for an empty stream.
		Cause: kernel.Cause{Actor: p.ID, Version: 1},
		Fold: func(recs []eventlog.Record) (domain.State, error) {
			s, err := fold(recs)
			if err == nil {
				stored = recs[0].Event
			}
			return s, err
		},
		Decide: func(s domain.State, _ time.Time) ([]proto.Message, error) {
			if !domain.SameSubmission(s.Received, received) {
				return nil, &ReusedRefError{Channel: received.GetChannel(), ChannelRef: received.GetChannelRef()}
			}
			if s.Status != domain.StatusReceived {
				return nil, nil
			}
			return rest, nil
		},
		// The acceptance answers the stored ComplaintReceived, known only
		// once read: an earlier attempt's (same channel reference, same
		// report), in whose correlation it then belongs.
		Stamp: func(m *eventlog.Meta) {
			c := receivedCause(p, stored)
			m.CausationID, m.CorrelationID = c.EventID, c.CorrelationID
		},
	})
	storedFP := res.State.Received.GetProblemFingerprint()
	if err != nil {
		return SubmitResult{}, storedFP, err
	}
	return SubmitResult{
		ComplaintID: id,
		Created:     stored.GetEventId() == ours.GetEventId(),
		Accepted:    res.State.Status == domain.StatusAccepted || len(res.Events) > 0,
	}, storedFP, nil
}

// claim returns the complaint that owns the fingerprint: id itself when this
// submission is the first (or its own earlier attempt claimed it).
func (a *App) claim(ctx context.Context, fp, id string, now time.Time) (string, error) {
	for range kernel.MaxAttempts {
		owner, created, err := a.index.Claim(ctx, fp, id, now)
		if err != nil {
			return "", fmt.Errorf("claim in duplicate index: %w", err)
		}
		if created || owner.ComplaintID == id {
			return id, nil
		}
		s, err := a.load(ctx, owner.ComplaintID)
		switch {
		case err == nil && s.Open():
			return owner.ComplaintID, nil
		case err == nil:
			// Resolved, closed or withdrawn: this report is not a duplicate
			// of it but a complaint of its own (routing flags a repeat);
			// it takes the claim over for the rest of the window.
		case !errors.Is(err, kernel.ErrNotFound):
			return "", err
		case now.Sub(owner.ClaimedAt) < a.cfg.ClaimGrace:
			// The owner claimed but never wrote its complaint. Moments
			// ago: it is probably appending now.
			return "", errClaimPending
		}
		// Long ago: it crashed and was never retried. Either way, take the
		// claim over (CAS on the revision; on a race, look again).
		if err := a.index.Takeover(ctx, fp, id, now, owner.Revision); err == nil {
			return id, nil
		}
	}
	return "", errClaimPending
}

// errClaimPending: the problem is claimed by a submission that is
// probably appending right now; the caller retries in a moment.
var errClaimPending = fmt.Errorf("another submission of the same problem is in progress: %w", kernel.ErrRetryLater)

// ownership is what claimAndSeal found out about a submission.
type ownership struct {
	// linked: an earlier attempt of this submission joined first, which
	// the link index recorded.
	linked bool
	// first is the complaint that owns the problem: the submission's own
	// id when it is to be recorded (received is then its event).
	first    string
	received *eventsv1.ComplaintReceived
	// sealErr: building received failed; it matters only when the
	// submission turns out to be recorded after all (see Submit).
	sealErr error
}

// claimAndSeal finds out whether the submission is a new complaint — not
// linked before (link index read), first to claim the fingerprint (claim;
// only a reachable customer has one worth claiming) — while building the
// event (received), which seals the personal data and so, for a new
// customer, reads and then creates the data key. The two branches are
// independent — different keys in different buckets, neither reads the
// other — so they run at once, each a read and a synced write: the
// submission waits for one fsync instead of two, and the link read adds no
// round trip. Crash safety is that of running them one after the other: both are
// durable before the append, and a crash between or during them leaves
// either a claim (the retry finds its own claim; see Submit) or a data key
// (read back and reused by the retry; a key with nothing sealed under it
// holds no personal data). The claim still waits for the link index: a
// linked submission must not claim the problem again after the duplicate
// window.
//
// When the submission is linked, or another complaint owns the
// fingerprint, the sealing was mostly done for nothing (it is used only
// when the reference turns out to name a stored complaint, see Submit): that complaint is of the
// same customer (the fingerprint covers the customer reference), whose key
// therefore exists and was only read (or, if the customer was erased since,
// was made anew with nothing sealed under it).
func (a *App) claimAndSeal(ctx context.Context, p auth.Principal, req *intakev1.SubmitComplaintRequest, ref, fp, id string, now time.Time, reachable bool) (ownership, error) {
	type sealed struct {
		ev  *eventsv1.ComplaintReceived
		err error
	}
	done := make(chan sealed, 1)
	go func() {
		ev, err := a.received(ctx, p, req, ref, fp)
		done <- sealed{ev, err}
	}()
	own, err := a.owner(ctx, fp, id, now, reachable)
	s := <-done
	switch {
	case err != nil:
		return ownership{}, err
	case own.linked || own.first != id:
		own.received, own.sealErr = s.ev, s.err
		return own, nil
	case s.err != nil:
		return ownership{}, s.err
	}
	own.received = s.ev
	return own, nil
}

// owner is claimAndSeal's index branch: the link index, then the claim.
func (a *App) owner(ctx context.Context, fp, id string, now time.Time, reachable bool) (ownership, error) {
	first, linked, err := a.index.LinkedTo(ctx, id)
	switch {
	case err != nil:
		return ownership{}, fmt.Errorf("read link index: %w", err)
	case linked:
		return ownership{linked: true, first: first}, nil
	case !reachable:
		return ownership{first: id}, nil
	}
	first, err = a.claim(ctx, fp, id, now)
	if err != nil {
		return ownership{}, err
	}
	return ownership{first: first}, nil
}

// joinFirst appends DuplicateLinked on the first complaint (once). A
// submission linked before whose problem (fingerprint fp) or reception time
// is not the linked one's reuses its channel reference: refused.
func (a *App) joinFirst(ctx context.Context, p auth.Principal, first string, link *eventsv1.DuplicateLinked, fp string) (SubmitResult, error) {
	s, err := a.update(ctx, "LinkDuplicate", first, p, func(s domain.State) ([]proto.Message, error) {
		if prev, ok := s.Link(link.GetChannel(), link.GetChannelRef()); ok &&
			(s.Received.GetProblemFingerprint() != fp || !prev.ReceivedAt.Equal(link.GetReceivedAt().AsTime())) {
			return nil, &ReusedRefError{Channel: link.GetChannel(), ChannelRef: link.GetChannelRef()}
		}
		return domain.DecideLink(s, link)
	})
	var reused *ReusedRefError
	if errors.As(err, &reused) {
		return SubmitResult{}, err
	}
	if err != nil {
		return SubmitResult{}, fmt.Errorf("link to first complaint: %w", err)
	}
	return SubmitResult{ComplaintID: first, Linked: true, Accepted: s.Status == domain.StatusAccepted}, nil
}

// received builds the event, sealing the personal data.
func (a *App) received(ctx context.Context, p auth.Principal, req *intakev1.SubmitComplaintRequest, ref, fp string) (*eventsv1.ComplaintReceived, error) {
	ci := req.GetCustomer()
	cust := &eventsv1.Customer{CustomerRef: ref, Tier: ci.GetTier(), Organisation: ci.GetOrganisation(), Anonymous: ci.GetAnonymous()}
	if cust.Tier == eventsv1.CustomerTier_CUSTOMER_TIER_UNSPECIFIED {
		cust.Tier = eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR
	}
	sealed, err := a.seal(ctx, ref, ci)
	if err != nil {
		return nil, err
	}
	cust.Personal = sealed
	return &eventsv1.ComplaintReceived{
		Channel:            req.GetChannel(),
		ChannelRef:         req.GetChannelRef(),
		AdapterId:          p.ID,
		ReceivedAt:         req.GetReceivedAt(),
		Customer:           cust,
		Product:            req.GetProduct(),
		Place:              req.GetPlace(),
		Description:        req.GetDescription(),
		Emotion:            req.GetEmotion(),
		CustomerRequest:    req.GetCustomerRequest(),
		Attachments:        req.GetAttachments(),
		FirstReceiver:      req.GetFirstReceiver(),
		ProblemFingerprint: fp,
	}, nil
}

// seal encrypts the customer's personal fields; nil when there are none.
func (a *App) seal(ctx context.Context, ref string, ci *intakev1.CustomerInput) (*eventsv1.SealedPersonalData, error) {
	pd := &eventsv1.PersonalData{Name: ci.GetName(), Phone: ci.GetPhone(), Email: ci.GetEmail(), Address: ci.GetAddress()}
	if pd.Name == "" && pd.Phone == "" && pd.Email == "" && pd.Address == "" {
		return nil, nil
	}
	sealed, err := a.keys.Seal(ctx, ref, pd)
	if err != nil {
		return nil, fmt.Errorf("seal personal data: %w", err)
	}
	return sealed, nil
}

// ReusedRefError refuses a submission whose channel reference already names
// a different report. It is a kind of kernel.ErrPrecondition; the gRPC face
// answers it as AlreadyExists (HTTP 409) naming channel_ref.
type ReusedRefError struct {
	Channel    eventsv1.Channel
	ChannelRef string
}

func (e *ReusedRefError) Error() string {
	return fmt.Sprintf("channel_ref: %q already names another report from %s; a retry must resend the same report, a new report needs a new reference", e.ChannelRef, e.Channel)
}

// Is makes errors.Is(err, kernel.ErrPrecondition) hold.
func (e *ReusedRefError) Is(target error) bool { return target == kernel.ErrPrecondition }

func reusedRef(req *intakev1.SubmitComplaintRequest) error {
	return &ReusedRefError{Channel: req.GetChannel(), ChannelRef: req.GetChannelRef()}
}
