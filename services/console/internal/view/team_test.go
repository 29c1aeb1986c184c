package view

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// addTeam appends roster events to a team's stream.
func (w logWriter) addTeam(team string, payloads ...proto.Message) {
	w.t.Helper()
	stream := eventlog.Stream(eventlog.KindTeam, team)
	recs, err := w.log.ReadStream(context.Background(), stream, 1)
	if err != nil {
		w.t.Fatal(err)
	}
	var evs []*eventsv1.Envelope
	for _, p := range payloads {
		e, err := eventlog.NewEvent(eventlog.Meta{Producer: "test", Actor: "test", OccurredAt: t0}, p)
		if err != nil {
			w.t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if _, err := w.log.Append(context.Background(), stream, eventlog.LastVersion(recs), evs...); err != nil {
		w.t.Fatal(err)
	}
}

var (
	supervisor = eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR
	quality    = eventsv1.ReviewLevel_REVIEW_LEVEL_QUALITY
)

// The view keeps the current solution and its reviews as routing counts
// them (four eyes), the rosters, and warnings passed before a clock
// started; a restored view equals a rebuilt one.
func TestSolutionsReviewsAndRosters(t *testing.T) {
	log := memstore.New(clock.NewFake(t0))
	w := logWriter{t, log}
	received := &eventsv1.ComplaintReceived{Channel: eventsv1.Channel_CHANNEL_PHONE, ReceivedAt: ts(t0)}
	assigned := &eventsv1.ComplaintAssigned{Team: "ts", Owner: "agent-1"}
	// c-1: proposed by agent-1; the proposer's own approval counts for
	// nothing; lead-1 approves the supervisor level; quality is next.
	w.add("c-1", received, assigned,
		&eventsv1.SolutionProposed{SolutionId: "s1", ProposedBy: "agent-1", RequiredReviews: []eventsv1.ReviewLevel{quality, supervisor}},
		&eventsv1.SolutionReviewed{SolutionId: "s1", Level: supervisor, Approved: true, ReviewedBy: "agent-1"})
	// c-2: a rejected proposal, then a new one by the lead.
	w.add("c-2", received, assigned,
		&eventsv1.SolutionProposed{SolutionId: "s2", ProposedBy: "agent-1", RequiredReviews: []eventsv1.ReviewLevel{supervisor}},
		&eventsv1.SolutionReviewed{SolutionId: "s2", Level: supervisor, Approved: false, ReviewedBy: "lead-1"})
	// c-3: approved, then reopened: the old solution no longer counts.
	w.add("c-3", received, assigned,
		&eventsv1.SolutionProposed{SolutionId: "s3", ProposedBy: "agent-1", RequiredReviews: []eventsv1.ReviewLevel{supervisor}},
		&eventsv1.SolutionReviewed{SolutionId: "s3", Level: supervisor, Approved: true, ReviewedBy: "lead-1"},
		&eventsv1.ComplaintReopened{Reason: "dissatisfied"})
	// c-4: a clock started late, 75 % already passed; another breached.
	w.add("c-4", received, assigned,
		&eventsv1.SlaClockStarted{ClockId: "k1", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION, Deadline: ts(t0.Add(time.Hour)), PastWarnings: []uint32{50, 75}})
	w.add("c-5", received, assigned,
		&eventsv1.SlaClockStarted{ClockId: "k2", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE, Deadline: ts(t0.Add(time.Hour))},
		&eventsv1.SlaBreached{ClockId: "k2"})
	// c-6: received, no team yet.
	w.add("c-6", received)
	w.addTeam("ts",
		&eventsv1.TeamMemberJoined{Team: "ts", MemberId: "lead-1", Role: "team_lead"},
		&eventsv1.TeamMemberJoined{Team: "ts", MemberId: "agent-1", Role: "agent"},
		&eventsv1.TeamMemberJoined{Team: "ts", MemberId: "agent-2", Role: "agent"},
		&eventsv1.TeamMemberLeft{Team: "ts", MemberId: "agent-2"})
	w.addTeam("cs", &eventsv1.TeamMemberJoined{Team: "cs", MemberId: "agent-1", Role: "agent"},
		&eventsv1.TeamMemberUpdated{Team: "cs", MemberId: "agent-1", Role: "team_lead"})

	snaps := newMemSnapshots()
	v, _ := follow(t, log, snaps, "secret-0123456789", false)
	check := func(v *View) {
		t.Helper()
		c1, _ := v.Get("c-1")
		if next, rejected := c1.Solution.Next(); next != supervisor || rejected {
			t.Errorf("c-1 waits for %v (rejected %v), want supervisor: the proposer's approval counts for nothing", next, rejected)
		}
		c2, _ := v.Get("c-2")
		if _, rejected := c2.Solution.Next(); !rejected || c2.AwaitingReview() {
			t.Errorf("c-2: want rejected, not awaiting review")
		}
		if c3, _ := v.Get("c-3"); c3.Solution != nil || c3.AwaitingReview() {
			t.Errorf("c-3: a reopened complaint keeps solution %+v", c3.Solution)
		}
		if p := v.Find(Query{AwaitingReview: true}); p.Total != 1 || p.Complaints[0].ID != "c-1" {
			t.Errorf("awaiting review: %+v, want c-1 only", p)
		}
		if c4, _ := v.Get("c-4"); c4.Clocks[0].Warned != 75 {
			t.Errorf("c-4: warned %d, want 75 (passed before the clock started)", c4.Clocks[0].Warned)
		}
		var ids []string
		for _, c := range v.Find(Query{Team: "ts", MinWarned: 75}).Complaints {
			ids = append(ids, c.ID)
		}
		if slices.Sort(ids); !slices.Equal(ids, []string{"c-4", "c-5"}) {
			t.Errorf("warned ≥ 75 or breached: %v, want c-4 c-5", ids)
		}
		if got := v.TeamsOf("lead-1", "team_lead"); !slices.Equal(got, []string{"ts"}) {
			t.Errorf("lead-1 leads %v", got)
		}
		if got := v.TeamsOf("agent-1", "team_lead"); !slices.Equal(got, []string{"cs"}) {
			t.Errorf("agent-1 leads %v, want cs (updated)", got)
		}
		if got := v.TeamsOf("agent-2", ""); len(got) != 0 {
			t.Errorf("agent-2 left but is in %v", got)
		}
		if got := v.Teams(); !slices.Equal(got, []string{"cs", "ts"}) {
			t.Errorf("teams %v", got)
		}
	}
	check(v)
	if p := v.Find(Query{NoTeam: true}); p.Total != 1 || p.Complaints[0].ID != "c-6" {
		t.Errorf("without a team: %+v, want c-6", p)
	}
	// Approve c-1 at the supervisor level and move it to cs; restore and
	// catch up: the team index is derived again.
	w.add("c-1", &eventsv1.SolutionReviewed{SolutionId: "s1", Level: supervisor, Approved: true, ReviewedBy: "lead-1"},
		&eventsv1.ComplaintAssigned{Team: "cs", Owner: "agent-1"})
	restored, start := follow(t, log, snaps, "secret-0123456789", false)
	if !start.Restored {
		t.Fatal("the snapshot was not restored")
	}
	if c1, _ := restored.Get("c-1"); !c1.Solution.Reviewed("lead-1") {
		t.Fatal("the approval after the snapshot is missing")
	} else if next, _ := c1.Solution.Next(); next != quality {
		t.Fatalf("c-1 waits for %v, want quality", next)
	}
	for team, want := range map[string]int{"ts": 4, "cs": 1} {
		if p := restored.Find(Query{Team: team}); p.Total != want {
			t.Errorf("team %s: %d complaints, want %d", team, p.Total, want)
		}
	}
	if p := restored.Find(Query{Team: "cs", NoTeam: true}); p.Total != 0 {
		t.Errorf("team and no team: %d", p.Total)
	}
	rebuilt, _ := follow(t, log, nil, "secret-0123456789", true)
	if !bytes.Equal(snapshotOf(t, restored), snapshotOf(t, rebuilt)) {
		t.Fatal("restored and caught up differs from rebuilt")
	}
}
