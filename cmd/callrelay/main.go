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

	// Time zones (CALLRELAY_TIME_ZONE, a number's time_zone) are validated and shown from the
	// zone database built into the binary: a host or image without /usr/share/zoneinfo, or with
	// an older one, shows owners the same times.
	_ "time/tzdata"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts the graceful shutdown; a second one kills at once (the default
	// action, restored here), for whoever cannot wait for the drain.
	go func() {
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "callrelay:", err)
		os.Exit(1)
	}
}

// Shutdown and start-up bounds; the HTTP server's own timeouts are internal/server's.
const (
	shutdownTimeout = app.DefaultShutdownTimeout
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
	if err := postgres.MigrateWhenReachable(ctx, pool, log, startupTimeout); err != nil {
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
	log.Info("starting", slog.String("addr", ln.Addr().String()), slog.String("public_url", cfg.PublicURL.String()),
		slog.String("twilio_api_url", cfg.TwilioAPIURL.String()))
	// Serve shuts down gracefully when ctx ends (SIGTERM, SIGINT): see app.Serve.
	return a.Serve(ctx, srv, ln, app.ServeOptions{ShutdownTimeout: shutdownTimeout})
}
