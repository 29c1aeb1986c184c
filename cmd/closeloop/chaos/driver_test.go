package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	dispatchv1 "github.com/closeloop/closeloop/proto/gen/closeloop/dispatch/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	followupv1 "github.com/closeloop/closeloop/proto/gen/closeloop/followup/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	routingv1 "github.com/closeloop/closeloop/proto/gen/closeloop/routing/v1"
)

// script is what the driver does with a complaint, and where it must end.
type script int

const (
	scriptSatisfied  script = iota // L1: solution, resolve, survey 5 → closed satisfied
	scriptRepair                   // L2 hardware: review, on-site dispatch, signed completion, resolve, survey → closed
	scriptRemote                   // L2: review, remote support session, resolve, survey → closed
	scriptReopen                   // L1: resolve, survey 1 → reopened → resolve again, survey 5 → closed
	scriptNoResponse               // L1: resolve, survey never answered → closed no response (after the clock jump)
	scriptBreach                   // L1: left alone → first-response and resolution SLAs breached once each
	nScripts
)

var scriptNames = [...]string{"satisfied", "repair", "remote", "reopen", "no_response", "breach"}

func (s script) String() string { return scriptNames[s] }

// pickScript draws a script with the mix of the run.
func pickScript(r *rand.Rand) script {
	switch n := r.Intn(100); {
	case n < 35:
		return scriptSatisfied
	case n < 60:
		return scriptRepair
	case n < 70:
		return scriptRemote
	case n < 82:
		return scriptReopen
	case n < 92:
		return scriptNoResponse
	default:
		return scriptBreach
	}
}

var descriptions = map[script]string{
	scriptSatisfied:  "the coupon discount was not applied at checkout",
	scriptRepair:     "the air conditioner is not cooling since Monday",
	scriptRemote:     "the controller software is not working after the update",
	scriptReopen:     "the courier delivery is late by a week",
	scriptNoResponse: "the invoice shows the wrong price",
	scriptBreach:     "nobody called back about the promotion",
}

// clients are the harness's gRPC connections, one per service.
type clients struct {
	intake   intakev1.IntakeServiceClient
	routing  routingv1.RoutingServiceClient
	dispatch dispatchv1.DispatchServiceClient
	followup followupv1.FollowupServiceClient
	conns    []*grpc.ClientConn
}

func dial(addrs map[string]string) (*clients, error) {
	c := &clients{}
	conn := func(name string) (*grpc.ClientConn, error) {
		cc, err := grpc.NewClient(addrs[name], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", name, err)
		}
		c.conns = append(c.conns, cc)
		return cc, nil
	}
	for _, n := range []string{"intake", "routing", "dispatch", "followup"} {
		cc, err := conn(n)
		if err != nil {
			return nil, err
		}
		switch n {
		case "intake":
			c.intake = intakev1.NewIntakeServiceClient(cc)
		case "routing":
			c.routing = routingv1.NewRoutingServiceClient(cc)
		case "dispatch":
			c.dispatch = dispatchv1.NewDispatchServiceClient(cc)
		case "followup":
			c.followup = followupv1.NewFollowupServiceClient(cc)
		}
	}
	return c, nil
}

func (c *clients) close() {
	for _, cc := range c.conns {
		_ = cc.Close()
	}
}

// as adds the bearer token of a principal to a call's context.
func as(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// errFatal marks a refusal that retrying cannot cure: a harness bug or a
// service refusing a valid request.
var errFatal = errors.New("refused")

// classify turns an RPC error into nil (go on), a retryable error or a fatal one.
func classify(err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.Unimplemented:
		return fmt.Errorf("%w: %v", errFatal, err)
	}
	return err
}

const (
	adapterToken = "chaos-adapter-token"
	staffToken   = "chaos-staff-token"
	staffID      = "chaos-staff"
)

func techToken(id string) string { return "chaos-token-" + id }

// reviewerToken is a reviewer of one level: routing's four-eyes rule wants
// a person other than the proposer (the staff) at each level, and a
// different one at each.
func reviewerToken(l eventsv1.ReviewLevel) string { return "chaos-reviewer-token-" + l.String() }

// item is one complaint of the run.
type item struct {
	n          int
	script     script
	channelRef string
	receivedAt time.Time
	id         string // set once intake acknowledged the submission
	lastErr    error
	lastErrAt  time.Time
	state      *complaint
}

// driver moves complaints through their scripts, one step at a time: read
// the complaint's stream, pick the next step, call the service with the
// version read. A step that failed (process down, stale version, view not
// caught up) is simply decided again from a fresh read, so a lost reply
// never makes the driver repeat an effect.
type driver struct {
	cl     *clients
	store  *jsstore.Store
	now    func() time.Time
	parked atomic.Int64 // complaints parked so far (progress reports)
}

