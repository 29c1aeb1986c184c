package app

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
	"github.com/closeloop/closeloop/services/dispatch/internal/domain"
)

// RegisterTechnician starts a technician's stream.
func (a *App) RegisterTechnician(ctx context.Context, actor, id string, p domain.TechnicianProfile) (*domain.Technician, error) {
	if err := a.checkCalendar(p.CalendarID); err != nil {
		return nil, err
	}
	return a.onTechnician(ctx, "RegisterTechnician", id, kernel.Cause{Actor: actor}, func(t *domain.Technician) ([]proto.Message, error) {
		return domain.RegisterTechnician(t, id, p)
	})
}

// UpdateTechnician changes a technician's skills, territory, calendar or capacity.
func (a *App) UpdateTechnician(ctx context.Context, actor, id string, p domain.TechnicianProfile) (*domain.Technician, error) {
	if err := a.checkCalendar(p.CalendarID); err != nil {
		return nil, err
	}
	return a.onTechnician(ctx, "UpdateTechnician", id, kernel.Cause{Actor: actor}, func(t *domain.Technician) ([]proto.Message, error) {
		return domain.UpdateTechnician(t, p)
	})
}

// SetTechnicianStatus makes a technician active, on leave or inactive.
func (a *App) SetTechnicianStatus(ctx context.Context, actor, id string, s eventsv1.TechnicianStatus) (*domain.Technician, error) {
	return a.onTechnician(ctx, "SetTechnicianStatus", id, kernel.Cause{Actor: actor}, func(t *domain.Technician) ([]proto.Message, error) {
		return domain.SetTechnicianStatus(t, s)
	})
}

// Technician reads a technician from their stream.
func (a *App) Technician(ctx context.Context, id string) (*domain.Technician, error) {
	t, err := a.loadTechnician(ctx, id)
	if err != nil {
		return nil, err
	}
	if !t.Registered() {
		return nil, fmt.Errorf("technician %s: %w", id, domain.ErrNotFound)
	}
	return t, nil
}

func (a *App) checkCalendar(id string) error {
	if a.view.schedules.Known(id) {
		return nil
	}
	return kernel.Invalid(kernel.Violation{Field: "profile.calendar_id", Rule: "known_calendar", Message: "no calendar with this id"})
}
