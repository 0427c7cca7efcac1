package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// terminalSQL lists the statuses a call or leg never leaves, for SQL: callrelay.TerminalStatuses,
// the one list, written once as an SQL list when the program starts (and so are the statements
// below that use it).
var terminalSQL = sqlList(callrelay.TerminalStatuses)

// The status callbacks and Dial actions that follow each call write one call's rows each, and
// each write must be committed before Twilio gets its answer. As new calls share a commit
// (startBatcher), concurrent callback writes share one: the first runs a batch of whatever is
// waiting, one pipelined round trip and one transaction for all of them, and writes that arrive
// while every lane is busy join the next batch. No timer: a lone write goes out at once. A batch
// holds at most one write per call, in CallSid order, so that two batches take the rows of the
// calls they share in the same order; a second write for a call waits for the next batch, which
// may run beside the first in the other lane: a call's callbacks are applied by their
// SequenceNumber and terminal statuses, not by arrival (a Dial action's write is queued only
// once its read is answered). A batch
// PostgreSQL refuses (one write's error, a deadlock with another transaction) commits nothing,
// and each of its writes is tried again alone, so that one bad write fails alone.
const (
	// writeLanes is how many batches may be in flight at once (as startLanes).
	writeLanes = 2
	// writeBatchMax caps one batch. Its statements run one after the other (about 0.1 ms each
	// on the development machine) and every write in it waits for the last: a larger batch
	// saves little more and lengthens the wait.
	writeBatchMax = 16
	// writeTimeout bounds one batch: it runs detached from the request that started it, since
	// it carries other requests' writes too.
	writeTimeout = 10 * time.Second
	// writeLockWait is how long a shared batch waits for a row lock before its writes go
	// alone: far above a commit (a callback of the same call in the other lane), far below
	// Twilio's 15 s.
	writeLockWait = `'200ms'`
)

// writeJob is one callback's write waiting for its batch.
type writeJob struct {
	call  string             // the caller's CallSid
	queue func(b *pgx.Batch) // queues the write's statements (again, for a retry alone)
	err   error
	done  chan struct{}
}

// writeBatcher shares transactions among concurrent callback writes (see writeLanes).
type writeBatcher struct {
	pool *pgxpool.Pool

	mu      sync.Mutex
	pending []*writeJob
	flying  int // batches running
}

// do queues the write of a callback of call and waits until it is committed. queue's result
// callbacks run when the batch is read; they run again if the batch fails and the write is
// retried alone, so they must reset what they set.
func (wb *writeBatcher) do(ctx context.Context, call string, queue func(b *pgx.Batch)) error {
	j := &writeJob{call: call, queue: queue, done: make(chan struct{})}
	wb.mu.Lock()
	wb.pending = append(wb.pending, j)
	if wb.flying < writeLanes {
		// A free lane: run what is waiting now, in this goroutine.
		wb.flying++
		batch := wb.takeLocked()
		wb.mu.Unlock()
		wb.run(ctx, batch)
		wb.next()
	} else {
		wb.mu.Unlock()
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		// The write still happens when its batch runs; this request just stops waiting.
		return ctx.Err()
	}
}

// takeLocked removes the next batch from pending: up to writeBatchMax writes of distinct
// calls, in CallSid order. A second write for a call stays pending, in its place.
func (wb *writeBatcher) takeLocked() []*writeJob {
	var batch, rest []*writeJob
	calls := make(map[string]bool, min(len(wb.pending), writeBatchMax))
	for _, j := range wb.pending {
		if len(batch) < writeBatchMax && !calls[j.call] {
			calls[j.call] = true
			batch = append(batch, j)
		} else {
			rest = append(rest, j)
		}
	}
	wb.pending = rest
	slices.SortFunc(batch, func(a, b *writeJob) int { return strings.Compare(a.call, b.call) })
	return batch
}

// next keeps the lane busy with the writes that queued meanwhile, in a new goroutine so that
// the request which ran the last batch can answer now; or frees the lane.
func (wb *writeBatcher) next() {
	wb.mu.Lock()
	defer wb.mu.Unlock()
	if len(wb.pending) == 0 {
		wb.flying--
		return
	}
	batch := wb.takeLocked()
	go func() {
		wb.run(context.Background(), batch)
		wb.next()
	}()
}

