package slaclock_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	slaclockv1 "github.com/closeloop/closeloop/proto/gen/closeloop/slaclock/v1"
	"github.com/closeloop/closeloop/services/slaclock"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

func client(t *testing.T, svc *slaclock.Service) slaclockv1.SlaClockServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(svc.API().GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return slaclockv1.NewSlaClockServiceClient(conn)
}

// invalidField is the field an INVALID_ARGUMENT names ("" otherwise).
func invalidField(err error) string {
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		return ""
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func at(y int, m time.Month, d, hh, mm int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(y, m, d, hh, mm, 0, 0, shanghai))
}

// The calculator through the gRPC API on a real embedded server: the 2026
// National Day week and its make-up days, the provisional 2027, bad input.
func TestComputeDeadlineOverGRPC(t *testing.T) {
	r := newRig(t)
	svc, _ := r.start(t)
	c := client(t, svc)
	ctx := context.Background()
	cases := []struct {
		name        string
		req         *slaclockv1.ComputeDeadlineRequest
		want        *timestamppb.Timestamp
		provisional bool
	}{
		{"8 working hours over National Day", &slaclockv1.ComputeDeadlineRequest{CalendarId: "cn-standard", From: at(2026, 9, 30, 16, 0), Duration: durationpb.New(8 * time.Hour)}, at(2026, 10, 8, 16, 0), false},
		{"2 working days over National Day", &slaclockv1.ComputeDeadlineRequest{CalendarId: "cn-standard", From: at(2026, 9, 30, 16, 0), WorkingDays: 2}, at(2026, 10, 9, 16, 0), false},
		{"onto the make-up Saturday Oct 10", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 10, 9, 16, 0), Duration: durationpb.New(8 * time.Hour)}, at(2026, 10, 10, 16, 0), false},
		{"onto the make-up Sunday Sep 20", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 18, 16, 0), WorkingDays: 1}, at(2026, 9, 20, 16, 0), false},
		{"into the provisional 2027", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 12, 31, 16, 0), WorkingDays: 1}, at(2027, 1, 4, 16, 0), true},
	}
	for _, tc := range cases {
		res, err := c.ComputeDeadline(ctx, tc.req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !res.GetDeadline().AsTime().Equal(tc.want.AsTime()) || res.GetProvisional() != tc.provisional ||
			res.GetCalendarId() != "cn-standard" || !strings.HasPrefix(res.GetCalendarVersion(), "cn-standard@2026+2027p#") ||
			res.GetTimeZone() != "Asia/Shanghai" {
			t.Errorf("%s: %v, want deadline %s provisional %v on cn-standard", tc.name, res, tc.want.AsTime().In(shanghai), tc.provisional)
		}
	}
	for _, bad := range []struct {
		name  string
		req   *slaclockv1.ComputeDeadlineRequest
		field string
	}{
		{"unknown calendar", &slaclockv1.ComputeDeadlineRequest{CalendarId: "mars", From: at(2026, 9, 30, 16, 0), WorkingDays: 1}, "calendar_id"},
		{"no instant", &slaclockv1.ComputeDeadlineRequest{WorkingDays: 1}, "from"},
		{"bad instant", &slaclockv1.ComputeDeadlineRequest{From: &timestamppb.Timestamp{Seconds: -1e13}, WorkingDays: 1}, "from"},
		{"negative hours", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 30, 16, 0), Duration: durationpb.New(-time.Hour)}, "duration"},
		{"zero hours", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 30, 16, 0), Duration: durationpb.New(0)}, "duration"},
		{"negative days", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 30, 16, 0), WorkingDays: -2}, "working_days"},
		{"both", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 30, 16, 0), Duration: durationpb.New(time.Hour), WorkingDays: 1}, "duration"},
		{"neither", &slaclockv1.ComputeDeadlineRequest{From: at(2026, 9, 30, 16, 0)}, "duration"},
	} {
		if _, err := c.ComputeDeadline(ctx, bad.req); invalidField(err) != bad.field {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", bad.name, err, bad.field)
		}
	}
}

const official2027 = `{
  "region": "CN", "year": 2027, "provisional": false,
  "source": "test data shaped like a State Council notice (not the real 2027 arrangement)",
  "holidays": [
    {"name": "New Year", "off_from": "2027-01-01", "off_to": "2027-01-03"},
    {"name": "Mid-Autumn", "off_from": "2027-09-15", "off_to": "2027-09-17", "provisional": true},
    {"name": "National Day", "off_from": "2027-10-01", "off_to": "2027-10-07", "work": ["2027-09-26", "2027-10-09"]}
  ]
}`