// submit sends the complaint until intake answers.
func (d *driver) submit(ctx context.Context, it *item) error {
	req := &intakev1.SubmitComplaintRequest{
		Channel:    eventsv1.Channel_CHANNEL_PHONE,
		ChannelRef: it.channelRef,
		ReceivedAt: timestamppb.New(it.receivedAt),
		Customer: &intakev1.CustomerInput{
			Name:  fmt.Sprintf("Customer %d", it.n),
			Phone: fmt.Sprintf("+86 138%08d", it.n),
		},
		Product:         &eventsv1.Product{Model: "AC-3000", SerialNumber: fmt.Sprintf("SN-%06d", it.n)},
		Place:           &eventsv1.Place{Region: "North", City: "Beijing"},
		Description:     fmt.Sprintf("%s (case %d)", descriptions[it.script], it.n),
		FirstReceiver:   "chaos-hotline",
		CustomerRequest: "please fix it",
	}
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(as(ctx, adapterToken), 10*time.Second)
		resp, err := d.cl.intake.SubmitComplaint(cctx, req)
		cancel()
		if err == nil {
			if resp.GetLinked() {
				return fmt.Errorf("%w: complaint %d was linked to %s as a duplicate", errFatal, it.n, resp.GetComplaintId())
			}
			it.id = resp.GetComplaintId()
			return nil
		}
		if err := classify(err); errors.Is(err, errFatal) {
			return err
		}
		it.lastErr, it.lastErrAt = err, time.Now()
		sleep(ctx, 100*time.Millisecond)
	}
	return ctx.Err()
}

// read folds the complaint's stream (retrying while NATS is away).
func (d *driver) read(ctx context.Context, id string) (*complaint, error) {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		recs, err := d.store.ReadStream(cctx, eventlog.StreamID("complaint-"+id), 1)
		cancel()
		if err == nil {
			return fold(recs), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		sleep(ctx, 200*time.Millisecond)
	}
}

// parked reports whether a complaint has gone as far as the driver takes it
// before the final clock jump.
func parked(it *item, c *complaint) bool {
	switch it.script {
	case scriptNoResponse:
		return c.survey != ""
	case scriptBreach:
		return c.owner != ""
	default:
		return c.closed
	}
}

// step performs the next step of it's script on c. It returns nil when it
// did something or is waiting for another service to react.
func (d *driver) step(ctx context.Context, it *item, c *complaint) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	staff := as(ctx, staffToken)
	id := it.id
	if !c.accepted || c.owner == "" || c.severity == eventsv1.Severity_SEVERITY_UNSPECIFIED {
		return nil // intake accepts, routing classifies and assigns
	}
	if c.closed {
		return nil
	}
	if c.resolved {
		if c.survey == "" || c.answered || it.script == scriptNoResponse {
			return nil // follow-up sends the survey / reacts to the answer
		}
		sat, resolved := uint32(5), true
		if it.script == scriptReopen && c.reopens == 0 {
			sat, resolved = 1, false
		}
		_, err := d.cl.followup.RecordSurveyAnswer(staff, &followupv1.RecordSurveyAnswerRequest{
			ComplaintId: id, SurveyId: c.survey, Satisfaction: sat, Resolved: resolved,
			Comment: "chaos", RecordedBy: staffID,
		})
		return classify(err)
	}
	if it.script == scriptBreach {
		return nil
	}
	if !c.responded {
		_, err := d.cl.routing.RecordResponse(staff, &routingv1.RecordResponseRequest{
			ComplaintId: id, ExpectedVersion: c.version, Channel: eventsv1.Channel_CHANNEL_PHONE, Summary: "called the customer back",
		})
		return classify(err)
	}
	if c.solution == "" {
		_, err := d.cl.routing.ProposeSolution(staff, &routingv1.ProposeSolutionRequest{
			ComplaintId: id, ExpectedVersion: c.version, Summary: "fix it for the customer",
		})
		return classify(err)
	}
	if !c.reviewsDone() {
		_, err := d.cl.routing.ReviewSolution(as(ctx, reviewerToken(c.nextReview())), &routingv1.ReviewSolutionRequest{
			ComplaintId: id, ExpectedVersion: c.version, SolutionId: c.solution, Level: c.nextReview(), Approved: true,
		})
		return classify(err)
	}
	if (it.script == scriptRepair || it.script == scriptRemote) && c.reopens == 0 {
		if done, err := d.workOrderStep(ctx, it, c); !done {
			return err
		}
	}
	_, err := d.cl.routing.Resolve(staff, &routingv1.ResolveRequest{
		ComplaintId: id, ExpectedVersion: c.version, ResolutionCode: "fixed", Summary: "the customer's problem is fixed",
	})
	return classify(err)
}

