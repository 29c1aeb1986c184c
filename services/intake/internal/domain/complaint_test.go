package domain

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

func env(v uint64, m proto.Message) *eventsv1.Envelope {
	e := &eventsv1.Envelope{ComplaintId: "c1", Version: v}
	switch p := m.(type) {
	case *eventsv1.ComplaintReceived:
		e.Payload = &eventsv1.Envelope_ComplaintReceived{ComplaintReceived: p}
	case *eventsv1.ComplaintAccepted:
		e.Payload = &eventsv1.Envelope_ComplaintAccepted{ComplaintAccepted: p}
	case *eventsv1.DuplicateLinked:
		e.Payload = &eventsv1.Envelope_DuplicateLinked{DuplicateLinked: p}
	case *eventsv1.ComplaintWithdrawn:
		e.Payload = &eventsv1.Envelope_ComplaintWithdrawn{ComplaintWithdrawn: p}
	case *eventsv1.CustomerErased:
		e.Payload = &eventsv1.Envelope_CustomerErased{CustomerErased: p}
	case *eventsv1.EvidenceAttached:
		e.Payload = &eventsv1.Envelope_EvidenceAttached{EvidenceAttached: p}
	case *eventsv1.ComplaintResolved:
		e.Payload = &eventsv1.Envelope_ComplaintResolved{ComplaintResolved: p}
	case *eventsv1.ComplaintClosed:
		e.Payload = &eventsv1.Envelope_ComplaintClosed{ComplaintClosed: p}
	case *eventsv1.ComplaintReopened:
		e.Payload = &eventsv1.Envelope_ComplaintReopened{ComplaintReopened: p}
	}
	return e
}

var (
	received  = &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "r1", Product: &eventsv1.Product{Model: "X"}, Description: "d", Customer: &eventsv1.Customer{CustomerRef: "cr_1"}, Attachments: []*eventsv1.Attachment{{Ref: "a", Kind: "photo"}}}
	accepted  = &eventsv1.ComplaintAccepted{AcceptedBy: "agent-1"}
	withdrawn = &eventsv1.ComplaintWithdrawn{Reason: "solved", WithdrawnBy: "agent-1"}
	linkEmail = &eventsv1.DuplicateLinked{Channel: eventsv1.Channel_CHANNEL_EMAIL, ChannelRef: "m1"}
	erased    = &eventsv1.CustomerErased{KeyId: "cr_1"}
	resolved  = &eventsv1.ComplaintResolved{ResolutionCode: "FIXED", Summary: "s", ResolvedBy: "ts-1"}
	closed    = &eventsv1.ComplaintClosed{Outcome: eventsv1.CloseOutcome_CLOSE_OUTCOME_SATISFIED}
	reopened  = &eventsv1.ComplaintReopened{ReopenCount: 1}
)