// Publishing a year: the list shows the new version, the calculator and
// new clocks use it (their events name the version), a restart reads it
// back from the log, and a bad file is refused naming the field.
func TestPublishCalendarYear(t *testing.T) {
	r := newRig(t)
	snaps := newSnapshots(t, r)
	svc, stop := r.startWith(t, startOpts{snaps: snaps})
	c := client(t, svc)
	ctx := context.Background()
	from := at(2027, 9, 30, 16, 0) // Thursday
	before, err := c.ComputeDeadline(ctx, &slaclockv1.ComputeDeadlineRequest{From: from, WorkingDays: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Shipped 2027 (provisional): Oct 1-3 off; Mon 4, Tue 5.
	if want := at(2027, 10, 5, 16, 0); !before.GetDeadline().AsTime().Equal(want.AsTime()) || !before.GetProvisional() {
		t.Fatalf("before publishing: %v", before)
	}

	pub, err := c.PublishCalendarYear(ctx, &slaclockv1.PublishCalendarYearRequest{Document: []byte(official2027)})
	if err != nil {
		t.Fatal(err)
	}
	if pub.GetRegion() != "CN" || pub.GetYear() != 2027 || pub.GetVersion() != 1 || !pub.GetPublished() || len(pub.GetCalendarVersions()) != 2 {
		t.Fatalf("publish: %v", pub)
	}
	list, err := c.ListCalendars(ctx, &slaclockv1.ListCalendarsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var std *slaclockv1.CalendarInfo
	for _, ci := range list.GetCalendars() {
		if ci.GetId() == "cn-standard" {
			std = ci
		}
	}
	if std == nil || !std.GetDefault() || !strings.HasPrefix(std.GetVersion(), "cn-standard@2026+2027v1p#") || len(std.GetYears()) != 2 {
		t.Fatalf("ListCalendars: %v", std)
	}
	if y := std.GetYears()[1]; y.GetYear() != 2027 || y.GetVersion() != 1 || !y.GetProvisional() ||
		len(y.GetProvisionalEntries()) != 1 || !strings.HasPrefix(y.GetProvisionalEntries()[0], "Mid-Autumn") {
		t.Fatalf("2027 as listed: %v", y)
	}

	after, err := c.ComputeDeadline(ctx, &slaclockv1.ComputeDeadlineRequest{From: from, WorkingDays: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Published 2027: Oct 1-7 off; Fri 8, Sat 9 (make-up).
	if want := at(2027, 10, 9, 16, 0); !after.GetDeadline().AsTime().Equal(want.AsTime()) || after.GetCalendarVersion() != std.GetVersion() {
		t.Fatalf("after publishing: %v, want %s on %s", after, want.AsTime().In(shanghai), std.GetVersion())
	}

	again, err := c.PublishCalendarYear(ctx, &slaclockv1.PublishCalendarYearRequest{Document: []byte(official2027)})
	if err != nil || again.GetPublished() || again.GetVersion() != 1 {
		t.Fatalf("the same document again: %v %v, want version 1, not published", again, err)
	}
	for _, bad := range []struct{ doc, field string }{
		{strings.Replace(official2027, `"2027-09-26", `, `"2027-10-02", `, 1), "document.holidays[2].work[0]"},
		{strings.Replace(official2027, `"2027-01-03"`, `"2027-01-3"`, 1), "document.holidays[0].off_to"},
		{strings.Replace(official2027, `"CN"`, `"JP"`, 1), "document.region"},
		{strings.Replace(official2027, `"source"`, `"origin"`, 1), "document"},
		{"", "document"},
	} {
		if _, err := c.PublishCalendarYear(ctx, &slaclockv1.PublishCalendarYearRequest{Document: []byte(bad.doc)}); invalidField(err) != bad.field {
			t.Errorf("%q: %v, want INVALID_ARGUMENT naming %s", bad.field, err, bad.field)
		}
	}
	recs, err := r.store.ReadStream(ctx, eventlog.StreamID("policy-calendar-cn"), 1)
	if err != nil || len(recs) != 1 || recs[0].Event.GetCalendarYearPublished().GetVersion() != 1 {
		t.Fatalf("the calendar stream: %d events, %v", len(recs), err)
	}

	// A complaint received in 2027 and classified major: its business-time
	// clock is on the published year and its events name that version.
	id := uuid.NewString()
	recv := from.AsTime()
	r.clk.Set(recv)
	r.write(t, id, recv, &ev.ComplaintReceived{ReceivedAt: timestamppb.New(recv), Customer: &ev.Customer{Tier: ev.CustomerTier_CUSTOMER_TIER_VIP}})
	r.write(t, id, recv, &ev.ComplaintClassified{Severity: ev.Severity_SEVERITY_L3})
	// Whether the service saw the classification with the receipt or after
	// it (then it re-terms the clock), the business-time terms are the same.
	var calVersion string
	var deadline time.Time
	waitFor(t, "a business-time clock", func() bool {
		for _, e := range r.own(t, id, "SlaClockStarted") {
			if e.GetSlaClockStarted().GetBusinessTime() {
				calVersion, deadline = e.GetCalendarVersion(), e.GetSlaClockStarted().GetDeadline().AsTime()
			}
		}
		for _, e := range r.own(t, id, "SlaClockRetermed") {
			if e.GetSlaClockRetermed().GetTerms().GetBusinessTime() {
				calVersion, deadline = e.GetCalendarVersion(), e.GetSlaClockRetermed().GetTerms().GetDeadline().AsTime()
			}
		}
		return calVersion != ""
	})
	if calVersion != std.GetVersion() || !deadline.Equal(after.GetDeadline().AsTime()) {
		t.Fatalf("clock on calendar %q deadline %s, want %q and %s", calVersion,
			deadline.In(shanghai), std.GetVersion(), after.GetDeadline().AsTime().In(shanghai))
	}

	// A new instance, restored from the snapshot saved at the stop (after
	// the publication), reads the published year from its stream.
	stop()
	svc2, _ := r.startWith(t, startOpts{snaps: snaps})
	if st := svc2.App().Follower().Started(); !st.Restored || st.Position < recs[0].Position {
		t.Fatalf("not restored from a snapshot after the publication: %+v", st)
	}
	list, err = client(t, svc2).ListCalendars(ctx, &slaclockv1.ListCalendarsRequest{})
	if err != nil || list.GetCalendars()[2].GetId() != "cn-standard" || list.GetCalendars()[2].GetVersion() != std.GetVersion() {
		t.Fatalf("after a restart: %v %v, want cn-standard at %s", list, err, std.GetVersion())
	}
}
