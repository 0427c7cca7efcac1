package background_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/background"
)

// TestGroup_OK: Shutdown returns once the tasks are done; a task's context ends at Timeout.
func TestGroup_OK(t *testing.T) {
	g := &background.Group{Timeout: 50 * time.Millisecond}
	got := make(chan error, 1)
	g.Go(func(ctx context.Context) {
		<-ctx.Done()
		got <- ctx.Err()
	})
	if err := g.Shutdown(context.Background(), "test"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-got; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("task's context ended with %v, want DeadlineExceeded", err)
	}
}

// TestGroup_ShutdownTimesOut: a task still running when ctx ends makes Shutdown fail, naming
// whose it is.
func TestGroup_ShutdownTimesOut(t *testing.T) {
	var g background.Group
	release := make(chan struct{})
	g.Go(func(context.Context) { <-release })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.Shutdown(ctx, "hold")
	if !errors.Is(err, context.Canceled) || err.Error() != "hold: background work still running: context canceled" {
		t.Errorf("Shutdown = %v, want hold's work still running", err)
	}
	close(release)
	g.Wait()
}
