package pii_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/closeloop/closeloop/libs/natsembed"
	"github.com/closeloop/closeloop/libs/natsembed/natstest"
	"github.com/closeloop/closeloop/libs/pii"
	eventsv1 "github.com/closeloop/closeloop/proto/gen/closeloop/events/v1"
)

// BenchmarkErase erases one customer among many: the secure delete
// rewrites the key's block file, so its cost grows with the bucket.
func BenchmarkErase(b *testing.B) {
	for _, customers := range []int{1_000, 20_000} {
		b.Run(fmt.Sprintf("customers=%d", customers), func(b *testing.B) {
			ctx := context.Background()
			srv := natstest.Start(b, natsembed.Options{}) // syncs every write, as deployed
			_, js := natstest.Connect(b, srv)
			ks, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(b)})
			if err != nil {
				b.Fatal(err)
			}
			n := max(customers, b.N)
			for i := range n {
				if _, err := ks.Seal(ctx, fmt.Sprintf("cr_%d", i), &eventsv1.PersonalData{Name: "x"}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if err := ks.Erase(ctx, fmt.Sprintf("cr_%d", i)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpen is the read path: one KV get, an unwrap and an open.
func BenchmarkOpen(b *testing.B) {
	ctx := context.Background()
	srv := natstest.Start(b, natsembed.Options{NoSync: true})
	_, js := natstest.Connect(b, srv)
	ks, err := pii.New(ctx, js, pii.Config{KEKs: testKEKs(b)})
	if err != nil {
		b.Fatal(err)
	}
	sealed, err := ks.Seal(ctx, "cr_1", &eventsv1.PersonalData{Name: "Li Lei", Phone: "13800138000"})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := ks.Open(ctx, sealed); err != nil {
			b.Fatal(err)
		}
	}
}
