package platform

import (
	"context"
	"errors"
	"sync"
)

// RunGroup runs every part on its own goroutine until all have returned.
// The first part to return an error cancels the context of the others;
// parts are expected to return once their context is done. It returns the
// parts' errors joined, leaving out the context's own cancellation.
func RunGroup(ctx context.Context, parts ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(parts))
	for i, part := range parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := part(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
