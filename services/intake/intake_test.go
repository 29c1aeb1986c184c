package intake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
	"github.com/closeloop/closeloop/services/intake"
	"github.com/closeloop/closeloop/services/intake/internal/adapters"
)

// submitPath is SubmitComplaint on libs/api's HTTP/JSON face.
const submitPath = "/v1/closeloop.intake.v1.IntakeService/SubmitComplaint"

func TestHundredConcurrentIdenticalSubmissionsMakeOneComplaint(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	req := e.phoneSubmission("HOT-1")

	const n = 100
	var wg sync.WaitGroup
	ids := make([]string, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := r.client.SubmitComplaint(as(tokPhone), req)
			errs[i] = err
			ids[i], created[i] = resp.GetComplaintId(), resp.GetCreated()
		}()
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("submission %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("submission %d got complaint %s, submission 0 got %s", i, ids[i], ids[0])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Fatalf("%d submissions report created, want exactly 1", nCreated)
	}
	if got := e.events(t, ids[0]); len(got) != 2 || got[0] != "ComplaintReceived" || got[1] != "ComplaintAccepted" {
		t.Fatalf("stream = %v, want [ComplaintReceived ComplaintAccepted]", got)
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 {
		t.Fatalf("log holds %d ComplaintReceived, want 1", all["ComplaintReceived"])
	}
	// A week later, after a restart: same id, nothing new.
	r.stop()
	e.clock.Advance(7 * 24 * time.Hour)
	r2 := e.start(t, testConfig(t), nil)
	resp, err := r2.client.SubmitComplaint(as(tokPhone), req)
	if err != nil || resp.GetComplaintId() != ids[0] || resp.GetCreated() {
		t.Fatalf("retry a week later: %v, %v; want %s not created", resp, err, ids[0])
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 || len(e.events(t, ids[0])) != 2 {
		t.Fatalf("retry a week later stored something: %v", all)
	}
}

func TestDuplicateThroughSecondChannelIsLinked(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	first, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-9"))
	if err != nil || !first.GetCreated() {
		t.Fatalf("first submission: %v %v", first, err)
	}
	// The same customer writes an email about the same unit.
	mail := e.phoneSubmission("MAIL-<abc@example.com>")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	mail.Customer.Phone = "13800138000" // same number, other spelling
	mail.Description = "Re: the air conditioner keeps switching off"
	mail.Product.Model = "ac3000"

	for attempt := range 3 { // the adapter retries: still one link
		got, err := r.client.SubmitComplaint(as(tokEmail), mail)
		if err != nil {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		if !got.GetLinked() || got.GetCreated() || got.GetComplaintId() != first.GetComplaintId() {
			t.Fatalf("attempt %d: %v, want linked to %s", attempt, got, first.GetComplaintId())
		}
	}
	if evs := e.events(t, first.GetComplaintId()); count(evs, "DuplicateLinked") != 1 {
		t.Fatalf("first complaint's stream = %v, want one DuplicateLinked", evs)
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 {
		t.Fatalf("log holds %d ComplaintReceived, want 1 (the duplicate opened a complaint)", all["ComplaintReceived"])
	}
	// The email adapter may read the complaint it joined (masked: the
	// record came from the hotline).
	c, err := r.client.GetComplaint(as(tokEmail), &intakev1.GetComplaintRequest{ComplaintId: first.GetComplaintId()})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.GetComplaint().GetLinked()) != 1 || !c.GetComplaint().GetCustomer().GetMasked() || c.GetComplaint().GetCustomer().GetPhone() == "+86 138-0013-8000" {
		t.Fatalf("email adapter's view = %v", c)
	}
	// A different problem of the same customer is a new complaint.
	other := e.phoneSubmission("MAIL-2")
	other.Channel = eventsv1.Channel_CHANNEL_EMAIL
	other.Product = &eventsv1.Product{Model: "FRIDGE-9"}
	got, err := r.client.SubmitComplaint(as(tokEmail), other)
	if err != nil || got.GetLinked() || !got.GetCreated() {
		t.Fatalf("different problem: %v %v, want a new complaint", got, err)
	}
}

func TestAdapterIsBoundToItsChannel(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	phone, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-5"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"email adapter submits for the phone channel", func() error {
			_, err := r.client.SubmitComplaint(as(tokEmail), e.phoneSubmission("HOT-6"))
			return err
		}, codes.PermissionDenied},
		{"email adapter reads a phone complaint", func() error {
			_, err := r.client.GetComplaint(as(tokEmail), &intakev1.GetComplaintRequest{ComplaintId: phone.GetComplaintId()})
			return err
		}, codes.NotFound},
		{"email adapter attaches to a phone complaint", func() error {
			_, err := r.client.AttachEvidence(as(tokEmail), &intakev1.AttachEvidenceRequest{ComplaintId: phone.GetComplaintId(), Attachments: []*eventsv1.Attachment{{Ref: "x", Kind: "photo"}}})
			return err
		}, codes.NotFound},
		{"adapter accepts", func() error {
			_, err := r.client.AcceptComplaint(as(tokPhone), &intakev1.AcceptComplaintRequest{ComplaintId: phone.GetComplaintId()})
			return err
		}, codes.PermissionDenied},
		{"agent erases", func() error {
			_, err := r.client.EraseCustomer(as(tokAgent), &intakev1.EraseCustomerRequest{ComplaintId: phone.GetComplaintId(), LegalBasis: "x"})
			return err
		}, codes.PermissionDenied},
		{"no token", func() error {
			_, err := r.client.SubmitComplaint(context.Background(), e.phoneSubmission("HOT-7"))
			return err
		}, codes.Unauthenticated},
		{"unknown token", func() error {
			_, err := r.client.GetComplaint(as("not-a-real-token-at-all"), &intakev1.GetComplaintRequest{ComplaintId: phone.GetComplaintId()})
			return err
		}, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(tt.call()); got != tt.want {
				t.Fatalf("code = %v, want %v", got, tt.want)
			}
		})
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 || all["EvidenceAttached"] != 0 {
		t.Fatalf("refused calls stored events: %v", all)
	}
	// Its own adapter and agents read it in the clear; team leads masked.
	for _, tc := range []struct {
		tok    string
		masked bool
	}{{tokPhone, false}, {tokAgent, false}, {tokAuditor, false}, {tokLead, true}} {
		c, err := r.client.GetComplaint(as(tc.tok), &intakev1.GetComplaintRequest{ComplaintId: phone.GetComplaintId()})
		if err != nil {
			t.Fatalf("%s: %v", tc.tok, err)
		}
		cu := c.GetComplaint().GetCustomer()
		if cu.GetMasked() != tc.masked || (cu.GetPhone() == "+86 138-0013-8000") == tc.masked {
			t.Fatalf("%s: masked=%v phone=%q, want masked=%v", tc.tok, cu.GetMasked(), cu.GetPhone(), tc.masked)
		}
		if c.GetComplaint().GetFirstReceiver() != "agent-li" || c.GetComplaint().GetStatus() != intakev1.ComplaintStatus_COMPLAINT_STATUS_ACCEPTED {
			t.Fatalf("%s: view = %v", tc.tok, c)
		}
	}
}

