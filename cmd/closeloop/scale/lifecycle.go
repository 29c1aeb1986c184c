package scale

import (
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/pii"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock"
)

// Producers, as each service stamps its events.
const (
	byIntake   = "intake"
	byRouting  = "routing"
	byDispatch = "dispatch"
	byFollowup = "followup"
)

// Stages an open complaint may have stopped at, and how many of a hundred
// open complaints stop there.
type stage int

const (
	stageAssigned   stage = iota // not answered yet
	stageInProgress              // answered, being worked on
	stageOnHold                  // waiting for the customer: clocks paused
	stageTechnician              // a technician booked, not yet in contact
	stageOnSite                  // the technician contacted the customer and arrived
	stageResolved                // resolved, follow-up and survey running
	stageReopened                // the customer was not satisfied
	stageClosed                  // not open
)

var openStages = []struct {
	stage  stage
	weight int
}{{stageAssigned, 15}, {stageInProgress, 30}, {stageOnHold, 10}, {stageTechnician, 5}, {stageOnSite, 10}, {stageResolved, 22}, {stageReopened, 8}}

// idSpace names the generated complaints (uuid v5 of the channel reference).
var idSpace = uuid.MustParse("5ca1e000-0000-5000-8000-c105e100b000")

// secret keys the generated customer references and fingerprints as
// intake's INTAKE_PII_SECRET would.
var secret = []byte("closeloop-scale-generator-secret")

// lifecycle writes one complaint's stream, event by event, and after each
// event the sla-clock's decision on it, as the running services would.
type lifecycle struct {
	g       *generator
	w       *writer
	rng     *mrand.Rand
	id      string
	stream  eventlog.StreamID
	version uint64
	clocks  *slaclock.SimulatedComplaint
	corr    string
	cause   string
	t       time.Time // the time of the next event
	limit   time.Time // events of an open complaint happen before it (now)
}

// complaint writes complaint i: open or closed (Config.Open), its kind of
// problem, channel and customer drawn from the seed.
func (g *generator) complaint(ctx context.Context, w *writer, i int) error {
	rng := mrand.New(mrand.NewPCG(g.cfg.Seed, uint64(i)))
	ref := channelRef(i)
	id := complaintID(i)
	l := &lifecycle{g: g, w: w, rng: rng, id: id, stream: eventlog.ComplaintStream(id), clocks: g.sim.Complaint(id), limit: g.cfg.Now}
	final := stageClosed
	if g.cfg.Open(i) {
		// Open ones arrived during the last 36 hours.
		l.t = g.cfg.Now.Add(-time.Duration(rng.Int64N(int64(36*time.Hour))) - 10*time.Minute)
		final = pickStage(rng)
	} else {
		// Closed ones anywhere in the three years before, ending 40 days ago at the latest.
		l.t = g.cfg.Now.Add(-40*24*time.Hour - time.Duration(rng.Int64N(int64(3*365*24*time.Hour-40*24*time.Hour))))
	}
	return l.run(ctx, ref, final)
}

// channelRef is complaint i's reference at its channel (the web form).
func channelRef(i int) string { return fmt.Sprintf("WEB-%09d", i) }

// complaintID is the id of complaint i of a generated log.
func complaintID(i int) string { return uuid.NewSHA1(idSpace, []byte(channelRef(i))).String() }

func pickStage(rng *mrand.Rand) stage {
	n := rng.IntN(100)
	for _, s := range openStages {
		if n < s.weight {
			return s.stage
		}
		n -= s.weight
	}
	return stageInProgress
}

func pickProblem(rng *mrand.Rand) problem {
	n := rng.IntN(problemWeights)
	for _, p := range problems {
		if n < p.weight {
			return p
		}
		n -= p.weight
	}
	return problems[0]
}

// after moves the time of the next event on by d (never past the limit).
func (l *lifecycle) after(d time.Duration) {
	l.t = l.t.Add(d)
	if l.t.After(l.limit) {
		l.t = l.limit
	}
}

// between is a random duration in [lo, hi).
func (l *lifecycle) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(l.rng.Int64N(int64(hi-lo)))
}

