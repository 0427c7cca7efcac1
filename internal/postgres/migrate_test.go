package postgres_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// TestMigrateWhenReachable_AtOnce_OK runs callrelay's start-up migration from several replicas
// at the same moment on an empty database, each with its own pool, as replicas started
// together do: every one succeeds, the schema ends up current with each migration recorded
// once, and a replica starting later finds nothing to do.
func TestMigrateWhenReachable_AtOnce_OK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL := pgtest.NewEmptyURL(t)
	log := slog.New(slog.DiscardHandler)

	const replicas = 4
	pools := make([]*pgxpool.Pool, replicas)
	for i := range pools {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		// Connected before the start line, so that the migrations, not the dials, race.
		if err := pool.Ping(ctx); err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		pools[i] = pool
	}
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, pool := range pools {
		wg.Go(func() {
			<-start
			errs[i] = postgres.MigrateWhenReachable(ctx, pool, log, 20*time.Second)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d: start-up migration: %v", i, err)
		}
	}

	if err := postgres.New(pools[0], postgres.Options{}).Ready(ctx); err != nil {
		t.Errorf("Ready after migrating from %d replicas at once: %v, want nil", replicas, err)
	}
	var rows, version int
	if err := pools[0].QueryRow(ctx, `SELECT count(*), max(version) FROM schema_version`).Scan(&rows, &version); err != nil {
		t.Fatal(err)
	}
	want, err := postgres.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if rows != 1 || version != want {
		t.Errorf("schema_version: got %d rows, version %d; want 1 row, version %d", rows, version, want)
	}
	// River's migrations are recorded one row each: a second run of one would be a duplicate.
	var riverRows, riverDistinct int
	if err := pools[0].QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM river_migration`).Scan(&riverRows, &riverDistinct); err != nil {
		t.Fatal(err)
	}
	if riverRows == 0 || riverRows != riverDistinct {
		t.Errorf("river_migration: got %d rows for %d versions, want one row per version", riverRows, riverDistinct)
	}

	// A replica restarting (or scaled up later) migrates nothing and fails nothing.
	if err := postgres.MigrateWhenReachable(ctx, pools[1], log, 5*time.Second); err != nil {
		t.Errorf("start-up migration on a current schema: %v, want nil", err)
	}
}

// TestMigrateWhenReachable_ErrUnreachable: a database that never answers stops start-up
// after the wait, saying so, instead of serving without a schema or retrying forever.
func TestMigrateWhenReachable_ErrUnreachable(t *testing.T) {
	// Port 1 on loopback refuses at once: the retry loop, not the dial, takes the time.
	pool, err := pgxpool.New(context.Background(), "postgres://callrelay@127.0.0.1:1/none?connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var logs strings.Builder
	start := time.Now()
	err = postgres.MigrateWhenReachable(context.Background(), pool, slog.New(slog.NewTextHandler(&logs, nil)), 1500*time.Millisecond)
	elapsed := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "database unreachable for 1.5s") {
		t.Errorf("MigrateWhenReachable = %v, want an error saying the database was unreachable for 1.5s", err)
	}
	if elapsed < 1500*time.Millisecond || elapsed > 10*time.Second {
		t.Errorf("gave up after %s, want after the 1.5s wait", elapsed)
	}
	if !strings.Contains(logs.String(), "database not reachable yet; retrying") {
		t.Errorf("log lacks the retry warning:\n%s", logs.String())
	}
}

// TestMigrateWhenReachable_PoolOfOne_OK: a pool of one connection (pool_max_conns=1) migrates.
// The advisory lock's session used to be a pooled connection, and River's migrator then
// waited for a second one until start-up gave up (a minute later, with "context deadline
// exceeded").
func TestMigrateWhenReachable_PoolOfOne_OK(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	u, err := url.Parse(pgtest.NewEmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1")
	u.RawQuery = q.Encode()
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.MigrateWhenReachable(ctx, pool, slog.New(slog.DiscardHandler), 10*time.Second); err != nil {
		t.Fatalf("start-up migration with pool_max_conns=1: %v, want nil", err)
	}
	if err := postgres.New(pool, postgres.Options{}).Ready(ctx); err != nil {
		t.Errorf("Ready: %v, want nil", err)
	}
}
