package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// A call's timeline is its rows of call_events, written by every part of the store in the
// transaction of the change they record. GetCall reads it (calls.go).

// insertEvent adds an entry to a call's timeline; a non-empty dedupeKey makes it once only.
func insertEvent(ctx context.Context, tx pgx.Tx, callSid string, at time.Time, typ, party, by, outcome string, detail map[string]any, dedupeKey string) error {
	_, err := addEvent(ctx, tx, callSid, at, typ, party, by, outcome, detail, dedupeKey)
	return err
}

// addEvent is insertEvent that reports whether the entry was added (false: a repeat).
func addEvent(ctx context.Context, tx pgx.Tx, callSid string, at time.Time, typ, party, by, outcome string, detail map[string]any, dedupeKey string) (bool, error) {
	tag, err := tx.Exec(ctx, `
		INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''))
		ON CONFLICT (call_sid, dedupe_key) DO NOTHING`,
		callSid, at, typ, party, by, outcome, detail, dedupeKey)
	return tag.RowsAffected() == 1, err
}