// run writes a batch in one round trip and transaction (a pgx batch is one implicit
// transaction) and hands each waiter its result.
func (wb *writeBatcher) run(ctx context.Context, batch []*writeJob) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if len(batch) > 1 {
		// A write that waits long for a row lock (another transaction writing the same call:
		// a slow conference event, a migration) must not hold up the others: past
		// writeLockWait the batch gives up, and its writes go alone, the waiting one on its own.
		b := &pgx.Batch{}
		b.Queue(`BEGIN`)
		b.Queue(`SET LOCAL lock_timeout = ` + writeLockWait)
		for _, j := range batch {
			j.queue(b)
		}
		b.Queue(`COMMIT`)
		err := wb.shared(ctx, b)
		var pgErr *pgconn.PgError
		var prepErr pgx.ErrPreprocessingBatch
		if err == nil || !(errors.As(err, &pgErr) || errors.As(err, &prepErr)) {
			for _, j := range batch {
				j.err = err
				close(j.done)
			}
			return
		}
		// Refused (by PostgreSQL, or one write's arguments could not be sent, or a lock
		// waited for too long): nothing was committed. Each write alone, at once, below.
	}
	alone := func(j *writeJob) {
		b := &pgx.Batch{}
		j.queue(b)
		j.err = wb.pool.SendBatch(ctx, b).Close()
		close(j.done)
	}
	if len(batch) == 1 {
		alone(batch[0])
		return
	}
	var wg sync.WaitGroup
	for _, j := range batch {
		wg.Go(func() { alone(j) })
	}
	wg.Wait()
}

// shared sends a batch that runs its own transaction (BEGIN … COMMIT). When PostgreSQL refuses
// one of its statements, the rest are skipped, COMMIT too, and the connection is left in the
// aborted transaction: it is rolled back here, or the pool would close the connection and open
// another (under lock timeouts, a reconnect per refused batch).
func (wb *writeBatcher) shared(ctx context.Context, b *pgx.Batch) error {
	conn, err := wb.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	err = conn.SendBatch(ctx, b).Close()
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' {
		// Failing, the pool closes the connection on release, as before.
		_, _ = conn.Exec(ctx, `ROLLBACK`)
	}
	return err
}

// CallRouting returns the routing a call started with, or ENOTFOUND.
func (db *DB) CallRouting(ctx context.Context, callSid string) (callrelay.Routing, error) {
	var routing []byte
	err := db.pool.QueryRow(ctx, `SELECT routing FROM calls WHERE call_sid = $1`, callSid).Scan(&routing)
	if errors.Is(err, pgx.ErrNoRows) {
		return callrelay.Routing{}, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", callSid)
	} else if err != nil {
		return callrelay.Routing{}, fmt.Errorf("call routing %s: %w", callSid, err)
	}
	r, err := decodeRouting(routing)
	if err != nil {
		return callrelay.Routing{}, fmt.Errorf("call routing %s: %w", callSid, err)
	}
	return r, nil
}

// RecordDialOutcome applies the end of a <Dial>: it asks decide for the next step with the
// routing the call started with and the call's status, stores the outcome on the timeline and the leg, and moves the
// call to the plan's status. A repeated callback for the same attempt decides the same plan and
// changes nothing. It returns ENOTFOUND for an unknown call.
func (db *DB) RecordDialOutcome(ctx context.Context, o callrelay.DialOutcome) (callrelay.Routing, callrelay.Plan, error) {
	r, plan, _, err := db.recordDialOutcome(ctx, o)
	return r, plan, err
}

