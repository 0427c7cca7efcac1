package conference_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// newDB is a store on pool, on the clock now, that enqueues jobs (for newQueue's queue).
func newDB(t *testing.T, pool *pgxpool.Pool, now func() time.Time) *postgres.DB {
	t.Helper()
	jobs, err := postgres.NewJobs(pool, now)
	if err != nil {
		t.Fatal(err)
	}
	return postgres.New(pool, postgres.Options{Now: now, Jobs: jobs})
}

// newQueue is production's job queue (voicemail.NewQueue with the conference workers) on db,
// on the store's clock; it works what db enqueues. Started or not, it is stopped at cleanup.
func newQueue(t *testing.T, db *postgres.DB, svc *conference.Service) *river.Client[pgx.Tx] {
	t.Helper()
	n := voicemail.NewNotifier(db, nil, nil, nil, "callrelay@example.com", db.Now, slog.New(slog.DiscardHandler))
	queue, err := voicemail.NewQueue(db.Pool(), n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond,
		Now: db.Now, Register: svc.Register})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = queue.Stop(ctx) // an error when it never started
	})
	return queue
}

// startQueue runs newQueue's queue: the conference jobs are worked in this test.
func startQueue(t *testing.T, db *postgres.DB, svc *conference.Service) *river.Client[pgx.Tx] {
	t.Helper()
	queue := newQueue(t, db, svc)
	if err := queue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return queue
}
