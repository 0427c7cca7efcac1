package pgtest

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Counter counts what a pool sends to PostgreSQL, for benchmarks that report round trips and
// statements per operation (docs/performance.md). A round trip is a query (BEGIN and COMMIT
// included), a batch (however many statements it carries: pgx pipelines them) or a prepare;
// a statement is a query or a batch's query, transaction control (BEGIN, COMMIT, ROLLBACK,
// SET LOCAL) excluded.
type Counter struct {
	roundTrips, statements atomic.Int64
	paused                 atomic.Bool // not counting: setup inside a benchmark's loop
}

// NewCountingPool returns a pool on a fresh database for t, closed when t ends, and the
// counter of what it sends.
func NewCountingPool(t testing.TB) (*pgxpool.Pool, *Counter) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(NewURL(t))
	if err != nil {
		t.Fatalf("pgtest: pool config: %v", err)
	}
	c := &Counter{}
	cfg.ConnConfig.Tracer = c
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, c
}

func (c *Counter) add(rt, st int64) {
	if c.paused.Load() {
		return
	}
	c.roundTrips.Add(rt)
	c.statements.Add(st)
}

// Pause stops counting until Resume: for setup inside a benchmark's loop (with b.StopTimer).
func (c *Counter) Pause() { c.paused.Store(true) }

// Resume counts again.
func (c *Counter) Resume() { c.paused.Store(false) }

// Reset forgets what was counted (with b.ResetTimer).
func (c *Counter) Reset() { c.roundTrips.Store(0); c.statements.Store(0) }

// Snapshot returns the round trips counted so far.
func (c *Counter) Snapshot() int64 { return c.roundTrips.Load() }

// Report adds round trips and statements per operation to b's results.
func (c *Counter) Report(b *testing.B) {
	b.Helper()
	if b.N == 0 {
		return
	}
	b.ReportMetric(float64(c.roundTrips.Load())/float64(b.N), "roundtrips/op")
	b.ReportMetric(float64(c.statements.Load())/float64(b.N), "stmts/op")
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *Counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.add(1, statements(d.SQL))
	return ctx
}

// statements is 1 for a statement, 0 for transaction control (BEGIN, COMMIT, ROLLBACK, SET LOCAL).
func statements(sql string) int64 {
	s := strings.ToLower(strings.TrimSpace(sql))
	switch {
	case s == "begin", s == "commit", s == "rollback", strings.HasPrefix(s, "begin isolation"), strings.HasPrefix(s, "set local"):
		return 0
	}
	return 1
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *Counter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer.
func (c *Counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.add(1, 0)
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (c *Counter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	c.add(0, statements(d.SQL))
}

// TraceBatchEnd implements pgx.BatchTracer.
func (c *Counter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// TracePrepareStart implements pgx.PrepareTracer.
func (c *Counter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.add(1, 0)
	return ctx
}

// TracePrepareEnd implements pgx.PrepareTracer.
func (c *Counter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}
