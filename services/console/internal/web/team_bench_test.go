package web

import (
	"fmt"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/viewtest"
)

// The team page over 50,000 open complaints (12,500 in the lead's team):
// every 10th complaint's response clock warned (50, 75, 90 % or breached
// in turn; 2,500 in the team), every 100th with a solution waiting for the
// supervisor review (500 in the team). Routing
// is unreachable (the roster's members are not listed); the log is empty
// (no proposal texts are found, each still read).
func BenchmarkTeamPage(b *testing.B) {
	srv, _ := benchServer(b)
	v := srv.opts.View
	pos := v.Position()
	apply := func(id string, p proto.Message) {
		b.Helper()
		pos++
		if err := v.Apply(b.Context(), viewtest.Record(id, 100+pos, pos, t0, p)); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 50_000; i += 10 {
		id := fmt.Sprintf("c-%07d", i)
		if i%40 == 30 {
			apply(id, &eventsv1.SlaBreached{ClockId: id + "-response"})
		} else {
			apply(id, &eventsv1.SlaWarning{ClockId: id + "-response", ThresholdPercent: []uint32{50, 75, 90}[i%40/10]})
		}
		if i%100 == 0 {
			apply(id, &eventsv1.SolutionProposed{SolutionId: "s-" + id, ProposedBy: "agent-1",
				RequiredReviews: []eventsv1.ReviewLevel{eventsv1.ReviewLevel_REVIEW_LEVEL_SUPERVISOR}})
		}
	}
	pos++
	join := viewtest.Record("x", 1, pos, t0, &eventsv1.TeamMemberJoined{Team: "team-0", MemberId: "lead-0", Role: "team_lead"})
	join.Event.StreamId = string(eventlog.Stream(eventlog.KindTeam, "team-0"))
	if err := v.Apply(b.Context(), join); err != nil {
		b.Fatal(err)
	}
	p := auth.Principal{ID: "lead-0", Kind: auth.KindUser, Roles: []string{auth.RoleTeamLead}}
	ss := srv.sessions.create(p, "lead-token")
	measure(b, srv, "/team", &http.Cookie{Name: sessionCookie, Value: ss.id}, "")
}