// emit appends the events one service decides at the current time (one
// append, as the service's handler makes), after the clocks that fell due
// before them have fired, and then the sla-clock's reaction.
func (l *lifecycle) emit(ctx context.Context, producer, actor string, msgs ...proto.Message) error {
	if err := l.clockTick(ctx, l.t); err != nil {
		return err
	}
	if l.corr == "" {
		l.corr = uuid.NewString()
	}
	envs := make([]*ev.Envelope, len(msgs))
	for i, m := range msgs {
		pv := ""
		if producer == byRouting {
			pv = policyRoute
		}
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: l.id, Producer: producer, Actor: actor, CorrelationID: l.corr, CausationID: l.cause, PolicyVersion: pv, OccurredAt: l.t}, m)
		if err != nil {
			return err
		}
		envs[i] = e
	}
	if err := l.append(ctx, envs); err != nil {
		return err
	}
	l.cause = envs[len(envs)-1].GetEventId()
	return l.clockTick(ctx, l.t)
}

// clockTick appends what the sla-clock decides at now: its reaction to the
// triggers since its last append, and the warnings and breaches due.
func (l *lifecycle) clockTick(ctx context.Context, now time.Time) error {
	out := l.clocks.Decide(now)
	if len(out) == 0 {
		return nil
	}
	for _, e := range out {
		e.EventId = uuid.Must(uuid.NewV7()).String()
		e.CorrelationId = l.corr
	}
	return l.append(ctx, out)
}

func (l *lifecycle) append(ctx context.Context, envs []*ev.Envelope) error {
	at := envs[len(envs)-1].GetOccurredAt().AsTime()
	if err := l.g.append(ctx, l.w, l.stream, l.version, at, envs); err != nil {
		return err
	}
	l.version += uint64(len(envs))
	for _, e := range envs {
		l.clocks.Apply(e) // as stored: Append set version and batch_remaining
	}
	return nil
}

// sealed stands for personal data sealed by intake (libs/pii): random
// bytes of a realistic size under a key id no keystore holds. The
// generated log carries no personal data at all, clear or sealed.
func sealed(customerRef string, size int) *ev.SealedPersonalData {
	nonce, ct := make([]byte, 12), make([]byte, size)
	_, _ = rand.Read(nonce)
	_, _ = rand.Read(ct)
	return &ev.SealedPersonalData{KeyId: customerRef + "/1", Nonce: nonce, Ciphertext: ct}
}

