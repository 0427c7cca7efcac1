// Command callrelay serves Twilio voice webhooks and the ops API (`callrelay serve`, the
// default) or applies the database migrations and exits (`callrelay migrate`).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "callrelay:", err)
		os.Exit(1)
	}
}

// Shutdown and start-up bounds; the HTTP server's own timeouts are internal/server's.
const (
	shutdownTimeout = 20 * time.Second
	startupTimeout  = 60 * time.Second
)

func run(ctx context.Context, args []string, stdout io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve", "migrate":
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, "usage: callrelay [serve|migrate]  (configuration: environment, see README)")
		return nil
	default:
		return fmt.Errorf("unknown command %q: want serve or migrate", cmd)
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))

	pool, err := openPool(ctx, cfg.DatabaseURL.Value())
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrateWhenReachable(ctx, log, pool); err != nil {
		return err
	}
	if cmd == "migrate" {
		log.Info("migrations applied")
		return nil
	}
	return serve(ctx, log, cfg, pool)
}

func openPool(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("config: DATABASE_URL: not a valid PostgreSQL URL or DSN")
	}
	if !strings.Contains(databaseURL, "pool_max_conns") {
		pc.MaxConns = 16 // pgx's default (4 on this kind of machine) queues webhooks under load
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return pool, nil
}

// migrateWhenReachable applies migrations, waiting a while for a database that is still
// starting (replicas and their database often start together).
func migrateWhenReachable(ctx context.Context, log *slog.Logger, pool *pgxpool.Pool) error {
	ctx, cancel := context.WithTimeout(ctx, startupTimeout)
	defer cancel()
	for {
		err := postgres.Migrate(ctx, pool)
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
			return fmt.Errorf("database unreachable for %s: %w", startupTimeout, err)
		case <-time.After(time.Second):
		}
	}
}

func serve(ctx context.Context, log *slog.Logger, cfg config.Config, pool *pgxpool.Pool) error {
	if cfg.InsecureSkipSignature {
		log.Warn("CALLRELAY_INSECURE_SKIP_SIGNATURE=true: webhook signatures are NOT checked; anyone can drive calls. Local development only.")
	}
	if cfg.OpsToken == "" {
		log.Warn("CALLRELAY_OPS_TOKEN is not set: the ops API answers 503")
	}
	a, err := app.New(cfg, pool, log, app.Options{})
	if err != nil {
		return err
	}
	srv := server.NewHTTPServer(cfg.Addr, a.Handler, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if err := a.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	log.Info("serving", slog.String("addr", ln.Addr().String()), slog.String("public_url", cfg.PublicURL.String()),
		slog.String("twilio_api_url", cfg.TwilioAPIURL.String()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Finish in-flight requests: a webhook cut off mid-answer leaves a caller in silence.
	log.Info("shutting down: finishing in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := a.Shutdown(sctx); err != nil {
		log.Warn("shutdown", slog.String("error", err.Error()))
	}
	log.Info("stopped")
	return nil
}
