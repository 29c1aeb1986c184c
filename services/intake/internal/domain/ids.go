package domain

import (
	"strings"
	"unicode"

	"github.com/google/uuid"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// idNamespace scopes complaint ids derived from channel references.
var idNamespace = uuid.MustParse("6f1c1b0e-4c0a-5c55-9d2b-0c1053100b01")

// ComplaintID derives the complaint id from the idempotency key: the same
// (channel, channel_ref) always gives the same id (a UUIDv5), on any
// instance, before or after a restart, with no index to keep.
func ComplaintID(ch eventsv1.Channel, channelRef string) string {
	return uuid.NewSHA1(idNamespace, []byte(ch.String()+"\x00"+channelRef)).String()
}

// ProblemKey is the normalised description of "the same problem" used to
// detect a report arriving through a second channel: the product model and
// serial number when both are given; else the model and the start of the
// description; else the start of the description alone. Callers hash it
// together with the customer reference under a secret; it is never stored.
func ProblemKey(p *eventsv1.Product, description string) string {
	model, serial := norm(p.GetModel(), 64), norm(p.GetSerialNumber(), 64)
	switch {
	case model != "" && serial != "":
		return "m:" + model + "|s:" + serial
	case model != "":
		return "m:" + model + "|d:" + norm(description, 48)
	default:
		return "d:" + norm(description, 48)
	}
}

// norm keeps letters and digits, lower-cased, at most max runes: "Model X-1 "
// and "model x1" are the same.
func norm(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			break
		}
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			b.WriteRune(unicode.ToLower(r))
			n++
		}
	}
	return b.String()
}
