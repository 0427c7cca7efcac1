package postgres_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// ttl is the hold intents' lifetime in these tests.
const ttl = 30 * time.Second

// connectedDirectCall starts a direct-mode call CA_p whose leg CA_leg answered.
func connectedDirectCall(t *testing.T, db *postgres.DB) {
	t.Helper()
	startCall(t, db, "CA_p")
	if _, err := db.RecordLegProgress(context.Background(), callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_p",
		Status: "in-progress", Sequence: 2, At: t0, Target: "+15550001111", TargetIndex: intp(0)}); err != nil {
		t.Fatal(err)
	}
}

func holdReq(party string, hold bool) callrelay.HoldRequest {
	return callrelay.HoldRequest{CallSid: "CA_p", Party: party, Hold: hold, By: "ops", RequestID: "req-" + party}
}

// mustIntent records a request's intent and fails unless one was recorded.
func mustIntent(t *testing.T, db *postgres.DB, req callrelay.HoldRequest) callrelay.HoldIntent {
	t.Helper()
	start, err := db.RecordHoldIntent(context.Background(), req, ttl)
	if err != nil || start.Intent == nil {
		t.Fatalf("RecordHoldIntent %s %s = %+v, %v; want an intent", req.Kind(), req.Party, start, err)
	}
	return *start.Intent
}

// holdEntries lists the call's hold and unhold timeline entries as "hold caller: ok".
func holdEntries(t *testing.T, db *postgres.DB) []string {
	t.Helper()
	c, err := db.GetCall(context.Background(), "CA_p")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range c.Events {
		if e.Type == "hold" || e.Type == "unhold" {
			got = append(got, e.Type+" "+e.Party+": "+e.Outcome)
		}
	}
	return got
}

func wantState(t *testing.T, db *postgres.DB, status string, caller, callee bool) {
	t.Helper()
	c, err := db.GetCall(context.Background(), "CA_p")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != status || c.Hold.Caller != caller || c.Hold.Callee != callee {
		t.Errorf("call %s hold %+v, want %s caller %v callee %v", c.Status, c.Hold, status, caller, callee)
	}
}

// dialDuringHold posts the caller's Dial action (which a hold's redirect of the callee ends) as
// the dial-outcome webhook does, and returns the plan and the hold state it was decided from.
func dialDuringHold(t *testing.T, db *postgres.DB) (callrelay.Plan, callrelay.HoldState) {
	t.Helper()
	plan, c, err := db.RecordDialOutcomeState(context.Background(),
		callrelay.DialOutcome{CallSid: "CA_p", DialCallStatus: "completed", DialCallSid: "CA_leg", CallerStatus: "in-progress"})
	if err != nil {
		t.Fatal(err)
	}
	return plan, c.Hold
}

