package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// DefaultMissedCallDelay is how long after the caller's final status an unanswered call is
// judged: Twilio may post the recording-status of a voicemail after the call's end, and a
// call with a voicemail is not missed.
const DefaultMissedCallDelay = 2 * time.Minute

// Notices tune what the store writes for owners and other systems when calls end.
type Notices struct {
	// MissedCallDelay: DefaultMissedCallDelay when zero. Tests that run time faster shorten it.
	MissedCallDelay time.Duration
	// Events: events are written and delivered (CALLRELAY_EVENT_SECRET is set); without it a
	// number's webhooks are ignored.
	Events bool
	// Endpoints are the instance's event webhooks (CALLRELAY_EVENT_WEBHOOKS), for every number.
	Endpoints []string
}

// callEnded runs in the transaction that records the caller's final status (callStatusSQL
// tells whether the call was answered). An answered call is decided at once (call.completed);
// any other gets a CheckCall job, due after MissedCallDelay, that decides from the state
// committed by then. A store without a job queue (tests of other parts) decides nothing.
func (db *DB) callEnded(ctx context.Context, tx pgx.Tx, callSid string, answered bool, now time.Time) error {
	if db.opts.Jobs == nil {
		return nil
	}
	if answered {
		// The call's first final status, in this transaction: not decided before (and if it
		// were, the decision's insert changes nothing).
		return db.decideEnded(ctx, tx, callSid, now)
	}
	delay := db.opts.Notices.MissedCallDelay
	if delay <= 0 {
		delay = DefaultMissedCallDelay
	}
	// The queue runs on the store's clock (see voicemail.QueueOptions.Now).
	if _, err := db.opts.Jobs.InsertTx(ctx, tx, callrelay.CheckCall{CallSid: callSid}, &river.InsertOpts{
		ScheduledAt: now.Add(delay),
		MaxAttempts: notifyMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	}); err != nil {
		return fmt.Errorf("call ended: enqueue check: %w", err)
	}
	return nil
}

// answeredSQL: the call had a conversation. A leg answered (the callee, or any leg's answer
// time), or a direct-mode Dial ended completed (its leg's own callbacks may be late). A
// conference ends every caller's Dial "answered", so that says nothing there.
const answeredSQL = `(c.callee_call_sid IS NOT NULL
	OR EXISTS (SELECT 1 FROM legs l WHERE l.parent_call_sid = c.call_sid AND l.answered_at IS NOT NULL)
	OR (c.mode = 'direct' AND EXISTS (SELECT 1 FROM call_events e WHERE e.call_sid = c.call_sid
		AND e.type = 'dial-outcome' AND e.outcome IN ('completed', 'answered'))))`

// DecideOutcome decides once how an ended call turned out, from the committed state, and
// returns the missed call when it was missed (nil otherwise). Deciding again returns the first
// decision and writes nothing. It returns ENOTFOUND for an unknown call.
func (db *DB) DecideOutcome(ctx context.Context, callSid string) (*callrelay.MissedCall, error) {
	var mc *callrelay.MissedCall
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		mc, err = db.decideOutcome(ctx, tx, callSid, db.now())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("decide outcome of %s: %w", callSid, err)
	}
	return mc, nil
}

func (db *DB) decideOutcome(ctx context.Context, tx pgx.Tx, callSid string, now time.Time) (*callrelay.MissedCall, error) {
	// Decided already (a retry of the job, a duplicate): nothing to lock.
	if mc, err := getMissedCall(ctx, tx, callSid); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		return mc, err
	}
	if err := db.decideEnded(ctx, tx, callSid, now); err != nil {
		return nil, err
	}
	return getMissedCall(ctx, tx, callSid)
}

