package console_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	consolev1 "github.com/closeloop/closeloop/proto/gen/closeloop/console/v1"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// Another tool asks the console's QueueService, on its own port, for a
// complaint submitted through intake and assigned by routing.
func TestQueueServiceAnswersFromTheLog(t *testing.T) {
	s := startSystem(t)
	r, err := s.intake.SubmitComplaint(s.as(tokHotline), &intakev1.SubmitComplaintRequest{
		Channel: eventsv1.Channel_CHANNEL_PHONE, ChannelRef: "HOT-CONSOLE-GRPC-1", ReceivedAt: timestamppb.New(start),
		Customer:    &intakev1.CustomerInput{Name: "李四", Phone: "+86 138-0013-8002", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_REGULAR},
		Product:     &eventsv1.Product{Model: "AC-3000", SerialNumber: "SN-GRPC-01", PurchaseDate: "2026-03-01"},
		Place:       &eventsv1.Place{Region: "east", City: "Shanghai"},
		Description: "空调开机十分钟后自动关机，现在无法开机", Emotion: eventsv1.Emotion_EMOTION_DISSATISFIED,
		CustomerRequest: "上门维修", FirstReceiver: "hotline-7",
	})
	if err != nil {
		t.Fatal(err)
	}
	id := r.GetComplaintId()
	conn, err := grpc.NewClient(s.console.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	q := consolev1.NewQueueServiceClient(conn)

	h, err := healthpb.NewHealthClient(conn).Check(s.ctx, &healthpb.HealthCheckRequest{Service: consolev1.QueueService_ServiceDesc.ServiceName})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of the QueueService: %v %v", h, err)
	}
	req := &consolev1.ListComplaintsRequest{Owner: "ts-1", Channel: eventsv1.Channel_CHANNEL_PHONE, Serial: "sn-grpc-01"}
	eventually(t, "ts-1's complaint listed", func() string {
		resp, err := q.ListComplaints(s.as(tokTS1), req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetTotal() != 1 || resp.GetComplaints()[0].GetId() != id || len(resp.GetComplaints()[0].GetClocks()) == 0 {
			return "not yet"
		}
		return ""
	})
	g, err := q.GetComplaint(s.as(tokAdmin), &consolev1.GetComplaintRequest{Id: id})
	if err != nil || g.GetComplaint().GetOwner() != "ts-1" || g.GetComplaint().GetTeam() != "technical-support" {
		t.Fatalf("get %s: %v %v", id, g, err)
	}
	if _, err := q.ListComplaints(s.as(tokTech), req); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a technician: %v", err)
	}
	if _, err := q.ListComplaints(s.ctx, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
}
