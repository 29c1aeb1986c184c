package domain

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	intakev1 "github.com/closeloop/closeloop/proto/gen/closeloop/intake/v1"
)

// Violation is one broken rule of one field (the kernel's, which libs/api
// answers as a field violation). Message never repeats the value: it may
// be personal data.
type Violation = kernel.Violation

// Limits are the configurable bounds of a submission.
type Limits struct {
	// ClockSkew is how far in the future received_at may be (channels'
	// clocks are not ours).
	ClockSkew time.Duration
	// MaxAge is how far in the past received_at may be: a submission older
	// than that is a mistake (a zero time, a wrong year), and would breach
	// every deadline at once. Zero sets no bound.
	MaxAge time.Duration
	// MaxDescription is the longest description, in characters.
	MaxDescription int
	// MaxAttachments is the most attachments a complaint may hold.
	MaxAttachments int
}

// DefaultLimits are the defaults of Config.
var DefaultLimits = Limits{ClockSkew: 5 * time.Minute, MaxAge: 30 * 24 * time.Hour, MaxDescription: 5000, MaxAttachments: 20}

// Field lengths, in characters.
const (
	maxChannelRef = 128
	maxName       = 100
	maxAddress    = 300
	maxOrg        = 200
	maxEmail      = 254
	maxShort      = 100 // model, serial, region, city, first receiver, agent ids
	maxRequest    = 1000
	maxReason     = 1000
	maxRef        = 512
)

// AttachmentKinds are the kinds of evidence an attachment may be.
var AttachmentKinds = map[string]bool{"recording": true, "chat_log": true, "photo": true, "video": true, "document": true, "other": true}

var (
	refPattern    = regexp.MustCompile(`^[\x21-\x7e]+$`)
	sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)
	emailPattern  = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
	phonePattern  = regexp.MustCompile(`^\+?[0-9][0-9 ()\-]*$`)
)

type checker struct{ v []Violation }

func (c *checker) add(field, rule, format string, args ...any) {
	c.v = append(c.v, Violation{Field: field, Rule: rule, Message: fmt.Sprintf(format, args...)})
}

// text checks a free-text field: valid UTF-8, no control characters (line
// breaks and tabs allowed where multiline), at most max characters. It
// reports at most one violation and returns whether the field is clean.
func (c *checker) text(field, s string, max int, required, multiline bool) bool {
	if s == "" {
		if required {
			c.add(field, "required", "%s is required", field)
			return false
		}
		return true
	}
	if !utf8.ValidString(s) {
		c.add(field, "utf8", "%s must be valid UTF-8", field)
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t')) {
			c.add(field, "no_control_chars", "%s must not contain control characters", field)
			return false
		}
	}
	if n := utf8.RuneCountInString(s); n > max {
		c.add(field, "max_length", "%s is %d characters long, the limit is %d", field, n, max)
		return false
	}
	if strings.TrimSpace(s) == "" {
		c.add(field, "not_blank", "%s must not be blank", field)
		return false
	}
	return true
}

func (c *checker) enum(field string, defined bool, value int32, required bool) {
	switch {
	case !defined:
		c.add(field, "enum", "%s has no value %d", field, value)
	case required && value == 0:
		c.add(field, "required", "%s is required", field)
	}
}

// ValidateSubmission checks a submission against every rule and returns all
// the violations (none: valid). now is the intake clock's time.
func ValidateSubmission(r *intakev1.SubmitComplaintRequest, now time.Time, l Limits) []Violation {
	var c checker
	c.enum("channel", eventsv1.Channel_name[int32(r.GetChannel())] != "", int32(r.GetChannel()), true)
	if c.text("channel_ref", r.GetChannelRef(), maxChannelRef, true, false) && !refPattern.MatchString(r.GetChannelRef()) {
		c.add("channel_ref", "charset", "channel_ref must be printable ASCII without spaces")
	}
	c.timestamp("received_at", r.GetReceivedAt(), now, l.ClockSkew, l.MaxAge, true)
	if r.GetCustomer() == nil {
		c.add("customer", "required", "customer is required")
	} else {
		c.customer("customer", r.GetCustomer())
	}
	c.product("product", r.GetProduct(), now)
	c.text("place.region", r.GetPlace().GetRegion(), maxShort, false, false)
	c.text("place.city", r.GetPlace().GetCity(), maxShort, false, false)
	c.text("description", r.GetDescription(), l.MaxDescription, true, true)
	c.enum("emotion", eventsv1.Emotion_name[int32(r.GetEmotion())] != "", int32(r.GetEmotion()), false)
	c.text("customer_request", r.GetCustomerRequest(), maxRequest, false, true)
	c.attachments("attachments", r.GetAttachments(), l.MaxAttachments)
	c.text("first_receiver", r.GetFirstReceiver(), maxShort, true, false)
	return c.v
}

// ValidateCustomer checks a customer's details (for an amendment).
func ValidateCustomer(field string, ci *intakev1.CustomerInput) []Violation {
	var c checker
	if ci == nil {
		c.add(field, "required", "%s is required", field)
		return c.v
	}
	c.customer(field, ci)
	return c.v
}

