package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// The timeline reads in the order things happened. Twilio's Timestamp has whole
// seconds and callrelay's clock does not, so ordering by the stored time put a leg's
// "initiated" (Twilio's second, truncated) before the call's "inbound" that caused it (issue 14).
func TestGetCall_TimelineInOrderOfEvents(t *testing.T) {
	ctx := context.Background()
	// Four tenths into a second, so Twilio's whole second of the same moment is earlier.
	now := clocktest.Start().Add(400 * time.Millisecond)
	db := postgres.New(pgtest.NewPool(t), postgres.Options{Now: func() time.Time { return now }})
	twilioTimestamp := func() time.Time { return now.Truncate(time.Second) }
	startCall(t, db, "CA_p") // inbound, at callrelay's clock

	start := now
	leg := func(status string, seq int, at time.Time) {
		t.Helper()
		p := callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_p", Status: status, Sequence: seq,
			At: at, Target: "+15550001111", TargetIndex: intp(0)}
		if res, err := db.RecordLegProgress(ctx, p); err != nil || !res.Known {
			t.Fatalf("leg %s: known=%v err=%v", status, res.Known, err)
		}
	}
	leg("initiated", 0, twilioTimestamp())
	now = now.Add(200 * time.Millisecond)
	leg("ringing", 1, twilioTimestamp())
	now = now.Add(20 * time.Second)
	o := callrelay.DialOutcome{CallSid: "CA_p", DialCallStatus: "no-answer", DialCallSid: "CA_leg", CallerStatus: "in-progress"}
	if _, _, err := db.RecordDialOutcome(ctx, o); err != nil {
		t.Fatal(err)
	}
	now = now.Add(100 * time.Millisecond)
	if _, err := db.RecordCallStatus(ctx, "CA_p", "completed", twilioTimestamp()); err != nil {
		t.Fatal(err)
	}
	// A callback replayed from the spool is recorded late but keeps Twilio's time: seconds
	// earlier than the Dial's end, it reads before it.
	now = now.Add(time.Minute)
	leg("completed", 2, start.Add(15*time.Second).Truncate(time.Second))

	c, err := db.GetCall(ctx, "CA_p")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"inbound", "leg initiated", "leg ringing", "leg completed", "dial-outcome", "call-status completed"}
	var got []string
	for _, e := range c.Events {
		s := e.Type
		if e.Type == "leg" || e.Type == "call-status" {
			s += " " + e.Outcome
		}
		got = append(got, s)
	}
	if len(got) != len(want) {
		t.Fatalf("timeline = %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("timeline = %q, want %q (the order things happened)", got, want)
		}
	}
}
