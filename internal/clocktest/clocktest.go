// Package clocktest gives tests a clock that is relative to the real time, never a fixed
// calendar day, and that the whole suite can move: CALLRELAY_TEST_CLOCK_OFFSET (a Go duration
// such as 8760h, or negative) shifts every test clock, and so every time callrelay records,
// schedules or signs in a test, by that much. `CALLRELAY_TEST_CLOCK_OFFSET=8760h make test`
// runs the suite a year ahead.
package clocktest

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// OffsetEnv names the variable that shifts every test clock.
const OffsetEnv = "CALLRELAY_TEST_CLOCK_OFFSET"

var offset = sync.OnceValue(func() time.Duration {
	v := os.Getenv(OffsetEnv)
	if v == "" {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		panic(fmt.Sprintf("%s=%q: %v", OffsetEnv, v, err))
	}
	return d
})

// Offset is how far the test clocks run ahead of the machine's (behind, when negative).
func Offset() time.Duration { return offset() }

// Now is the running test clock: the machine's time shifted by Offset. It keeps the
// monotonic reading, so durations measured with it are real.
func Now() time.Time { return time.Now().Add(offset()) }

// Start is a fixed instant for a test's frozen clock: Now, in UTC, to the whole second (as
// Twilio's timestamps are), taken once per call.
func Start() time.Time { return Now().UTC().Truncate(time.Second) }

// Fixed returns a clock frozen at t.
func Fixed(t time.Time) func() time.Time { return func() time.Time { return t } }
