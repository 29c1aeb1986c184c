package ports

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/grpc"

	"github.com/closeloop/closeloop/libs/api"
	"github.com/closeloop/closeloop/libs/auth"
	"github.com/closeloop/closeloop/libs/clock"
)

// RateLimiter is a token bucket per caller (per adapter): back-pressure
// before anything is read or written.
type RateLimiter struct {
	limit rate.Limit
	burst int
	clock clock.Clock

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewRateLimiter allows each caller perSecond requests on average and
// bursts of burst. perSecond <= 0 disables the limit.
func NewRateLimiter(perSecond float64, burst int, clk clock.Clock) *RateLimiter {
	return &RateLimiter{limit: rate.Limit(perSecond), burst: burst, clock: clk, buckets: map[string]*rate.Limiter{}}
}

// Allow takes one token of the caller's bucket, or says how long to wait.
func (r *RateLimiter) Allow(caller string) (bool, time.Duration) {
	if r.limit <= 0 {
		return true, 0
	}
	r.mu.Lock()
	b, ok := r.buckets[caller]
	if !ok {
		b = rate.NewLimiter(r.limit, r.burst)
		r.buckets[caller] = b
	}
	r.mu.Unlock()
	now := r.clock.Now()
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Unary is the interceptor (api.Options.UnaryInterceptors): it runs after
// authentication, so the bucket is the authenticated caller's.
func (r *RateLimiter) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if p, ok := auth.FromContext(ctx); ok {
		if ok, wait := r.Allow(p.ID); !ok {
			return nil, api.ResourceExhausted(wait)
		}
	}
	return handler(ctx, req)
}
