package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// PutNumber creates or replaces a number's routing and reports whether it was created.
func (db *DB) PutNumber(ctx context.Context, number string, r callrelay.Routing) (*callrelay.Number, bool, error) {
	routing, err := json.Marshal(r)
	if err != nil {
		return nil, false, fmt.Errorf("put number %s: %w", number, err)
	}
	now := db.now()
	n := &callrelay.Number{Number: number, Routing: r}
	var created bool
	// xmax = 0 only for a row this statement inserted, not one it updated.
	err = db.pool.QueryRow(ctx, `
		INSERT INTO numbers (number, routing, created_at, updated_at) VALUES ($1, $2, $3, $3)
		ON CONFLICT (number) DO UPDATE SET routing = excluded.routing, updated_at = excluded.updated_at
		RETURNING created_at, updated_at, xmax = 0`,
		number, routing, now).Scan(&n.CreatedAt, &n.UpdatedAt, &created)
	if err != nil {
		return nil, false, fmt.Errorf("put number %s: %w", number, err)
	}
	return n, created, nil
}

// GetNumber returns a number, or ENOTFOUND.
func (db *DB) GetNumber(ctx context.Context, number string) (*callrelay.Number, error) {
	rows, err := db.pool.Query(ctx, `SELECT number, routing, created_at, updated_at FROM numbers WHERE number = $1`, number)
	if err != nil {
		return nil, fmt.Errorf("get number %s: %w", number, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, scanNumber)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", number)
	} else if err != nil {
		return nil, fmt.Errorf("get number %s: %w", number, err)
	}
	return n, nil
}

// ListNumbers returns a page of numbers, ordered by number, and whether more follow it. The
// page is keyed on the number (the primary key), so it costs the same deep in the list, and a
// number added or removed meanwhile shifts no other.
func (db *DB) ListNumbers(ctx context.Context, p callrelay.NumberPage) ([]*callrelay.Number, bool, error) {
	limit := listLimit(p.Limit)
	rows, err := db.pool.Query(ctx, `
		SELECT number, routing, created_at, updated_at FROM numbers
		WHERE number > $1 ORDER BY number LIMIT $2`, p.After, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("list numbers: %w", err)
	}
	ns, err := pgx.CollectRows(rows, scanNumber)
	if err != nil {
		return nil, false, fmt.Errorf("list numbers: %w", err)
	}
	if len(ns) > limit {
		return ns[:limit], true, nil
	}
	return ns, false, nil
}

// DeleteNumber removes a number, or answers ENOTFOUND. Its calls stay in the history.
func (db *DB) DeleteNumber(ctx context.Context, number string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM numbers WHERE number = $1`, number)
	if err != nil {
		return fmt.Errorf("delete number %s: %w", number, err)
	}
	if tag.RowsAffected() == 0 {
		return callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", number)
	}
	return nil
}

func scanNumber(row pgx.CollectableRow) (*callrelay.Number, error) {
	var n callrelay.Number
	var routing []byte
	if err := row.Scan(&n.Number, &routing, &n.CreatedAt, &n.UpdatedAt); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(routing, &n.Routing); err != nil {
		return nil, fmt.Errorf("decode routing of %s: %w", n.Number, err)
	}
	n.CreatedAt, n.UpdatedAt = n.CreatedAt.UTC(), n.UpdatedAt.UTC()
	return &n, nil
}
