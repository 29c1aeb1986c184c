package jsstore_test

// The cost of event signing: appends with and without a signer, and a
// replay of a signed log with and without the readers' Verifier (signature
// and chain link of every event).
//
//	go test -run '^$' -bench 'Signing' -benchtime 2s ./libs/eventlog/jsstore/

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/closeloop/closeloop/libs/eventlog"
	"github.com/closeloop/closeloop/libs/eventlog/jsstore"
	"github.com/closeloop/closeloop/libs/eventlog/signing"
	"github.com/closeloop/closeloop/libs/eventlog/signing/signingtest"
	"github.com/closeloop/closeloop/libs/natsembed"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// BenchmarkSigningAppend is Append64Writers, signing off and on.
func BenchmarkSigningAppend(b *testing.B) {
	signer := signingtest.Signer(b, "routing-bench", "routing")
	for _, d := range durabilities {
		for _, sig := range []struct {
			name   string
			signer *signing.Signer
		}{{"Off", nil}, {"On", signer}} {
			b.Run(d.name+"/"+sig.name, func(b *testing.B) {
				_, js := startServer(b, natsembed.Options{NoSync: d.noSync})
				s := newStore(b, js, jsstore.Config{Signer: sig.signer})
				ctx := testContext(b)
				type complaint struct {
					stream  eventlog.StreamID
					version uint64
				}
				complaints := make([]complaint, writers)
				for i := range complaints {
					complaints[i].stream = eventlog.ComplaintStream(uuid.NewString())
				}
				cpu := cpuTime()
				runWriters(b, func(w int) error {
					c := &complaints[w]
					res, err := s.Append(ctx, c.stream, c.version, responseBy(b, "routing", c.stream.ID()))
					if err != nil {
						return err
					}
					c.version = res.Version
					return nil
				})
				b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/1e3/float64(b.N), "cpu-µs/event")
			})
		}
	}
}

const (
	signedStreams      = 2_000
	signedStreamEvents = 10
)

var signedLog struct {
	once   sync.Once
	err    error
	store  *jsstore.Store
	signer *signing.Signer
}

// BenchmarkSigningReplay reads a signed log of 20,000 events (2,000
// complaints of 10, written interleaved as a live log is) by ReadAll,
// without and with the Verifier every service's reader runs.
func BenchmarkSigningReplay(b *testing.B) {
	signedLog.once.Do(func() { signedLog.err = fillSignedLog(b) })
	if signedLog.err != nil {
		b.Fatal(signedLog.err)
	}
	s := signedLog.store
	for _, verify := range []bool{false, true} {
		b.Run(map[bool]string{false: "ReadOnly", true: "Verified"}[verify], func(b *testing.B) {
			ctx := testContext(b)
			b.ResetTimer()
			cpu := cpuTime()
			for range b.N {
				var v *eventlog.Verifier
				if verify {
					var err error
					v, err = eventlog.NewVerifier(s, eventlog.VerifierOptions{Keys: signingtest.Keyring(b, signedLog.signer)})
					must(b, err)
				}
				n, from := 0, uint64(1)
				for {
					recs, err := s.ReadAll(ctx, from, 10_000)
					must(b, err)
					if len(recs) == 0 {
						break
					}
					for _, r := range recs {
						if v != nil {
							must(b, v.Check(ctx, "bench", r))
						}
					}
					n += len(recs)
					from = recs[len(recs)-1].Position + 1
				}
				if n != signedStreams*signedStreamEvents {
					b.Fatalf("replayed %d events, want %d", n, signedStreams*signedStreamEvents)
				}
			}
			reportEvents(b, cpu, b.N*signedStreams*signedStreamEvents)
		})
	}
}

func fillSignedLog(b *testing.B) error {
	srv, err := natsembed.Start(natsembed.Options{NoSync: true})
	if err != nil {
		return err
	}
	b.Cleanup(srv.Shutdown)
	js := connect(b, srv)
	signedLog.signer = signingtest.Signer(b, "routing-bench", "routing")
	s, err := jsstore.New(bg(), js, jsstore.Config{Signer: signedLog.signer})
	if err != nil {
		return err
	}
	b.Cleanup(func() { _ = s.Close() })
	streams := make([]eventlog.StreamID, signedStreams)
	for i := range streams {
		streams[i] = eventlog.ComplaintStream(uuid.NewString())
	}
	for v := range uint64(signedStreamEvents) {
		for _, st := range streams {
			e := signingtest.Event(b, "routing", st.ID(), &eventsv1.ResponseRecorded{Summary: "a typical event", RespondedBy: "agent-7"})
			if _, err := s.Append(bg(), st, v, e); err != nil {
				return fmt.Errorf("fill: %w", err)
			}
		}
	}
	signedLog.store = s
	return nil
}