// run writes the lifecycle up to the final stage.
func (l *lifecycle) run(ctx context.Context, ref string, final stage) error {
	rng, dir := l.rng, l.g.dir
	p := pickProblem(rng)
	customer := rng.IntN(max(l.g.cfg.Complaints/3, 1))
	custRef := "cx_" + pii.KeyedHash(secret, fmt.Sprintf("customer:%d", customer))
	serial := fmt.Sprintf("SN%08d", customer)
	region := dir.regions[customer%len(dir.regions)]
	tier := ev.CustomerTier_CUSTOMER_TIER_REGULAR
	if customer%20 == 0 {
		tier = ev.CustomerTier_CUSTOMER_TIER_VIP
	}
	team := teamFor[p.severity]
	owner := dir.members[team][rng.IntN(len(dir.members[team]))]

	// intake: received and, complete, accepted at once.
	received := &ev.ComplaintReceived{
		Channel: ev.Channel_CHANNEL_WEB_FORM, ChannelRef: ref, AdapterId: adapterID, ReceivedAt: timestamppb.New(l.t.Add(-l.between(time.Second, 2*time.Minute))),
		Customer:           &ev.Customer{CustomerRef: custRef, Tier: tier, Personal: sealed(custRef, 96)},
		Product:            &ev.Product{Model: productModel, SerialNumber: serial, PurchaseDate: "2024-05-01"},
		Place:              &ev.Place{Region: region, City: "city-" + region},
		Description:        p.description,
		Emotion:            ev.Emotion(1 + rng.IntN(4)),
		CustomerRequest:    "Please fix it or replace the unit",
		FirstReceiver:      "agent-web",
		ProblemFingerprint: pii.KeyedHash(secret, custRef+"|m:"+productModel+"|s:"+serial),
	}
	if err := l.emit(ctx, byIntake, adapterID, received, &ev.ComplaintAccepted{AcceptedBy: "system", Automatic: true}); err != nil {
		return err
	}
	if final == stageClosed && rng.IntN(100) < 2 {
		// Withdrawn by the customer before anything else happened.
		l.after(l.between(10*time.Minute, 6*time.Hour))
		if err := l.emit(ctx, byIntake, "agent-web", &ev.ComplaintWithdrawn{Reason: "customer withdrew", WithdrawnBy: "agent-web"}); err != nil {
			return err
		}
		l.g.withdrawn.Add(1)
		return nil
	}

	// routing: classified and assigned within a second.
	l.after(l.between(50*time.Millisecond, time.Second))
	if err := l.emit(ctx, byRouting, "system", &ev.ComplaintClassified{Category: p.category, Severity: p.severity, Priority: p.priority, RulesFired: []string{p.rule}, ClassifiedBy: "policy " + policyRoute}); err != nil {
		return err
	}
	assign := []proto.Message{&ev.ComplaintAssigned{Team: team, Owner: owner, Reason: fmt.Sprintf("%s → %s; skill, lowest load", p.severity, team), FirstReceiver: "agent-web", AssignedBy: "system"}}
	if p.severity == ev.Severity_SEVERITY_L4 {
		assign = append(assign, &ev.ComplaintEscalated{FromLevel: ev.EscalationLevel_ESCALATION_LEVEL_OWNER, ToLevel: ev.EscalationLevel_ESCALATION_LEVEL_EMERGENCY_RESPONSE, Cause: ev.EscalationCause_ESCALATION_CAUSE_SEVERITY, CauseEventId: l.cause, Reason: "L4 goes to emergency response", Notified: []string{dir.leads[team], dir.senior}})
	}
	l.after(l.between(10*time.Millisecond, 500*time.Millisecond))
	if err := l.emit(ctx, byRouting, "system", assign...); err != nil {
		return err
	}
	if final == stageAssigned {
		return l.settle(ctx)
	}

	// The owner takes it and answers the customer.
	l.after(l.between(2*time.Minute, 2*time.Hour))
	if err := l.emit(ctx, byRouting, owner, &ev.AssignmentAccepted{Owner: owner}); err != nil {
		return err
	}
	l.after(l.between(5*time.Minute, 6*time.Hour))
	if err := l.emit(ctx, byRouting, owner, &ev.ResponseRecorded{Channel: ev.Channel_CHANNEL_PHONE, Summary: "Called the customer, explained the next steps", RespondedBy: owner}); err != nil {
		return err
	}
	if final == stageInProgress {
		return l.settle(ctx)
	}
	if final == stageOnHold || (final == stageClosed && rng.IntN(100) < 8) {
		l.after(l.between(10*time.Minute, 2*time.Hour))
		if err := l.emit(ctx, byRouting, owner, &ev.ComplaintPutOnHold{Reason: ev.HoldReason_HOLD_REASON_WAITING_FOR_CUSTOMER, Note: "waiting for photos of the unit", By: owner}); err != nil {
			return err
		}
		if final == stageOnHold {
			return l.settle(ctx)
		}
		l.after(l.between(time.Hour, 3*24*time.Hour))
		if err := l.emit(ctx, byRouting, owner, &ev.ComplaintTakenOffHold{By: owner}); err != nil {
			return err
		}
	}

	wantsTechnician := final == stageTechnician || final == stageOnSite || rng.IntN(100) < p.workOrder
	if wantsTechnician {
		if err := l.workOrder(ctx, owner, region, serial, final); err != nil || final == stageTechnician || final == stageOnSite {
			if err == nil {
				err = l.settle(ctx)
			}
			return err
		}
	}

	for round := uint32(0); ; round++ {
		if err := l.resolve(ctx, p, owner, round); err != nil {
			return err
		}
		reopened, err := l.followUp(ctx, p, owner, round, final)
		if err != nil {
			return err
		}
		if final == stageResolved || final == stageReopened {
			return l.settle(ctx)
		}
		if !reopened {
			return nil
		}
		l.after(l.between(time.Hour, 2*24*time.Hour))
		if err := l.emit(ctx, byRouting, owner, &ev.ResponseRecorded{Channel: ev.Channel_CHANNEL_PHONE, Summary: "Called back after the survey", RespondedBy: owner}); err != nil {
			return err
		}
	}
}

