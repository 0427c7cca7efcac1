package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// Callback writes that arrive while both lanes are busy share the next batch: one round trip
// and one commit for all of them. Each is still written, and two of one leg never share a
// batch; the leg ends as its SequenceNumbers say.
func TestCallbackWrites_ShareACommit(t *testing.T) {
	ctx := context.Background()
	pool, counter := pgtest.NewCountingPool(t)
	db := postgres.New(pool, postgres.Options{Now: func() time.Time { return t0 }})
	if _, _, err := db.PutNumber(ctx, "+15551230000", mustRouting(t, seqRouting)); err != nil {
		t.Fatal(err)
	}
	const n = 12
	parent := func(i int) string { return fmt.Sprintf("CA%032x", i) }
	leg := func(i int) string { return fmt.Sprintf("CA%032x", 1000+i) }
	progress := func(i int, status string, seq int) callrelay.LegProgress {
		return callrelay.LegProgress{CallSid: leg(i), ParentCallSid: parent(i), Status: status, Sequence: seq,
			At: t0.Add(time.Duration(seq) * time.Second), Target: "+15550001111", TargetIndex: intp(0)}
	}
	for i := range n {
		if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: parent(i), Number: "+15551230000", From: "+15559870000"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1} {
		if _, err := db.RecordLegProgress(ctx, progress(i, "initiated", 0)); err != nil {
			t.Fatal(err)
		}
	}

	// Both lanes wait behind a lock on the legs of calls 0 and 1.
	cfg := pool.Config().ConnConfig.Copy()
	cfg.Tracer = nil
	locker, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `SELECT 1 FROM legs WHERE call_sid = ANY($1) FOR UPDATE`, []string{leg(0), leg(1)}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(map[string]error)
	var mu sync.Mutex
	write := func(name string, p callrelay.LegProgress) {
		wg.Go(func() {
			_, err := db.RecordLegProgress(ctx, p)
			mu.Lock()
			errs[name] = err
			mu.Unlock()
		})
	}
	write("0 ringing", progress(0, "ringing", 1))
	write("1 ringing", progress(1, "ringing", 1))
	// Watched from a connection of its own: pg_stat_activity holds still within a transaction.
	watcher, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)
	await(t, "two writes waiting for the lock", func() bool {
		var waiting int
		err := watcher.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`).Scan(&waiting)
		return err == nil && waiting >= 2
	})

	before := counter.Snapshot()
	// Calls 2..n-1 initiated; call 2's leg twice (ringing after initiated).
	for i := 2; i < n; i++ {
		write(fmt.Sprintf("%d initiated", i), progress(i, "initiated", 0))
	}
	write("2 ringing", progress(2, "ringing", 1))
	await(t, "the writes pending", func() bool { return db.PendingWrites() == n-2+1 })
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	for name, err := range errs {
		if err != nil {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// The writes queued meanwhile: one batch for all but call 2's second write, which goes in
	// the next.
	if got := counter.Snapshot() - before; got > 3 {
		t.Errorf("%d round trips for the %d writes queued while the lanes were busy, want at most 3 (they share a batch)", got, n-2+1)
	}
	for i := range n {
		c, err := db.GetCall(ctx, parent(i))
		if err != nil {
			t.Fatal(err)
		}
		want := "initiated"
		if i <= 2 {
			want = "ringing"
		}
		if len(c.Legs) != 1 || c.Legs[0].Status != want {
			t.Errorf("call %d: legs %+v, want one %s", i, c.Legs, want)
		}
	}
}

// await polls cond until it holds, for up to 10 s.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A batch PostgreSQL cannot take (here, one write whose target index does not fit the column)
// commits nothing, and its writes are tried again one by one: only the bad one fails.
func TestCallbackWrites_BadWriteFailsAlone(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	var ps []callrelay.LegProgress
	for i := range 4 {
		sid := fmt.Sprintf("CA%032x", i)
		startCall(t, db, sid)
		ps = append(ps, callrelay.LegProgress{CallSid: fmt.Sprintf("CA%032x", 100+i), ParentCallSid: sid, Status: "ringing",
			Sequence: 1, At: t0, Target: "+15550001111", TargetIndex: intp(0)})
	}
	ps[2].TargetIndex = intp(1 << 40)
	errs := db.LegProgressBatch(ctx, ps)
	for i, err := range errs {
		if (err != nil) != (i == 2) {
			t.Errorf("write %d: err = %v, want an error only for write 2", i, err)
		}
		c, err := db.GetCall(ctx, ps[i].ParentCallSid)
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int{true: 0, false: 1}[i == 2]; len(c.Legs) != want {
			t.Errorf("call %d: %d legs, want %d", i, len(c.Legs), want)
		}
	}
}

// A leg's status callback answers its call by the call's primary key, whatever the statistics
// say. Planned from statistics that saw few ringing calls (a quiet hour's, or a new table's),
// the statement read every ringing call through an index on the status instead (there was
// one until migration 012): 40 ms per answered leg at 20,000 ringing calls (docs/performance.md,
// Growth).
func TestRecordLegProgress_GenericPlanFindsTheCallByKey(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	conn := endedCalls(t, db, 5000)
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `PREPARE leg_progress (text, text, text, int, text, int, int, int, timestamptz, timestamptz,
		timestamptz, jsonb, timestamptz) AS `+postgres.LegProgressSQL); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN EXECUTE leg_progress ('CAleg', 'CAparent', '+15550001111', 0, 'in-progress', 2,
		NULL, NULL, now(), NULL, now(), '{}', now())`)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "using calls_pkey on calls") || strings.Contains(text, "Seq Scan on calls") {
		t.Errorf("generic plan looks the call up by status, not by its CallSid:\n%s", text)
	}
}

// A write whose row another transaction holds for long (a migration, a slow conference event)
// does not hold up the other writes of its batch: they are written while it still waits. The
// refused batch's connection goes back to the pool, not closed.
func TestCallbackWrites_BlockedWriteWaitsAlone(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	var ps []callrelay.LegProgress
	for i := range 3 {
		sid := fmt.Sprintf("CA%032x", i)
		startCall(t, db, sid)
		ps = append(ps, callrelay.LegProgress{CallSid: fmt.Sprintf("CA%032x", 100+i), ParentCallSid: sid, Status: "initiated",
			Sequence: 0, At: t0, Target: "+15550001111", TargetIndex: intp(0)})
	}
	locker, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Release()
	tx, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }() // released below; a second rollback does nothing
	if _, err := tx.Exec(ctx, `SELECT 1 FROM calls WHERE call_sid = $1 FOR UPDATE`, ps[1].ParentCallSid); err != nil {
		t.Fatal(err)
	}
	closed := func() int32 { st := db.Pool().Stat(); return int32(st.NewConnsCount()) - st.TotalConns() }
	closedBefore := closed()
	done := make(chan []error, 1)
	go func() { done <- db.LegProgressBatch(ctx, ps) }()
	await(t, "the other calls' legs written while call 1's row is locked", func() bool {
		var n int
		err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM legs WHERE call_sid = ANY($1)`, []string{ps[0].CallSid, ps[2].CallSid}).Scan(&n)
		return err == nil && n == 2
	})
	select {
	case errs := <-done:
		t.Fatalf("the batch ended while call 1's row was still locked: %v", errs)
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for i, err := range <-done {
		if err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if got := closed() - closedBefore; got != 0 {
		t.Errorf("%d connections closed by the refused batch, want 0 (its transaction rolled back)", got)
	}
}
