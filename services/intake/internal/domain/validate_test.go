package domain

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

var testNow = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// validSubmission is complete and valid; each case breaks one rule.
func validSubmission() *intakev1.SubmitComplaintRequest {
	return &intakev1.SubmitComplaintRequest{
		Channel:    eventsv1.Channel_CHANNEL_PHONE,
		ChannelRef: "HOT-2026-000123",
		ReceivedAt: timestamppb.New(testNow.Add(-time.Minute)),
		Customer: &intakev1.CustomerInput{
			Name: "张三", Phone: "+86 138-0013-8000", Email: "zhang@example.com",
			Address: "北京市朝阳区 1 号", Organisation: "ACME", Tier: eventsv1.CustomerTier_CUSTOMER_TIER_VIP,
		},
		Product:         &eventsv1.Product{Model: "X-200", SerialNumber: "SN123", PurchaseDate: "2026-01-15"},
		Place:           &eventsv1.Place{Region: "North", City: "Beijing"},
		Description:     "The unit stops after ten minutes.\nTried twice.",
		Emotion:         eventsv1.Emotion_EMOTION_ANGRY,
		CustomerRequest: "repair",
		Attachments:     []*eventsv1.Attachment{{Ref: "s3://evidence/rec-1.wav", Kind: "recording", Sha256: strings.Repeat("ab", 32)}},
		FirstReceiver:   "agent-007",
	}
}

func TestValidateSubmissionAcceptsValid(t *testing.T) {
	if v := ValidateSubmission(validSubmission(), testNow, DefaultLimits); len(v) != 0 {
		t.Fatalf("valid submission refused: %+v", v)
	}
	anon := validSubmission()
	anon.Customer.Name, anon.Customer.Anonymous = "", true
	anon.Product, anon.Place, anon.Attachments, anon.Emotion = nil, nil, nil, 0
	if v := ValidateSubmission(anon, testNow, DefaultLimits); len(v) != 0 {
		t.Fatalf("anonymous minimal submission refused: %+v", v)
	}
	skew := validSubmission()
	skew.ReceivedAt = timestamppb.New(testNow.Add(4 * time.Minute))
	if v := ValidateSubmission(skew, testNow, DefaultLimits); len(v) != 0 {
		t.Fatalf("received_at within the clock-skew allowance refused: %+v", v)
	}
	old := validSubmission()
	old.ReceivedAt = timestamppb.New(testNow.Add(-DefaultLimits.MaxAge))
	if v := ValidateSubmission(old, testNow, DefaultLimits); len(v) != 0 {
		t.Fatalf("received_at exactly at the age limit refused: %+v", v)
	}
}