// recordDialOutcome is RecordDialOutcome that also returns the call's state the plan was
// decided from (for tests).
func (db *DB) recordDialOutcome(ctx context.Context, o callrelay.DialOutcome) (callrelay.Routing, callrelay.Plan, callrelay.CallState, error) {
	var routing []byte
	var c callrelay.CallState
	// A hold may be pending: its intent gives the hold state it asks for (the redirect it sent
	// is what ended this Dial), without waiting for Twilio's answer (pendingHoldCTE). A stale
	// read (the hold's outcome came while it ran) is read again.
	// The read shares a round trip (and a transaction) with the callback writes of other calls
	// being written at that moment (writeBatcher): each of its statements still reads what is
	// committed, and a batch holds one job per call, so this call's own write, queued after
	// the read has been answered, always comes later.
	for range staleAttempts {
		var pending, stale, found bool
		err := db.writes.do(ctx, o.CallSid, func(b *pgx.Batch) {
			routing, c, found = nil, callrelay.CallState{}, false // queued again when retried alone
			b.Queue(`WITH `+pendingHoldCTE+`
				SELECT c.routing, c.status, `+pendingHoldColumns+` FROM calls c WHERE c.call_sid = $1`, o.CallSid, db.now(), "dial-outcome").
				QueryRow(func(row pgx.Row) error {
					err := row.Scan(&routing, &c.Status, &c.Hold.Caller, &c.Hold.Callee, &pending, &stale)
					if errors.Is(err, pgx.ErrNoRows) {
						return nil // an unknown call; not an error of the batch it shares
					}
					found = err == nil
					return err
				})
			// The legs' screens: a Dial Twilio reports completed was taken only if someone
			// accepted. Any other outcome plans without them (most Dial actions: nobody answered).
			if !callrelay.DialNeedsLegs(o.DialCallStatus) {
				return
			}
			b.Queue(`SELECT call_sid, coalesce(target_index, -1), screen IS NOT NULL, accepted_at IS NOT NULL
				FROM legs WHERE parent_call_sid = $1`, o.CallSid).
				Query(func(rows pgx.Rows) error {
					var err error
					c.Legs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (callrelay.LegScreen, error) {
						var l callrelay.LegScreen
						err := row.Scan(&l.CallSid, &l.TargetIndex, &l.Screened, &l.Accepted)
						return l, err
					})
					return err
				})
		})
		if err != nil {
			// Not c: a request that stopped waiting leaves its read queued, to be filled in later.
			return callrelay.Routing{}, callrelay.Plan{}, callrelay.CallState{}, fmt.Errorf("dial outcome %s: %w", o.CallSid, err)
		} else if !found {
			return callrelay.Routing{}, callrelay.Plan{}, c, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", o.CallSid)
		}
		if !stale {
			break
		}
	}
	r, err := db.routings.decode(routing)
	if err != nil {
		return r, callrelay.Plan{}, c, fmt.Errorf("dial outcome %s: %w", o.CallSid, err)
	}
	plan := callrelay.PlanDialAction(r, c, o)
	detail := dialOutcomeDetail{DialCallStatus: o.DialCallStatus, Attempt: o.Attempt, Next: plan.Action.String(),
		DialCallSid: o.DialCallSid, DurationSeconds: o.DurationSeconds, SipResponseCode: o.SipResponseCode,
		CallerStatus: o.CallerStatus, SipHeaders: o.SipHeaders}
	var sipHeaders []byte
	if len(o.SipHeaders) > 0 {
		if sipHeaders, err = json.Marshal(o.SipHeaders); err != nil {
			return r, plan, c, fmt.Errorf("dial outcome %s: %w", o.CallSid, err)
		}
	}
	legStatus := o.DialCallStatus
	if legStatus == callrelay.DialAnswered {
		legStatus = callrelay.StatusCompleted
	}
	status := plan.Status() // "": unchanged
	// The timeline entry is the idempotency key: a repeated callback inserts no event and so
	// updates nothing. The leg is upserted: dial-outcome may arrive before its call-status.
	// The write shares its transaction with the callbacks being written at the same moment
	// (writeBatcher), as the read above did; the plan is decided from what that read found
	// committed.
	now := db.now()
	hangsUp := plan.Action != callrelay.ActEnqueue && plan.Action != callrelay.ActHoldWait
	err = db.writes.do(ctx, o.CallSid, func(b *pgx.Batch) {
		b.Queue(dialOutcomeSQL, o.CallSid, now, o.DialCallStatus, detail, o.Attempt,
			plan.Attempt, status,
			o.DialCallSid, legStatus, o.SipResponseCode, o.SipCallID, sipHeaders, o.DurationSeconds,
			// A Dial ended by a hold leaves the callee's leg alive (redirected): not its end.
			hangsUp)
	})
	if err != nil {
		return r, plan, c, fmt.Errorf("dial outcome %s: %w", o.CallSid, err)
	}
	return r, plan, c, nil
}

// dialOutcomeDetail is a Dial action's timeline detail. A struct rather than a map, as every
// detail written on a callback's path: encoded for each callback, without boxing the values
// or sorting the keys.
type dialOutcomeDetail struct {
	DialCallStatus  string            `json:"dial_call_status"`
	Attempt         int               `json:"attempt"`
	Next            string            `json:"next"`
	DialCallSid     string            `json:"dial_call_sid,omitempty"`
	DurationSeconds *int              `json:"duration_seconds,omitempty"`
	SipResponseCode *int              `json:"sip_response_code,omitempty"`
	CallerStatus    string            `json:"caller_status,omitempty"`
	SipHeaders      map[string]string `json:"sip_headers,omitempty"`
}