func TestHoldIntent(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		if in.After != (callrelay.HoldState{Caller: true}) || in.Owner != "" || in.Target.Mode != callrelay.ModeDirect ||
			in.Target.CalleeSid != "CA_leg" || in.Target.Owner != callrelay.PartyCaller || !in.ExpiresAt.Equal(t0.Add(ttl)) {
			t.Errorf("intent = %+v, want the caller held after, the caller's Dial the bridge, expiring after %v", in, ttl)
		}
		// A second request waits; the pending one is not the state yet.
		start, err := db.RecordHoldIntent(ctx, holdReq("callee", true), ttl)
		if err != nil || start.Intent != nil || !start.Pending.Equal(in.ExpiresAt) {
			t.Errorf("second intent = %+v, %v; want pending until %v", start, err, in.ExpiresAt)
		}
		wantState(t, db, "in-progress", false, false)

		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{})
		if err != nil || !res.Applied || res.Finish || res.ConfirmedBy != "" {
			t.Fatalf("outcome = %+v, %v; want applied", res, err)
		}
		wantState(t, db, "in-progress", true, false)
		// The intent is gone: the next request goes ahead, from the new state.
		next := mustIntent(t, db, holdReq("callee", true))
		if next.After != (callrelay.HoldState{Caller: true, Callee: true}) || next.ID == in.ID {
			t.Errorf("next intent = %+v, want both held after, a new id", next)
		}
		if got, want := holdEntries(t, db), []string{"hold caller: ok"}; !slices.Equal(got, want) {
			t.Errorf("timeline %q, want %q", got, want)
		}
	})

	t.Run("ResumeFreeingBothMovesTheBridge", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		if _, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{}); err != nil {
			t.Fatal(err)
		}
		in = mustIntent(t, db, holdReq("caller", false))
		if in.After != (callrelay.HoldState{}) || in.Owner != callrelay.PartyCallee {
			t.Errorf("resume intent = %+v, want nobody held after and the callee's leg owning the bridge", in)
		}
		if _, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{}); err != nil {
			t.Fatal(err)
		}
		if in = mustIntent(t, db, holdReq("callee", true)); in.Target.Owner != callrelay.PartyCallee {
			t.Errorf("target owner = %q, want the callee after the resume", in.Target.Owner)
		}
	})

	t.Run("UnchangedNotConnectedNotFound", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_p")
		if _, err := db.RecordHoldIntent(ctx, holdReq("caller", true), ttl); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
			t.Errorf("hold of a ringing call: %v, want conflict", err)
		}
		if _, err := db.RecordHoldIntent(ctx, callrelay.HoldRequest{CallSid: "CA_x", Party: "caller", Hold: true}, ttl); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("hold of an unknown call: %v, want not_found", err)
		}
		if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_p",
			Status: "in-progress", Sequence: 2, At: t0, TargetIndex: intp(0)}); err != nil {
			t.Fatal(err)
		}
		start, err := db.RecordHoldIntent(ctx, holdReq("caller", false), ttl)
		if err != nil || start.Intent != nil || !start.Pending.IsZero() {
			t.Errorf("resume of a caller not held = %+v, %v; want nothing to do", start, err)
		}
		if got, want := holdEntries(t, db), []string{"hold caller: not-connected", "unhold caller: unchanged"}; !slices.Equal(got, want) {
			t.Errorf("timeline %q, want %q", got, want)
		}
	})

	t.Run("TwilioFailed", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		twilioErr := &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Twilio failed.", TwilioCode: 20500, TwilioStatus: 500}
		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{Err: twilioErr})
		if err != nil || res.Applied || res.Finish {
			t.Fatalf("outcome = %+v, %v; want not applied", res, err)
		}
		wantState(t, db, "in-progress", false, false)
		mustIntent(t, db, holdReq("caller", true)) // the intent is gone
		if got, want := holdEntries(t, db), []string{"hold caller: failed"}; !slices.Equal(got, want) {
			t.Errorf("timeline %q, want %q", got, want)
		}
	})

	t.Run("ExpiredIsReplaced", func(t *testing.T) {
		db, advance := newDB(t)
		connectedDirectCall(t, db)
		dead := mustIntent(t, db, holdReq("caller", true)) // its replica dies while asking Twilio
		advance(ttl + time.Second)
		in := mustIntent(t, db, holdReq("callee", true))
		if in.ID == dead.ID || in.After != (callrelay.HoldState{Callee: true}) {
			t.Errorf("intent = %+v, want a new one from the state as it was", in)
		}
		// The dead request's outcome, if it ever comes, changes nothing.
		if _, err := db.RecordHoldOutcome(ctx, dead, callrelay.HoldAttempt{}); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
			t.Errorf("late outcome: %v, want conflict", err)
		}
		if _, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{}); err != nil {
			t.Fatal(err)
		}
		wantState(t, db, "in-progress", false, true)
		if got, want := holdEntries(t, db), []string{"hold caller: expired", "hold caller: expired", "hold callee: ok"}; !slices.Equal(got, want) {
			t.Errorf("timeline %q, want %q", got, want)
		}
	})
}

