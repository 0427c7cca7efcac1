package postgres

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// NewJobs returns the store's Jobs: a River client that only inserts, on the clock now (nil:
// the database's). It exists before the queue that works the jobs, whose workers need the
// store; both share River's tables, so what one inserts the other works.
func NewJobs(pool *pgxpool.Pool, now func() time.Time) (*river.Client[pgx.Tx], error) {
	cfg := &river.Config{}
	if now != nil {
		cfg.Test.Time = RiverClock(now)
	}
	c, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("job inserter: %w", err)
	}
	return c, nil
}

// RiverClock is River's view of an injected clock. River passes NowOrNil to its queries in
// place of the database's now(), so a queue on an injected clock runs entirely on it.
type RiverClock func() time.Time

// Now is the time.
func (c RiverClock) Now() time.Time { return c() }

// NowOrNil is the time, for River's queries.
func (c RiverClock) NowOrNil() *time.Time {
	t := c().UTC()
	return &t
}
