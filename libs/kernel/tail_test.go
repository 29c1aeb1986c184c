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
)

// tailing is a counting store that is also an eventlog.TailReader, and
// counts its tail reads apart: [from version, after position] of each.
type tailing struct {
	*counting
	mem    *memstore.Store
	afters [][2]uint64
}

func (s *tailing) ReadStreamAfter(ctx context.Context, stream eventlog.StreamID, from, after uint64) ([]eventlog.Record, error) {
	recs, err := s.mem.ReadStreamAfter(ctx, stream, from, after)
	s.afters = append(s.afters, [2]uint64{from, after})
	s.recs += len(recs)
	return recs, err
}

func TestExecuteReadsTheTailAfterTheResumedPosition(t *testing.T) {
	at := func(version int) func([]eventlog.Record) uint64 {
		return func(all []eventlog.Record) uint64 { return all[version-1].Position }
	}
	pastEnd := func(all []eventlog.Record) uint64 { return all[len(all)-1].Position + 10 }
	for _, tc := range []struct {
		name       string
		position   func(all []eventlog.Record) uint64 // of the resumed version 47 (nil: not known)
		wantAfters int                                // tail reads, all from version 48 after position
		wantFroms  []uint64                           // ReadStream's
	}{
		{"the resumed event's position", at(47), 1, nil},
		{"an earlier position", at(40), 1, nil},
		{"no position known", nil, 0, []uint64{48}},
		// The caller's mistake: the store reads from version 48 whole.
		{"a position past the resumed version", at(49), 1, nil},
		// Nothing after it: the append at 47 conflicts, the second attempt
		// reads nothing again and folds the stream whole.
		{"a position past the stream's end", pastEnd, 2, []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := memstore.New(clock.NewFake(t0))
			acceptedStream(t, mem, 50)
			all := mustRead(t, mem)
			full, _ := foldAccepts(all)
			known, _ := foldAccepts(all[:47])
			var position uint64
			if tc.position != nil {
				position = tc.position(all)
			}
			store := &tailing{counting: &counting{Store: mem}, mem: mem}
			w := newWriter(t, store, trace.NewTracerProvider())
			var decidedOn []string
			res, err := kernel.Execute(context.Background(), w, kernel.Command[*accepts]{
				Stream: eventlog.ComplaintStream("c1"), ComplaintID: "c1", Fold: foldAccepts, Evolve: evolveAccepts,
				Resume: func() (*accepts, uint64, uint64) { return &accepts{by: slices.Clone(known.by)}, 47, position },
				Decide: func(s *accepts, now time.Time) ([]proto.Message, error) {
					decidedOn = slices.Clone(s.by)
					return acceptOne(s, now)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(decidedOn, full.by) || res.Version != 51 {
				t.Errorf("decided on %d acceptors, appended at version %d; want the full fold's %d, 51", len(decidedOn), res.Version, len(full.by))
			}
			want := slices.Repeat([][2]uint64{{48, position}}, tc.wantAfters)
			if !slices.Equal(store.afters, want) || !slices.Equal(store.froms, tc.wantFroms) {
				t.Errorf("tail reads %v, ReadStream from %v; want %v and %v", store.afters, store.froms, want, tc.wantFroms)
			}
		})
	}
}
