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

// Attempts of the conference jobs that fail (a database error): the deadline stands behind the
// ring job, and nothing stands behind the deadline.
const (
	ringMaxAttempts     = 5
	deadlineMaxAttempts = 25
)

// RecordConferenceEvent applies a conference event. Events are deduplicated, and a
// participant's hold state follows the newest SequenceNumber; joined and left times are merged
// whatever the order. A participant leaving because callrelay moved its call
// (participant_updated_via_api) is not a hang-up; the caller or the callee hanging up ends the
// call (the other leaves with the conference, which ends when either does).
func (db *DB) RecordConferenceEvent(ctx context.Context, ev callrelay.ConferenceEvent) (callrelay.ConferenceResult, error) {
	var res callrelay.ConferenceResult
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var status string
		var callee *string
		err := tx.QueryRow(ctx, `SELECT status, callee_call_sid FROM calls WHERE call_sid = $1 FOR UPDATE`, ev.CallSid).
			Scan(&status, &callee)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		res.Known = true
		now := db.now()
		party := ""
		if ev.Participant != "" {
			party = callrelay.PartyCallee
			if ev.Participant == ev.CallSid {
				party = callrelay.PartyCaller
			}
		}
		detail := map[string]any{"conference_sid": ev.ConferenceSid, "sequence": ev.Sequence}
		for k, v := range map[string]string{"participant": ev.Participant, "label": ev.Label, "reason": ev.ReasonLeft + ev.ReasonEnded, "ended_by": ev.EndingCallSid} {
			if v != "" {
				detail[k] = v
			}
		}
		key := fmt.Sprintf("conference:%s:%s:%d", ev.Event, ev.Participant, ev.Sequence)
		if res.New, err = addEvent(ctx, tx, ev.CallSid, ev.At, ev.Event, party, "twilio", "", detail, key); err != nil || !res.New {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE calls SET conference_sid = coalesce(conference_sid, $2), updated_at = $3 WHERE call_sid = $1`,
			ev.CallSid, ev.ConferenceSid, now); err != nil {
			return err
		}
		if party == "" {
			return nil // conference-start, conference-end: the timeline is enough
		}

		var joinedAt, leftAt *time.Time
		held := ev.Hold
		switch ev.Event {
		case callrelay.ParticipantJoin:
			joinedAt = &ev.At
		case callrelay.ParticipantLeave:
			leftAt = &ev.At
			held = false
		case callrelay.ParticipantHold:
			held = true
		case callrelay.ParticipantUnhold:
			held = false
		}
		isHoldEvent := ev.Event == callrelay.ParticipantHold || ev.Event == callrelay.ParticipantUnhold
		var firstJoin, applied, nowHeld bool
		err = tx.QueryRow(ctx, `
			WITH old AS (
				SELECT joined_at FROM participants WHERE call_sid = $1
			), p AS (
				INSERT INTO participants (call_sid, parent_call_sid, conference_sid, party, label, held, sequence,
					joined_at, left_at, left_reason, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, nullif($10, ''), $11)
				ON CONFLICT (call_sid) DO UPDATE SET
					held = CASE WHEN participants.sequence >= excluded.sequence OR participants.left_at IS NOT NULL
						THEN participants.held ELSE excluded.held END,
					sequence = greatest(participants.sequence, excluded.sequence),
					label = CASE WHEN participants.label = '' THEN excluded.label ELSE participants.label END,
					joined_at = coalesce(participants.joined_at, excluded.joined_at),
					left_at = coalesce(participants.left_at, excluded.left_at),
					left_reason = coalesce(participants.left_reason, excluded.left_reason),
					updated_at = excluded.updated_at
				WHERE participants.parent_call_sid = excluded.parent_call_sid
				RETURNING held, left_at IS NULL AND sequence = $7 AND $12 AS applied
			)
			SELECT $8::timestamptz IS NOT NULL AND NOT EXISTS (SELECT 1 FROM old WHERE joined_at IS NOT NULL),
				coalesce((SELECT held FROM p), false), coalesce((SELECT applied FROM p), false)`,
			ev.Participant, ev.CallSid, ev.ConferenceSid, party, ev.Label, held, ev.Sequence,
			joinedAt, leftAt, ev.ReasonLeft, now, isHoldEvent).Scan(&firstJoin, &nowHeld, &applied)
		if err != nil {
			return err
		}

		live := status == callrelay.StatusRinging || status == callrelay.StatusInProgress
		switch {
		case ev.Event == callrelay.ParticipantJoin && party == callrelay.PartyCaller:
			res.Ring = firstJoin && status == callrelay.StatusRinging && callee == nil
			if res.Ring {
				return db.insertJob(ctx, tx, callrelay.RingOwner{CallSid: ev.CallSid}, &river.InsertOpts{Queue: callrelay.ConferenceQueue, MaxAttempts: ringMaxAttempts})
			}
		case ev.Event == callrelay.ParticipantLeave && ev.ReasonLeft != callrelay.LeftViaAPI &&
			(party == callrelay.PartyCaller || callee != nil && *callee == ev.Participant):
			// The Dial action or the number's status callback may have ended the call first:
			// the legs still ringing are ended either way.
			if live {
				res.Ended = true
				if _, err := tx.Exec(ctx, `
					UPDATE calls SET status = 'completed', ended_at = $2, updated_at = $3, hold_caller = false, hold_callee = false
					WHERE call_sid = $1`, ev.CallSid, ev.At, now); err != nil {
					return err
				}
			}
			if status != callrelay.StatusVoicemail {
				res.LiveLegs, err = liveLegs(ctx, tx, ev.CallSid)
			}
			return err
		case applied && (party == callrelay.PartyCaller || callee != nil && *callee == ev.Participant) && live:
			// Twilio's own word on hold (participant-hold/-unhold, newest first) corrects the
			// state, e.g. after a hold request that timed out but was applied.
			column := "hold_caller"
			if party == callrelay.PartyCallee {
				column = "hold_callee"
			}
			_, err := tx.Exec(ctx, `UPDATE calls SET `+column+` = $2 WHERE call_sid = $1`, ev.CallSid, nowHeld)
			return err
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("conference event %s of %s: %w", ev.Event, ev.CallSid, err)
	}
	return res, nil
}

// insertJob enqueues a job in tx: it exists exactly when tx commits.
func (db *DB) insertJob(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) error {
	if db.opts.Jobs == nil {
		return fmt.Errorf("enqueue %s: no job queue configured", args.Kind())
	}
	if _, err := db.opts.Jobs.InsertTx(ctx, tx, args, opts); err != nil {
		return fmt.Errorf("enqueue %s: %w", args.Kind(), err)
	}
	return nil
}

// WatchConference enqueues a conference-mode call's deadline job, first due after firstCheck
// on the store's clock (the job looks again later while the call may still be answered). A
// repeated voice webhook enqueues nothing more (the job is unique per call).
func (db *DB) WatchConference(ctx context.Context, callSid string, firstCheck time.Duration) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return db.insertJob(ctx, tx, callrelay.ConferenceDeadline{CallSid: callSid}, &river.InsertOpts{
			Queue:       callrelay.ConferenceQueue,
			ScheduledAt: db.now().Add(firstCheck),
			MaxAttempts: deadlineMaxAttempts,
			UniqueOpts:  river.UniqueOpts{ByArgs: true},
		})
	})
	if err != nil {
		return fmt.Errorf("watch conference %s: %w", callSid, err)
	}
	return nil
}

// tookCallSQL is true for a leg l that someone took: it answered (completed means answered,
// whether or not its answered callback came yet) and, when it was screened, accepted. A
// screened leg that answered is still ringing while its screen runs, and was no answer when
// its screen hung it up (a decline, silence, a carrier's voicemail, a machine).
const tookCallSQL = `(CASE WHEN l.screen IS NULL THEN l.answered_at IS NOT NULL OR l.status IN ('in-progress', 'completed')
	ELSE l.accepted_at IS NOT NULL END)`

// WatchConferenceCall reads a conference-mode call for its deadline.
func (db *DB) WatchConferenceCall(ctx context.Context, callSid string) (callrelay.ConferenceWatch, error) {
	var w callrelay.ConferenceWatch
	var routing []byte
	err := db.pool.QueryRow(ctx, `
		SELECT c.mode = 'conference' AND c.status = 'ringing' AND c.callee_call_sid IS NULL
				AND NOT EXISTS (SELECT 1 FROM legs l WHERE l.parent_call_sid = c.call_sid
					AND `+tookCallSQL+`),
			c.routing, c.started_at,
			(SELECT p.joined_at FROM participants p WHERE p.call_sid = c.call_sid), c.next_target,
			(SELECT max(l.created_at) FROM legs l WHERE l.parent_call_sid = c.call_sid
				AND NOT `+tookCallSQL+` AND l.status NOT IN `+terminalSQL+`)
		FROM calls c WHERE c.call_sid = $1`, callSid).
		Scan(&w.Waiting, &routing, &w.StartedAt, &w.JoinedAt, &w.Claimed, &w.LastRing)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, nil
	} else if err != nil {
		return w, fmt.Errorf("watch conference call %s: %w", callSid, err)
	}
	w.Known = true
	if w.Routing, err = decodeRouting(routing); err != nil {
		return w, fmt.Errorf("watch conference call %s: %w", callSid, err)
	}
	return w, nil
}

// liveLegs returns the legs of a call that have not ended.
func liveLegs(ctx context.Context, q querier, callSid string) ([]callrelay.LiveLeg, error) {
	rows, err := q.Query(ctx, `
		SELECT l.call_sid, l.answered_at IS NOT NULL, coalesce(c.conference_sid, '')
		FROM legs l JOIN calls c ON c.call_sid = l.parent_call_sid
		WHERE l.parent_call_sid = $1 AND l.status NOT IN `+terminalSQL+` ORDER BY l.created_at, l.call_sid`, callSid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[callrelay.LiveLeg])
}

// LiveLegs returns the legs of a call that have not ended.
func (db *DB) LiveLegs(ctx context.Context, callSid string) ([]callrelay.LiveLeg, error) {
	legs, err := liveLegs(ctx, db.pool, callSid)
	if err != nil {
		return nil, fmt.Errorf("live legs of %s: %w", callSid, err)
	}
	return legs, nil
}

// ClaimTarget claims the next target of a conference-mode call to dial, and reports false when
// there is none to dial now: the call is no longer ringing, someone answered, every target is
// claimed, or (ringing in turn) a target is still being dialed or still rings. Each target is
// claimed once, whichever replica asks.
func (db *DB) ClaimTarget(ctx context.Context, callSid string) (callrelay.RingTarget, bool, error) {
	var t callrelay.RingTarget
	var routing []byte
	var conferenceSid *string
	err := db.pool.QueryRow(ctx, `
		UPDATE calls SET next_target = next_target + 1, updated_at = $2
		WHERE call_sid = $1 AND mode = 'conference' AND status = 'ringing' AND callee_call_sid IS NULL
			AND conference_sid IS NOT NULL
			AND next_target < jsonb_array_length(routing->'targets')
			AND (routing->>'ring' <> 'sequential' OR next_target = dialed AND NOT EXISTS (
				SELECT 1 FROM legs WHERE parent_call_sid = $1 AND status NOT IN `+terminalSQL+`))
		RETURNING next_target - 1, routing, conference_sid, number, from_number, call_token`,
		callSid, db.now()).Scan(&t.Index, &routing, &conferenceSid, &t.Number, &t.From, &t.CallToken)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	} else if err != nil {
		return t, false, fmt.Errorf("claim target of %s: %w", callSid, err)
	}
	if t.Routing, err = decodeRouting(routing); err != nil {
		return t, false, fmt.Errorf("claim target of %s: %w", callSid, err)
	}
	if t.Index >= len(t.Routing.Targets) {
		return t, false, fmt.Errorf("claim target of %s: target %d of %d", callSid, t.Index, len(t.Routing.Targets))
	}
	t.Target, t.ConferenceSid = t.Routing.Targets[t.Index], *conferenceSid
	return t, true, nil
}

// FinishTarget records the end of a claimed target's CreateParticipant: the leg (its status
// callbacks may have arrived first) or Twilio's refusal, on the timeline either way. It reports
// whether the call still wants the leg: false when someone answered or the call stopped ringing
// while the participant was being created.
func (db *DB) FinishTarget(ctx context.Context, callSid string, d callrelay.RingResult) (bool, error) {
	now := db.now()
	detail := map[string]any{"target": d.Target, "label": d.Label}
	outcome := "created"
	if d.Leg != "" {
		detail["leg"] = d.Leg
	}
	if d.Screen != "" {
		detail["screen"] = d.Screen
	}
	if d.Err != nil {
		outcome = "failed"
		detail["error"] = callrelay.ErrorMessage(d.Err)
		var e *callrelay.Error
		if errors.As(d.Err, &e) && e.TwilioCode != 0 {
			detail["twilio_code"] = e.TwilioCode
		}
	}
	var wanted bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// The leg before the call: RecordLegProgress locks in that order too.
		if d.Leg != "" {
			if _, err := tx.Exec(ctx, `
				INSERT INTO legs (call_sid, parent_call_sid, target, target_index, label, status, screen, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, 'queued', nullif($7, ''), $6, $6)
				ON CONFLICT (call_sid) DO UPDATE SET
					label = excluded.label,
					screen = coalesce(legs.screen, excluded.screen),
					target = CASE WHEN legs.target = '' THEN excluded.target ELSE legs.target END,
					target_index = coalesce(legs.target_index, excluded.target_index)
				WHERE legs.parent_call_sid = excluded.parent_call_sid`,
				d.Leg, callSid, d.Target, d.Index, d.Label, now, d.Screen); err != nil {
				return err
			}
		}
		err := tx.QueryRow(ctx, `
			UPDATE calls SET dialed = dialed + 1, updated_at = $2 WHERE call_sid = $1
			RETURNING status = 'ringing' AND callee_call_sid IS NULL`, callSid, now).Scan(&wanted)
		if err != nil {
			return err
		}
		_, err = addEvent(ctx, tx, callSid, now, "participant", callrelay.PartyCallee, "callrelay", outcome, detail, "participant:"+d.Label)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("finish target %d of %s: %w", d.Index, callSid, err)
	}
	return wanted, nil
}

// StopRinging moves a conference-mode call that nobody answered to voicemail (or, without
// voicemail, to completed) and reports whether this request did. With giveUp false it does so
// only once every target has been dialed and has ended unanswered; with giveUp true (Twilio
// unreachable) at once, and the legs still ringing are returned to be ended. A call that is no
// longer ringing or that someone answered is left alone.
func (db *DB) StopRinging(ctx context.Context, callSid string, giveUp bool, reason string) (bool, []callrelay.LiveLeg, error) {
	var moved bool
	var live []callrelay.LiveLeg
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		now := db.now()
		var status string
		err := tx.QueryRow(ctx, `
			UPDATE calls SET
				status = CASE WHEN (routing->'voicemail'->>'enabled')::boolean THEN 'voicemail' ELSE 'completed' END,
				ended_at = CASE WHEN (routing->'voicemail'->>'enabled')::boolean THEN ended_at ELSE $2 END,
				updated_at = $2
			WHERE call_sid = $1 AND mode = 'conference' AND status = 'ringing' AND callee_call_sid IS NULL
				AND ($3 OR next_target >= jsonb_array_length(routing->'targets')
					AND dialed >= jsonb_array_length(routing->'targets')
					AND NOT EXISTS (SELECT 1 FROM legs l WHERE l.parent_call_sid = $1
						AND (l.status NOT IN `+terminalSQL+` OR `+tookCallSQL+`)))
			RETURNING status`, callSid, now, giveUp).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		moved = true
		if _, err := addEvent(ctx, tx, callSid, now, "no-answer", callrelay.PartyCaller, "callrelay", status,
			map[string]any{"reason": reason}, "no-answer"); err != nil {
			return err
		}
		live, err = liveLegs(ctx, tx, callSid)
		return err
	})
	if err != nil {
		return false, nil, fmt.Errorf("stop ringing %s: %w", callSid, err)
	}
	return moved, live, nil
}
