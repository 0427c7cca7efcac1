// Package postgres stores callrelay's numbers, calls, legs and timelines in PostgreSQL. Every
// replica shares the database: all state that matters across requests lives here.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/callrelay/callrelay/migrations"
)

// versionTable records the applied migration, read by tern and by Ready.
const versionTable = "public.schema_version"

// DB is callrelay's store.
type DB struct {
	pool *pgxpool.Pool
	// Now returns the current time; tests replace it.
	Now func() time.Time
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *DB {
	return &DB{pool: pool, Now: time.Now}
}

// Pool returns the connection pool, for health checks and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

func (db *DB) now() time.Time { return db.Now().UTC().Truncate(time.Microsecond) }

// Migrate applies the embedded migrations. tern holds a Postgres advisory lock while it works,
// so replicas starting together apply each migration once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// LatestVersion is the number of the newest embedded migration.
func LatestVersion() (int, error) {
	names, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		return 0, fmt.Errorf("find migrations: %w", err)
	}
	return len(names), nil
}

// Ready reports whether the database answers and its schema is the one this binary expects.
func (db *DB) Ready(ctx context.Context) error {
	var v int
	if err := db.pool.QueryRow(ctx, `SELECT version FROM `+versionTable).Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	want, err := LatestVersion()
	if err != nil {
		return err
	}
	if v != want {
		return fmt.Errorf("schema version %d, want %d", v, want)
	}
	return nil
}
