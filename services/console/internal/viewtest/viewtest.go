// Package viewtest builds records and large views for the console's tests
// and benchmarks without a log.
package viewtest

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/closeloop/closeloop/libs/eventlog"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// Record is a stored-looking record of payload on complaint id's stream.
func Record(id string, version, position uint64, at time.Time, payload proto.Message) eventlog.Record {
	e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: id, Producer: "viewtest", Actor: "viewtest", OccurredAt: at}, payload)
	if err != nil {
		panic(err)
	}
	e.StreamId, e.Version, e.RecordedAt = string(eventlog.ComplaintStream(id)), version, timestamppb.New(at)
	return eventlog.Record{Event: e, Position: position}
}

// Applier is the view (checkpoint.View's Apply).
type Applier interface {
	Apply(ctx context.Context, r eventlog.Record) error
}

// FillOpen applies n open complaints, each received, accepted, classified,
// assigned to one of owners in turn and with two SLA clocks, every one
// with its own deadline. It returns the number of events applied.
func FillOpen(v Applier, n int, owners []string, t0 time.Time) int {
	var pos uint64
	for i := range n {
		id := fmt.Sprintf("c-%07d", i)
		at := t0.Add(time.Duration(i) * time.Second)
		payloads := []proto.Message{
			&eventsv1.ComplaintReceived{Channel: eventsv1.Channel(1 + i%13), ReceivedAt: timestamppb.New(at),
				Description:     fmt.Sprintf("空调开机十分钟后自动关机，现在无法开机 model AC-%d batch %d", i%300, i%97),
				CustomerRequest: "上门维修", Product: &eventsv1.Product{SerialNumber: fmt.Sprintf("SN-%07d", i)}},
			&eventsv1.SlaClockStarted{ClockId: id + "-response", Target: eventsv1.SlaTarget_SLA_TARGET_FIRST_RESPONSE,
				Deadline: timestamppb.New(at.Add(time.Duration(1+i%48) * time.Hour))},
			&eventsv1.SlaClockStarted{ClockId: id + "-resolution", Target: eventsv1.SlaTarget_SLA_TARGET_RESOLUTION,
				Deadline: timestamppb.New(at.Add(72 * time.Hour))},
			&eventsv1.ComplaintAccepted{Automatic: true},
			&eventsv1.ComplaintClassified{Category: eventsv1.Category(1 + i%5), Severity: eventsv1.Severity(1 + i%4),
				Priority: eventsv1.Priority(1 + i%3), RulesFired: []string{"default"}},
			&eventsv1.ComplaintAssigned{Team: fmt.Sprintf("team-%d", i%4), Owner: owners[i%len(owners)]},
		}
		for v2, p := range payloads {
			pos++
			if err := v.Apply(context.Background(), Record(id, uint64(v2+1), pos, at, p)); err != nil {
				panic(err)
			}
		}
	}
	return int(pos)
}