// dialOutcomeSQL records the end of a <Dial> (RecordDialOutcome): the timeline entry, then,
// only if it is new, the call's status and attempt, and the leg.
var dialOutcomeSQL = `
		WITH ev AS (
			INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
			VALUES ($1, $2, 'dial-outcome', 'twilio', $3, $4, 'dial-outcome:' || $5::int)
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
			RETURNING call_sid
		), c AS (
			UPDATE calls SET
				attempt = greatest(attempt, $6),
				status = CASE WHEN status IN ` + terminalSQL + ` OR $7 = '' THEN status ELSE $7 END,
				ended_at = CASE WHEN status NOT IN ` + terminalSQL + ` AND $7 IN ` + terminalSQL + ` THEN $2 ELSE ended_at END,
				hold_caller = hold_caller AND $7 NOT IN ` + terminalSQL + `,
				hold_callee = hold_callee AND $7 NOT IN ` + terminalSQL + `,
				-- the caller's Dial ended by a hold: from now on callrelay ends the call
				held_since = CASE WHEN $14 THEN held_since ELSE coalesce(held_since, $2) END,
				updated_at = $2
			WHERE call_sid IN (SELECT call_sid FROM ev)
		)
		INSERT INTO legs (call_sid, parent_call_sid, status, sip_response_code, sip_call_id, sip_headers,
			duration_seconds, ended_at, created_at, updated_at)
		SELECT $8, call_sid, $9, $10, nullif($11, ''), $12, $13, $2, $2, $2
		FROM ev WHERE $8 <> '' AND $14
		ON CONFLICT (call_sid) DO UPDATE SET
			status = CASE WHEN legs.status IN ` + terminalSQL + ` THEN legs.status ELSE excluded.status END,
			sip_response_code = coalesce(excluded.sip_response_code, legs.sip_response_code),
			sip_call_id = coalesce(excluded.sip_call_id, legs.sip_call_id),
			sip_headers = coalesce(excluded.sip_headers, legs.sip_headers),
			duration_seconds = coalesce(excluded.duration_seconds, legs.duration_seconds),
			ended_at = coalesce(legs.ended_at, excluded.ended_at),
			updated_at = excluded.updated_at
		WHERE legs.parent_call_sid = excluded.parent_call_sid`

// RecordLegProgress applies a leg's status callback. It is idempotent and ordered: a status is
// applied only when its SequenceNumber is newer than the last applied one, and a leg never
// leaves a terminal status. Times are merged whatever the order (an answered callback arriving
// after completed still records when the leg was answered). The first leg to answer a ringing
// call becomes its callee. A leg of an unknown call is ignored.
func (db *DB) RecordLegProgress(ctx context.Context, p callrelay.LegProgress) (callrelay.LegResult, error) {
	var answeredAt, endedAt *time.Time
	if p.Status == callrelay.StatusInProgress {
		answeredAt = &p.At
	}
	if callrelay.IsTerminal(p.Status) {
		endedAt = &p.At
	}
	detail := legDetail{Leg: p.CallSid, Target: p.Target, SipResponseCode: p.SipResponseCode}
	// One round trip: the statement, then, in the same transaction (each statement with a
	// snapshot of its own), what a final or an answered status also needs; and that
	// transaction shared with the callbacks being written at the same moment (writeBatcher).
	// Sent apart, they cost a quarter to a half round trip more per callback on average.
	var res callrelay.LegResult
	var callee string
	now := db.now()
	err := db.writes.do(ctx, p.ParentCallSid, func(b *pgx.Batch) {
		res, callee = callrelay.LegResult{}, "" // queued again when retried alone
		queueLegProgress(b, p, answeredAt, endedAt, now, detail, &res, &callee)
	})
	if err != nil {
		return callrelay.LegResult{}, fmt.Errorf("leg progress %s of %s: %w", p.CallSid, p.ParentCallSid, err)
	}
	if res.Known && p.Status == callrelay.StatusInProgress && res.Callee == "" {
		res.Callee = callee
	}
	return res, nil
}