func TestValidateSubmissionRules(t *testing.T) {
	const secretPhone = "+86 139 9999 0000x"
	tests := []struct {
		field, rule string
		mutate      func(r *intakev1.SubmitComplaintRequest)
	}{
		{"channel", "required", func(r *intakev1.SubmitComplaintRequest) { r.Channel = 0 }},
		{"channel", "enum", func(r *intakev1.SubmitComplaintRequest) { r.Channel = 99 }},
		{"channel_ref", "required", func(r *intakev1.SubmitComplaintRequest) { r.ChannelRef = "" }},
		{"channel_ref", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.ChannelRef = strings.Repeat("a", 129) }},
		{"channel_ref", "charset", func(r *intakev1.SubmitComplaintRequest) { r.ChannelRef = "has space" }},
		{"channel_ref", "utf8", func(r *intakev1.SubmitComplaintRequest) { r.ChannelRef = "\xff\xfe" }},
		{"channel_ref", "no_control_chars", func(r *intakev1.SubmitComplaintRequest) { r.ChannelRef = "a\x00b" }},
		{"received_at", "required", func(r *intakev1.SubmitComplaintRequest) { r.ReceivedAt = nil }},
		{"received_at", "valid_timestamp", func(r *intakev1.SubmitComplaintRequest) {
			r.ReceivedAt = &timestamppb.Timestamp{Seconds: 1, Nanos: -5}
		}},
		{"received_at", "not_future", func(r *intakev1.SubmitComplaintRequest) {
			r.ReceivedAt = timestamppb.New(testNow.Add(6 * time.Minute))
		}},
		{"received_at", "max_age", func(r *intakev1.SubmitComplaintRequest) {
			r.ReceivedAt = timestamppb.New(testNow.Add(-DefaultLimits.MaxAge - time.Second))
		}},
		{"received_at", "max_age", func(r *intakev1.SubmitComplaintRequest) {
			r.ReceivedAt = timestamppb.New(time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)) // year 0001, as make run was sent
		}},
		{"customer", "required", func(r *intakev1.SubmitComplaintRequest) { r.Customer = nil }},
		{"customer.name", "required", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Name = "" }},
		{"customer.name", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Name = strings.Repeat("名", 101) }},
		{"customer.name", "not_blank", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Name = "   " }},
		{"customer.name", "empty_when_anonymous", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Anonymous = true }},
		{"customer.phone", "phone_format", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Phone = secretPhone }},
		{"customer.phone", "phone_format", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Phone = "123" }},
		{"customer.email", "email_format", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Email = "zhang-at-example.com" }},
		{"customer.email", "max_length", func(r *intakev1.SubmitComplaintRequest) {
			r.Customer.Email = strings.Repeat("a", 250) + "@b.cn"
		}},
		{"customer.address", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Address = strings.Repeat("a", 301) }},
		{"customer.organisation", "max_length", func(r *intakev1.SubmitComplaintRequest) {
			r.Customer.Organisation = strings.Repeat("a", 201)
		}},
		{"customer.tier", "enum", func(r *intakev1.SubmitComplaintRequest) { r.Customer.Tier = 7 }},
		{"product.model", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.Product.Model = strings.Repeat("m", 101) }},
		{"product.serial_number", "charset", func(r *intakev1.SubmitComplaintRequest) { r.Product.SerialNumber = "SN 1" }},
		{"product.purchase_date", "date_format", func(r *intakev1.SubmitComplaintRequest) { r.Product.PurchaseDate = "15/01/2026" }},
		{"product.purchase_date", "not_future", func(r *intakev1.SubmitComplaintRequest) { r.Product.PurchaseDate = "2027-01-01" }},
		{"place.region", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.Place.Region = strings.Repeat("r", 101) }},
		{"place.city", "no_control_chars", func(r *intakev1.SubmitComplaintRequest) { r.Place.City = "Bei\njing" }},
		{"description", "required", func(r *intakev1.SubmitComplaintRequest) { r.Description = "" }},
		{"description", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.Description = strings.Repeat("坏", 5001) }},
		{"description", "utf8", func(r *intakev1.SubmitComplaintRequest) { r.Description = "broken \xc3\x28" }},
		{"description", "not_blank", func(r *intakev1.SubmitComplaintRequest) { r.Description = " \n\t " }},
		{"emotion", "enum", func(r *intakev1.SubmitComplaintRequest) { r.Emotion = 42 }},
		{"customer_request", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.CustomerRequest = strings.Repeat("x", 1001) }},
		{"attachments", "max_items", func(r *intakev1.SubmitComplaintRequest) {
			for range 21 {
				r.Attachments = append(r.Attachments, &eventsv1.Attachment{Ref: "r", Kind: "photo"})
			}
		}},
		{"attachments[0].ref", "required", func(r *intakev1.SubmitComplaintRequest) { r.Attachments[0].Ref = "" }},
		{"attachments[0].ref", "charset", func(r *intakev1.SubmitComplaintRequest) { r.Attachments[0].Ref = "a b" }},
		{"attachments[0].kind", "enum", func(r *intakev1.SubmitComplaintRequest) { r.Attachments[0].Kind = "selfie" }},
		{"attachments[0].sha256", "sha256_hex", func(r *intakev1.SubmitComplaintRequest) { r.Attachments[0].Sha256 = "xyz" }},
		{"first_receiver", "required", func(r *intakev1.SubmitComplaintRequest) { r.FirstReceiver = "" }},
		{"first_receiver", "max_length", func(r *intakev1.SubmitComplaintRequest) { r.FirstReceiver = strings.Repeat("a", 101) }},
	}
	for _, tt := range tests {
		t.Run(tt.field+"/"+tt.rule, func(t *testing.T) {
			r := validSubmission()
			tt.mutate(r)
			before := proto.Clone(r)
			v := ValidateSubmission(r, testNow, DefaultLimits)
			if len(v) != 1 {
				t.Fatalf("want exactly one violation %s/%s, got %+v", tt.field, tt.rule, v)
			}
			if v[0].Field != tt.field || v[0].Rule != tt.rule {
				t.Fatalf("got %s/%s (%s), want %s/%s", v[0].Field, v[0].Rule, v[0].Message, tt.field, tt.rule)
			}
			if v[0].Message == "" || !strings.Contains(v[0].Message, strings.Split(tt.field, ".")[0]) {
				t.Fatalf("message %q does not name the field", v[0].Message)
			}
			if strings.Contains(v[0].Message, "139 9999") || strings.Contains(v[0].Message, "zhang") {
				t.Fatalf("message %q echoes personal data", v[0].Message)
			}
			if !proto.Equal(before, r) {
				t.Fatal("validation changed the request")
			}
		})
	}
}

func TestValidateOtherCommands(t *testing.T) {
	tests := []struct {
		name        string
		got         []Violation
		field, rule string
	}{
		{"id required", ValidateID("complaint_id", ""), "complaint_id", "required"},
		{"id uuid", ValidateID("complaint_id", "not-a-uuid"), "complaint_id", "uuid"},
		{"reason required", ValidateText("reason", "", true), "reason", "required"},
		{"reason length", ValidateText("reason", strings.Repeat("r", 1001), true), "reason", "max_length"},
		{"attachments required", ValidateAttachments("attachments", nil, 5), "attachments", "required"},
		{"customer required", ValidateCustomer("customer", nil), "customer", "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.got) != 1 || tt.got[0].Field != tt.field || tt.got[0].Rule != tt.rule {
				t.Fatalf("got %+v, want one %s/%s", tt.got, tt.field, tt.rule)
			}
		})
	}
}
