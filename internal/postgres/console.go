package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// The console's and the owner inbox's queries (issue 20): voicemail status, call history
// filters, sessions, and the change feed that tells every console what changed.

const consoleVoicemailSelect = `SELECT ` + voicemailColumns + `, handled_at, coalesce(handled_by, ''), expired_at FROM voicemails`

func scanConsoleVoicemail(row pgx.CollectableRow) (*callrelay.ConsoleVoicemail, error) {
	var v callrelay.Voicemail
	c := &callrelay.ConsoleVoicemail{Voicemail: &v}
	err := row.Scan(append(voicemailDest(&v), &c.HandledAt, &c.HandledBy, &c.ExpiredAt)...)
	voicemailUTC(&v)
	c.HandledAt, c.ExpiredAt = utc(c.HandledAt), utc(c.ExpiredAt)
	return c, err
}

// ListConsoleVoicemails returns the newest voicemails first.
func (db *DB) ListConsoleVoicemails(ctx context.Context, f callrelay.ConsoleVoicemailFilter) ([]*callrelay.ConsoleVoicemail, error) {
	rows, err := db.pool.Query(ctx, consoleVoicemailSelect+`
		WHERE ($1 = '' OR number = $1) AND ($2 = '' OR lower(owner_email) = lower($2))
			AND ($3 = ''
				OR ($3 = 'new' AND handled_at IS NULL AND expired_at IS NULL)
				OR ($3 = 'handled' AND handled_at IS NOT NULL AND expired_at IS NULL)
				OR ($3 = 'deleted' AND expired_at IS NOT NULL))
			AND ($4::text[] IS NULL OR call_sid = ANY($4))
		ORDER BY created_at DESC, id DESC LIMIT $5`, f.Number, f.OwnerEmail, f.Status, f.CallSids, listLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("list voicemails: %w", err)
	}
	vms, err := pgx.CollectRows(rows, scanConsoleVoicemail)
	if err != nil {
		return nil, fmt.Errorf("list voicemails: %w", err)
	}
	return vms, nil
}

// GetConsoleVoicemail returns a voicemail with its status, or ENOTFOUND.
func (db *DB) GetConsoleVoicemail(ctx context.Context, id int64) (*callrelay.ConsoleVoicemail, error) {
	rows, err := db.pool.Query(ctx, consoleVoicemailSelect+` WHERE id = $1`, id)
	if err != nil {
		return nil, fmt.Errorf("get voicemail %d: %w", id, err)
	}
	vm, err := pgx.CollectExactlyOneRow(rows, scanConsoleVoicemail)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %d is unknown.", id)
	} else if err != nil {
		return nil, fmt.Errorf("get voicemail %d: %w", id, err)
	}
	return vm, nil
}

// MarkVoicemailHandled records that by (an owner's email, or "ops") dealt with the voicemail,
// on it and on its call's timeline. Two people must not both call the customer back: a
// voicemail someone already handled answers ECONFLICT naming who and when, and is unchanged.
func (db *DB) MarkVoicemailHandled(ctx context.Context, id int64, by string) (*callrelay.ConsoleVoicemail, error) {
	now := db.now()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid string
		var handledAt *time.Time
		var handledBy *string
		err := tx.QueryRow(ctx, `SELECT call_sid, handled_at, handled_by FROM voicemails WHERE id = $1 FOR UPDATE`, id).
			Scan(&callSid, &handledAt, &handledBy)
		if errors.Is(err, pgx.ErrNoRows) {
			return callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %d is unknown.", id)
		} else if err != nil {
			return err
		}
		if handledAt != nil {
			who := "someone"
			if handledBy != nil && *handledBy != "" {
				who = *handledBy
			}
			return callrelay.Errorf(callrelay.ECONFLICT, "Voicemail %d was already handled by %s at %s.", id, who,
				handledAt.UTC().Format("2006-01-02 15:04 UTC"))
		}
		if _, err := tx.Exec(ctx, `UPDATE voicemails SET handled_at = $2, handled_by = $3, updated_at = $2 WHERE id = $1`,
			id, now, by); err != nil {
			return err
		}
		// The timeline entry is also what tells every open console (the change feed).
		return insertEvent(ctx, tx, callSid, now, "voicemail-handled", "", by, "", map[string]any{"voicemail_id": id}, "")
	})
	if err != nil {
		return nil, fmt.Errorf("mark voicemail %d handled: %w", id, err)
	}
	return db.GetConsoleVoicemail(ctx, id)
}