// legDetail is a leg status's timeline detail (see dialOutcomeDetail).
type legDetail struct {
	Leg             string `json:"leg"`
	Target          string `json:"target"`
	SipResponseCode *int   `json:"sip_response_code,omitempty"`
}

// queueLegProgress queues the statements of a leg's status callback; their results go to res
// and callee (the call's callee read again after an answer) when the batch is read.
func queueLegProgress(b *pgx.Batch, p callrelay.LegProgress, answeredAt, endedAt *time.Time, now time.Time, detail legDetail,
	res *callrelay.LegResult, callee *string) {
	b.Queue(legProgressSQL, p.CallSid, p.ParentCallSid, p.Target, p.TargetIndex, p.Status, p.Sequence,
		p.SipResponseCode, p.DurationSeconds, answeredAt, endedAt, now, detail, p.At).
		QueryRow(func(row pgx.Row) error {
			err := row.Scan(&res.Mode, &res.Callee, &res.ConferenceSid, &res.Held, &res.Screened)
			if errors.Is(err, pgx.ErrNoRows) {
				return nil // a leg of an unknown call: ignored
			} else if err != nil {
				return err
			}
			res.Known = true
			return nil
		})
	if callrelay.IsTerminal(p.Status) {
		// A leg that ends while its screen waits for a key was hung up: by its person, or by
		// Twilio when another leg was connected or the caller left. A statement of its own:
		// the one above may have written the same row, and one statement cannot write a row
		// twice.
		b.Queue(legScreenEndedSQL, p.CallSid, p.ParentCallSid, p.At, now, p.Status)
	}
	if p.Status == callrelay.StatusInProgress {
		// The first statement's snapshot may predate a concurrent answer that it then waited
		// for (a duplicate of this very callback, say): this one reads the winner again, or
		// the duplicate would pass for a late answer and hang up the callee (found by the
		// simulator).
		b.Queue(`SELECT coalesce(callee_call_sid, '') FROM calls WHERE call_sid = $1`, p.ParentCallSid).
			QueryRow(func(row pgx.Row) error {
				if err := row.Scan(callee); err != nil && !errors.Is(err, pgx.ErrNoRows) {
					return err
				}
				return nil
			})
	}
}

// legProgressSQL records a leg's status callback (RecordLegProgress): the leg, its timeline
// entry, the call's callee; it returns the call's mode, callee, conference, whether it has been
// held, and whether the leg is screened. No row: the call is unknown.
var legProgressSQL = `
		WITH parent AS (
			SELECT call_sid, mode, callee_call_sid, conference_sid,
				-- a leg that ends now ends the call: no Dial action will (FinishHeld)
				(held_since IS NOT NULL OR EXISTS (SELECT 1 FROM hold_intents i WHERE i.call_sid = $2 AND i.expires_at > $11))
					AND status NOT IN ` + terminalSQL + ` AS held,
				-- A screened leg becomes the callee when it accepts (RecordScreen), not when it
				-- answers: a carrier's voicemail answers too.
				(coalesce(routing->'targets'->($4::int)->>'screen', 'off') <> 'off'
					OR (coalesce((routing->>'machine_detection')::boolean, false)
						AND routing->'targets'->($4::int)->>'type' = 'phone')
					-- a conference-mode leg placed with its screen says so itself (FinishTarget)
					OR EXISTS (SELECT 1 FROM legs WHERE call_sid = $1 AND parent_call_sid = $2 AND screen IS NOT NULL)) AS screened
			FROM calls WHERE call_sid = $2
		), leg AS (
			INSERT INTO legs (call_sid, parent_call_sid, target, target_index, status, sequence,
				sip_response_code, duration_seconds, answered_at, ended_at, created_at, updated_at)
			SELECT $1, call_sid, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11 FROM parent
			ON CONFLICT (call_sid) DO UPDATE SET
				-- A final status always applies (a callback from UpdateCall's StatusCallback may
				-- carry no SequenceNumber); a leg never leaves one.
				status = CASE WHEN legs.status IN ` + terminalSQL + ` THEN legs.status
					WHEN excluded.status IN ` + terminalSQL + ` OR legs.sequence < excluded.sequence THEN excluded.status
					ELSE legs.status END,
				sequence = greatest(legs.sequence, excluded.sequence),
				target = CASE WHEN legs.target = '' THEN excluded.target ELSE legs.target END,
				target_index = coalesce(legs.target_index, excluded.target_index),
				sip_response_code = coalesce(excluded.sip_response_code, legs.sip_response_code),
				duration_seconds = coalesce(excluded.duration_seconds, legs.duration_seconds),
				answered_at = coalesce(legs.answered_at, excluded.answered_at),
				ended_at = coalesce(legs.ended_at, excluded.ended_at),
				updated_at = excluded.updated_at
			WHERE legs.parent_call_sid = excluded.parent_call_sid
			RETURNING parent_call_sid
		), ev AS (
			-- Only for a leg that is this call's: a CallSid claimed by another call changes nothing.
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
			SELECT parent_call_sid, $13, 'leg', 'callee', 'twilio', $5, $12, 'leg:' || $1 || ':' || $5 FROM leg
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
		), c AS (
			-- By the primary key whatever the statistics say: planned from statistics that saw
			-- few ringing calls, "call_sid IN (SELECT … FROM leg) AND status = 'ringing'" read
			-- every ringing call through the index on the status there was until migration 012
			-- (40 ms at 20,000: Growth in docs/performance.md). "IS TRUE" keeps the status out of
			-- any index condition.
			UPDATE calls SET status = 'in-progress', callee_call_sid = $1, updated_at = $11
			WHERE call_sid = $2 AND EXISTS (SELECT 1 FROM leg) AND (status = 'ringing') IS TRUE AND callee_call_sid IS NULL
				AND $5 = 'in-progress' AND NOT (SELECT screened FROM parent)
			RETURNING callee_call_sid
		)
		SELECT mode, coalesce((SELECT callee_call_sid FROM c), callee_call_sid, ''), coalesce(conference_sid, ''), held, screened FROM parent`

