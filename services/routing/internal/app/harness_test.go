package app

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/closeloop/closeloop/libs/checkpoint"
	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/routing/internal/classifier"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// harness: an in-memory log, a fake clock, the view following the log, and
// a pump that hands every new event to HandleEvent as the bus would.
type harness struct {
	t      *testing.T
	ctx    context.Context
	store  eventlog.Store
	clock  *clock.Fake
	app    *Application
	pumped uint64
}

// loadPolicy is the shipped policy with the shipped text model, as
// routing runs them.
func loadPolicy(t testing.TB) *domain.Policy {
	doc, err := os.ReadFile("../../policy/classification.v2.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := domain.ParsePolicy(doc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err = os.ReadFile("../../policy/classifier.v1.json")
	if err != nil {
		t.Fatal(err)
	}
	m, err := classifier.ParseModel(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p.WithClassifier(domain.Classifier{Model: m, TriageBelow: 0.5})
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	fc := clock.NewFake(t0)
	store := memstore.New(fc)
	p := loadPolicy(t)
	view := NewView(p)
	f, err := checkpoint.New(checkpoint.Options{Name: ViewName, Format: ViewFormat, Log: store, Clock: fc, Logger: slog.New(slog.DiscardHandler)}, view)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = view.Run(ctx, f) }()
	a, err := New(store, fc, noop.NewTracerProvider(), p, view, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, ctx: ctx, store: store, clock: fc, app: a}
	h.roster()
	return h
}

var (
	lead     = domain.Actor{ID: "lead-1", Roles: []domain.Role{domain.RoleTeamLead}}
	manager  = domain.Actor{ID: "mgr-1", Roles: []domain.Role{domain.RoleManager}}
	quality  = domain.Actor{ID: "qa-1", Roles: []domain.Role{domain.RoleQualityReviewer}}
	senior   = domain.Actor{ID: "vp-1", Roles: []domain.Role{domain.RoleSeniorManager}}
	admin    = domain.Actor{ID: "admin", Roles: []domain.Role{domain.RoleManager}}
	agentOf  = func(id string) domain.Actor { return domain.Actor{ID: id, Roles: []domain.Role{domain.RoleAgent}} }
	stranger = agentOf("cs-stranger")
)

// roster: one agent with the right skill per team (plus a second in
// customer service), a lead per team, managers and reviewers.
func (h *harness) roster() {
	h.t.Helper()
	for _, m := range []domain.MemberChange{
		{Team: "customer-service", MemberID: "cs-1", Skills: []string{"service", "logistics", "billing", "general", "product"}, Role: domain.RoleAgent, OnShift: true},
		{Team: "customer-service", MemberID: "cs-2", Skills: []string{"service", "logistics", "billing", "general"}, Role: domain.RoleAgent, OnShift: true},
		{Team: "customer-service", MemberID: "lead-1", Role: domain.RoleTeamLead, OnShift: false},
		{Team: "technical-support", MemberID: "tech-1", Skills: []string{"product"}, Role: domain.RoleAgent, OnShift: true},
		{Team: "technical-support", MemberID: "lead-2", Role: domain.RoleTeamLead, OnShift: false},
		{Team: "management-coordination", MemberID: "mgr-1", Skills: []string{"product", "service", "logistics", "billing", "general"}, Role: domain.RoleManager, OnShift: true},
		{Team: "management-coordination", MemberID: "lead-3", Role: domain.RoleTeamLead, OnShift: false},
		{Team: "emergency-response", MemberID: "er-1", Skills: []string{"product"}, Role: domain.RoleAgent, OnShift: true},
		{Team: "emergency-response", MemberID: "lead-4", Role: domain.RoleTeamLead, OnShift: false},
		{Team: "quality", MemberID: "qa-1", Role: domain.RoleQualityReviewer},
		{Team: "board", MemberID: "vp-1", Role: domain.RoleSeniorManager},
	} {
		if _, err := h.app.AddTeamMember(h.ctx, admin, m); err != nil {
			h.t.Fatal(err)
		}
	}
	h.pump()
}

// pump hands every event not yet handled to HandleEvent, in log order,
// until the log has nothing new (reactions append, which pumps again).
func (h *harness) pump() {
	h.t.Helper()
	for {
		recs, err := h.store.ReadAll(h.ctx, h.pumped+1, 100)
		if err != nil {
			h.t.Fatal(err)
		}
		if len(recs) == 0 {
			// and let the view catch up with it all
			if err := h.app.View().WaitFor(h.ctx, h.pumped); err != nil {
				h.t.Fatal(err)
			}
			return
		}
		for _, r := range recs {
			if err := h.app.HandleEvent(h.ctx, r); err != nil {
				h.t.Fatalf("handle %s at %d: %v", r.Event.GetType(), r.Position, err)
			}
			h.pumped = r.Position
		}
	}
}

type complaintSpec struct {
	text, customer, model, fingerprint string
	channel                            eventsv1.Channel
	tier                               eventsv1.CustomerTier
	// anonymous: the customer left no contact (else intake sealed one,
	// under the key id "key-<customer>").
	anonymous bool
}

// intake appends what intake writes for a new complaint and pumps.
func (h *harness) intake(id string, s complaintSpec) {
	h.t.Helper()
	if s.channel == 0 {
		s.channel = eventsv1.Channel_CHANNEL_PHONE
	}
	if s.tier == 0 {
		s.tier = eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR
	}
	cust := &eventsv1.Customer{CustomerRef: s.customer, Tier: s.tier, Anonymous: s.anonymous}
	if !s.anonymous {
		cust.Personal = &eventsv1.SealedPersonalData{KeyId: "key-" + s.customer, Nonce: []byte("nonce"), Ciphertext: []byte("sealed")}
	}
	h.append(id, "intake", &eventsv1.ComplaintReceived{
		Channel: s.channel, ChannelRef: "ref-" + id, Description: s.text, FirstReceiver: "hotline-7",
		Customer:           cust,
		Product:            &eventsv1.Product{Model: s.model},
		ProblemFingerprint: s.fingerprint,
	}, &eventsv1.ComplaintAccepted{AcceptedBy: "system", Automatic: true})
}

// append writes events as another service would and pumps.
func (h *harness) append(id, producer string, msgs ...proto.Message) []*eventsv1.Envelope {
	h.t.Helper()
	stream := eventlog.ComplaintStream(id)
	recs, err := h.store.ReadStream(h.ctx, stream, 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var envs []*eventsv1.Envelope
	for _, m := range msgs {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: producer, Actor: "system", OccurredAt: h.clock.Now()}, m)
		if err != nil {
			h.t.Fatal(err)
		}
		envs = append(envs, e)
	}
	if _, err := h.store.Append(h.ctx, stream, uint64(len(recs)), envs...); err != nil {
		h.t.Fatal(err)
	}
	h.pump()
	return envs
}

