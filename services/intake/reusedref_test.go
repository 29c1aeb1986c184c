package intake_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/closeloop/closeloop/libs/api"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// A channel reference names one report: resent, it answers the same
// complaint; reused for another report, it is refused and stores nothing.
func TestReusedChannelRefWithAnotherBodyIsRefused(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	first, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-R"))
	if err != nil || !first.GetCreated() {
		t.Fatalf("first: %v %v", first, err)
	}
	again, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-R"))
	if err != nil || again.GetCreated() || again.GetComplaintId() != first.GetComplaintId() {
		t.Fatalf("same report again: %v %v, want %s not created", again, err, first.GetComplaintId())
	}
	before := e.allEvents(t)

	refused := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.AlreadyExists || !strings.Contains(status.Convert(err).Message(), "channel_ref") {
			t.Fatalf("%s: %v, want AlreadyExists naming channel_ref", what, err)
		}
		if v := api.Violations(err); len(v) != 1 || v[0].Field != "channel_ref" {
			t.Fatalf("%s: violations %v, want channel_ref", what, v)
		}
		if after := e.allEvents(t); !equalCounts(before, after) {
			t.Fatalf("%s stored events: %v, was %v", what, after, before)
		}
	}
	other := e.phoneSubmission("HOT-R")
	other.Description = "the remote control does not pair"
	_, err = r.client.SubmitComplaint(as(tokPhone), other)
	refused("another description", err)

	later := e.phoneSubmission("HOT-R")
	later.ReceivedAt.Seconds += 30
	_, err = r.client.SubmitComplaint(as(tokPhone), later)
	refused("another reception time", err)

	// Another problem (another product) under the reused reference: its
	// claim is given back, so under a reference of its own it is a new
	// complaint, not a duplicate of HOT-R's.
	other.Product = &eventsv1.Product{Model: "FRIDGE-X"}
	_, err = r.client.SubmitComplaint(as(tokPhone), other)
	refused("another product", err)
	other.ChannelRef = "HOT-R2"
	fresh, err := r.client.SubmitComplaint(as(tokPhone), other)
	if err != nil || !fresh.GetCreated() || fresh.GetLinked() {
		t.Fatalf("refused report under a new reference: %v %v, want a new complaint", fresh, err)
	}
	// HOT-R's own claim stayed: its problem under a new reference is a
	// duplicate of it.
	dup := e.phoneSubmission("HOT-R3")
	dup.Description = "it switched off again"
	if got, err := r.client.SubmitComplaint(as(tokPhone), dup); err != nil || !got.GetLinked() || got.GetComplaintId() != first.GetComplaintId() {
		t.Fatalf("HOT-R's problem again: %v %v, want linked to %s", got, err, first.GetComplaintId())
	}
	before = e.allEvents(t)
	// HOT-R reused for HOT-R2's problem, owned by another complaint: not
	// a duplicate to link either.
	other.ChannelRef = "HOT-R"
	_, err = r.client.SubmitComplaint(as(tokPhone), other)
	refused("another complaint's problem", err)

	// A linked submission's reference, reused: for another product. (Its
	// description is stored nowhere: the first complaint's stands.)
	mail := e.phoneSubmission("MAIL-R")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	linked, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if err != nil || !linked.GetLinked() {
		t.Fatalf("email duplicate: %v %v, want linked", linked, err)
	}
	if again, err := r.client.SubmitComplaint(as(tokEmail), mail); err != nil || again.GetComplaintId() != linked.GetComplaintId() {
		t.Fatalf("email duplicate again: %v %v", again, err)
	}
	before = e.allEvents(t)
	mail.Product = &eventsv1.Product{Model: "FRIDGE-9"}
	_, err = r.client.SubmitComplaint(as(tokEmail), mail)
	refused("a linked reference", err)

	// An anonymous report (no contact, so no duplicate claim) likewise.
	anon := e.phoneSubmission("HOT-ANON")
	anon.Customer = &intakev1.CustomerInput{Anonymous: true}
	if got, err := r.client.SubmitComplaint(as(tokPhone), anon); err != nil || !got.GetCreated() {
		t.Fatalf("anonymous: %v %v", got, err)
	}
	if got, err := r.client.SubmitComplaint(as(tokPhone), anon); err != nil || got.GetCreated() {
		t.Fatalf("anonymous again: %v %v, want the same complaint", got, err)
	}
	before = e.allEvents(t)
	anon.Description = "and the fan is loud"
	_, err = r.client.SubmitComplaint(as(tokPhone), anon)
	refused("an anonymous reference", err)

	// HTTP: 409 naming the field.
	body, _ := protojson.Marshal(later)
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokPhone)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(b.String(), `"channel_ref"`) || !strings.Contains(b.String(), "AlreadyExists") {
		t.Fatalf("HTTP %d %s, want 409 AlreadyExists naming channel_ref", resp.StatusCode, b.String())
	}
	if after := e.allEvents(t); !equalCounts(before, after) {
		t.Fatalf("HTTP stored events: %v, was %v", after, before)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
