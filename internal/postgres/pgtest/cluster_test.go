package pgtest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// TestCluster_StopStart writes a row, restarts the server both ways and shows that a pool
// opened before recovers and the row survives; a stopped server fails queries with a
// connection error until it is started again.
func TestCluster_StopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	began := time.Now()
	c := pgtest.StartCluster(t)
	t.Logf("StartCluster (initdb, start): %v, port %d", time.Since(began).Round(time.Millisecond), c.Port())

	began = time.Now()
	url := c.NewURL(t)
	t.Logf("first NewURL (migrates the template): %v", time.Since(began).Round(time.Millisecond))
	began = time.Now()
	other := c.NewURL(t)
	t.Logf("second NewURL (clones it): %v", time.Since(began).Round(time.Millisecond))
	if other == url {
		t.Fatalf("NewURL returned %s twice", url)
	}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	var version int
	if err := pool.QueryRow(ctx, `SELECT version FROM public.schema_version`).Scan(&version); err != nil {
		t.Fatalf("schema version: %v", err)
	}
	if want, err := postgres.LatestVersion(); err != nil || version != want {
		t.Fatalf("schema version %d, want %d (%v)", version, want, err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE probe (v text); INSERT INTO probe VALUES ('before')`); err != nil {
		t.Fatal(err)
	}
	// Several connections in the pool, all of which go stale at the restart.
	holdConns(ctx, t, pool, 3)

	for _, mode := range []pgtest.StopMode{pgtest.Fast, pgtest.Immediate} {
		began = time.Now()
		c.Restart(t, mode)
		t.Logf("Restart(%s): %v", mode, time.Since(began).Round(time.Millisecond))
		if got := probe(ctx, t, pool); got != "before" {
			t.Fatalf("after Restart(%s) the row reads %q, want %q", mode, got, "before")
		}
	}

	c.Stop(t, pgtest.Fast)
	qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = pool.Exec(qctx, `SELECT 1`)
	qcancel()
	if !isConnError(err) {
		t.Fatalf("query on a stopped server: %v (%T), want a connection error", err, err)
	}
	t.Logf("query on the stopped server: %v", err)
	// Every new connection is refused while it is down.
	qctx, qcancel = context.WithTimeout(ctx, 10*time.Second)
	_, err = pool.Exec(qctx, `SELECT 1`)
	qcancel()
	var connectErr *pgconn.ConnectError
	if !errors.As(err, &connectErr) {
		t.Fatalf("second query on a stopped server: %v (%T), want a *pgconn.ConnectError", err, err)
	}

	began = time.Now()
	c.Start(t)
	t.Logf("Start: %v", time.Since(began).Round(time.Millisecond))
	if got := probe(ctx, t, pool); got != "before" {
		t.Fatalf("after Stop and Start the row reads %q, want %q", got, "before")
	}
	// The other database came through too.
	var version2 int
	queryAfterRestart(ctx, t, newPool(ctx, t, other), `SELECT version FROM public.schema_version`, &version2)
	if version2 != version {
		t.Fatalf("the other database's schema version is %d, want %d", version2, version)
	}
}

// probe reads the probe row through pool.
func probe(ctx context.Context, t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var v string
	queryAfterRestart(ctx, t, pool, `SELECT v FROM probe`, &v)
	return v
}

// queryAfterRestart runs a one-row query through pool, whose connections may predate a
// restart: each stale connection fails one query with a connection error and leaves the pool,
// so the query succeeds within as many attempts as the pool held connections, plus one.
func queryAfterRestart(ctx context.Context, t *testing.T, pool *pgxpool.Pool, sql string, dest ...any) {
	t.Helper()
	attempts := int(pool.Stat().TotalConns()) + 1
	for i := 1; ; i++ {
		err := pool.QueryRow(ctx, sql).Scan(dest...)
		if err == nil {
			if i > 1 {
				t.Logf("the pool recovered after %d failed attempt(s) on stale connections", i-1)
			}
			return
		}
		if !isConnError(err) || i == attempts {
			t.Fatalf("%s, attempt %d of %d: %v (%T)", sql, i, attempts, err, err)
		}
		t.Logf("attempt %d: %v", i, err)
	}
}

// holdConns makes pool open n connections, by holding them at once, and returns them to it.
func holdConns(ctx context.Context, t *testing.T, pool *pgxpool.Pool, n int) {
	t.Helper()
	var conns []*pgxpool.Conn
	for range n {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	for _, conn := range conns {
		conn.Release()
	}
}

func newPool(ctx context.Context, t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// isConnError tells whether err says the server went away or cannot be reached, as opposed to
// a timeout or an error of the query itself.
func isConnError(err error) bool {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// admin_shutdown, crash_shutdown, cannot_connect_now
		return strings.HasPrefix(pgErr.Code, "57P")
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) || errors.As(err, &netErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