func TestEraseCustomerKeepsHistoryVerifiableButUnreadable(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	sub, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-ERASE"))
	if err != nil {
		t.Fatal(err)
	}
	id := sub.GetComplaintId()
	stream := eventlog.ComplaintStream(id)
	recs, err := e.store.ReadStream(context.Background(), stream, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, pd := range []string{"张三", "13800138000", "138-0013-8000", "zhang.san@example.com", "建国路"} {
		if bytes.Contains(recs[0].Raw, []byte(pd)) {
			t.Fatalf("stored event holds personal data %q in the clear", pd)
		}
	}
	sealed := recs[0].Event.GetComplaintReceived().GetCustomer().GetPersonal()
	keys, err := pii.New(context.Background(), e.js, pii.Config{KEKs: testKEKs(t)})
	if err != nil {
		t.Fatal(err)
	}
	if pd, err := keys.Open(context.Background(), sealed); err != nil || pd.GetPhone() != "+86 138-0013-8000" {
		t.Fatalf("before erasure Open = %v, %v", pd, err)
	}

	er, err := r.client.EraseCustomer(as(tokAdmin), &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "PIPL art. 47 request #42"})
	if err != nil {
		t.Fatal(err)
	}
	if er.GetCustomerRef() == "" {
		t.Fatal("no customer ref in the answer")
	}
	broken, n, err := eventlog.VerifyStream(context.Background(), e.store, stream)
	if err != nil || broken != nil || n != 3 {
		t.Fatalf("VerifyStream after erasure: broken=%v n=%d err=%v, want intact chain of 3", broken, n, err)
	}
	if evs := e.events(t, id); evs[len(evs)-1] != "CustomerErased" {
		t.Fatalf("stream = %v, want CustomerErased last", evs)
	}
	if _, err := keys.Open(context.Background(), sealed); !errors.Is(err, pii.ErrErased) {
		t.Fatalf("Open after erasure err = %v, want ErrErased", err)
	}
	c, err := r.client.GetComplaint(as(tokAgent), &intakev1.GetComplaintRequest{ComplaintId: id})
	if err != nil {
		t.Fatal(err)
	}
	cu := c.GetComplaint().GetCustomer()
	if !cu.GetErased() || cu.GetName() != "" || cu.GetPhone() != "" || cu.GetEmail() != "" || cu.GetAddress() != "" {
		t.Fatalf("agent's view after erasure = %v", cu)
	}
	if c.GetComplaint().GetDescription() == "" {
		t.Fatal("the complaint itself must survive the erasure")
	}
	// Erasing twice is harmless and records nothing new.
	if _, err := r.client.EraseCustomer(as(tokAdmin), &intakev1.EraseCustomerRequest{ComplaintId: id, LegalBasis: "again"}); err != nil {
		t.Fatal(err)
	}
	if evs := e.events(t, id); count(evs, "CustomerErased") != 1 {
		t.Fatalf("stream = %v, want one CustomerErased", evs)
	}
}