// decideEnded decides how an ended call turned out and writes the decision, its timeline entry and
// what it tells (events, the missed-call email), unless it was decided before.
func (db *DB) decideEnded(ctx context.Context, tx pgx.Tx, callSid string, now time.Time) error {
	var (
		c                             callrelay.CallEventData
		routingJSON                   []byte
		calleeTarget                  string
		answered, voicemail, recorded bool
		prompted, dialed              bool
	)
	// Two replicas deciding at once take turns on the call's row; the second finds the
	// decision. FOR NO KEY UPDATE, not FOR UPDATE: the timeline's foreign key takes KEY SHARE
	// on the call, and a sender finishing the email (its outcome row locked, inserting its
	// timeline entry) must not wait for a decider that waits for it.
	err := tx.QueryRow(ctx, `
		SELECT c.number, c.from_number, c.mode, c.routing, c.started_at, coalesce(c.ended_at, $2),
			`+answeredSQL+`,
			coalesce((SELECT l.target FROM legs l WHERE l.call_sid = c.callee_call_sid), ''),
			EXISTS (SELECT 1 FROM voicemails v WHERE v.call_sid = c.call_sid),
			EXISTS (SELECT 1 FROM call_events e WHERE e.call_sid = c.call_sid AND e.type = 'recording'),
			EXISTS (SELECT 1 FROM call_events e WHERE e.call_sid = c.call_sid AND (e.type IN ('voicemail', 'no-answer')
				OR (e.type = 'dial-outcome' AND e.detail->>'next' = 'voicemail')
				OR (e.type = 'inbound' AND e.outcome = 'voicemail'))),
			EXISTS (SELECT 1 FROM legs l WHERE l.parent_call_sid = c.call_sid)
				OR EXISTS (SELECT 1 FROM call_events e WHERE e.call_sid = c.call_sid
					AND e.type IN ('dial-outcome', 'leg', 'participant', 'participant-join', 'conference-start'))
		FROM calls c WHERE c.call_sid = $1 FOR NO KEY UPDATE`, callSid, now).
		Scan(&c.Number, &c.From, &c.Mode, &routingJSON, &c.StartedAt, &c.EndedAt, &answered, &calleeTarget,
			&voicemail, &recorded, &prompted, &dialed)
	if errors.Is(err, pgx.ErrNoRows) {
		return callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", callSid)
	} else if err != nil {
		return err
	}
	rt, err := decodeRouting(routingJSON)
	if err != nil {
		return err
	}
	c.CallSid = callSid
	c.StartedAt, c.EndedAt = c.StartedAt.UTC(), utc(c.EndedAt)
	c.DurationSeconds = max(int(c.EndedAt.Sub(c.StartedAt).Round(time.Second)/time.Second), 0)

	switch {
	case answered:
		c.Outcome, c.Callee = callrelay.OutcomeAnswered, calleeTarget
	case voicemail:
		c.Outcome = callrelay.OutcomeVoicemail
	case !rt.Enabled && !rt.Voicemail.Enabled:
		c.Outcome = callrelay.OutcomeRejected
	default:
		c.Outcome = callrelay.OutcomeMissed
		switch {
		case recorded:
			c.Stage = callrelay.StageSilence
		case prompted:
			c.Stage = callrelay.StagePrompt
		case !dialed && rt.Greeting != "":
			c.Stage = callrelay.StageGreeting
		default:
			c.Stage = callrelay.StageRinging
		}
	}
	notify := callrelay.NotifyOff
	if c.Outcome == callrelay.OutcomeMissed && rt.MissedCallEmails() {
		notify = callrelay.NotifyPending
	}
	// The decision and its timeline entry in one statement; the rest only for a new decision.
	detail := outcomeDetail{DurationSeconds: c.DurationSeconds, Stage: c.Stage}
	var added bool
	err = tx.QueryRow(ctx, `
		WITH o AS (
			INSERT INTO call_outcomes (call_sid, outcome, stage, waited_seconds, owner_email, notify_status, decided_at, updated_at)
			VALUES ($1, $2, nullif($3, ''), $4, $5, $6, $7, $7)
			ON CONFLICT (call_sid) DO NOTHING
			RETURNING call_sid
		), ev AS (
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
			SELECT call_sid, $7, 'outcome', '', 'callrelay', $2, $8, 'outcome' FROM o
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
		)
		SELECT EXISTS (SELECT 1 FROM o)`,
		callSid, c.Outcome, c.Stage, c.DurationSeconds, rt.OwnerEmail, notify, now, detail).Scan(&added)
	if err != nil || !added {
		return err
	}
	switch c.Outcome {
	case callrelay.OutcomeAnswered:
		err = db.emitEvent(ctx, tx, callrelay.EventCallCompleted, callSid, callrelay.EventCallCompleted+":"+callSid, rt, c)
	case callrelay.OutcomeMissed:
		err = db.emitEvent(ctx, tx, callrelay.EventCallMissed, callSid, callrelay.EventCallMissed+":"+callSid, rt, c)
		if err == nil && notify == callrelay.NotifyPending {
			err = insertEvent(ctx, tx, callSid, now, "missed-call-email", "", "callrelay", "queued",
				map[string]any{"to": rt.OwnerEmail}, "missed-call-email:queued")
		}
	}
	return err
}