// ValidateAttachments checks attachments added later (limit: the most one
// request may add; the per-complaint limit is DecideAttach's).
func ValidateAttachments(field string, atts []*eventsv1.Attachment, max int) []Violation {
	var c checker
	if len(atts) == 0 {
		c.add(field, "required", "%s: at least one attachment is required", field)
	}
	c.attachments(field, atts, max)
	return c.v
}

// ValidateID checks a complaint id given by a caller.
func ValidateID(field, id string) []Violation {
	var c checker
	if c.text(field, id, 36, true, false) && !uuidPattern.MatchString(id) {
		c.add(field, "uuid", "%s must be a UUID in canonical form", field)
	}
	return c.v
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidateText checks a free-text field of a command (a reason, a legal basis).
func ValidateText(field, s string, required bool) []Violation {
	var c checker
	c.text(field, s, maxReason, required, true)
	return c.v
}

func (c *checker) timestamp(field string, ts *timestamppb.Timestamp, now time.Time, skew, maxAge time.Duration, required bool) {
	if ts == nil {
		if required {
			c.add(field, "required", "%s is required", field)
		}
		return
	}
	if err := ts.CheckValid(); err != nil {
		c.add(field, "valid_timestamp", "%s is not a valid timestamp", field)
		return
	}
	if ts.AsTime().After(now.Add(skew)) {
		c.add(field, "not_future", "%s is more than %s in the future", field, skew)
	}
	if maxAge > 0 && ts.AsTime().Before(now.Add(-maxAge)) {
		c.add(field, "max_age", "%s is more than %s in the past", field, humanDuration(maxAge))
	}
}

// humanDuration writes whole days as days ("30 days", not "720h0m0s").
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	switch {
	case d == day:
		return "1 day"
	case d > day && d%day == 0:
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

func (c *checker) customer(f string, ci *intakev1.CustomerInput) {
	if ci.GetAnonymous() {
		if ci.GetName() != "" {
			c.add(f+".name", "empty_when_anonymous", "%s.name must be empty for an anonymous customer", f)
		}
	} else {
		c.text(f+".name", ci.GetName(), maxName, true, false)
	}
	if ci.GetPhone() != "" {
		ph := ci.GetPhone()
		digits := 0
		for _, r := range ph {
			if r >= '0' && r <= '9' {
				digits++
			}
		}
		if len(ph) > 32 || !phonePattern.MatchString(ph) || digits < 5 || digits > 15 {
			c.add(f+".phone", "phone_format", "%s.phone must be 5 to 15 digits, optionally with +, spaces, dashes or brackets", f)
		}
	}
	if ci.GetEmail() != "" {
		if c.text(f+".email", ci.GetEmail(), maxEmail, false, false) && !emailPattern.MatchString(ci.GetEmail()) {
			c.add(f+".email", "email_format", "%s.email must look like name@domain.tld", f)
		}
	}
	c.text(f+".address", ci.GetAddress(), maxAddress, false, true)
	c.text(f+".organisation", ci.GetOrganisation(), maxOrg, false, false)
	c.enum(f+".tier", eventsv1.CustomerTier_name[int32(ci.GetTier())] != "", int32(ci.GetTier()), false)
}

func (c *checker) product(f string, p *eventsv1.Product, now time.Time) {
	c.text(f+".model", p.GetModel(), maxShort, false, false)
	if c.text(f+".serial_number", p.GetSerialNumber(), maxShort, false, false) && p.GetSerialNumber() != "" && !refPattern.MatchString(p.GetSerialNumber()) {
		c.add(f+".serial_number", "charset", "%s.serial_number must be printable ASCII without spaces", f)
	}
	if d := p.GetPurchaseDate(); d != "" {
		t, err := time.Parse(time.DateOnly, d)
		switch {
		case err != nil:
			c.add(f+".purchase_date", "date_format", "%s.purchase_date must be a date YYYY-MM-DD", f)
		case t.After(now):
			c.add(f+".purchase_date", "not_future", "%s.purchase_date must not be in the future", f)
		}
	}
}

func (c *checker) attachments(f string, atts []*eventsv1.Attachment, max int) {
	if len(atts) > max {
		c.add(f, "max_items", "%s has %d items, the limit is %d", f, len(atts), max)
		return
	}
	for i, a := range atts {
		af := fmt.Sprintf("%s[%d]", f, i)
		if c.text(af+".ref", a.GetRef(), maxRef, true, false) && !refPattern.MatchString(a.GetRef()) {
			c.add(af+".ref", "charset", "%s.ref must be printable ASCII without spaces", af)
		}
		if !AttachmentKinds[a.GetKind()] {
			c.add(af+".kind", "enum", "%s.kind must be one of recording, chat_log, photo, video, document, other", af)
		}
		if a.GetSha256() != "" && !sha256Pattern.MatchString(a.GetSha256()) {
			c.add(af+".sha256", "sha256_hex", "%s.sha256 must be 64 lower-case hex digits", af)
		}
	}
}
