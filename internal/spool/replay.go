package spool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// ErrUnstored is returned by Drain when an entry could not be stored yet (the database is
// still down): it and the entries after it stay for the next attempt.
var ErrUnstored = errors.New("spooled callback not stored yet")

// Replayer feeds spooled entries back through callrelay's own HTTP handler, so that a replay
// takes the path of a live callback: the same form checks, the same handler, the same order
// behind the spool. The request carries its Replay in its context, which stands for the
// signature it had when it came (the handler does not check it again), and the handler
// answers 5xx when the store failed again.
type Replayer struct {
	Spool   *Spool
	Handler http.Handler
	// Interval is how often Run looks for entries while some are waiting.
	Interval time.Duration
	Log      *slog.Logger
}

// Run replays entries until ctx ends: every Interval while the store is down, and at once
// again while entries keep coming in behind the ones just replayed.
func (r *Replayer) Run(ctx context.Context) {
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		for r.Spool.Len() > 0 && ctx.Err() == nil {
			n, err := r.Drain(ctx)
			if err == nil && n > 0 {
				r.Log.Info("spool: replayed callbacks", slog.Int("count", n), slog.Int("waiting", r.Spool.Len()))
				continue
			}
			if err != nil && !errors.Is(err, ErrUnstored) && ctx.Err() == nil {
				r.Log.Error("spool: replay", slog.Int("replayed", n), slog.String("error", err.Error()))
			}
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Drain replays the entries in arrival order until none is left or one cannot be stored yet
// (ErrUnstored). It returns how many were applied.
func (r *Replayer) Drain(ctx context.Context) (int, error) {
	names, err := r.Spool.List()
	if err != nil {
		return 0, err
	}
	applied := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return applied, err
		}
		ok, err := r.replay(ctx, name)
		if err != nil {
			return applied, err
		}
		if ok {
			applied++
		}
	}
	return applied, nil
}

// replay applies one entry. It reports whether the entry was applied; an entry that can never
// be applied is set aside (and logged), not retried forever.
func (r *Replayer) replay(ctx context.Context, name string) (bool, error) {
	e, err := r.Spool.Read(name)
	if err != nil {
		r.Log.Error("spool: unreadable entry set aside", slog.String("entry", name), slog.String("error", err.Error()))
		return false, r.Spool.setAside(name)
	}
	body := e.Form.Encode()
	req, err := http.NewRequestWithContext(WithReplay(ctx, Replay{Received: e.Received}), http.MethodPost, e.Target, strings.NewReader(body))
	if err != nil {
		r.Log.Error("spool: bad entry set aside", slog.String("entry", name), slog.String("error", err.Error()))
		return false, r.Spool.setAside(name)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = "spool"
	w := &statusOnly{header: http.Header{}}
	r.Handler.ServeHTTP(w, req)
	switch {
	case w.status >= 500:
		return false, fmt.Errorf("%w: %s (status %d)", ErrUnstored, e.Target, w.status)
	case w.status >= 400:
		// Accepted when it arrived, refused now (a form check added since, say): keep it for
		// a person rather than drop it.
		r.Log.Error("spool: refused on replay, set aside", slog.String("entry", name), slog.String("target", e.Target),
			slog.Int("status", w.status))
		return false, r.Spool.setAside(name)
	}
	return true, r.Spool.Remove(name)
}

// statusOnly is a ResponseWriter that keeps the status and drops the body: nobody waits for
// a replayed callback's answer.
type statusOnly struct {
	header http.Header
	status int
}

func (w *statusOnly) Header() http.Header { return w.header }

func (w *statusOnly) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *statusOnly) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}