// workOrder sends a technician: routing asks, dispatch opens the order,
// books a technician and follows the job to its end (or to the stage an
// open complaint stops at).
func (l *lifecycle) workOrder(ctx context.Context, owner, region, serial string, final stage) error {
	g, rng := l.g, l.rng
	wo := "wo-" + uuid.Must(uuid.NewV7()).String()
	tech := g.dir.technicians[rng.IntN(len(g.dir.technicians))]
	l.after(l.between(10*time.Minute, 4*time.Hour))
	spec := &ev.WorkOrderSpec{
		SiteContact: sealed("site", 120), Region: region, EquipmentModel: productModel, Quantity: 1, SerialNumbers: []string{serial},
		ServiceType: ev.ServiceType_SERVICE_TYPE_REPAIR, Mode: ev.ServiceMode_SERVICE_MODE_ON_SITE,
		RequiredBy: timestamppb.New(l.t.Add(48 * time.Hour)), ProductLine: productLine,
	}
	if err := l.emit(ctx, byRouting, owner, &ev.DispatchRequested{WorkOrderId: wo, Spec: spec, RequestedBy: owner}); err != nil {
		return err
	}
	l.after(l.between(20*time.Millisecond, 300*time.Millisecond))
	if err := l.emit(ctx, byDispatch, "system", &ev.WorkOrderOpened{WorkOrderId: wo, Spec: spec}); err != nil {
		return err
	}
	// The booking on the technician's stream comes first, then the assignment.
	booked, err := eventlog.NewEvent(eventlog.Meta{Producer: byDispatch, Actor: "system", CorrelationID: l.corr, CausationID: l.cause, OccurredAt: l.t},
		&ev.TechnicianJobBooked{TechnicianId: tech, WorkOrderId: wo, ComplaintId: l.id, Day: l.t.Format(time.DateOnly)})
	if err != nil {
		return err
	}
	if err := g.techAppend(ctx, tech, l.t, booked); err != nil {
		return err
	}
	cands := []*ev.CandidateScore{{TechnicianId: tech, Eligible: true, Score: 0.91, EarliestArrival: timestamppb.New(l.t.Add(3 * time.Hour)), OpenJobs: 1}}
	for _, other := range []string{g.dir.technicians[rng.IntN(len(g.dir.technicians))], g.dir.technicians[rng.IntN(len(g.dir.technicians))]} {
		if other != tech {
			cands = append(cands, &ev.CandidateScore{TechnicianId: other, Eligible: false, RejectedBecause: "at capacity", OpenJobs: 3})
		}
	}
	l.after(l.between(20*time.Millisecond, 300*time.Millisecond))
	if err := l.emit(ctx, byDispatch, "system", &ev.TechnicianAssigned{WorkOrderId: wo, TechnicianId: tech, Candidates: cands, Reason: "best score in region", AcceptBy: timestamppb.New(l.t.Add(30 * time.Minute))}); err != nil {
		return err
	}
	if final == stageTechnician {
		return nil
	}
	l.after(l.between(time.Minute, 10*time.Minute))
	if err := l.emit(ctx, byDispatch, tech, &ev.TechnicianAccepted{WorkOrderId: wo, TechnicianId: tech}); err != nil {
		return err
	}
	l.after(l.between(time.Minute, 12*time.Minute))
	if err := l.emit(ctx, byDispatch, tech, &ev.CustomerContacted{WorkOrderId: wo, TechnicianId: tech, Eta: timestamppb.New(l.t.Add(4 * time.Hour)), Note: "will come this afternoon"}); err != nil {
		return err
	}
	l.after(l.between(time.Hour, 5*time.Hour))
	if err := l.emit(ctx, byDispatch, tech, &ev.TechnicianEnRoute{WorkOrderId: wo, TechnicianId: tech}); err != nil {
		return err
	}
	l.after(l.between(20*time.Minute, 2*time.Hour))
	if err := l.emit(ctx, byDispatch, tech, &ev.TechnicianArrived{WorkOrderId: wo, TechnicianId: tech}); err != nil {
		return err
	}
	if final == stageOnSite {
		return nil
	}
	l.after(l.between(30*time.Minute, 3*time.Hour))
	report := &ev.WorkReport{
		WorkDone:  "Replaced the control board and tested the unit",
		PartsUsed: []*ev.PartUsed{{PartNumber: "CB-3000-7", Quantity: 1}},
		Checks:    []*ev.CheckResult{{Check: "power-on", Passed: true}, {Check: "cooling", Passed: true}, {Check: "noise", Passed: true}},
		SignOff:   &ev.CustomerSignOff{Signer: sealed("signer", 48), SignedAt: timestamppb.New(l.t), SignatureSha256: fmt.Sprintf("%064x", rng.Uint64())},
	}
	if err := l.emit(ctx, byDispatch, tech, &ev.WorkCompleted{WorkOrderId: wo, TechnicianId: tech, Report: report}); err != nil {
		return err
	}
	released, err := eventlog.NewEvent(eventlog.Meta{Producer: byDispatch, Actor: tech, CorrelationID: l.corr, CausationID: l.cause, OccurredAt: l.t},
		&ev.TechnicianJobReleased{TechnicianId: tech, WorkOrderId: wo, Reason: "completed"})
	if err != nil {
		return err
	}
	return g.techAppend(ctx, tech, l.t, released)
}

