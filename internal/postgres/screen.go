package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Screen outcomes of a leg (legs.screen_outcome, and the outcome of its "screen" timeline
// entries).
const (
	ScreenOffered    = "offered"
	ScreenAccepted   = "accepted"
	ScreenDeclined   = "declined"
	ScreenUnanswered = "unanswered"
	ScreenMachine    = "machine"
	// ScreenEnded: the leg ended while its screen waited for a key (its person hung up, or
	// Twilio hung it up because another leg was connected or the caller left).
	ScreenEnded = "ended"
)

// ScreenCall returns the call a screened leg belongs to, or ENOTFOUND.
func (db *DB) ScreenCall(ctx context.Context, callSid string) (callrelay.ScreenedCall, error) {
	var c callrelay.ScreenedCall
	var routing []byte
	err := db.pool.QueryRow(ctx, `SELECT routing, number, from_number, status, mode, coalesce(callee_call_sid, '') FROM calls WHERE call_sid = $1`, callSid).
		Scan(&routing, &c.Number, &c.From, &c.Status, &c.Mode, &c.Callee)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", callSid)
	} else if err != nil {
		return c, fmt.Errorf("screen call %s: %w", callSid, err)
	}
	if c.Routing, err = db.routings.decode(routing); err != nil {
		return c, fmt.Errorf("screen call %s: %w", callSid, err)
	}
	return c, nil
}

// RecordScreen records a step of a leg's screen on the leg and the call's timeline, and returns
// the leg's outcome as stored: a final outcome (accepted, declined, unanswered, machine, ended) is
// never replaced, so a repeated or late request answers what the first decided. An acceptance
// makes the leg the call's callee (its hold target) and the call in-progress, in the same
// statement. It returns ENOTFOUND when the call is unknown or the leg belongs to another call.
func (db *DB) RecordScreen(ctx context.Context, e callrelay.ScreenEvent) (string, error) {
	var acceptedAt *time.Time
	if e.Outcome == ScreenAccepted {
		acceptedAt = &e.At
	}
	detail := map[string]any{"leg": e.CallSid, "target": e.Target, "target_index": e.TargetIndex, "screen": e.Screen}
	if e.AnsweredBy != "" {
		detail["answered_by"] = e.AnsweredBy
	}
	if e.Digits != "" {
		detail["digits"] = e.Digits
	}
	var outcome string
	err := db.pool.QueryRow(ctx, `
		WITH parent AS (
			SELECT call_sid FROM calls WHERE call_sid = $2
		), leg AS (
			INSERT INTO legs (call_sid, parent_call_sid, target, target_index, status, screen, screen_outcome,
				accepted_at, answered_by, answered_at, created_at, updated_at)
			SELECT $1, call_sid, $3, $4, 'in-progress', $5, $6, $7, nullif($8, ''), $9, $10, $10 FROM parent
			ON CONFLICT (call_sid) DO UPDATE SET
				screen = coalesce(legs.screen, excluded.screen),
				screen_outcome = CASE WHEN legs.screen_outcome IN ('accepted', 'declined', 'unanswered', 'machine', 'ended')
					THEN legs.screen_outcome ELSE excluded.screen_outcome END,
				accepted_at = CASE WHEN legs.screen_outcome IN ('declined', 'unanswered', 'machine', 'ended')
					THEN legs.accepted_at ELSE coalesce(legs.accepted_at, excluded.accepted_at) END,
				answered_by = coalesce(legs.answered_by, excluded.answered_by),
				answered_at = coalesce(legs.answered_at, excluded.answered_at),
				target = CASE WHEN legs.target = '' THEN excluded.target ELSE legs.target END,
				target_index = coalesce(legs.target_index, excluded.target_index),
				updated_at = excluded.updated_at
			WHERE legs.parent_call_sid = excluded.parent_call_sid
			RETURNING parent_call_sid, screen_outcome
		), ev AS (
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
			SELECT parent_call_sid, $9, 'screen', 'callee', 'callrelay', screen_outcome, $11,
				'screen:' || $1 || ':' || screen_outcome FROM leg
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
		), c AS (
			UPDATE calls SET status = 'in-progress', callee_call_sid = $1, updated_at = $10
			WHERE call_sid IN (SELECT parent_call_sid FROM leg WHERE screen_outcome = 'accepted')
				AND status = 'ringing' AND callee_call_sid IS NULL
		)
		SELECT screen_outcome FROM leg`,
		e.CallSid, e.ParentCallSid, e.Target, e.TargetIndex, e.Screen, e.Outcome, acceptedAt, e.AnsweredBy,
		e.At, db.now(), detail).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", callrelay.Errorf(callrelay.ENOTFOUND, "Leg %s of call %s is unknown.", e.CallSid, e.ParentCallSid)
	} else if err != nil {
		return "", fmt.Errorf("screen %s of %s: %w", e.CallSid, e.ParentCallSid, err)
	}
	return outcome, nil
}

// RecordAnsweredBy stores Twilio's answering-machine detection result on a leg (its
// amdStatusCallback, or AnsweredBy on its screen request): the first one stays. A machine is
// also the leg's screen outcome (RecordScreen). It returns ENOTFOUND when the call is unknown
// or the leg belongs to another call.
func (db *DB) RecordAnsweredBy(ctx context.Context, e callrelay.ScreenEvent) error {
	var parent string
	err := db.pool.QueryRow(ctx, `
		INSERT INTO legs (call_sid, parent_call_sid, target, target_index, status, answered_by, created_at, updated_at)
		SELECT $1, call_sid, $3, $4, 'in-progress', $5, $6, $6 FROM calls WHERE call_sid = $2
		ON CONFLICT (call_sid) DO UPDATE SET
			answered_by = coalesce(legs.answered_by, excluded.answered_by),
			target = CASE WHEN legs.target = '' THEN excluded.target ELSE legs.target END,
			target_index = coalesce(legs.target_index, excluded.target_index),
			updated_at = excluded.updated_at
		WHERE legs.parent_call_sid = excluded.parent_call_sid
		RETURNING parent_call_sid`,
		e.CallSid, e.ParentCallSid, e.Target, e.TargetIndex, e.AnsweredBy, db.now()).Scan(&parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return callrelay.Errorf(callrelay.ENOTFOUND, "Leg %s of call %s is unknown.", e.CallSid, e.ParentCallSid)
	} else if err != nil {
		return fmt.Errorf("answered by %s of %s: %w", e.CallSid, e.ParentCallSid, err)
	}
	return nil
}

// LegAnsweredBy returns the machine detection result stored for a leg of the call, "" when none
// has arrived.
func (db *DB) LegAnsweredBy(ctx context.Context, legSid, parentSid string) (string, error) {
	var by string
	err := db.pool.QueryRow(ctx, `SELECT coalesce(answered_by, '') FROM legs WHERE call_sid = $1 AND parent_call_sid = $2`,
		legSid, parentSid).Scan(&by)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("answered by %s of %s: %w", legSid, parentSid, err)
	}
	return by, nil
}