// legScreenEndedSQL ends the screen of a leg that ended while its screen waited for a key.
var legScreenEndedSQL = `
			WITH l AS (
				UPDATE legs SET screen_outcome = 'ended', updated_at = $4
				WHERE call_sid = $1 AND parent_call_sid = $2 AND screen_outcome = 'offered'
				RETURNING parent_call_sid, target, target_index, screen
			)
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
			SELECT parent_call_sid, $3, 'screen', 'callee', 'twilio', 'ended',
				jsonb_build_object('leg', $1::text, 'target', target, 'target_index', target_index, 'screen', screen, 'status', $5::text),
				'screen:' || $1 || ':ended' FROM l
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING`

// RecordCallStatus applies a status callback for the caller's own call (the number's status
// callback in the Twilio console). Only terminal statuses change the call: callrelay tracks
// ringing, in-progress and voicemail itself. The first final status also settles, in the same
// transaction, how the call's end is told (callEnded, missed.go). It reports whether the call
// was known, its mode, and whether it went through a hold (what is left to end once the caller
// has gone: hold.CallerEnded, conference.CallerEnded).
func (db *DB) RecordCallStatus(ctx context.Context, callSid, status string, at time.Time) (callrelay.CallStatusResult, error) {
	var res callrelay.CallStatusResult
	var added bool
	var err error
	now := db.now()
	if !callrelay.IsTerminal(status) {
		// A progress status changes only the timeline: one statement, no transaction.
		err = db.pool.QueryRow(ctx, callStatusSQL, callSid, status, at, now).Scan(&res.Known, &added, nil, &res.Mode, &res.Held)
	} else {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			var answered bool
			if err := tx.QueryRow(ctx, callStatusSQL, callSid, status, at, now).Scan(&res.Known, &added, &answered, &res.Mode, &res.Held); err != nil || !added {
				return err
			}
			return db.callEnded(ctx, tx, callSid, answered, now)
		})
	}
	if err != nil {
		return callrelay.CallStatusResult{}, fmt.Errorf("call status %s: %w", callSid, err)
	}
	return res, nil
}