func (h *harness) breach(id string) *eventsv1.Envelope {
	return h.append(id, "slaclock", &eventsv1.SlaBreached{ClockId: "clk-" + id, Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, LateBy: durationpb.New(time.Minute)})[0]
}

func (h *harness) complaint(id string) *domain.Complaint {
	h.t.Helper()
	c, err := h.app.Load(h.ctx, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// events returns the payloads of a complaint's stream of one type.
func events[T proto.Message](h *harness, id string) []T {
	h.t.Helper()
	recs, err := h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []T
	for _, r := range recs {
		if m, ok := eventlog.Payload(r.Event).(T); ok {
			out = append(out, m)
		}
	}
	return out
}

func (h *harness) types(id string) []string {
	recs, err := h.store.ReadStream(h.ctx, eventlog.ComplaintStream(id), 1)
	if err != nil {
		h.t.Fatal(err)
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Event.GetType()
	}
	return out
}

// respond records the response to the customer every resolution needs.
func (h *harness) respond(id string, by domain.Actor) {
	h.t.Helper()
	if _, err := h.app.RecordResponse(h.ctx, Target{ComplaintID: id}, by, eventsv1.Channel_CHANNEL_PHONE, "called the customer back"); err != nil {
		h.t.Fatal(err)
	}
}

// ok fails the test on a command's error: ok(t)(h.app.Resolve(...)).
func ok(t *testing.T) func(uint64, error) {
	return func(_ uint64, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}
