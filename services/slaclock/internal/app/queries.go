package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/calendar"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	ev "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/slaclock/internal/domain"
	"github.com/closeloop/closeloop/services/slaclock/internal/policy"
	"github.com/closeloop/closeloop/services/slaclock/internal/timers"
)

// ClockView is a clock with the business (or calendar) time left at an instant.
type ClockView struct {
	domain.Clock
	Remaining time.Duration
}

// Clocks folds a complaint's stream up to asOf (zero: now) and reports its
// clocks with the time left at that instant.
func (a *App) Clocks(ctx context.Context, complaintID string, asOf time.Time) ([]ClockView, time.Time, error) {
	at := asOf
	if at.IsZero() {
		at = a.clk.Now()
	}
	st, err := a.load(ctx, complaintID, asOf)
	if err != nil {
		return nil, at, err
	}
	env := a.env(at)
	views := make([]ClockView, 0, len(st.Clocks))
	for _, c := range st.Clocks {
		cal := env.CalendarOf(c.Business, c.CalendarID)
		v := ClockView{Clock: c}
		switch c.Status {
		case domain.Paused:
			v.Remaining = c.Remaining
		case domain.Met:
			v.Remaining = cal.Between(c.MetAt, c.Deadline)
		case domain.Running, domain.Breached:
			v.Remaining = cal.Between(at, c.Deadline)
		}
		views = append(views, v)
	}
	return views, at, nil
}

// DueWithin lists this instance's running clocks whose deadline falls
// before now+window, soonest first.
func (a *App) DueWithin(window time.Duration, limit int) []timers.Upcoming {
	return a.idx.DueBefore(a.clk.Now().Add(window), limit)
}

// PublishPolicy validates a document and appends it to the policy stream;
// by is who publishes it.
func (a *App) PublishPolicy(ctx context.Context, doc []byte, by string) (string, error) {
	p, err := policy.Parse(doc)
	if err != nil {
		return "", invalid("document", err)
	}
	_, err = kernel.Execute(ctx, a.w, kernel.Command[[]string]{
		Name: "PublishPolicy", Stream: PolicyStream, Cause: kernel.Cause{Actor: by},
		Fold: func(recs []eventlog.Record) ([]string, error) {
			versions := make([]string, 0, len(recs))
			for _, r := range recs {
				versions = append(versions, r.Event.GetSlaPolicyPublished().GetPolicyVersion())
			}
			return versions, nil
		},
		Decide: func(published []string, _ time.Time) ([]proto.Message, error) {
			if slices.Contains(published, p.Version) {
				return nil, invalid("document", fmt.Errorf("policy version %q is already published; a changed policy needs a new version", p.Version))
			}
			return []proto.Message{&ev.SlaPolicyPublished{PolicyVersion: p.Version, Document: doc, PublishedBy: by}}, nil
		},
		Stamp: func(m *eventlog.Meta) { m.PolicyVersion = p.Version },
	})
	if err != nil {
		return "", err
	}
	a.policies.Publish(p)
	return p.Version, nil
}

// invalid refuses a request for the content of one field.
func invalid(field string, err error) error {
	return kernel.Invalid(kernel.Violation{Field: field, Rule: "valid", Message: err.Error()})
}

// WhatIfReport is the result of a what-if replay.
type WhatIfReport struct {
	Complaints       int
	CandidateVersion string
	Targets          map[ev.SlaTarget]*domain.Tally
	// Changes names the clocks that flip or whose deadline moves, the
	// first WhatIfChanges of ChangesTotal.
	Changes      []domain.ClockChange
	ChangesTotal int
}

// WhatIfChanges bounds the clocks a what-if names, so a big log does not
// make a huge answer (the counts cover them all).
const WhatIfChanges = 100

// WhatIf replays the complaints received in [from, to) under the current
// policy and under a candidate (policy document and/or calendar), changing
// nothing. Clocks run until now.
func (a *App) WhatIf(ctx context.Context, doc []byte, calendarID string, from, to time.Time) (WhatIfReport, error) {
	now := a.clk.Now()
	current := a.env(now)
	candidate := a.env(now)
	rep := WhatIfReport{CandidateVersion: a.policies.Current().Version}
	if len(doc) > 0 {
		p, err := policy.Parse(doc)
		if err != nil {
			return rep, invalid("policy_document", err)
		}
		candidate.Policies = policy.NewBook(p)
		rep.CandidateVersion = p.Version
	}
	if calendarID != "" {
		c, err := a.calendars.Calendar(calendarID)
		if err != nil {
			return rep, invalid("calendar_id", err)
		}
		candidate.Calendars = only{c}
	}
	histories := map[string][]*ev.Envelope{}
	for pos := uint64(1); ; {
		recs, err := a.store.ReadAll(ctx, pos, 10_000)
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			pos = r.Position + 1
			s := eventlog.StreamID(r.Event.GetStreamId())
			if s.Kind() != eventlog.KindComplaint || r.Event.GetProducer() == domain.Producer {
				continue
			}
			id := s.ID()
			if rc := r.Event.GetComplaintReceived(); rc != nil {
				at := r.Event.GetOccurredAt().AsTime()
				if rc.GetReceivedAt() != nil {
					at = rc.GetReceivedAt().AsTime()
				}
				if at.Before(from) || !at.Before(to) {
					continue
				}
				histories[id] = []*ev.Envelope{r.Event}
			} else if h, ok := histories[id]; ok {
				histories[id] = append(h, r.Event)
			}
		}
	}
	rep.Complaints = len(histories)
	r := domain.WhatIf(histories, current, candidate, now, WhatIfChanges)
	rep.Targets, rep.Changes, rep.ChangesTotal = r.Targets, r.Changes, r.ChangesTotal
	return rep, nil
}

// only is a calendar set with one calendar for every id and owner.
type only struct{ c *calendar.Calendar }

func (o only) Calendar(string) (*calendar.Calendar, error) { return o.c, nil }
func (o only) For(string) (*calendar.Calendar, bool)       { return o.c, true }

// CurrentPolicyVersion is the version new clocks start under.
func (a *App) CurrentPolicyVersion() string { return a.policies.Current().Version }
