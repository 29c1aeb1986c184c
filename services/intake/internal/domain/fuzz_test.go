package domain

import (
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// FuzzValidateSubmission feeds arbitrary JSON (the HTTP and NATS faces) and
// protobuf bytes (gRPC) through the decoder and the validator: neither may
// panic, a violation always names a field and a rule, and a submission the
// validator accepts has only valid UTF-8 in its text.
func FuzzValidateSubmission(f *testing.F) {
	valid, _ := protojson.Marshal(validSubmission())
	f.Add(valid)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"channel":"CHANNEL_EMAIL","channelRef":"m-1","receivedAt":"2026-11-02T08:00:00Z","customer":{"anonymous":true},"description":"x","firstReceiver":"a"}`))
	f.Add([]byte(`{"channel":99,"attachments":[{"ref":"","kind":"?"}]}`))
	f.Add([]byte(`{"receivedAt":"9999-12-31T23:59:59Z","customer":{"phone":"++--"}}`))
	pb, _ := proto.Marshal(validSubmission())
	f.Add(pb)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, decode := range []func([]byte, proto.Message) error{protojson.Unmarshal, proto.Unmarshal} {
			var r intakev1.SubmitComplaintRequest
			if decode(data, &r) != nil {
				continue
			}
			v := ValidateSubmission(&r, testNow, DefaultLimits)
			for _, x := range v {
				if x.Field == "" || x.Rule == "" || x.Message == "" {
					t.Fatalf("violation without field, rule or message: %+v", x)
				}
			}
			if len(v) == 0 {
				for _, s := range []string{r.GetChannelRef(), r.GetDescription(), r.GetCustomer().GetName(), r.GetFirstReceiver()} {
					if !utf8.ValidString(s) {
						t.Fatalf("accepted invalid UTF-8 %q", s)
					}
				}
				if r.GetDescription() == "" || r.GetChannelRef() == "" {
					t.Fatal("accepted a submission without description or channel_ref")
				}
			}
		}
	})
}
