package ports

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/closeloop/closeloop/libs/bus"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/services/dispatch/internal/app"
)

// Durable is the name of dispatch's consumer of complaint events; every
// instance shares it, so each event is handled by one of them.
const Durable = "dispatch"

// SubscribeComplaintEvents feeds complaint events to the app: routing's
// DispatchRequested, and dispatch's own events (to settle bookings and
// dispatch follow-on orders even after a crash). opts brings the logger
// and the service's telemetry providers; the durable and subjects are set
// here.
func SubscribeComplaintEvents(ctx context.Context, js jetstream.JetStream, a *app.App, opts bus.Options) (*bus.Subscription, error) {
	opts.Durable = Durable
	opts.Subjects = []string{jsstore.KindSubjects(eventlog.KindComplaint)}
	return bus.Subscribe(ctx, js, opts, func(ctx context.Context, rec eventlog.Record) error {
		err := a.HandleComplaintEvent(ctx, rec)
		if errors.Is(err, app.ErrUnusable) {
			return bus.Permanent(err)
		}
		return err
	})
}
