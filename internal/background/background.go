// Package background runs work detached from the request that caused it (a webhook is
// answered first; the REST requests it causes follow), each task bounded by a timeout, and
// waits for it at shutdown and in tests.
package background

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Group is a set of running tasks. Its zero value is ready; Timeout bounds each task (none
// when zero).
type Group struct {
	Timeout time.Duration
	wg      sync.WaitGroup
}

// Go runs f on its own goroutine, with a context that no request cancels.
func (g *Group) Go(f func(ctx context.Context)) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ctx := context.Background()
		if g.Timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, g.Timeout)
			defer cancel()
		}
		f(ctx)
	}()
}

// Wait blocks until the tasks started so far have finished.
func (g *Group) Wait() { g.wg.Wait() }

// Shutdown waits for the tasks, or until ctx is done; name says whose tasks in the error.
func (g *Group) Shutdown(ctx context.Context, name string) error {
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: background work still running: %w", name, ctx.Err())
	}
}