// TestHoldOutcome_AfterAWebhook: a webhook that arrives while the hold waits for Twilio answers
// from the intent, and the outcome takes it into account.
func TestHoldOutcome_AfterAWebhook(t *testing.T) {
	ctx := context.Background()
	timeout := &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Cannot reach Twilio to redirect the call: deadline exceeded."}
	refused := &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Twilio refused.", TwilioCode: 21220, TwilioStatus: 400}

	t.Run("DialActionDecidesFromTheIntent", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		mustIntent(t, db, holdReq("callee", true))
		plan, seen := dialDuringHold(t, db)
		if seen != (callrelay.HoldState{Callee: true}) || plan.Action != callrelay.ActHoldWait {
			t.Errorf("Dial action saw %+v and planned %v, want the callee held and the caller waiting", seen, plan.Action)
		}
		// The Dial is over: a leg ending now ends the call, whatever Twilio answers.
		if res, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_p",
			Status: "completed", Sequence: -1, At: t0}); err != nil || !res.Held {
			t.Errorf("leg completed: held = %v, %v; want true", res.Held, err)
		}
	})

	t.Run("TimeoutConfirmedByTheDialAction", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		dialDuringHold(t, db)
		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{Err: timeout})
		if err != nil || !res.Applied || res.ConfirmedBy != "dial-outcome" || res.Finish {
			t.Fatalf("outcome = %+v, %v; want applied, confirmed by the Dial action", res, err)
		}
		wantState(t, db, "in-progress", true, false)
		if got, want := holdEntries(t, db), []string{"hold caller: ok"}; !slices.Equal(got, want) {
			t.Errorf("timeline %q, want %q", got, want)
		}
	})

	t.Run("RefusedAfterTheDialAction", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		dialDuringHold(t, db)
		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{Err: refused, Refused: true})
		if err != nil || res.Applied || !res.Finish {
			t.Fatalf("outcome = %+v, %v; want not applied, the call to finish", res, err)
		}
		wantState(t, db, "in-progress", false, false)
		end, err := db.FinishHeldCall(ctx, "CA_p", "", "hold of a call that ended")
		if err != nil || !end.Ended || len(end.Legs) != 2 {
			t.Errorf("finish = %+v, %v; want the call ended, both legs to hang up", end, err)
		}
	})

	t.Run("TimeoutWithoutAWebhook", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{Err: timeout})
		if err != nil || res.Applied || res.Finish {
			t.Fatalf("outcome = %+v, %v; want not applied", res, err)
		}
		wantState(t, db, "in-progress", false, false)
		if end, err := db.FinishHeldCall(ctx, "CA_p", "", "test"); err != nil || end.Ended || len(end.Legs) != 0 {
			t.Errorf("finish = %+v, %v; want nothing: the call was never held", end, err)
		}
	})

	t.Run("CallEndedWhileTwilioWasAsked", func(t *testing.T) {
		db, _ := newDB(t)
		connectedDirectCall(t, db)
		in := mustIntent(t, db, holdReq("caller", true))
		if _, err := db.RecordCallStatus(ctx, "CA_p", "completed", t0); err != nil {
			t.Fatal(err)
		}
		res, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{})
		if err != nil || !res.Applied || !res.Finish {
			t.Fatalf("outcome = %+v, %v; want applied, and the call to finish (the redirected leg)", res, err)
		}
		wantState(t, db, "completed", false, false)
		if end, err := db.FinishHeldCall(ctx, "CA_p", "CA_p", "caller completed"); err != nil || len(end.Legs) != 1 || end.Legs[0] != "CA_leg" {
			t.Errorf("finish = %+v, %v; want the callee's leg to hang up", end, err)
		}
	})
}

func TestAwaitHoldOutcome(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	connectedDirectCall(t, db)

	if err := db.AwaitHoldOutcome(ctx, "CA_p", t0.Add(ttl)); err != nil {
		t.Errorf("await without an intent: %v, want nil at once", err)
	}
	in := mustIntent(t, db, holdReq("caller", true))
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := db.AwaitHoldOutcome(short, "CA_p", in.ExpiresAt); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await of a pending intent, ctx ending: %v, want the deadline", err)
	}

	done := make(chan error, 1)
	go func() { done <- db.AwaitHoldOutcome(ctx, "CA_p", in.ExpiresAt) }()
	// Await the waiter listening, then record the outcome.
	await(t, "the waiter listening", func() bool {
		var n int
		err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND state = 'idle' AND query LIKE '-- awaiting a hold outcome%'`).Scan(&n)
		return err == nil && n > 0
	})
	if _, err := db.RecordHoldOutcome(ctx, in, callrelay.HoldAttempt{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("await: %v, want nil once the outcome is recorded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("await did not return after the outcome")
	}
}
