package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Hold and resume, in three steps (callrelay/hold.go): RecordHoldIntent, Twilio asked by the
// hold service with no transaction open, RecordHoldOutcome. Nothing here waits for Twilio, and
// nothing a webhook does waits for a hold: a webhook that arrives while a hold is pending reads
// the intent (pendingHoldCTE) instead.

// holdOutcomeChannel is the NOTIFY channel on which RecordHoldOutcome announces an outcome
// (payload: the caller's CallSid), for requests waiting in AwaitHoldOutcome.
const holdOutcomeChannel = "hold_outcome"

// RecordHoldIntent starts a hold request, in a short transaction. A party that is not
// connected is ECONFLICT, and a party already in the asked state is left alone; both are on the
// timeline, and neither needs Twilio. Otherwise the intent is recorded and returned: the caller
// asks Twilio, then calls RecordHoldOutcome. When another request's intent is pending, nothing
// is recorded and HoldStart.Pending says until when at most (AwaitHoldOutcome). An expired
// intent (its replica died while asking Twilio) is replaced, and is on the timeline as expired.
func (db *DB) RecordHoldIntent(ctx context.Context, req callrelay.HoldRequest, ttl time.Duration) (callrelay.HoldStart, error) {
	var start callrelay.HoldStart
	var failure error
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		now := db.now()
		var t callrelay.HoldTarget
		var status string
		var conferenceSid, callee, owner *string
		var pending *time.Time
		err := tx.QueryRow(ctx, `
			SELECT mode, status, conference_sid, callee_call_sid, hold_caller, hold_callee, bridge_owner,
				(SELECT i.expires_at FROM hold_intents i WHERE i.call_sid = c.call_sid AND i.expires_at > $2)
			FROM calls c WHERE call_sid = $1 FOR UPDATE`, req.CallSid, now).
			Scan(&t.Mode, &status, &conferenceSid, &callee, &t.Held.Caller, &t.Held.Callee, &owner, &pending)
		if errors.Is(err, pgx.ErrNoRows) {
			failure = callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", req.CallSid)
			return nil
		} else if err != nil {
			return err
		}
		if pending != nil {
			start.Pending = *pending
			return nil
		}
		if err := expireIntent(ctx, tx, req.CallSid, now); err != nil {
			return err
		}
		t.CallerSid, t.CallSid, t.Owner = req.CallSid, req.CallSid, callrelay.PartyCaller
		if callee != nil {
			t.CalleeSid = *callee
		}
		if req.Party == callrelay.PartyCallee {
			t.CallSid = t.CalleeSid
		}
		if conferenceSid != nil {
			t.ConferenceSid = *conferenceSid
		}
		if owner != nil {
			t.Owner = *owner
		}

		connected, err := partyConnected(ctx, tx, t, status)
		if err != nil {
			return err
		}
		switch {
		case !connected:
			failure = &callrelay.Error{Code: callrelay.ECONFLICT, Field: "party",
				Message: fmt.Sprintf("The %s of call %s is not connected (call %s).", req.Party, req.CallSid, status)}
			detail := holdDetail(req, nil)
			detail["error"] = callrelay.ErrorMessage(failure)
			_, err := addEvent(ctx, tx, req.CallSid, now, req.Kind(), req.Party, req.By, "not-connected", detail, "")
			return err
		case t.Held.Of(req.Party) == req.Hold:
			_, err := addEvent(ctx, tx, req.CallSid, now, req.Kind(), req.Party, req.By, "unchanged", holdDetail(req, nil), "")
			return err
		}
		in := &callrelay.HoldIntent{Request: req, Target: t, StartedAt: now, ExpiresAt: now.Add(ttl)}
		in.After, in.Owner = t.After(req)
		start.Intent = in
		return tx.QueryRow(ctx, `
			INSERT INTO hold_intents (call_sid, party, hold, by, request_id, after_caller, after_callee, after_owner,
				started_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), $9, $10)
			RETURNING id`,
			req.CallSid, req.Party, req.Hold, req.By, req.RequestID, in.After.Caller, in.After.Callee, in.Owner,
			in.StartedAt, in.ExpiresAt).Scan(&in.ID)
	})
	if err != nil {
		return callrelay.HoldStart{}, fmt.Errorf("%s %s of %s: intent: %w", req.Kind(), req.Party, req.CallSid, err)
	}
	return start, failure
}

