package callrelay

import "time"

// Clock returns the current time. Every part of callrelay that needs the time is given one,
// so that the tests can run the whole server at any date; SystemClock is the only place that
// reads the machine's clock.
type Clock func() time.Time

// SystemClock is the machine's clock: what production passes.
func SystemClock() time.Time { return time.Now() }

// Deadline is the machine-clock instant d from now, for network deadlines (net.Conn,
// http.ResponseController): the runtime compares those with the machine's clock, whatever
// Clock a component runs on, so an injected clock must not set them.
func Deadline(d time.Duration) time.Time { return time.Now().Add(d) }