// lossyStore simulates the intake process dying around the append: with
// failAfter, the events are stored and the reply is lost (the call fails);
// with failBefore, the process dies before appending.
type lossyStore struct {
	eventlog.Store
	failAfter, failBefore bool
	// firstOnly stores only the first event of a batch and dies: the log
	// writes a batch one event at a time.
	firstOnly bool
}

var errKilled = errors.New("process killed")

func (s *lossyStore) Append(ctx context.Context, stream eventlog.StreamID, v uint64, evs ...*eventsv1.Envelope) (eventlog.AppendResult, error) {
	if s.failBefore {
		return eventlog.AppendResult{}, errKilled
	}
	if s.firstOnly && len(evs) > 1 {
		if _, err := s.Store.Append(ctx, stream, v, evs[0]); err != nil {
			return eventlog.AppendResult{}, err
		}
		return eventlog.AppendResult{}, errKilled
	}
	res, err := s.Store.Append(ctx, stream, v, evs...)
	if err == nil && s.failAfter {
		return eventlog.AppendResult{}, errKilled
	}
	return res, err
}

func TestKilledBetweenReceiveAndReplyRetryReturnsSameComplaint(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store *lossyStore
	}{
		{"killed after the append, reply lost", &lossyStore{failAfter: true}},
		{"killed after the duplicate claim, before the append", &lossyStore{failBefore: true}},
		{"killed between ComplaintReceived and ComplaintAccepted", &lossyStore{firstOnly: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, false)
			tc.store.Store = e.store
			dying := e.start(t, testConfig(t), tc.store)
			req := e.phoneSubmission("HOT-CRASH")
			if _, err := dying.client.SubmitComplaint(as(tokPhone), req); status.Code(err) != codes.Internal {
				t.Fatalf("dying instance answered %v, want the call to fail", err)
			}
			dying.stop()

			fresh := e.start(t, testConfig(t), nil) // new instance, same NATS and log
			resp, err := fresh.client.SubmitComplaint(as(tokPhone), req)
			if err != nil {
				t.Fatal(err)
			}
			if want := e.events(t, resp.GetComplaintId()); count(want, "ComplaintReceived") != 1 || count(want, "ComplaintAccepted") != 1 {
				t.Fatalf("stream = %v, want one ComplaintReceived and one ComplaintAccepted", want)
			}
			if all := e.allEvents(t); all["ComplaintReceived"] != 1 || all["DuplicateLinked"] != 0 {
				t.Fatalf("log = %v, want exactly one ComplaintReceived and no link", all)
			}
			again, err := fresh.client.SubmitComplaint(as(tokPhone), req)
			if err != nil || again.GetComplaintId() != resp.GetComplaintId() || again.GetCreated() || !again.GetAccepted() {
				t.Fatalf("second retry: %v %v", again, err)
			}
			if evs := e.events(t, resp.GetComplaintId()); count(evs, "ComplaintAccepted") != 1 {
				t.Fatalf("after the second retry: stream = %v, want one ComplaintAccepted", evs)
			}
		})
	}
}