// expireIntent removes a call's expired hold intent, if any, and puts the attempt that never
// came back on the timeline.
func expireIntent(ctx context.Context, tx pgx.Tx, callSid string, now time.Time) error {
	var old callrelay.HoldRequest
	var started time.Time
	err := tx.QueryRow(ctx, `DELETE FROM hold_intents WHERE call_sid = $1 RETURNING party, hold, by, request_id, started_at`, callSid).
		Scan(&old.Party, &old.Hold, &old.By, &old.RequestID, &started)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	} else if err != nil {
		return err
	}
	detail := holdDetail(old, nil)
	detail["started_at"] = started
	_, err = addEvent(ctx, tx, callSid, now, old.Kind(), old.Party, old.By, "expired", detail, "")
	return err
}

// holdDetail is a hold entry's detail: the request ID and, for an attempt Twilio failed, the
// error and Twilio's code and message.
func holdDetail(req callrelay.HoldRequest, twilioErr error) map[string]any {
	detail := map[string]any{}
	if req.RequestID != "" {
		detail["request_id"] = req.RequestID
	}
	if twilioErr != nil {
		detail["error"] = callrelay.ErrorMessage(twilioErr)
		var e *callrelay.Error
		if errors.As(twilioErr, &e) && e.TwilioCode != 0 {
			detail["twilio_code"], detail["twilio_message"] = e.TwilioCode, e.TwilioMessage
		}
	}
	return detail
}

