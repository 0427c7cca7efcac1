package postgres_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// BenchmarkStartCallFeed measures what the console's change feed costs the voice webhook's
// statement (StartCall, from 32 goroutines as under load), three ways:
//
//   - none: no feed;
//   - cursor: the console's feed, one poller reading call_events past its cursor every 250 ms
//     (postgres.DB.EventsAfter), as each replica with a console open does;
//   - notify: the alternative it was chosen over, a trigger that NOTIFYs every call_events
//     insert, with a LISTENing connection. PostgreSQL serialises the commits of every
//     transaction that queued a notification (a global lock taken at commit).
//
// go test -run '^$' -bench StartCallFeed -benchtime 5s -count 3 ./internal/postgres
func BenchmarkStartCallFeed(b *testing.B) {
	for _, feed := range []string{"none", "cursor", "notify"} {
		b.Run(feed, func(b *testing.B) {
			ctx := context.Background()
			pool := pgtest.NewPool(b)
			db := newBenchDBOn(b, pool, 1<<41)
			switch feed {
			case "cursor":
				stop := pollFeed(b, db)
				defer stop()
			case "notify":
				stop := notifyTrigger(b, pool)
				defer stop()
			}
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: benchSid("0f", n.Add(1)), Number: benchNumber, From: benchCaller})
					if err != nil || len(r.Targets) != 1 {
						b.Errorf("StartCall: %v", err)
						return
					}
				}
			})
		})
	}
}

// pollFeed runs the console's cursor poll until stopped.
func pollFeed(b *testing.B, db *postgres.DB) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		var cur postgres.FeedCursor
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if _, err := db.EventsAfter(ctx, &cur); err != nil && ctx.Err() == nil {
				b.Errorf("EventsAfter: %v", err)
				return
			}
		}
	}()
	return func() { cancel(); <-done }
}

// notifyTrigger installs a NOTIFY-per-insert trigger and a listener draining it.
func notifyTrigger(b *testing.B, pool *pgxpool.Pool) func() {
	ctx, cancel := context.WithCancel(context.Background())
	_, err := pool.Exec(ctx, `
		CREATE FUNCTION bench_notify() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_notify('bench_feed', NEW.call_sid); RETURN NULL; END $$;
		CREATE TRIGGER bench_notify AFTER INSERT ON call_events FOR EACH ROW EXECUTE FUNCTION bench_notify();`)
	if err != nil {
		b.Fatal(err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `LISTEN bench_feed`); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
				return
			}
		}
	}()
	return func() {
		cancel()
		<-done
		conn.Hijack().Close(context.Background()) // its context was cancelled mid-wait
	}
}
