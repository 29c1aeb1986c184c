package platform

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestRunGroupCancelsTheRestOnTheFirstError(t *testing.T) {
	boom := errors.New("boom")
	var stopped atomic.Int32
	waiter := func(ctx context.Context) error { <-ctx.Done(); stopped.Add(1); return ctx.Err() }
	err := RunGroup(t.Context(), waiter, func(context.Context) error { return boom }, waiter)
	if !errors.Is(err, boom) {
		t.Fatalf("RunGroup = %v, want boom", err)
	}
	if stopped.Load() != 2 {
		t.Fatalf("%d of 2 waiting parts returned before RunGroup did", stopped.Load())
	}
}

func TestRunGroupReturnsNilWhenStoppedFromOutside(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- RunGroup(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, func(ctx context.Context) error { <-ctx.Done(); return nil })
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunGroup = %v, want nil after an outside stop", err)
	}
}

func TestRunGroupJoinsEveryError(t *testing.T) {
	a, b := errors.New("a"), errors.New("b")
	release := make(chan struct{})
	err := RunGroup(t.Context(),
		func(context.Context) error { defer close(release); return a },
		func(context.Context) error { <-release; return b })
	if !errors.Is(err, a) || !errors.Is(err, b) {
		t.Fatalf("RunGroup = %v, want both a and b", err)
	}
}
