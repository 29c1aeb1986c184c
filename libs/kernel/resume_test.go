package kernel_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/protobuf/proto"

	"github.com/closeloop/closeloop/libs/clock"
	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/memstore"
	"github.com/closeloop/closeloop/libs/kernel"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// counting counts what ReadStream returns and where each read starts.
type counting struct {
	eventlog.Store
	froms []uint64
	recs  int
}

func (c *counting) ReadStream(ctx context.Context, s eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	recs, err := c.Store.ReadStream(ctx, s, from)
	c.froms = append(c.froms, from)
	c.recs += len(recs)
	return recs, err
}

// accepts is a stream's acceptors, in order: a state Evolve extends in
// place, so a double application or a shared state shows.
type accepts struct{ by []string }

func foldAccepts(recs []eventlog.Record) (*accepts, error) {
	s := &accepts{}
	for _, r := range recs {
		s, _ = evolveAccepts(s, r)
	}
	return s, nil
}

func evolveAccepts(s *accepts, r eventlog.Record) (*accepts, error) {
	s.by = append(s.by, r.Event.GetComplaintAccepted().GetAcceptedBy()) // "" for ComplaintReceived
	return s, nil
}

// acceptedStream appends ComplaintReceived and n-1 ComplaintAccepted.
func acceptedStream(t *testing.T, store eventlog.Store, n int) {
	t.Helper()
	received(t, store, "c1")
	for v := 2; v <= n; v++ {
		e, err := eventlog.NewEvent(eventlog.Meta{ComplaintID: "c1", Producer: "intake", OccurredAt: t0}, &eventsv1.ComplaintAccepted{AcceptedBy: "a"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Append(context.Background(), eventlog.ComplaintStream("c1"), uint64(v-1), e); err != nil {
			t.Fatal(err)
		}
	}
}

func acceptOne(*accepts, time.Time) ([]proto.Message, error) {
	return []proto.Message{&eventsv1.ComplaintAccepted{AcceptedBy: "me"}}, nil
}

func TestExecuteResumesAndReadsOnlyTheTail(t *testing.T) {
	mem := memstore.New(clock.NewFake(t0))
	acceptedStream(t, mem, 50)
	store := &counting{Store: mem}
	w := newWriter(t, store, trace.NewTracerProvider())
	all, _ := mem.ReadStream(context.Background(), eventlog.ComplaintStream("c1"), 1)
	known, _ := foldAccepts(all[:47]) // a view that saw versions 1..47
	var decidedOn []string
	res, err := kernel.Execute(context.Background(), w, kernel.Command[*accepts]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: foldAccepts, Evolve: evolveAccepts,
		Resume: func() (*accepts, uint64, uint64) { return &accepts{by: slices.Clone(known.by)}, 47, 0 },
		Decide: func(s *accepts, now time.Time) ([]proto.Message, error) {
			decidedOn = slices.Clone(s.by)
			return acceptOne(s, now)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	full, _ := foldAccepts(all)
	if !slices.Equal(decidedOn, full.by) {
		t.Errorf("decided on %d acceptors, want the full fold's %d", len(decidedOn), len(full.by))
	}
	if !slices.Equal(store.froms, []uint64{48}) || store.recs != 3 {
		t.Errorf("reads from %v returned %d records; want one read from version 48 returning 3", store.froms, store.recs)
	}
	if res.Version != 51 || len(known.by) != 47 {
		t.Errorf("version %d, resumed state now %d long; want 51, the resumed state untouched (47)", res.Version, len(known.by))
	}
}

func TestExecuteReResumesOnAConflict(t *testing.T) {
	mem := memstore.New(clock.NewFake(t0))
	acceptedStream(t, mem, 5)
	store := &racing{Store: &counting{Store: mem}, n: 1}
	w := newWriter(t, store, trace.NewTracerProvider())
	shared, _ := foldAccepts(mustRead(t, mem)) // the view's own state, at version 5
	resumes := 0
	var decidedOn []int
	res, err := kernel.Execute(context.Background(), w, kernel.Command[*accepts]{
		Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: foldAccepts, Evolve: evolveAccepts,
		Resume: func() (*accepts, uint64, uint64) {
			resumes++
			return &accepts{by: slices.Clone(shared.by)}, 5, 0 // a view that has not caught up
		},
		Decide: func(s *accepts, now time.Time) ([]proto.Message, error) {
			decidedOn = append(decidedOn, len(s.by))
			return acceptOne(s, now)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The racing writer's event (version 6) came in between: the second
	// attempt resumes afresh and evolves it once, not onto the first
	// attempt's state.
	if resumes != 2 || !slices.Equal(decidedOn, []int{5, 6}) || res.Version != 7 {
		t.Errorf("%d resumes, decided on %v, version %d; want 2, [5 6], 7", resumes, decidedOn, res.Version)
	}
	if len(shared.by) != 5 {
		t.Errorf("the shared state has %d acceptors, want its 5 untouched", len(shared.by))
	}
	if c := store.Store.(*counting); c.recs != 1 || !slices.Equal(c.froms, []uint64{6, 6}) {
		t.Errorf("reads from %v returned %d records; want two tail reads from 6, 1 record in all", c.froms, c.recs)
	}
}

// gappy leaves out the first record of every read that does not start at
// version 1, as a backend that lost one would.
type gappy struct{ *counting }

func (g gappy) ReadStream(ctx context.Context, s eventlog.StreamID, from uint64) ([]eventlog.Record, error) {
	recs, err := g.counting.ReadStream(ctx, s, from)
	if from > 1 && len(recs) > 0 {
		recs = recs[1:]
	}
	return recs, err
}

func TestExecuteFoldsTheWholeStreamWhenTheResumeIsNotOnIt(t *testing.T) {
	mem := memstore.New(clock.NewFake(t0))
	acceptedStream(t, mem, 3)
	store := &counting{Store: mem}
	for _, tc := range []struct {
		name  string
		store eventlog.Store
		at    uint64 // the resumed version
		state *accepts
	}{
		{"ahead of the stream", store, 9, &accepts{}}, // a conflict, then a full read
		{"a gap before the tail", gappy{store}, 1, &accepts{by: []string{""}}},
	} {
		store.froms, store.recs = nil, 0
		w := newWriter(t, tc.store, trace.NewTracerProvider())
		var decidedOn int
		res, err := kernel.Execute(context.Background(), w, kernel.Command[*accepts]{
			Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: foldAccepts, Evolve: evolveAccepts,
			Resume: func() (*accepts, uint64, uint64) { return &accepts{by: slices.Clone(tc.state.by)}, tc.at, 0 },
			Decide: func(s *accepts, now time.Time) ([]proto.Message, error) {
				decidedOn = len(s.by)
				return acceptOne(s, now)
			},
		})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := int(res.Version) - 1; decidedOn != want || store.froms[len(store.froms)-1] != 1 {
			t.Errorf("%s: decided on %d events after reads from %v; want the whole stream's %d, a last read from 1", tc.name, decidedOn, store.froms, want)
		}
	}
}

func TestExecuteRefusesResumeWithoutEvolve(t *testing.T) {
	w := newWriter(t, memstore.New(clock.NewFake(t0)), trace.NewTracerProvider())
	_, err := kernel.Execute(context.Background(), w, kernel.Command[*accepts]{
		Stream: eventlog.ComplaintStream("c1"), Fold: foldAccepts, Decide: acceptOne,
		Resume: func() (*accepts, uint64, uint64) { return &accepts{}, 0, 0 },
	})
	if err == nil {
		t.Error("Resume without Evolve ran; want an error")
	}
}

func mustRead(t *testing.T, s eventlog.Store) []eventlog.Record {
	t.Helper()
	recs, err := s.ReadStream(context.Background(), eventlog.ComplaintStream("c1"), 1)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