// partyConnected tells whether a party can be held: in conference mode it has joined the
// conference and not left; in direct mode the call is in progress and the callee's leg, which
// answered, has not ended (either party leaving ends the call).
func partyConnected(ctx context.Context, tx pgx.Tx, t callrelay.HoldTarget, status string) (bool, error) {
	if t.CallSid == "" || callrelay.IsTerminal(status) || status == callrelay.StatusVoicemail {
		return false, nil
	}
	var ok bool
	var err error
	if t.Mode == callrelay.ModeConference {
		err = tx.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM participants
				WHERE call_sid = $1 AND conference_sid = $2 AND joined_at IS NOT NULL AND left_at IS NULL)`,
			t.CallSid, t.ConferenceSid).Scan(&ok)
	} else {
		err = tx.QueryRow(ctx, `
			SELECT $2 = 'in-progress' AND EXISTS (SELECT 1 FROM legs
				WHERE call_sid = $1 AND answered_at IS NOT NULL AND status NOT IN `+terminalSQL+`)`,
			t.CalleeSid, status).Scan(&ok)
	}
	return ok, err
}

// RecordHoldOutcome ends a hold request with Twilio's answer, in a short transaction, and
// announces it to the requests waiting for the call. The intent is removed. The hold state
// becomes the one asked for when the hold applied (callrelay.HoldResult): Twilio did it, or, in
// direct mode, its answer was lost but a webhook the redirect causes arrived meanwhile.
// Otherwise the state is left as it is. Either way the attempt is on the timeline.
//
// An intent that is no longer there (it expired and another request replaced it) changes
// nothing but the timeline, and is ECONFLICT.
func (db *DB) RecordHoldOutcome(ctx context.Context, in callrelay.HoldIntent, a callrelay.HoldAttempt) (callrelay.HoldResult, error) {
	req := in.Request
	var res callrelay.HoldResult
	var failure error
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		now := db.now()
		var mode, status string
		var calleeEnded bool
		err := tx.QueryRow(ctx, `
			SELECT mode, status, EXISTS (SELECT 1 FROM legs l WHERE l.call_sid = c.callee_call_sid AND l.status IN `+terminalSQL+`)
			FROM calls c WHERE call_sid = $1 FOR UPDATE`, req.CallSid).Scan(&mode, &status, &calleeEnded)
		if errors.Is(err, pgx.ErrNoRows) {
			failure = callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", req.CallSid)
			return nil
		} else if err != nil {
			return err
		}
		var acted *string
		err = tx.QueryRow(ctx, `DELETE FROM hold_intents WHERE call_sid = $1 AND id = $2 RETURNING acted`, req.CallSid, in.ID).Scan(&acted)
		lost := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !lost {
			return err
		}
		direct := mode == callrelay.ModeDirect
		res.Applied = a.Err == nil && !lost
		if !res.Applied && !lost && direct && acted != nil && !a.Refused {
			// Twilio's answer was lost, but the Dial or Enqueue its redirect ends has told us.
			res.Applied, res.ConfirmedBy = true, *acted
		}
		ended := callrelay.IsTerminal(status) || status == callrelay.StatusVoicemail
		// A leg the hold moved (or a webhook answered from the intent) has nothing left to hang
		// it up once the call is over; Twilio refusing the move after a webhook answered from the
		// intent means the leg had gone.
		res.Finish = direct && !lost && (res.Applied && (ended || calleeEnded) || acted != nil && a.Refused)

		outcome := "failed"
		if res.Applied {
			outcome = "ok"
		}
		detail := holdDetail(req, a.Err)
		if res.ConfirmedBy != "" {
			detail["confirmed_by"] = res.ConfirmedBy
		}
		if lost {
			// Its intent expired and was replaced (and is on the timeline as expired): this
			// late answer changes nothing.
			outcome, detail["late"] = "expired", true
			failure = callrelay.Errorf(callrelay.ECONFLICT, "The %s of the %s of call %s took longer than %s; another request has replaced it.",
				req.Kind(), req.Party, req.CallSid, in.ExpiresAt.Sub(in.StartedAt))
		}
		if _, err := addEvent(ctx, tx, req.CallSid, now, req.Kind(), req.Party, req.By, outcome, detail, ""); err != nil {
			return err
		}
		switch {
		case res.Applied && !ended:
			// Only the party's own flag: Twilio's participant events may have set the other's
			// meanwhile (conference mode).
			if _, err := tx.Exec(ctx, `
				UPDATE calls SET
					hold_caller = CASE WHEN $2 = 'caller' THEN $3 ELSE hold_caller END,
					hold_callee = CASE WHEN $2 = 'callee' THEN $3 ELSE hold_callee END,
					bridge_owner = nullif($4, ''),
					held_since = CASE WHEN mode = 'direct' THEN coalesce(held_since, $5) ELSE held_since END,
					updated_at = $5
				WHERE call_sid = $1`, req.CallSid, req.Party, req.Hold, in.Owner, now); err != nil {
				return err
			}
		case res.Finish:
			if _, err := tx.Exec(ctx, `UPDATE calls SET held_since = coalesce(held_since, $2) WHERE call_sid = $1`, req.CallSid, now); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, holdOutcomeChannel, req.CallSid)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("%s %s of %s: outcome: %w", req.Kind(), req.Party, req.CallSid, err)
	}
	return res, failure
}

// AwaitHoldOutcome waits until the pending hold intent of a call has its outcome recorded, or
// until, when it expires: the caller then tries RecordHoldIntent again. It holds no lock and no
// transaction, only a connection of its own that LISTENs, closed after (a listening connection
// buffers every notification, and must not go back to the pool).
func (db *DB) AwaitHoldOutcome(ctx context.Context, callSid string, until time.Time) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("await hold of %s: %w", callSid, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Conn().Close(cctx) // the pool drops a closed connection
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+holdOutcomeChannel); err != nil {
		return fmt.Errorf("await hold of %s: %w", callSid, err)
	}
	// The outcome may have come between the caller's look and LISTEN: look again, now that no
	// notification can be missed. (The comment names the wait in pg_stat_activity.)
	var pending bool
	if err := conn.QueryRow(ctx, `-- awaiting a hold outcome
		SELECT EXISTS (SELECT 1 FROM hold_intents WHERE call_sid = $1 AND expires_at > $2)`, callSid, db.now()).Scan(&pending); err != nil {
		return fmt.Errorf("await hold of %s: %w", callSid, err)
	}
	if !pending {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, until.Sub(db.now()))
	defer cancel()
	for {
		n, err := conn.Conn().WaitForNotification(wctx)
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("await hold of %s: %w", callSid, ctx.Err())
		case wctx.Err() != nil:
			return nil // expired
		case err != nil:
			return fmt.Errorf("await hold of %s: %w", callSid, err)
		case n.Payload == callSid:
			return nil
		}
	}
}

// A webhook reads a call's hold state as a pending hold request asks for it
// (callrelay.CallState.Hold) with pendingHoldCTE and pendingHoldColumns, and so marks the
// request's intent as answered from by $3 (the route): the request's outcome then knows that a
// webhook its redirect caused has come (RecordHoldOutcome). $1 is the CallSid, $2 now; c is the
// call's row. The columns: the hold state, whether an intent is pending, and stale: the
// statement's snapshot had an intent whose outcome was recorded before the mark, so that its
// hold state is the one before that outcome: run it again.
//
// Locks: whoever locks both a call's row and its intent's, in one transaction, locks the call's
// first (RecordHoldIntent, RecordHoldOutcome, HeldCallState), so that none waits for another in
// a cycle.
const (
	pendingHoldCTE = `i AS (
		UPDATE hold_intents SET acted = coalesce(acted, $3)
		WHERE call_sid = $1 AND expires_at > $2
		RETURNING after_caller, after_callee
	)`
	pendingHoldColumns = `coalesce((SELECT after_caller FROM i), c.hold_caller), coalesce((SELECT after_callee FROM i), c.hold_callee),
		EXISTS (SELECT 1 FROM i),
		NOT EXISTS (SELECT 1 FROM i) AND EXISTS (SELECT 1 FROM hold_intents p WHERE p.call_sid = $1 AND p.expires_at > $2)`
)

// staleAttempts bounds how often a webhook's read is repeated because a hold outcome was
// recorded while it ran (pendingHoldCTE): a second outcome needs a second request, after it.
const staleAttempts = 3

// HeldCallState reads a direct-mode call for a hold webhook (an Enqueue or a resuming Dial's
// action, route), without waiting for a hold being applied: a pending one's state is the one it
// asks for. queueParty and queueSid, when set, record the QueueSid of that party's queue.
func (db *DB) HeldCallState(ctx context.Context, callSid, route, queueParty, queueSid string) (callrelay.HeldCall, error) {
	var c callrelay.HeldCall
	column := "caller_queue_sid"
	if queueParty == callrelay.PartyCallee {
		column = "callee_queue_sid"
	}
	for range staleAttempts {
		var pending, stale bool
		found := false
		b := &pgx.Batch{}
		b.Queue(`UPDATE calls SET `+column+` = $2 WHERE call_sid = $1 AND $2 <> '' AND `+column+` IS DISTINCT FROM $2`, callSid, queueSid)
		b.Queue(`WITH `+pendingHoldCTE+`
			SELECT c.status, `+pendingHoldColumns+`, c.held_since IS NOT NULL FROM calls c WHERE c.call_sid = $1`,
			callSid, db.now(), route).QueryRow(func(row pgx.Row) error {
			err := row.Scan(&c.Status, &c.Hold.Caller, &c.Hold.Callee, &pending, &stale, &c.Held)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil
			}
			found = err == nil
			return err
		})
		if err := db.pool.SendBatch(ctx, b).Close(); err != nil {
			return callrelay.HeldCall{}, fmt.Errorf("held call %s: %w", callSid, err)
		}
		if !found {
			return callrelay.HeldCall{}, nil
		}
		c.Known, c.Held = true, c.Held || pending
		if !stale {
			break
		}
	}
	return c, nil
}

// FinishHeldCall ends a direct-mode call that has been through a hold (or has one pending),
// because gone (a CallSid of either party, or "" when unknown) has hung up or the bridge ended
// for good: no Dial action will end it any more. The call is completed and the hold cleared,
// once; what is left to hang up and delete is returned each time, so that a repeated callback
// can finish the work.
func (db *DB) FinishHeldCall(ctx context.Context, callSid, gone, reason string) (callrelay.Ending, error) {
	var e callrelay.Ending
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		now := db.now()
		var callee *string
		var queues [2]*string
		var held bool
		// Ever held, not held now: the caller's own status callback clears the hold flags
		// when it ends the call, which may come first (found by the simulator: a callee left
		// in its queue after the caller hung up).
		err := tx.QueryRow(ctx, `
			SELECT callee_call_sid, caller_queue_sid, callee_queue_sid,
				held_since IS NOT NULL OR EXISTS (SELECT 1 FROM hold_intents i WHERE i.call_sid = calls.call_sid AND i.expires_at > $2)
			FROM calls WHERE call_sid = $1 AND mode = 'direct' FOR UPDATE`, callSid, now).
			Scan(&callee, &queues[0], &queues[1], &held)
		if errors.Is(err, pgx.ErrNoRows) || err == nil && !held {
			return nil
		} else if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `
			UPDATE calls SET status = 'completed', ended_at = $2, updated_at = $2, hold_caller = false, hold_callee = false
			WHERE call_sid = $1 AND status NOT IN `+terminalSQL, callSid, now)
		if err != nil {
			return err
		}
		if e.Ended = tag.RowsAffected() == 1; e.Ended {
			if _, err := addEvent(ctx, tx, callSid, now, "hangup", "", "twilio", "completed",
				map[string]any{"reason": reason, "gone": gone}, "held-call-end"); err != nil {
				return err
			}
		}
		if gone != callSid {
			e.Legs = append(e.Legs, callSid)
		}
		if callee != nil && *callee != gone {
			e.Legs = append(e.Legs, *callee)
		}
		for _, q := range queues {
			if q != nil {
				e.Queues = append(e.Queues, *q)
			}
		}
		return nil
	})
	if err != nil {
		return e, fmt.Errorf("finish held call %s: %w", callSid, err)
	}
	return e, nil
}