// SearchCalls returns the newest calls first, with legs and timelines.
func (db *DB) SearchCalls(ctx context.Context, f callrelay.CallSearch) ([]*callrelay.Call, error) {
	var w callsWhere
	if f.Number != "" {
		w.add(`number = $`, f.Number)
	}
	w.status(f.Status)
	if f.From != nil {
		w.add(`started_at >= $`, *f.From)
	}
	if f.Until != nil {
		w.add(`started_at < $`, *f.Until)
	}
	if f.Live {
		// final_status IS NULL: not in a terminal status (and so in calls_live_started_at_idx).
		w.conds = append(w.conds, `final_status IS NULL AND ended_at IS NULL`)
	}
	calls, err := db.queryCalls(ctx, w.newestFirst(f.Limit), w.args...)
	if err != nil {
		return nil, fmt.Errorf("search calls: %w", err)
	}
	return calls, nil
}

// CallsBySid returns the calls of sids that exist, in no particular order.
func (db *DB) CallsBySid(ctx context.Context, sids []string) ([]*callrelay.Call, error) {
	calls, err := db.queryCalls(ctx, `WHERE call_sid = ANY($1)`, sids)
	if err != nil {
		return nil, fmt.Errorf("calls by sid: %w", err)
	}
	return calls, nil
}