func given(ms ...proto.Message) State {
	var es []*eventsv1.Envelope
	for i, m := range ms {
		es = append(es, env(uint64(i+1), m))
	}
	return Replay(es)
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name    string
		state   State
		decide  func(State) ([]proto.Message, error)
		want    []string // event types
		wantErr error
	}{
		{"receive complete: received and accepted by system", State{}, func(s State) ([]proto.Message, error) { return DecideReceive(s, received, true) },
			[]string{"ComplaintReceived", "ComplaintAccepted"}, nil},
		{"receive without contact: waits for an agent", State{}, func(s State) ([]proto.Message, error) { return DecideReceive(s, received, false) },
			[]string{"ComplaintReceived"}, nil},
		{"receive without model: waits for an agent", State{}, func(s State) ([]proto.Message, error) {
			return DecideReceive(s, &eventsv1.ComplaintReceived{Description: "d"}, true)
		}, []string{"ComplaintReceived"}, nil},
		{"receive twice", given(received), func(s State) ([]proto.Message, error) { return DecideReceive(s, received, true) }, nil, ErrAlreadyReceived},
		{"accept received", given(received), func(s State) ([]proto.Message, error) { return DecideAccept(s, "agent-1") }, []string{"ComplaintAccepted"}, nil},
		{"accept accepted: no-op", given(received, accepted), func(s State) ([]proto.Message, error) { return DecideAccept(s, "agent-2") }, nil, nil},
		{"accept unknown", State{}, func(s State) ([]proto.Message, error) { return DecideAccept(s, "agent-1") }, nil, ErrNotFound},
		{"accept withdrawn", given(received, withdrawn), func(s State) ([]proto.Message, error) { return DecideAccept(s, "agent-1") }, nil, ErrWithdrawn},
		{"link once", given(received), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, []string{"DuplicateLinked"}, nil},
		{"link again: no-op", given(received, linkEmail), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, nil},
		{"link to unknown", State{}, func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, ErrNotFound},
		{"link to resolved", given(received, accepted, resolved), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, ErrNotOpen},
		{"link to closed", given(received, accepted, resolved, closed), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, ErrNotOpen},
		{"link to withdrawn", given(received, withdrawn), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, ErrNotOpen},
		{"link to reopened", given(received, accepted, resolved, reopened), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, []string{"DuplicateLinked"}, nil},
		{"link recorded before the resolution: no-op", given(received, linkEmail, resolved), func(s State) ([]proto.Message, error) { return DecideLink(s, linkEmail) }, nil, nil},
		{"attach within limit", given(received), func(s State) ([]proto.Message, error) {
			return DecideAttach(s, &eventsv1.EvidenceAttached{Attachments: []*eventsv1.Attachment{{Ref: "b"}}}, 2)
		}, []string{"EvidenceAttached"}, nil},
		{"attach over limit", given(received), func(s State) ([]proto.Message, error) {
			return DecideAttach(s, &eventsv1.EvidenceAttached{Attachments: []*eventsv1.Attachment{{Ref: "b"}, {Ref: "c"}}}, 2)
		}, nil, ErrTooManyAttach},
		{"withdraw", given(received), func(s State) ([]proto.Message, error) { return DecideWithdraw(s, withdrawn) }, []string{"ComplaintWithdrawn"}, nil},
		{"withdraw twice: no-op", given(received, withdrawn), func(s State) ([]proto.Message, error) { return DecideWithdraw(s, withdrawn) }, nil, nil},
		{"amend erased", given(received, erased), func(s State) ([]proto.Message, error) {
			return DecideAmend(s, &eventsv1.CustomerDetailsAmended{})
		}, nil, ErrErased},
		{"erase", given(received), func(s State) ([]proto.Message, error) { return DecideErase(s, erased) }, []string{"CustomerErased"}, nil},
		{"erase twice: no-op", given(received, erased), func(s State) ([]proto.Message, error) { return DecideErase(s, erased) }, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decide(tt.state)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var types []string
			for _, m := range got {
				types = append(types, string(m.ProtoReflect().Descriptor().Name()))
			}
			if len(types) != len(tt.want) {
				t.Fatalf("events = %v, want %v", types, tt.want)
			}
			for i := range types {
				if types[i] != tt.want[i] {
					t.Fatalf("events = %v, want %v", types, tt.want)
				}
			}
		})
	}
}

func TestEvolve(t *testing.T) {
	s := given(received, &eventsv1.ComplaintAccepted{AcceptedBy: SystemActor, Automatic: true}, linkEmail,
		&eventsv1.EvidenceAttached{Attachments: []*eventsv1.Attachment{{Ref: "b"}}}, erased)
	if s.Status != StatusAccepted || s.AcceptedBy != SystemActor || !s.AcceptedAuto {
		t.Fatalf("acceptance not applied: %+v", s)
	}
	if !s.HasLink(eventsv1.Channel_CHANNEL_EMAIL, "m1") || s.HasLink(eventsv1.Channel_CHANNEL_EMAIL, "m2") {
		t.Fatalf("links = %+v", s.Links)
	}
	if len(s.Attachments) != 2 || !s.Erased || s.Version != 5 || s.ID != "c1" {
		t.Fatalf("state = %+v", s)
	}
	if w := Evolve(s, env(6, withdrawn)); w.Status != StatusWithdrawn || w.WithdrawnWhy != "solved" {
		t.Fatalf("withdrawal not applied: %+v", w)
	}
}

func TestComplaintIDAndProblemKey(t *testing.T) {
	a := ComplaintID(eventsv1.Channel_CHANNEL_PHONE, "T-1")
	if a != ComplaintID(eventsv1.Channel_CHANNEL_PHONE, "T-1") {
		t.Fatal("id is not deterministic")
	}
	if a == ComplaintID(eventsv1.Channel_CHANNEL_EMAIL, "T-1") || a == ComplaintID(eventsv1.Channel_CHANNEL_PHONE, "T-2") {
		t.Fatal("different keys give the same id")
	}
	p1 := ProblemKey(&eventsv1.Product{Model: "X-200 ", SerialNumber: "sn-1"}, "a")
	p2 := ProblemKey(&eventsv1.Product{Model: "x200", SerialNumber: "SN1"}, "b")
	if p1 != p2 {
		t.Fatalf("normalised model+serial differ: %q %q", p1, p2)
	}
	if ProblemKey(nil, "Screen  broken!") != ProblemKey(nil, "screen broken") {
		t.Fatal("normalised descriptions differ")
	}
	if ProblemKey(&eventsv1.Product{Model: "X"}, "noise") == ProblemKey(&eventsv1.Product{Model: "X"}, "smoke") {
		t.Fatal("different problems give the same key")
	}
}
