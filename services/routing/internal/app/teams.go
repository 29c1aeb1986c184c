package app

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/eventlog"
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
	t := domain.NewTeam(id)
	for _, r := range recs {
		t.Evolve(r.Event)
	}
	return t, nil
}

// AddTeamMember, UpdateTeamMember and RemoveTeamMember change a roster;
// they return the team stream's version.
func (a *Application) AddTeamMember(ctx context.Context, actor domain.Actor, m domain.MemberChange) (uint64, error) {
	return a.changeTeam(ctx, m.Team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Join(t, actor, m) })
}

func (a *Application) UpdateTeamMember(ctx context.Context, actor domain.Actor, m domain.MemberChange) (uint64, error) {
	return a.changeTeam(ctx, m.Team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Update(t, actor, m) })
}

func (a *Application) RemoveTeamMember(ctx context.Context, actor domain.Actor, team, member string) (uint64, error) {
	return a.changeTeam(ctx, team, actor, func(t *domain.Team) ([]proto.Message, error) { return domain.Leave(t, actor, team, member) })
}

func (a *Application) changeTeam(ctx context.Context, id string, actor domain.Actor, decide func(*domain.Team) ([]proto.Message, error)) (uint64, error) {
	for attempt := 1; ; attempt++ {
		t, err := a.LoadTeam(ctx, id)
		if err != nil {
			return 0, err
		}
		msgs, err := decide(t)
		if err != nil {
			return 0, err
		}
		envs, err := a.envelopes(ctx, "", actor, cause{}, msgs)
		if err != nil {
			return 0, err
		}
		res, err := a.store.Append(ctx, eventlog.Stream(eventlog.KindTeam, id), t.Version, envs...)
		if err == nil {
			return res.Version, nil
		}
		if !errors.Is(err, eventlog.ErrConflict) || attempt == maxAttempts {
			return 0, fmt.Errorf("append to team %s: %w", id, err)
		}
	}
}
