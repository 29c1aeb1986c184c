package web

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	consolev1 "github.com/closeloop/closeloop/proto/gen/closeloop/console/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
	"github.com/closeloop/closeloop/services/console/internal/viewtest"
)

// queueClient serves a view of 20 open complaints (owners agent-1 and
// agent-2 in turn) on a libs/api server on a real port and returns a
// client of it.
func queueClient(t *testing.T) consolev1.QueueServiceClient {
	t.Helper()
	authn, err := auth.NewStaticTokens([]auth.TokenEntry{
		{TokenSHA256: auth.HashToken(tokAgent), Principal: auth.Principal{ID: "agent-1", Kind: auth.KindUser, Roles: []string{auth.RoleAgent}}},
		{TokenSHA256: auth.HashToken(tokTech), Principal: auth.Principal{ID: "tech-1", Kind: auth.KindUser, Roles: []string{auth.RoleTechnician}}},
		{TokenSHA256: auth.HashToken(tokAdapt), Principal: auth.Principal{ID: "adapter-1", Kind: auth.KindAdapter, Channels: []string{"phone"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v := view.New(view.NewIndex([]byte("web-test-secret-0123")))
	viewtest.FillOpen(v, 20, []string{"agent-1", "agent-2"}, t0)
	srv := api.NewServer(api.Options{Name: "console-test", GRPCAddr: "127.0.0.1:0", Authenticator: authn,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	consolev1.RegisterQueueServiceServer(srv.GRPC(), NewQueueService(v))
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return consolev1.NewQueueServiceClient(conn)
}

// bearer is a call's context with token, bounded so a hang fails the test.
func bearer(t *testing.T, token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func TestQueueServiceListsAndPages(t *testing.T) {
	c := queueClient(t)
	req := &consolev1.ListComplaintsRequest{Owner: "agent-1", Severity: eventsv1.Severity_SEVERITY_L1,
		Sort: consolev1.Sort_SORT_RECEIVED, Limit: 2}
	var ids []string
	for _, offset := range []int32{0, 2, 4} {
		req.Offset = offset
		resp, err := c.ListComplaints(bearer(t, tokAgent), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal() != 5 || resp.GetPosition() != 120 {
			t.Fatalf("offset %d: total %d position %d, want 5 and 120", offset, resp.GetTotal(), resp.GetPosition())
		}
		for _, r := range resp.GetComplaints() {
			if r.GetOwner() != "agent-1" || r.GetSeverity() != eventsv1.Severity_SEVERITY_L1 {
				t.Fatalf("%s: owner %s severity %s", r.GetId(), r.GetOwner(), r.GetSeverity())
			}
			ids = append(ids, r.GetId())
		}
	}
	want := []string{"c-0000016", "c-0000012", "c-0000008", "c-0000004", "c-0000000"}
	if len(ids) != len(want) {
		t.Fatalf("pages hold %v, want %v", ids, want)
	}
	for i := range want {
		if ids[i] != want[i] {
			t.Fatalf("pages hold %v, want %v (newest first)", ids, want)
		}
	}
	// due_before: c-0000000's first response is due at t0+1h, the others later.
	resp, err := c.ListComplaints(bearer(t, tokAgent), &consolev1.ListComplaintsRequest{DueBefore: timestamppb.New(t0.Add(time.Hour + time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetTotal() != 1 || resp.GetComplaints()[0].GetId() != "c-0000000" {
		t.Fatalf("due before t0+1h: %v", resp.GetComplaints())
	}
}

func TestQueueServiceGetsOne(t *testing.T) {
	c := queueClient(t)
	resp, err := c.GetComplaint(bearer(t, tokAgent), &consolev1.GetComplaintRequest{Id: "c-0000003"})
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetComplaint()
	if r.GetId() != "c-0000003" || r.GetOwner() != "agent-2" || r.GetStatus() != view.StatusAssigned || r.GetVersion() != 6 ||
		r.GetSeverity() != eventsv1.Severity_SEVERITY_L4 || len(r.GetClocks()) != 2 ||
		r.GetNextDueTarget() != eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE || !r.GetNextDue().AsTime().Equal(t0.Add(3*time.Second+4*time.Hour)) {
		t.Fatalf("got %v", r)
	}
	_, err = c.GetComplaint(bearer(t, tokAgent), &consolev1.GetComplaintRequest{Id: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown complaint: %v", err)
	}
}

func TestQueueServiceRefusesABadRequestNamingEveryField(t *testing.T) {
	c := queueClient(t)
	_, err := c.ListComplaints(bearer(t, tokAgent), &consolev1.ListComplaintsRequest{
		Status: "lost", Severity: 9, Sort: 7, Limit: 9999, Offset: -1})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad request: %v", err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if got, want := fields, []string{"status", "severity", "sort", "limit", "offset"}; len(got) != len(want) || got[0] != want[0] ||
		got[1] != want[1] || got[2] != want[2] || got[3] != want[3] || got[4] != want[4] {
		t.Fatalf("BadRequest names %v, want %v", got, want)
	}
}

func TestQueueServiceCallers(t *testing.T) {
	c := queueClient(t)
	if _, err := c.ListComplaints(context.Background(), &consolev1.ListComplaintsRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	for _, tok := range []string{tokTech, tokAdapt} {
		if _, err := c.ListComplaints(bearer(t, tok), &consolev1.ListComplaintsRequest{}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s listing: %v", tok, err)
		}
		if _, err := c.GetComplaint(bearer(t, tok), &consolev1.GetComplaintRequest{Id: "c-0000001"}); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("%s getting: %v", tok, err)
		}
	}
}
