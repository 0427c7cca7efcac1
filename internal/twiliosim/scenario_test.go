package twiliosim_test

import (
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

func TestScenarioStart(t *testing.T) {
	parse := func(t *testing.T, extra string) (*twiliosim.Scenario, error) {
		t.Helper()
		return twiliosim.ParseScenario([]byte("number: \"+15551230000\"\n" + extra))
	}
	now := clocktest.Now()
	for _, tc := range []struct{ at, zone, want string }{
		// The dates are data about New York's DST rules (2026-03-08 skips 02:00-03:00,
		// 2026-11-01 repeats 01:00-02:00), not the test clock.
		{"2026-03-08T02:40:00", "America/New_York", "2026-03-08T07:00:00Z"}, // skipped: the jump
		{"2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00Z"}, // repeated: the first
		{"2026-12-07T20:30:15", "America/New_York", "2026-12-08T01:30:15Z"},
		{"2026-07-01T09:00:00", "", "2026-07-01T09:00:00Z"}, // UTC by default
	} {
		sc, err := parse(t, "at: \""+tc.at+"\"\ntime_zone: \""+tc.zone+"\"\n")
		if tc.zone == "" {
			sc, err = parse(t, "at: \""+tc.at+"\"\n")
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.at, err)
		}
		got, err := sc.Start(now)
		if err != nil || got.UTC().Format(time.RFC3339) != tc.want {
			t.Errorf("at %s in %q: %v %v, want %s", tc.at, tc.zone, got.UTC(), err, tc.want)
		}
	}

	// The routing's time_zone is the default zone; a weekday is the next such day.
	sc, err := parse(t, "at: \"wed 08:15\"\nrouting: {time_zone: Asia/Tokyo}\n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.Start(now)
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	local := got.In(tokyo)
	if err != nil || local.Weekday() != time.Wednesday || local.Hour() != 8 || local.Minute() != 15 ||
		!got.After(now) || got.Sub(now) > 8*24*time.Hour {
		t.Errorf("wed 08:15 Tokyo from %v: %v %v", now, local, err)
	}

	for _, bad := range []string{"at: \"2026-13-01T00:00:00\"\n", "at: \"someday 08:00\"\n", "at: \"mon 8h\"\n",
		"at: \"2026-12-07T20:30:00\"\ntime_zone: Mars/Base\n"} {
		if _, err := parse(t, bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