// ListMissedCalls returns the newest missed calls of one number, or of an owner's numbers.
func (db *DB) ListMissedCalls(ctx context.Context, number, ownerEmail string, limit int) ([]*callrelay.MissedCall, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT o.call_sid FROM call_outcomes o JOIN calls c USING (call_sid)
		WHERE o.outcome = $1 AND ($2 = '' OR c.number = $2) AND ($3 = '' OR lower(o.owner_email) = lower($3))
		ORDER BY c.started_at DESC, o.call_sid DESC LIMIT $4`, callrelay.OutcomeMissed, number, ownerEmail, listLimit(limit))
	if err != nil {
		return nil, fmt.Errorf("list missed calls: %w", err)
	}
	sids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list missed calls: %w", err)
	}
	out := make([]*callrelay.MissedCall, 0, len(sids))
	for _, sid := range sids {
		mc, err := getMissedCall(ctx, db.pool, sid)
		if err != nil {
			return nil, err
		}
		if mc != nil {
			out = append(out, mc)
		}
	}
	return out, nil
}

// OwnerNumbers returns the numbers whose routing's owner is email (case-insensitive).
func (db *DB) OwnerNumbers(ctx context.Context, email string) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT number FROM numbers WHERE lower(routing->>'owner_email') = lower($1) ORDER BY number`, email)
	if err != nil {
		return nil, fmt.Errorf("owner numbers: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Session is an ops console session.
type Session struct {
	CSRF      string
	ExpiresAt time.Time
}

// CreateSession stores a session under the hash of its cookie, and drops expired ones.
func (db *DB) CreateSession(ctx context.Context, idHash []byte, csrf string, expires time.Time) error {
	now := db.now()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM console_sessions WHERE expires_at <= $1`, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO console_sessions (id_hash, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			idHash, csrf, now, expires)
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// GetSession returns a live session, or EUNAUTHORIZED when there is none (unknown, ended or
// expired).
func (db *DB) GetSession(ctx context.Context, idHash []byte) (*Session, error) {
	var s Session
	err := db.pool.QueryRow(ctx, `SELECT csrf, expires_at FROM console_sessions WHERE id_hash = $1 AND expires_at > $2`,
		idHash, db.now()).Scan(&s.CSRF, &s.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.EUNAUTHORIZED, "Not logged in, or the session has ended.")
	} else if err != nil {
		return nil, fmt.Errorf("get session: %w", err)
	}
	return &s, nil
}

// DeleteSession ends a session (logout); an unknown one is not an error.
func (db *DB) DeleteSession(ctx context.Context, idHash []byte) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM console_sessions WHERE id_hash = $1`, idHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// The change feed: each replica reads call_events past a cursor (one query per poll for all
// of its browsers), and tells them which calls changed. Every change the console shows writes
// a timeline entry: a call's start, its legs, hold, voicemail, handled, deleted.
//
// ids come from a sequence, so they are handed out in insert order, not commit order: a
// transaction may commit an id below one already read. Such an id is a gap until it is seen
// for feedGapPolls polls (a rolled-back insert, or an ON CONFLICT DO NOTHING, never fills its
// gap); each poll also asks for the open gaps. Polls, not time: at the console's 250 ms, 40
// polls wait 10 s, far longer than any of callrelay's transactions.

// feedGapPolls is how many polls an unseen id below the cursor is waited for.
const feedGapPolls = 40

// feedBatch bounds one poll's rows; the rest come with the next poll.
const feedBatch = 1000

// maxFeedGaps bounds the gaps a cursor tracks; past it, the oldest are given up.
const maxFeedGaps = 1000

// FeedCursor is where a change feed has read up to. The zero cursor starts at the current end.
type FeedCursor struct {
	Last int64
	gaps map[int64]int // unseen ids below Last, and the polls left to wait for each
	init bool
}

// SkipFeed moves the cursor to the current end, giving up its gaps: the feed's reader had more
// changes than it would show, and tells its browsers to read the page afresh instead.
func (db *DB) SkipFeed(ctx context.Context, c *FeedCursor) error {
	var last int64
	if err := db.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM call_events`).Scan(&last); err != nil {
		return fmt.Errorf("feed skip: %w", err)
	}
	c.Last, c.gaps = max(c.Last, last), map[int64]int{}
	return nil
}

// FeedEntry is one new timeline entry.
type FeedEntry struct {
	ID      int64
	CallSid string
	Type    string
}

// EventsAfter returns the timeline entries committed since the cursor's last read, in id
// order, and moves the cursor.
func (db *DB) EventsAfter(ctx context.Context, c *FeedCursor) ([]FeedEntry, error) {
	if !c.init {
		if err := db.pool.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM call_events`).Scan(&c.Last); err != nil {
			return nil, fmt.Errorf("feed start: %w", err)
		}
		c.init, c.gaps = true, map[int64]int{}
		return nil, nil
	}
	gaps := make([]int64, 0, len(c.gaps))
	for id := range c.gaps {
		gaps = append(gaps, id)
	}
	rows, err := db.pool.Query(ctx, `
		SELECT id, call_sid, type FROM call_events
		WHERE id > $1 OR id = ANY($2) ORDER BY id LIMIT $3`, c.Last, gaps, feedBatch)
	if err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	var out []FeedEntry
	var e FeedEntry
	if _, err := pgx.ForEachRow(rows, []any{&e.ID, &e.CallSid, &e.Type}, func() error {
		out = append(out, e)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("feed: %w", err)
	}
	for id, left := range c.gaps {
		if left <= 1 {
			delete(c.gaps, id)
		} else {
			c.gaps[id] = left - 1
		}
	}
	for _, e := range out {
		if _, ok := c.gaps[e.ID]; ok {
			delete(c.gaps, e.ID)
			continue
		}
		for id := c.Last + 1; id < e.ID; id++ {
			c.gaps[id] = feedGapPolls
		}
		c.Last = max(c.Last, e.ID)
	}
	if len(c.gaps) > maxFeedGaps {
		ids := make([]int64, 0, len(c.gaps))
		for id := range c.gaps {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids[:len(ids)-maxFeedGaps] {
			delete(c.gaps, id)
		}
	}
	return out, nil
}