// resolve writes the solution, its reviews (as the policy requires for the
// severity) and the resolution.
func (l *lifecycle) resolve(ctx context.Context, p problem, owner string, round uint32) error {
	dir := l.g.dir
	var reviews []ev.ReviewLevel
	switch p.severity {
	case ev.Severity_SEVERITY_L2:
		reviews = []ev.ReviewLevel{ev.ReviewLevel_REVIEW_LEVEL_SUPERVISOR}
	case ev.Severity_SEVERITY_L3:
		reviews = []ev.ReviewLevel{ev.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, ev.ReviewLevel_REVIEW_LEVEL_QUALITY}
	case ev.Severity_SEVERITY_L4:
		reviews = []ev.ReviewLevel{ev.ReviewLevel_REVIEW_LEVEL_SUPERVISOR, ev.ReviewLevel_REVIEW_LEVEL_QUALITY, ev.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT}
	}
	if len(reviews) > 0 {
		sol := fmt.Sprintf("sol-%d", round+1)
		l.after(l.between(30*time.Minute, 8*time.Hour))
		if err := l.emit(ctx, byRouting, owner, &ev.SolutionProposed{SolutionId: sol, Summary: "Repair under warranty and a goodwill voucher", ProposedBy: owner, RequiredReviews: reviews}); err != nil {
			return err
		}
		for _, lvl := range reviews {
			by := dir.leads[teamFor[p.severity]]
			switch lvl {
			case ev.ReviewLevel_REVIEW_LEVEL_QUALITY:
				by = dir.quality
			case ev.ReviewLevel_REVIEW_LEVEL_SENIOR_MANAGEMENT:
				by = dir.senior
			}
			l.after(l.between(10*time.Minute, 4*time.Hour))
			if err := l.emit(ctx, byRouting, by, &ev.SolutionReviewed{SolutionId: sol, Level: lvl, Approved: true, Comment: "ok", ReviewedBy: by}); err != nil {
				return err
			}
		}
	}
	l.after(l.between(30*time.Minute, 12*time.Hour))
	return l.emit(ctx, byRouting, owner, &ev.ComplaintResolved{ResolutionCode: "repaired", Summary: "Fixed and confirmed with the customer", ResolvedBy: owner, FirstContact: round == 0 && p.workOrder == 0})
}

