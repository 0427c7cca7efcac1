package twiliosim

import (
	"context"
	"sync"
	"time"
)

// Clock is the simulation's time. Scenario seconds pass Speed times faster than real ones: at
// Speed 20 a 20-second ring takes one real second. callrelay runs in real time, so its own
// timers (participant pacing, the transcript wait) must be scaled to match by whoever starts
// it (the tests do; the README says so for the command).
type Clock struct {
	start time.Time
	speed float64
	real0 time.Time
}

// NewClock returns a clock that reads start now and runs speed times faster than real time
// (speed <= 0 is taken as 1).
func NewClock(start time.Time, speed float64) *Clock {
	if speed <= 0 {
		speed = 1
	}
	return &Clock{start: start.UTC(), speed: speed, real0: time.Now()}
}

// Now is the simulated time.
func (c *Clock) Now() time.Time { return c.start.Add(c.Elapsed()) }

// Elapsed is the simulated time since the clock started.
func (c *Clock) Elapsed() time.Duration {
	return time.Duration(float64(time.Since(c.real0)) * c.speed)
}

// Real converts a simulated duration to the real one.
func (c *Clock) Real(d time.Duration) time.Duration { return time.Duration(float64(d) / c.speed) }

// Speed is how many simulated seconds pass per real one.
func (c *Clock) Speed() float64 { return c.speed }

// Sleep waits for the simulated duration d; it returns ctx's error if ctx ends first.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(c.Real(d))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// AfterFunc runs f after the simulated duration d unless stop is called first.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	return time.AfterFunc(c.Real(max(d, 0)), f).Stop
}

// tracker counts work in flight (callbacks being delivered, calls running), so a run can
// await its end instead of sleeping.
type tracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{}
}

func (t *tracker) add() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *tracker) done() {
	t.mu.Lock()
	t.n--
	if t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

// wait returns when nothing is in flight, or ctx ends.
func (t *tracker) wait(ctx context.Context) error {
	for {
		t.mu.Lock()
		n, idle := t.n, t.idle
		t.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