func TestAgentAcceptsIncompleteComplaint(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	req := e.phoneSubmission("HOT-ANON")
	req.Customer = &intakev1.CustomerInput{Anonymous: true} // no way to call back
	sub, err := r.client.SubmitComplaint(as(tokPhone), req)
	if err != nil || sub.GetAccepted() {
		t.Fatalf("incomplete submission: %v %v, want received, not accepted", sub, err)
	}
	acc, err := r.client.AcceptComplaint(as(tokAgent), &intakev1.AcceptComplaintRequest{ComplaintId: sub.GetComplaintId()})
	if err != nil || acc.GetAcceptedBy() != "agent-li" || acc.GetAutomatic() {
		t.Fatalf("accept: %v %v", acc, err)
	}
	if _, err := r.client.AcceptComplaint(as(tokAgent), &intakev1.AcceptComplaintRequest{ComplaintId: sub.GetComplaintId()}); err != nil {
		t.Fatal(err)
	}
	if evs := e.events(t, sub.GetComplaintId()); len(evs) != 2 || evs[1] != "ComplaintAccepted" {
		t.Fatalf("stream = %v, want one ComplaintAccepted after the receipt", evs)
	}
	// Amend, attach, withdraw.
	if _, err := r.client.AmendCustomerDetails(as(tokAgent), &intakev1.AmendCustomerDetailsRequest{ComplaintId: sub.GetComplaintId(), Customer: &intakev1.CustomerInput{Name: "李四", Phone: "13900001111"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.AttachEvidence(as(tokPhone), &intakev1.AttachEvidenceRequest{ComplaintId: sub.GetComplaintId(), Attachments: []*eventsv1.Attachment{{Ref: "rec://call-1", Kind: "recording"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.client.WithdrawComplaint(as(tokAgent), &intakev1.WithdrawComplaintRequest{ComplaintId: sub.GetComplaintId(), Reason: "customer solved it"}); err != nil {
		t.Fatal(err)
	}
	c, err := r.client.GetComplaint(as(tokAgent), &intakev1.GetComplaintRequest{ComplaintId: sub.GetComplaintId()})
	if err != nil {
		t.Fatal(err)
	}
	if c.GetComplaint().GetCustomer().GetName() != "李四" || len(c.GetComplaint().GetAttachments()) != 1 || c.GetComplaint().GetStatus() != intakev1.ComplaintStatus_COMPLAINT_STATUS_WITHDRAWN {
		t.Fatalf("view = %v", c)
	}
	if _, err := r.client.AcceptComplaint(as(tokAgent), &intakev1.AcceptComplaintRequest{ComplaintId: "00000000-0000-4000-8000-000000000000"}); status.Code(err) != codes.NotFound {
		t.Fatalf("accept unknown: %v, want NotFound", err)
	}
}

func TestInvalidSubmissionStoresNothingAndNamesFieldAndRule(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	bad := e.phoneSubmission("HOT-BAD")
	bad.Customer.Phone = "call me maybe 555"
	bad.Description = ""

	_, err := r.client.SubmitComplaint(as(tokPhone), bad)
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("gRPC code = %v, want InvalidArgument", st.Code())
	}
	var got []string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				got = append(got, v.GetField()+"/"+v.GetReason())
				if strings.Contains(v.GetDescription(), "555") {
					t.Fatalf("message echoes the phone: %q", v.GetDescription())
				}
			}
		}
	}
	if strings.Join(got, ",") != "customer.phone/phone_format,description/required" {
		t.Fatalf("violations = %v", got)
	}

	// The HTTP face: 400 with a JSON list of field, rule, message.
	body, _ := protojson.Marshal(bad)
	hreq, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
	hreq.Header.Set("Authorization", "Bearer "+tokPhone)
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer hresp.Body.Close()
	var eb struct { // libs/api's error body, by its JSON names
		Code       string `json:"code"`
		Message    string `json:"message"`
		Violations []struct {
			Field   string `json:"field"`
			Rule    string `json:"rule"`
			Message string `json:"message"`
		} `json:"violations"`
	}
	if err := json.NewDecoder(hresp.Body).Decode(&eb); err != nil {
		t.Fatal(err)
	}
	if hresp.StatusCode != http.StatusBadRequest || eb.Code != "InvalidArgument" || eb.Message == "" || len(eb.Violations) != 2 ||
		eb.Violations[0].Field != "customer.phone" || eb.Violations[0].Rule != "phone_format" || eb.Violations[0].Message == "" {
		t.Fatalf("HTTP %d %+v", hresp.StatusCode, eb)
	}
	if all := e.allEvents(t); len(all) != 0 {
		t.Fatalf("a rejected submission stored %v", all)
	}
}

// TestReceivedAtOlderThanTheLimitIsRefused: the lower bound on received_at
// is intake's policy (INTAKE_MAX_RECEIVED_AGE), counted back from the
// injected clock, and a refused submission stores nothing.
func TestReceivedAtOlderThanTheLimitIsRefused(t *testing.T) {
	e := newEnv(t, false)
	cfg := testConfig(t)
	cfg.MaxReceivedAge = 48 * time.Hour
	r := e.start(t, cfg, nil)
	for name, at := range map[string]time.Time{
		"just over the limit": e.now.Add(-48*time.Hour - time.Second),
		"year 0001":           time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		t.Run(name, func(t *testing.T) {
			old := e.phoneSubmission("HOT-OLD")
			old.ReceivedAt = timestamppb.New(at)
			_, err := r.client.SubmitComplaint(as(tokPhone), old)
			st := status.Convert(err)
			v := api.Violations(err)
			if st.Code() != codes.InvalidArgument || len(v) != 1 || v[0].Field != "received_at" || v[0].Rule != "max_age" || !strings.Contains(v[0].Message, "2 days") {
				t.Fatalf("got %v %+v, want InvalidArgument received_at/max_age naming the limit", st.Code(), v)
			}
		})
	}
	if all := e.allEvents(t); len(all) != 0 {
		t.Fatalf("a refused submission stored %v", all)
	}
	// Within the limit of the injected clock (weeks before the wall clock).
	ok := e.phoneSubmission("HOT-OLD-OK")
	ok.ReceivedAt = timestamppb.New(e.now.Add(-47 * time.Hour))
	if _, err := r.client.SubmitComplaint(as(tokPhone), ok); err != nil {
		t.Fatalf("received_at within the limit: %v", err)
	}
}

func TestHTTPAndNATSFaces(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	body, _ := protojson.Marshal(e.phoneSubmission("HOT-HTTP"))
	post := func(tok string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp, b.Bytes()
	}
	if resp, _ := post(""); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: HTTP %d, want 401", resp.StatusCode)
	}
	resp, b := post(tokPhone)
	var out intakev1.SubmitComplaintResponse
	if resp.StatusCode != 200 || protojson.Unmarshal(b, &out) != nil || !out.GetCreated() {
		t.Fatalf("HTTP %d %s", resp.StatusCode, b)
	}

	// NATS: the same submission again answers the same id.
	msg := nats.NewMsg(intake.SubmitSubject)
	msg.Header.Set("Authorization", "Bearer "+tokPhone)
	msg.Data = body
	rep, err := e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var nout intakev1.SubmitComplaintResponse
	if rep.Header.Get("Closeloop-Error") != "" || protojson.Unmarshal(rep.Data, &nout) != nil || nout.GetComplaintId() != out.GetComplaintId() || nout.GetCreated() {
		t.Fatalf("NATS reply %v %s", rep.Header, rep.Data)
	}
	msg.Header.Set("Authorization", "Bearer "+tokEmail)
	rep, err = e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil || rep.Header.Get("Closeloop-Error") != "PermissionDenied" {
		t.Fatalf("NATS with another channel's token: %v %v %s", err, rep.Header, rep.Data)
	}
}

func TestRateLimitPerAdapter(t *testing.T) {
	e := newEnv(t, false)
	cfg := testConfig(t)
	cfg.RatePerSecond, cfg.RateBurst = 1, 2
	r := e.start(t, cfg, nil)
	for i := range 2 {
		if _, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-R")); err != nil {
			t.Fatalf("within burst, call %d: %v", i, err)
		}
	}
	_, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-R"))
	st := status.Convert(err)
	var retry time.Duration
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			retry = ri.GetRetryDelay().AsDuration()
		}
	}
	if st.Code() != codes.ResourceExhausted || retry <= 0 {
		t.Fatalf("over the rate: %v (retry %v), want ResourceExhausted with a retry hint", err, retry)
	}
	// Another adapter has its own bucket.
	mail := e.phoneSubmission("MAIL-R")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	if _, err := r.client.SubmitComplaint(as(tokEmail), mail); err != nil {
		t.Fatalf("other adapter limited: %v", err)
	}
	// HTTP: 429 with Retry-After.
	body, _ := protojson.Marshal(e.phoneSubmission("HOT-R"))
	req, _ := http.NewRequest(http.MethodPost, "http://"+r.svc.HTTPAddr()+submitPath, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tokPhone)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var eb struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || eb.Code != "ResourceExhausted" {
		t.Fatalf("HTTP %d Retry-After=%q code=%q, want 429 with a hint", resp.StatusCode, resp.Header.Get("Retry-After"), eb.Code)
	}
	// NATS: the same interceptor, the same hint.
	msg := nats.NewMsg(intake.SubmitSubject)
	msg.Header.Set("Authorization", "Bearer "+tokPhone)
	msg.Data = body
	rep, err := e.nc.RequestMsg(msg, 5*time.Second)
	if err != nil || rep.Header.Get("Closeloop-Error") != "ResourceExhausted" || rep.Header.Get("Retry-After") == "" {
		t.Fatalf("NATS over the rate: %v %v %s", err, rep.Header, rep.Data)
	}
	// The bucket refills with time (the fake clock).
	e.clock.Advance(2 * time.Second)
	if _, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-R")); err != nil {
		t.Fatalf("after refill: %v", err)
	}
}

