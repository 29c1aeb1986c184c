package web

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/console/internal/view"
)

// protoEnum is any generated enum.
type protoEnum interface {
	String() string
	Descriptor() protoreflect.EnumDescriptor
}

// enumName is an enum value without its type prefix, lower case
// ("SEVERITY_L2" → "l2"); "" for the unspecified value.
func enumName(e protoEnum) string {
	s := e.String()
	if strings.HasSuffix(s, "_UNSPECIFIED") {
		return ""
	}
	prefix := strings.ToUpper(camelToSnake(string(e.Descriptor().Name()))) + "_"
	return strings.ToLower(strings.TrimPrefix(s, prefix))
}

func camelToSnake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// countdown says how long until due, as of now ("2h 05m left", "overdue
// by 12m"); the page's script keeps it moving.
func countdown(lang string, due, now time.Time) string {
	if due.IsZero() {
		return msg(lang, "none")
	}
	d := due.Sub(now)
	if d < 0 {
		return msg(lang, "overdue") + " " + span(-d)
	}
	if lang == langZH {
		return msg(lang, "left") + " " + span(d)
	}
	return span(d) + " " + msg(lang, "left")
}

func span(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h >= 24:
		return fmt.Sprintf("%dd %02dh %02dm", h/24, h%24, m)
	case h > 0:
		return fmt.Sprintf("%dh %02dm %02ds", h, m, s)
	}
	return fmt.Sprintf("%dm %02ds", m, s)
}

// describe summarises an event for the timeline, without personal data
// (sealed blobs are never opened or shown).
func describe(e *eventsv1.Envelope) string {
	switch p := e.GetPayload().(type) {
	case *eventsv1.Envelope_ComplaintReceived:
		return "channel " + enumName(p.ComplaintReceived.GetChannel())
	case *eventsv1.Envelope_ComplaintClassified:
		x := p.ComplaintClassified
		return fmt.Sprintf("%s, %s, %s; rules: %s", enumName(x.GetCategory()), enumName(x.GetSeverity()), enumName(x.GetPriority()), strings.Join(x.GetRulesFired(), ", "))
	case *eventsv1.Envelope_ComplaintAssigned:
		return fmt.Sprintf("team %s, owner %s", p.ComplaintAssigned.GetTeam(), p.ComplaintAssigned.GetOwner())
	case *eventsv1.Envelope_AssignmentAccepted:
		return "owner " + p.AssignmentAccepted.GetOwner()
	case *eventsv1.Envelope_ComplaintEscalated:
		x := p.ComplaintEscalated
		return fmt.Sprintf("%s → %s (%s)", enumName(x.GetFromLevel()), enumName(x.GetToLevel()), enumName(x.GetCause()))
	case *eventsv1.Envelope_StakeholdersNotified:
		return strings.Join(p.StakeholdersNotified.GetRecipients(), ", ")
	case *eventsv1.Envelope_ResponseRecorded:
		return enumName(p.ResponseRecorded.GetChannel()) + ": " + p.ResponseRecorded.GetSummary()
	case *eventsv1.Envelope_SolutionProposed:
		return p.SolutionProposed.GetSummary()
	case *eventsv1.Envelope_SolutionReviewed:
		x := p.SolutionReviewed
		return fmt.Sprintf("%s approved=%t %s", enumName(x.GetLevel()), x.GetApproved(), x.GetComment())
	case *eventsv1.Envelope_ComplaintResolved:
		return p.ComplaintResolved.GetSummary()
	case *eventsv1.Envelope_SlaClockStarted:
		x := p.SlaClockStarted
		return fmt.Sprintf("%s due %s", enumName(x.GetTarget()), x.GetDeadline().AsTime().UTC().Format(time.RFC3339))
	case *eventsv1.Envelope_SlaMet:
		return enumName(p.SlaMet.GetTarget())
	case *eventsv1.Envelope_SlaWarning:
		return fmt.Sprintf("%s %d%%", enumName(p.SlaWarning.GetTarget()), p.SlaWarning.GetThresholdPercent())
	case *eventsv1.Envelope_SlaBreached:
		return enumName(p.SlaBreached.GetTarget())
	case *eventsv1.Envelope_ComplaintPutOnHold:
		return enumName(p.ComplaintPutOnHold.GetReason())
	case *eventsv1.Envelope_ComplaintClosed:
		return enumName(p.ComplaintClosed.GetOutcome())
	}
	return ""
}

var funcs = template.FuncMap{
	"t":    msg,
	"list": func(s ...string) []string { return s },
	"enum": enumName,
	// Severities read as the domain writes them: L1 … L4.
	"severity":  func(e protoEnum) string { return strings.ToUpper(enumName(e)) },
	"upper":     strings.ToUpper,
	"countdown": countdown,
	"rfc3339":   func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"unixms":    func(t time.Time) int64 { return t.UnixMilli() },
	"stamp":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04Z") },
	"nextDue": func(c view.Complaint) time.Time {
		due, _ := c.NextDue()
		return due
	},
	"otherLang": func(lang string) string {
		if lang == langEN {
			return langZH
		}
		return langEN
	},
	"status": func(lang, s string) string {
		if lang == langEN {
			return strings.ReplaceAll(s, "_", " ")
		}
		return statusZH[s]
	},
}

var statusZH = map[string]string{
	view.StatusReceived: "已收到", view.StatusAccepted: "已受理", view.StatusAssigned: "已分派",
	view.StatusInProgress: "处理中", view.StatusResponded: "已回应", view.StatusSolutionProposed: "已提出方案",
	view.StatusDispatched: "已派工", view.StatusOnHold: "挂起", view.StatusResolved: "已解决",
	view.StatusReopened: "已重开", view.StatusClosed: "已关闭", view.StatusWithdrawn: "已撤回",
}