// followUp writes follow-up's reaction to a resolution (two feedback tasks
// and a survey), the feedback calls and the customer's answer: closed, or
// reopened (it returns true) when the customer is not satisfied.
func (l *lifecycle) followUp(ctx context.Context, p problem, owner string, round uint32, final stage) (bool, error) {
	rng := l.rng
	res := l.cause // the ComplaintResolved
	resolvedAt := l.t
	l.after(l.between(20*time.Millisecond, 500*time.Millisecond))
	if err := l.emit(ctx, byFollowup, "system",
		&ev.FeedbackTaskScheduled{TaskId: "fb1-" + res, Round: ev.FeedbackRound_FEEDBACK_ROUND_FIRST, DueAt: timestamppb.New(resolvedAt.Add(24 * time.Hour)), ResolutionEventId: res},
		&ev.FeedbackTaskScheduled{TaskId: "fb2-" + res, Round: ev.FeedbackRound_FEEDBACK_ROUND_SECOND, DueAt: timestamppb.New(resolvedAt.Add(72 * time.Hour)), ResolutionEventId: res},
		&ev.SurveySent{SurveyId: "sv-" + res, ExpiresAt: timestamppb.New(l.t.Add(7 * 24 * time.Hour)), ResolutionEventId: res}); err != nil {
		return false, err
	}
	if final == stageResolved {
		return false, nil
	}
	surveyExpires := l.t.Add(7 * 24 * time.Hour)
	reopen := final == stageReopened || (final == stageClosed && round == 0 && rng.IntN(100) < 7)
	answered := reopen || rng.IntN(100) < 80
	for i, round := range []ev.FeedbackRound{ev.FeedbackRound_FEEDBACK_ROUND_FIRST, ev.FeedbackRound_FEEDBACK_ROUND_SECOND} {
		if i == 0 {
			l.after(l.between(time.Hour, 20*time.Hour))
		} else {
			l.after(l.between(24*time.Hour, 40*time.Hour))
		}
		task := fmt.Sprintf("fb%d-%s", i+1, res)
		if err := l.emit(ctx, byFollowup, owner, &ev.FeedbackDelivered{TaskId: task, Round: round, Channel: ev.Channel_CHANNEL_PHONE, DeliveredBy: owner, Summary: "customer reached, no new issue"}); err != nil {
			return false, err
		}
	}
	sv := "sv-" + res
	if !answered {
		// No answer within the week: follow-up closes it.
		l.t = surveyExpires
		return false, l.closed(ctx, p, ev.CloseOutcome_CLOSE_OUTCOME_NO_RESPONSE, sv, "system")
	}
	l.after(l.between(time.Hour, 3*24*time.Hour))
	if reopen {
		sat := uint32(1 + rng.IntN(2))
		return true, l.emit(ctx, byFollowup, "customer",
			&ev.SurveyAnswered{SurveyId: sv, Satisfaction: sat, Resolved: false, Comment: "still broken", Via: ev.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"},
			&ev.ComplaintReopened{Reason: fmt.Sprintf("customer says the problem is not resolved (satisfaction %d of 5)", sat), SurveyId: sv, Satisfaction: sat, ReopenCount: round + 1})
	}
	sat := uint32(3 + rng.IntN(3))
	outcome := ev.CloseOutcome_CLOSE_OUTCOME_SATISFIED
	if sat == 3 {
		outcome = ev.CloseOutcome_CLOSE_OUTCOME_NEUTRAL
	}
	return false, l.closed(ctx, p, outcome, sv, "customer",
		&ev.SurveyAnswered{SurveyId: sv, Satisfaction: sat, Resolved: true, Via: ev.SurveyVia_SURVEY_VIA_LINK, RecordedBy: "customer"})
}

// closed writes the close (after the answer, if any), a return visit for
// serious complaints, and the visit a month later.
func (l *lifecycle) closed(ctx context.Context, p problem, outcome ev.CloseOutcome, survey, by string, before ...proto.Message) error {
	msgs := append(before, &ev.ComplaintClosed{Outcome: outcome, SurveyId: survey, ClosedBy: by})
	visit := p.severity >= ev.Severity_SEVERITY_L3
	if visit {
		msgs = append(msgs, &ev.ReturnVisitScheduled{VisitId: "rv-" + survey, DueAt: timestamppb.New(l.t.Add(30 * 24 * time.Hour))})
	}
	if err := l.emit(ctx, byFollowup, by, msgs...); err != nil {
		return err
	}
	if !visit {
		return nil
	}
	l.after(30*24*time.Hour - l.between(0, 48*time.Hour))
	lead := l.g.dir.leads[teamFor[p.severity]]
	return l.emit(ctx, byFollowup, lead, &ev.ReturnVisitCompleted{VisitId: "rv-" + survey, VisitedBy: lead, Notes: "unit works, customer content", Satisfaction: 5})
}

// settle ends an open complaint where a running sla-clock would have it
// now: the warnings and breaches due by now fired.
func (l *lifecycle) settle(ctx context.Context) error { return l.clockTick(ctx, l.limit) }
