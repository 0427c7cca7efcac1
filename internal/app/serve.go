package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Defaults of ServeOptions.
const (
	// DefaultShutdownTimeout bounds a shutdown after the drain. Orchestrators wait about
	// 30 s after SIGTERM before they kill: the drain and this leave room to exit.
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultDrainMax bounds the drain: about as long as a load balancer takes to stop
	// routing to a replica that is going away (Kubernetes' endpoint update, a health check
	// failing twice or three times).
	DefaultDrainMax = 5 * time.Second
	// DefaultDrainQuiet ends the drain early once no request has come for this long: the
	// load balancer has moved on.
	DefaultDrainQuiet = time.Second
)

// ServeOptions shape a graceful shutdown; zero values are the defaults above.
type ServeOptions struct {
	// ShutdownTimeout bounds the shutdown that follows the drain, until Serve returns. It
	// is shared out in shutdownBudget.
	ShutdownTimeout time.Duration
	// DrainMax and DrainQuiet bound the drain: it lasts until no request has come for
	// DrainQuiet (counted from the start of the drain at the earliest), or DrainMax.
	DrainMax, DrainQuiet time.Duration
}

// Shares of ShutdownTimeout: in-flight requests may use up to httpShare of it, then running
// jobs may finish until jobShare; the rest is for cancelling the jobs still running, which
// then record their outcome and are handed back to the queue.
const (
	httpShare = 0.75
	jobShare  = 0.90
)

// Serve serves srv (whose Handler is a.Handler, or wraps it; Serve wraps it in turn, for
// the drain) on ln with the job queue running, until ctx ends; then it shuts down
// gracefully, in this order:
//
//  0. the drain: requests are still served, but /readyz answers 503 (the load balancer
//     stops sending new ones here) and every answer closes its connection, so that no
//     connection is left idle for a request to be sent on as it is closed. Without it, a
//     webhook sent on a kept-alive connection, or on one still in the listener's queue, at
//     the moment the listener closes is reset unread: the caller hears an application error;
//  1. the listener closes (new connections are refused) and every request in flight is
//     finished, its answer written whole: a webhook cut off mid-answer leaves a caller in
//     silence;
//  2. the background work ends: participants being added, then running voicemail jobs, which
//     may finish;
//  3. jobs still running at the last share of the timeout are cancelled: each records its
//     outcome and River makes it available again at once, so another replica sends the email
//     instead of waiting for River's rescuer (an hour and more) to notice a job left running.
//
// Every step runs even when an earlier one ran out of time. Serve returns nil after a clean
// shutdown, else an error saying what was cut.
func (a *App) Serve(ctx context.Context, srv *http.Server, ln net.Listener, opts ServeOptions) error {
	timeout := cmp.Or(opts.ShutdownTimeout, DefaultShutdownTimeout)
	d := &drainer{now: a.now, next: srv.Handler, max: cmp.Or(opts.DrainMax, DefaultDrainMax), quiet: cmp.Or(opts.DrainQuiet, DefaultDrainQuiet)}
	srv.Handler = d
	srv.RegisterOnShutdown(a.Streams.Close) // the console's streams never go idle by themselves
	if err := a.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	a.log.Info("serving", slog.String("addr", ln.Addr().String()))

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var serveErr error
	select {
	case err := <-errc:
		// The listener failed: stop the background work all the same, so running jobs are
		// handed back rather than left to River's rescuer.
		serveErr = fmt.Errorf("serve: %w", err)
		a.log.Error("serving failed; shutting down", slog.String("error", err.Error()))
	case <-ctx.Done():
		a.log.Info("shutting down: draining", slog.String("at_most", d.max.String()))
		if err := d.drain(errc); err != nil {
			serveErr = fmt.Errorf("serve: %w", err)
			a.log.Error("serving failed while draining", slog.String("error", err.Error()))
		}
		a.log.Info("shutting down: finishing in-flight requests")
	}
	// The budget's deadlines are for contexts, which run on the machine's clock.
	err := a.shutdown(srv, shutdownBudget(callrelay.Deadline(0), timeout))
	if err := errors.Join(serveErr, err); err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// budget is when each step of a shutdown must be over.
type budget struct{ http, jobs, end time.Time }

func shutdownBudget(start time.Time, timeout time.Duration) budget {
	share := func(f float64) time.Time { return start.Add(time.Duration(f * float64(timeout))) }
	return budget{http: share(httpShare), jobs: share(jobShare), end: start.Add(timeout)}
}

func (a *App) shutdown(srv *http.Server, b budget) error {
	var errs []error

	// Contexts are made from Background, not the ended serve context: this is the shutdown.
	hctx, cancel := context.WithDeadline(context.Background(), b.http)
	err := srv.Shutdown(hctx)
	cancel()
	if err != nil {
		// Out of time: cut what is left, rather than let the process exit with handlers
		// still writing to the database.
		a.log.Warn("in-flight requests did not finish in time; closing their connections", slog.String("error", err.Error()))
		_ = srv.Close()
		errs = append(errs, fmt.Errorf("shutdown: requests still in flight were cut: %w", err))
	}

	jctx, cancel := context.WithDeadline(context.Background(), b.jobs)
	err = a.Shutdown(jctx)
	cancel()
	if err != nil {
		// Running jobs have not finished: cancel them. River marks a job whose context was
		// cancelled by the stop as available again (its attempt not counted), and the
		// notifier has put the voicemail back to pending, so any replica takes it over.
		a.log.Warn("jobs still running; cancelling them and handing them back", slog.String("error", err.Error()))
		ectx, cancel := context.WithDeadline(context.Background(), b.end)
		err := a.queue.StopAndCancel(ectx)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("shutdown: job queue did not stop: %w", err))
		}
	}
	return errors.Join(errs...)
}

// drainer is the handler during a drain: it says the replica is going away and counts the
// requests that still come.
type drainer struct {
	now        func() time.Time
	next       http.Handler
	max, quiet time.Duration

	draining atomic.Bool
	last     atomic.Int64 // when the last request came (UnixNano), health checks aside
}

func (d *drainer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	probe := r.URL.Path == "/readyz" || r.URL.Path == "/healthz" || r.URL.Path == "/metrics"
	if !probe {
		d.last.Store(d.now().UnixNano())
	}
	if d.draining.Load() {
		// Served whole, and then the connection closes: the client opens a new one for its
		// next request, which the load balancer sends elsewhere once it has noticed.
		w.Header().Set("Connection", "close")
		if r.URL.Path == "/readyz" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"shutting down"}` + "\n"))
			return
		}
	}
	d.next.ServeHTTP(w, r)
}

// drain serves on until no request has come for d.quiet, or d.max has passed, or the
// server has failed (its error, from errc, is returned), whichever is first.
func (d *drainer) drain(errc <-chan error) error {
	start := d.now()
	d.draining.Store(true)
	deadline := time.NewTimer(d.max)
	defer deadline.Stop()
	tick := time.NewTicker(max(d.quiet/10, time.Millisecond))
	defer tick.Stop()
	for {
		last := time.Unix(0, max(d.last.Load(), start.UnixNano()))
		if d.now().Sub(last) >= d.quiet {
			return nil
		}
		select {
		case <-deadline.C:
			return nil
		case err := <-errc:
			return err
		case <-tick.C:
		}
	}
}
