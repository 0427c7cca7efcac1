package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The store's statements of the three hottest webhooks, each against a real PostgreSQL on a
// fresh database (TEST_DATABASE_URL, else 127.0.0.1:5432; skipped when unreachable).

var benchT0 = clocktest.Start()

const (
	benchNumber = "+15551230000"
	benchCaller = "+15559870000"
	benchTarget = "+15550001111"
)

// newBenchDB is a store on a fresh database with benchNumber forwarding to one phone, its
// clock fixed, and the counter of its round trips and statements (each benchmark reports them
// per op: roundtrips/op, stmts/op).
func newBenchDB(b *testing.B) (*postgres.DB, *pgtest.Counter) {
	b.Helper()
	pool, counter := pgtest.NewCountingPool(b)
	db := newBenchDBOn(b, pool, 1<<40)
	counter.Reset()
	return db, counter
}

// newBenchDBOn is newBenchDB on a pool the benchmark also uses directly; its first calls'
// CallSids count from first. Starting 64 calls opens the pool's connections before the timer.
func newBenchDBOn(b *testing.B, pool *pgxpool.Pool, first int64) *postgres.DB {
	b.Helper()
	db := postgres.New(pool, postgres.Options{Now: func() time.Time { return benchT0 }})
	r, err := callrelay.DecodeRouting(strings.NewReader(`{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"` + benchTarget + `"}]}`))
	if err != nil {
		b.Fatal(err)
	}
	if _, _, err := db.PutNumber(context.Background(), benchNumber, r); err != nil {
		b.Fatal(err)
	}
	startCalls(b, db, first, 64)
	return db
}

func benchSid(prefix string, n int64) string { return fmt.Sprintf("CA%s%030x", prefix, n) }

// benchCalls supplies calls that exist (started by StartCall), made in batches outside the
// timer.
type benchCalls struct {
	db      *postgres.DB
	counter *pgtest.Counter // paused while the calls are made
	sids    []string
	next    int64
}

func (c *benchCalls) take(b *testing.B) string {
	if len(c.sids) == 0 {
		b.StopTimer()
		c.counter.Pause()
		c.sids = startCalls(b, c.db, c.next, 1000)
		c.next += 1000
		c.counter.Resume()
		b.StartTimer()
	}
	sid := c.sids[0]
	c.sids = c.sids[1:]
	return sid
}

// startCalls starts n calls numbered from first, 8 at a time.
func startCalls(b *testing.B, db *postgres.DB, first, n int64) []string {
	sids := make([]string, n)
	var wg sync.WaitGroup
	var failed atomic.Value
	var next atomic.Int64
	for range 8 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				sids[i] = benchSid("00", first+i)
				in := callrelay.InboundCall{CallSid: sids[i], Number: benchNumber, From: benchCaller}
				if _, err := db.StartCall(context.Background(), in); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("start calls: %v", err)
	}
	return sids
}

// BenchmarkStartCall is the voice webhook's statement: a new call, one at a time (serial) and
// from 32 goroutines at once, as under load (parallel).
func BenchmarkStartCall(b *testing.B) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		db, counter := newBenchDB(b)
		var n int64
		b.ReportAllocs()
		for b.Loop() {
			n++
			r, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: benchSid("01", n), Number: benchNumber, From: benchCaller})
			if err != nil || len(r.Targets) != 1 {
				b.Fatalf("StartCall: %v", err)
			}
		}
		counter.Report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		db, counter := newBenchDB(b)
		var n atomic.Int64
		b.SetParallelism(16) // 32 goroutines on 2 CPUs, as the load test's 32 connections
		b.ReportAllocs()
		b.ResetTimer()
		defer counter.Report(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: benchSid("02", n.Add(1)), Number: benchNumber, From: benchCaller})
				if err != nil || len(r.Targets) != 1 {
					b.Errorf("StartCall: %v", err)
					return
				}
			}
		})
	})
}

// BenchmarkRecordLegProgress is the call-status webhook's statement: each op is one status
// callback of a forwarded leg answered and hung up (initiated, ringing, in-progress,
// completed), every call getting one leg.
func BenchmarkRecordLegProgress(b *testing.B) {
	ctx := context.Background()
	db, counter := newBenchDB(b)
	calls := &benchCalls{db: db, counter: counter}
	statuses := []string{"initiated", "ringing", "in-progress", "completed"}
	target := 0
	var parent, leg string
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		k := i % len(statuses)
		if k == 0 {
			parent = calls.take(b)
			leg = "CAff" + parent[4:] // the leg: a CallSid of its own
		}
		p := callrelay.LegProgress{CallSid: leg, ParentCallSid: parent, Status: statuses[k], Sequence: k,
			At: benchT0.Add(time.Duration(k) * time.Second), Target: benchTarget, TargetIndex: &target}
		if k == 3 {
			d := 42
			p.DurationSeconds = &d
		}
		res, err := db.RecordLegProgress(ctx, p)
		if err != nil || !res.Known {
			b.Fatalf("RecordLegProgress: known=%v %v", res.Known, err)
		}
		i++
	}
	counter.Report(b)
}

// BenchmarkRecordDialOutcome is the dial-outcome webhook's statements: nobody answered, the
// caller goes to voicemail.
func BenchmarkRecordDialOutcome(b *testing.B) {
	ctx := context.Background()
	db, counter := newBenchDB(b)
	calls := &benchCalls{db: db, counter: counter}
	b.ReportAllocs()
	for b.Loop() {
		sid := calls.take(b)
		o := callrelay.DialOutcome{CallSid: sid, DialCallStatus: callrelay.DialNoAnswer, DialCallSid: "CAff" + sid[4:], CallerStatus: "in-progress"}
		_, plan, err := db.RecordDialOutcome(ctx, o)
		if err != nil || plan.Action != callrelay.ActVoicemail {
			b.Fatalf("RecordDialOutcome: %v %v", plan.Action, err)
		}
	}
	counter.Report(b)
}