func TestStaleDuplicateClaimIsTakenOver(t *testing.T) {
	e := newEnv(t, false)
	dying := e.start(t, testConfig(t), &lossyStore{Store: e.store, failBefore: true})
	phone := e.phoneSubmission("HOT-ORPHAN")
	if _, err := dying.client.SubmitComplaint(as(tokPhone), phone); err == nil {
		t.Fatal("dying instance succeeded")
	}
	dying.stop() // its claim on the problem fingerprint is left behind
	r := e.start(t, testConfig(t), nil)
	mail := e.phoneSubmission("MAIL-ORPHAN")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL

	// Moments later the claimant may still be appending: retry later.
	_, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("within the grace period: %v, want Unavailable", err)
	}
	// After the grace period the claim is stale: the email opens the complaint…
	e.clock.Advance(time.Minute)
	got, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if err != nil || !got.GetCreated() {
		t.Fatalf("after the grace period: %v %v, want created", got, err)
	}
	// …and the hotline's late retry joins it instead of opening a second one.
	late, err := r.client.SubmitComplaint(as(tokPhone), phone)
	if err != nil || !late.GetLinked() || late.GetComplaintId() != got.GetComplaintId() {
		t.Fatalf("late retry: %v %v, want linked to %s", late, err, got.GetComplaintId())
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 || all["DuplicateLinked"] != 1 {
		t.Fatalf("log = %v", all)
	}
}