// outcomeDetail is the timeline detail of a call's outcome.
type outcomeDetail struct {
	DurationSeconds int    `json:"duration_seconds"`
	Stage           string `json:"stage,omitempty"`
}

// GetMissedCall returns the missed call, nil when the call was decided otherwise, or
// ENOTFOUND when it has not been decided.
func (db *DB) GetMissedCall(ctx context.Context, callSid string) (*callrelay.MissedCall, error) {
	return getMissedCall(ctx, db.pool, callSid)
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func getMissedCall(ctx context.Context, q rowQuerier, callSid string) (*callrelay.MissedCall, error) {
	var mc callrelay.MissedCall
	var outcome string
	var stage *string
	var waited *int
	err := q.QueryRow(ctx, `
		SELECT o.outcome, o.stage, o.waited_seconds, o.owner_email, o.notify_status, o.notify_attempts,
			o.notify_last_error, o.notified_at, c.number, c.from_number, c.started_at, coalesce(c.ended_at, o.decided_at),
			coalesce(c.caller_name, ''), coalesce(c.routing->>'time_zone', '')
		FROM call_outcomes o JOIN calls c USING (call_sid) WHERE o.call_sid = $1`, callSid).
		Scan(&outcome, &stage, &waited, &mc.OwnerEmail, &mc.Email.Status, &mc.Email.Attempts, &mc.Email.LastError,
			&mc.Email.SentAt, &mc.Number, &mc.From, &mc.StartedAt, &mc.EndedAt, &mc.CallerName, &mc.TimeZone)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s has no outcome yet.", callSid)
	} else if err != nil {
		return nil, fmt.Errorf("get missed call %s: %w", callSid, err)
	}
	if outcome != callrelay.OutcomeMissed {
		return nil, nil
	}
	mc.CallSid = callSid
	if stage != nil {
		mc.Stage = *stage
	}
	if waited != nil {
		mc.WaitedSeconds = *waited
	}
	mc.StartedAt, mc.EndedAt, mc.Email.SentAt = mc.StartedAt.UTC(), mc.EndedAt.UTC(), utc(mc.Email.SentAt)
	return &mc, nil
}

// ClaimMissedEmail claims a missed call's email for one sender. It answers ECONFLICT when the
// call was not missed, its email is off, sent, failed for good, or being sent by another worker
// whose claim is younger than lease.
func (db *DB) ClaimMissedEmail(ctx context.Context, callSid string, lease time.Duration) (*callrelay.MissedCall, error) {
	now := db.now()
	tag, err := db.pool.Exec(ctx, `
		UPDATE call_outcomes SET notify_status = 'sending', notify_claimed_at = $2,
			notify_attempts = notify_attempts + 1, updated_at = $2
		WHERE call_sid = $1 AND outcome = 'missed'
			AND (notify_status = 'pending' OR (notify_status = 'sending' AND notify_claimed_at < $3))`,
		callSid, now, now.Add(-lease))
	if err != nil {
		return nil, fmt.Errorf("claim missed-call email %s: %w", callSid, err)
	}
	mc, err := db.GetMissedCall(ctx, callSid)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		status := "not for a missed call"
		if mc != nil {
			status = mc.Email.Status
		}
		return mc, callrelay.Errorf(callrelay.ECONFLICT, "Missed-call email of %s is %s.", callSid, status)
	}
	return mc, nil
}

// FinishMissedEmail records the outcome of a send, as FinishNotification does for voicemail.
func (db *DB) FinishMissedEmail(ctx context.Context, callSid string, sendErr error, final bool) error {
	now := db.now()
	status, outcome, lastErr := sendOutcome(sendErr, final)
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var owner string
		var attempts int
		err := tx.QueryRow(ctx, `
			UPDATE call_outcomes SET notify_status = $2, notify_last_error = $3,
				notified_at = CASE WHEN $2 = 'sent' THEN $4 ELSE notified_at END, updated_at = $4
			WHERE call_sid = $1 RETURNING owner_email, notify_attempts`,
			callSid, status, lastErr, now).Scan(&owner, &attempts)
		if err != nil {
			return err
		}
		detail := map[string]any{"to": owner, "attempt": attempts}
		if lastErr != nil {
			detail["error"] = *lastErr
		}
		return insertEvent(ctx, tx, callSid, now, "missed-call-email", "", "callrelay", outcome, detail, "")
	})
	if err != nil {
		return fmt.Errorf("finish missed-call email %s: %w", callSid, err)
	}
	return nil
}
