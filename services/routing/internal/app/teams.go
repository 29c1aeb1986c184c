package app

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/kernel"
	"github.com/closeloop/closeloop/services/routing/internal/domain"
)

// LoadTeam reads a team's roster from its stream (an unknown team has
// version 0 and no members).
func (a *Application) LoadTeam(ctx context.Context, id string) (*domain.Team, error) {
	if err := domain.ValidateID("team", id); err != nil {
		return nil, err
	}
	recs, err := a.store.ReadStream(ctx, eventlog.Stream(eventlog.KindTeam, id), 1)
	if err != nil {
		return nil, fmt.Errorf("read team %s: %w", id, err)
	}
	return foldTeam(id, recs), nil
}

func foldTeam(id string, recs []eventlog.Record) *domain.Team {
	t := domain.NewTeam(id)
	for _, r := range recs {
		t.Evolve(r.Event)
	}
	return t
}

// AddTeamMember, UpdateTeamMember and RemoveTeamMember change a roster;
// they return the team stream's version.
func (a *Application) AddTeamMember(ctx context.Context, actor domain.Actor, m domain.MemberChange) (uint64, error) {
	return a.changeTeam(ctx, "AddTeamMember", m.Team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Join(t, actor, m) })
}

func (a *Application) UpdateTeamMember(ctx context.Context, actor domain.Actor, m domain.MemberChange) (uint64, error) {
	return a.changeTeam(ctx, "UpdateTeamMember", m.Team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Update(t, actor, m) })
}

func (a *Application) RemoveTeamMember(ctx context.Context, actor domain.Actor, team, member string) (uint64, error) {
	return a.changeTeam(ctx, "RemoveTeamMember", team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Leave(t, actor, team, member) })
}

func (a *Application) changeTeam(ctx context.Context, name, id string, actor domain.Actor, decide func(*domain.Team) ([]proto.Message, error)) (uint64, error) {
	if err := domain.ValidateID("team", id); err != nil {
		return 0, err
	}
	res, err := kernel.Execute(ctx, a.writer, kernel.Command[*domain.Team]{
		Name:   name,
		Stream: eventlog.Stream(eventlog.KindTeam, id),
		Cause:  kernel.Cause{Actor: actor.ID},
		Fold:   func(recs []eventlog.Record) (*domain.Team, error) { return foldTeam(id, recs), nil },
		Decide: func(t *domain.Team, _ time.Time) ([]proto.Message, error) { return decide(t) },
		Stamp:  a.stamp,
	})
	return res.Version, err
}
