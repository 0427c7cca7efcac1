// Package postgres stores callrelay's numbers, calls, legs and timelines in PostgreSQL. Every
// replica shares the database: all state that matters across requests lives here.
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/migrations"
)

// DB implements the services of package callrelay.
var (
	_ callrelay.RecordingStore      = (*DB)(nil)
	_ callrelay.EventStore          = (*DB)(nil)
	_ callrelay.VoicemailEmailStore = (*DB)(nil)
	_ callrelay.MissedCallStore     = (*DB)(nil)
	_ callrelay.ConferenceStore     = (*DB)(nil)
	_ callrelay.HoldStore           = (*DB)(nil)
)

// versionTable records the applied migration, read by tern and by Ready.
const versionTable = "public.schema_version"

// DB is callrelay's store.
type DB struct {
	pool *pgxpool.Pool
	opts Options

	starts   *startBatcher
	writes   *writeBatcher // the callbacks' writes (calls.go)
	routings routingMemo   // decoded routings (StartCall, RecordDialOutcome)
	numbers  numberMemo    // each number's routing and version, to decide calls (StartCall)
}

// Options are what a store is built with; the zero value suits a store without background
// work (tests of other parts).
type Options struct {
	// Now is the store's clock (nil: callrelay.SystemClock). Every time the store writes comes
	// from it, never from PostgreSQL's now().
	Now func() time.Time
	// Jobs enqueues background work (emails, missed-call checks, conference jobs, copies) in
	// the caller's transaction; nil enqueues nothing. It only inserts: the queue that works the
	// jobs is built after the store (its workers need the store).
	Jobs Jobs
	// Notices tune missed-call decisions and name the instance's event endpoints (missed.go).
	Notices Notices
	// CopyRecordings: a completed recording also enqueues the job that copies it into
	// callrelay's recording store (recordings.go); false when no store is configured.
	CopyRecordings bool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool, opts Options) *DB {
	if opts.Now == nil {
		opts.Now = callrelay.SystemClock
	}
	db := &DB{pool: pool, opts: opts}
	db.starts = &startBatcher{db: db}
	db.writes = &writeBatcher{pool: pool}
	return db
}

// Pool returns the connection pool, for health checks and tests.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

func (db *DB) now() time.Time { return db.opts.Now().UTC().Truncate(time.Microsecond) }

// migrateLock serialises whole migration runs (ours, then River's) across replicas.
const migrateLock = 7272740

// Migrate applies the embedded migrations, then River's (the job queue's tables). A session
// advisory lock is held throughout, so replicas starting together apply each migration once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	// The lock's session is a connection of its own, outside the pool: River's migrator takes
	// connections from the pool while the lock is held, and a pool of one (pool_max_conns=1)
	// would wait for itself until start-up gives up.
	conn, err := pgx.ConnectConfig(ctx, pool.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	defer func() {
		// Closing ends the session, and so releases the lock; bounded, as the database may
		// be gone.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}

	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("migrate: load: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	rm, err := riverMigrator(pool)
	if err != nil {
		return err
	}
	if _, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	return nil
}

func riverMigrator(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], error) {
	rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("migrate river: %w", err)
	}
	return rm, nil
}

// SchemaID names the complete schema this binary migrates to (ours and River's), for tests
// that cache a migrated template database.
func SchemaID() (string, error) {
	names, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		return "", err
	}
	rm, err := riverMigrator(nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s river=%d", strings.Join(names, ","), len(rm.AllVersions())), nil
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

// Now is the store's clock: the jobs that decide from stored times (conference deadlines) read
// the same one.
func (db *DB) Now() time.Time { return db.opts.Now() }

// sqlList writes words as an SQL list of string literals: ('a', 'b'). The words are
// callrelay's own constants (no quotes in them), never input.
func sqlList(words []string) string {
	return "('" + strings.Join(words, "', '") + "')"
}