// workOrderStep drives the complaint's work order; done means it is finished.
func (d *driver) workOrderStep(ctx context.Context, it *item, c *complaint) (done bool, err error) {
	o := c.orders[c.order]
	if o != nil && o.done {
		return true, nil
	}
	if o == nil || o.ended || o.unassignable {
		spec := &eventsv1.WorkOrderSpec{
			Region: "North", EquipmentModel: "AC-3000", Quantity: 1, ProductLine: "aircon",
			RequiredBy: timestamppb.New(d.now().Add(30 * 24 * time.Hour)),
		}
		if it.script == scriptRepair {
			spec.Mode, spec.ServiceType = eventsv1.ServiceMode_SERVICE_MODE_ON_SITE, eventsv1.ServiceType_SERVICE_TYPE_REPAIR
			spec.SiteContact = c.received.GetCustomer().GetPersonal()
		} else {
			spec.Mode, spec.ServiceType = eventsv1.ServiceMode_SERVICE_MODE_REMOTE, eventsv1.ServiceType_SERVICE_TYPE_REMOTE_SUPPORT
		}
		if o != nil && o.unassignable {
			sleep(ctx, time.Second) // let a technician's slot free up first
		}
		_, err := d.cl.routing.RequestDispatch(as(ctx, staffToken), &routingv1.RequestDispatchRequest{
			ComplaintId: it.id, ExpectedVersion: c.version, Spec: spec,
		})
		return false, classify(err)
	}
	if !o.assigned {
		return false, nil // dispatch books and assigns
	}
	tech := as(ctx, techToken(o.tech))
	wo := o.id
	switch {
	case o.mode == eventsv1.ServiceMode_SERVICE_MODE_REMOTE && !o.remoteStarted:
		_, err = d.cl.dispatch.StartRemoteSession(tech, &dispatchv1.StartRemoteSessionRequest{WorkOrderId: wo, SessionRef: "rs-" + wo})
	case o.mode == eventsv1.ServiceMode_SERVICE_MODE_REMOTE:
		_, err = d.cl.dispatch.ResolveRemotely(tech, &dispatchv1.ResolveRemotelyRequest{WorkOrderId: wo, Summary: "reinstalled the firmware"})
	case !o.accepted:
		_, err = d.cl.dispatch.Accept(tech, &dispatchv1.AcceptRequest{WorkOrderId: wo})
	case !o.contacted:
		_, err = d.cl.dispatch.ReportContacted(tech, &dispatchv1.ReportContactedRequest{WorkOrderId: wo, Eta: timestamppb.New(d.now().Add(2 * time.Hour)), Note: "called"})
	case !o.enRoute:
		_, err = d.cl.dispatch.ReportEnRoute(tech, &dispatchv1.ReportEnRouteRequest{WorkOrderId: wo})
	case !o.arrived:
		_, err = d.cl.dispatch.ReportArrived(tech, &dispatchv1.ReportArrivedRequest{WorkOrderId: wo})
	default:
		_, err = d.cl.dispatch.Complete(tech, &dispatchv1.CompleteRequest{
			WorkOrderId: wo, WorkDone: "replaced the compressor relay",
			PartsUsed: []*eventsv1.PartUsed{{PartNumber: "RLY-7", Quantity: 1}},
			Checks: []*eventsv1.CheckResult{
				{Check: "fault_cleared", Passed: true}, {Check: "functional_test", Passed: true}, {Check: "electrical_safety", Passed: true},
			},
			// A minute back: the services' clocks may trail the harness's by a tick.
			SignerName: "Site Contact", SignedAt: timestamppb.New(d.now().Add(-time.Minute)), SignatureImage: []byte("signature strokes"),
		})
	}
	return false, classify(err)
}

// run drives one complaint until it is parked. It gives up when the
// complaint makes no progress for stall.
func (d *driver) run(ctx context.Context, it *item, stall time.Duration) error {
	if err := d.submit(ctx, it); err != nil {
		return err
	}
	var last uint64
	progress := time.Now()
	for {
		c, err := d.read(ctx, it.id)
		if err != nil {
			return err
		}
		it.state = c
		if parked(it, c) {
			d.parked.Add(1)
			return nil
		}
		if c.version != last {
			last, progress = c.version, time.Now()
		} else if time.Since(progress) > stall {
			// The last error may be old: a step that only waits for a
			// service to react returns nil and leaves it as it was.
			lastErr := "none"
			if it.lastErr != nil {
				lastErr = fmt.Sprintf("%v ago: %v", time.Since(it.lastErrAt).Round(time.Second), it.lastErr)
			}
			return fmt.Errorf("complaint %d (%s, %s) made no progress for %v at version %d (%s); last error %s", it.n, it.id, it.script, stall, c.version, c.last, lastErr)
		}
		if err := d.step(ctx, it, c); err != nil {
			if errors.Is(err, errFatal) {
				return fmt.Errorf("complaint %d (%s, %s): %w", it.n, it.id, it.script, err)
			}
			it.lastErr, it.lastErrAt = err, time.Now()
		}
		sleep(ctx, 60*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