// A linked submission retried after the duplicate window (its fingerprint's
// claim expired) still answers the complaint it joined, and claims the
// problem for nobody: the claim waits for the link index.
func TestLinkedSubmissionRetriedAfterTheWindowStaysLinked(t *testing.T) {
	e := newEnv(t, false)
	r := e.start(t, testConfig(t), nil)
	first, err := r.client.SubmitComplaint(as(tokPhone), e.phoneSubmission("HOT-LATE"))
	if err != nil {
		t.Fatal(err)
	}
	mail := e.phoneSubmission("MAIL-LATE")
	mail.Channel = eventsv1.Channel_CHANNEL_EMAIL
	if got, err := r.client.SubmitComplaint(as(tokEmail), mail); err != nil || !got.GetLinked() {
		t.Fatalf("duplicate: %v %v, want linked", got, err)
	}
	ctx := context.Background()
	dups, err := e.js.KeyValue(ctx, adapters.DuplicatesBucket)
	if err != nil {
		t.Fatal(err)
	}
	expire := func() {
		keys, err := dups.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			if err := dups.Purge(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	expire() // the window has passed
	got, err := r.client.SubmitComplaint(as(tokEmail), mail)
	if err != nil || !got.GetLinked() || got.GetComplaintId() != first.GetComplaintId() {
		t.Fatalf("retry after the window: %v %v, want linked to %s", got, err, first.GetComplaintId())
	}
	keys, err := dups.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Fatalf("the retry claimed the problem again (%s)", k)
	}
	if all := e.allEvents(t); all["ComplaintReceived"] != 1 || all["DuplicateLinked"] != 1 {
		t.Fatalf("log = %v", all)
	}
}