// callStatusSQL records the caller's own status (RecordCallStatus): a final one ends the call
// and clears its hold; every one goes on the timeline once. It returns whether the call is
// known, whether the status is new, and, for a new final status, whether the call had a
// conversation (answeredSQL, for callEnded: one round trip less in the transaction that holds
// the call's row); then the call's mode and whether it went through a hold (FinishHeldCall's
// test, read here so that a call never held costs its end no query).
var callStatusSQL = `
		WITH c AS (
			SELECT call_sid, mode,
				held_since IS NOT NULL OR EXISTS (SELECT 1 FROM hold_intents i WHERE i.call_sid = $1 AND i.expires_at > $4) AS held
			FROM calls WHERE call_sid = $1
		), u AS (
			UPDATE calls SET status = $2, ended_at = coalesce(ended_at, $3), updated_at = $4,
				hold_caller = false, hold_callee = false
			WHERE call_sid = $1 AND $2 IN ` + terminalSQL + ` AND status NOT IN ` + terminalSQL + `
		), ev AS (
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, dedupe_key)
			SELECT call_sid, $3, 'call-status', 'caller', 'twilio', $2, 'call-status:' || $2 FROM c
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
			RETURNING call_sid
		)
		SELECT count(*) > 0, EXISTS (SELECT 1 FROM ev),
			EXISTS (SELECT 1 FROM ev) AND $2 IN ` + terminalSQL + ` AND coalesce((SELECT ` + answeredSQL + ` FROM calls c WHERE c.call_sid = $1), false),
			coalesce(max(mode), ''), coalesce(bool_or(held), false)
		FROM c`

// StartVoicemail moves a call to voicemail (unless it has ended) and returns its routing, or
// ENOTFOUND.
func (db *DB) StartVoicemail(ctx context.Context, callSid string) (callrelay.Routing, error) {
	now := db.now()
	var routing []byte
	err := db.pool.QueryRow(ctx, `
		WITH c AS (
			SELECT call_sid, routing FROM calls WHERE call_sid = $1
		), u AS (
			UPDATE calls SET status = 'voicemail', updated_at = $2
			WHERE call_sid = $1 AND status NOT IN `+terminalSQL+` AND status <> 'voicemail'
		), ev AS (
			INSERT INTO call_events (call_sid, at, type, party, by, dedupe_key)
			SELECT call_sid, $2, 'voicemail', 'caller', 'twilio', 'voicemail' FROM c
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING
		)
		SELECT routing FROM c`, callSid, now).Scan(&routing)
	if errors.Is(err, pgx.ErrNoRows) {
		return callrelay.Routing{}, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", callSid)
	} else if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start voicemail %s: %w", callSid, err)
	}
	r, err := decodeRouting(routing)
	if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start voicemail %s: %w", callSid, err)
	}
	return r, nil
}

// GetCall returns a call with its legs and timeline, or ENOTFOUND.
func (db *DB) GetCall(ctx context.Context, callSid string) (*callrelay.Call, error) {
	calls, err := db.queryCalls(ctx, `WHERE call_sid = $1`, callSid)
	if err != nil {
		return nil, fmt.Errorf("get call %s: %w", callSid, err)
	}
	if len(calls) == 0 {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", callSid)
	}
	return calls[0], nil
}

// List limits of calls and voicemails.
const (
	DefaultListLimit = 50
	MaxListLimit     = 500
)

// listLimit applies the default and the maximum to a requested limit.
func listLimit(n int) int {
	if n <= 0 {
		return DefaultListLimit
	}
	return min(n, MaxListLimit)
}

// ListCalls returns the newest calls first, with legs and timelines.
func (db *DB) ListCalls(ctx context.Context, f callrelay.CallFilter) ([]*callrelay.Call, error) {
	var w callsWhere
	w.status(f.Status)
	calls, err := db.queryCalls(ctx, w.newestFirst(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list calls: %w", err)
	}
	return calls, nil
}

// callsWhere is a listing's WHERE, made of the filters that are set only: each combination is
// a statement of its own, planned for the index that serves it. One statement for all, with
// each filter written "$1 is empty OR status = $1", gets a generic plan once PostgreSQL settles
// on one, which serves every filter by reading the newest calls until enough of them match.
type callsWhere struct {
	conds []string
	args  []any
}

// add adds a condition on one argument, written $ in cond.
func (w *callsWhere) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.ReplaceAll(cond, "$", fmt.Sprintf("$%d", len(w.args))))
}

// status keeps the calls in status s (none: any). Nothing indexes the status itself, so that a
// call's status changes are HOT updates (migration 012): a terminal status is found by
// final_status, any other among the live calls, whose final_status is NULL. A terminal status
// is written into the statement (one of callrelay's own constants, sqlList): as a parameter,
// the statement's generic plan, estimated from the common statuses, read every call newest
// first for a rare one (TestListCalls_statusPlan).
func (w *callsWhere) status(s string) {
	switch {
	case s == "":
	case callrelay.IsTerminal(s):
		i := slices.Index(callrelay.TerminalStatuses, s)
		w.conds = append(w.conds, `final_status IN `+sqlList(callrelay.TerminalStatuses[i:i+1]))
	default:
		w.add(`final_status IS NULL AND status = $`, s)
	}
}

