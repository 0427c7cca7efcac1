package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MigrateWhenReachable is what callrelay runs at start-up (serve and migrate): Migrate,
// retried once a second while the database refuses connections, for up to wait. Replicas and
// their database often start together, so a database that is still starting is not an error
// yet; any other failure is, at once. Several replicas may run it at the same moment:
// Migrate's advisory lock makes the second wait for the first and then find nothing to do.
func MigrateWhenReachable(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		err := Migrate(ctx, pool)
		if err == nil {
			return nil
		}
		var connErr *pgconn.ConnectError
		if !errors.As(err, &connErr) {
			return err
		}
		log.Warn("database not reachable yet; retrying", slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return fmt.Errorf("database unreachable for %s: %w", wait, err)
		case <-time.After(time.Second):
		}
	}
}