// newestFirst is the WHERE and the order of a page of at most limit calls.
func (w *callsWhere) newestFirst(limit int) string {
	where := ""
	if len(w.conds) > 0 {
		where = "WHERE " + strings.Join(w.conds, " AND ")
	}
	w.args = append(w.args, listLimit(limit))
	return fmt.Sprintf("%s ORDER BY started_at DESC, call_sid DESC LIMIT $%d", where, len(w.args))
}

// queryCalls loads calls and then, in two more queries for all of them, their legs and events.
func (db *DB) queryCalls(ctx context.Context, where string, args ...any) ([]*callrelay.Call, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT call_sid, number, from_number, mode, status, routing, started_at, ended_at,
			conference_sid, hold_caller, hold_callee
		FROM calls `+where, args...)
	if err != nil {
		return nil, err
	}
	calls, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*callrelay.Call, error) {
		c := &callrelay.Call{Legs: []callrelay.Leg{}, Events: []callrelay.Event{}}
		var routing []byte
		if err := row.Scan(&c.CallSid, &c.Number, &c.From, &c.Mode, &c.Status, &routing, &c.StartedAt,
			&c.EndedAt, &c.ConferenceSid, &c.Hold.Caller, &c.Hold.Callee); err != nil {
			return nil, err
		}
		c.StartedAt = c.StartedAt.UTC()
		c.EndedAt = utc(c.EndedAt)
		var err error
		c.Routing, err = decodeRouting(routing)
		return c, err
	})
	if err != nil || len(calls) == 0 {
		return calls, err
	}
	bySid := make(map[string]*callrelay.Call, len(calls))
	sids := make([]string, len(calls))
	for i, c := range calls {
		bySid[c.CallSid], sids[i] = c, c.CallSid
	}

	rows, err = db.pool.Query(ctx, `
		SELECT parent_call_sid, call_sid, target, status, sip_response_code, sip_call_id,
			duration_seconds, answered_at, ended_at
		FROM legs WHERE parent_call_sid = ANY($1) ORDER BY created_at, call_sid`, sids)
	if err != nil {
		return nil, fmt.Errorf("legs: %w", err)
	}
	var parent string
	var l callrelay.Leg
	_, err = pgx.ForEachRow(rows, []any{&parent, &l.CallSid, &l.Target, &l.Status, &l.SipResponseCode,
		&l.SipCallID, &l.DurationSeconds, &l.AnsweredAt, &l.EndedAt}, func() error {
		l.AnsweredAt, l.EndedAt = utc(l.AnsweredAt), utc(l.EndedAt)
		c := bySid[parent]
		c.Legs = append(c.Legs, l)
		l = callrelay.Leg{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("legs: %w", err)
	}

	// The timeline in the order things happened. An event's time is Twilio's Timestamp, which
	// has whole seconds, or callrelay's clock, which does not: by time alone a leg's initiated
	// (Twilio's second) came before the inbound call that caused it. So: by the second, then in
	// the order callrelay recorded the events (id). Not by id alone: a callback replayed from
	// the spool is recorded late but keeps its time.
	rows, err = db.pool.Query(ctx, `
		SELECT call_sid, at, type, party, by, outcome, detail
		FROM call_events WHERE call_sid = ANY($1)
		ORDER BY date_trunc('second', at AT TIME ZONE 'UTC'), id`, sids)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	var sid string
	var e callrelay.Event
	_, err = pgx.ForEachRow(rows, []any{&sid, &e.At, &e.Type, &e.Party, &e.By, &e.Outcome, &e.Detail}, func() error {
		e.At = e.At.UTC()
		c := bySid[sid]
		c.Events = append(c.Events, e)
		e = callrelay.Event{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return calls, nil
}

// decodeRouting reads a routing stored as JSON.
func decodeRouting(b []byte) (callrelay.Routing, error) {
	var r callrelay.Routing
	if err := json.Unmarshal(b, &r); err != nil {
		return callrelay.Routing{}, fmt.Errorf("decode routing: %w", err)
	}
	return r, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
