package server

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/callrelay/callrelay/internal/spool"
)

// spooler keeps the webhooks whose store write failed (the database is unreachable) for
// later, in the replica's spool: the callback is accepted now and applied when the database
// is back (see package spool). Without a spool, callbacks answer 503 as before and Twilio's
// own retries are all there is.
type spooler struct {
	sp  *spool.Spool // nil: no spool
	now func() time.Time
	m   *metrics
}

// received is when the request reached callrelay: now, or for a replay when it first came.
func (s spooler) received(r *http.Request) time.Time {
	if rp, ok := spool.ReplayOf(r.Context()); ok {
		return rp.Received
	}
	return s.now()
}

// replayed answers a replay whose store write failed again with 503, which tells the Replayer
// to keep the entry for the next attempt, and reports whether it did: a live request goes on
// to be answered (from the routing cache) instead.
func (s spooler) replayed(w http.ResponseWriter, r *http.Request) bool {
	if _, ok := spool.ReplayOf(r.Context()); !ok {
		return false
	}
	http.Error(w, "not stored yet", http.StatusServiceUnavailable)
	return true
}

// keep spools r after its store write failed, and reports whether it is safe on disk. A
// replay is not spooled again: it stays where it is, for the next attempt.
func (s spooler) keep(r *http.Request, route string) bool {
	if _, ok := spool.ReplayOf(r.Context()); ok {
		return false
	}
	if s.sp == nil {
		return false
	}
	log := logger(r.Context())
	err := s.sp.Put(spool.Entry{Target: r.URL.RequestURI(), Form: r.PostForm, Received: s.now()})
	if err != nil {
		log.Error("spool: callback lost unless Twilio retries it", slog.String("route", route),
			slog.String("call_sid", r.PostForm.Get("CallSid")), slog.String("error", err.Error()))
		return false
	}
	s.m.spooled.WithLabelValues(route).Inc()
	log.Warn("spool: callback kept for when the database is back", slog.String("route", route),
		slog.String("call_sid", r.PostForm.Get("CallSid")))
	return true
}

// behind reports whether callbacks wait in the spool: a live callback then joins the queue
// behind them instead of going straight to the store, so that this replica applies its
// callbacks in the order they came (a leg's progress after the call it belongs to, say,
// when both arrived during the outage).
func (s spooler) behind(r *http.Request) bool {
	_, replay := spool.ReplayOf(r.Context())
	return s.sp != nil && s.sp.Len() > 0 && !replay
}

// callback answers a status callback whose store write failed: 204 once it is spooled, else
// 503 so that a retry (Twilio's connection overrides) may deliver it again.
func (s spooler) callback(w http.ResponseWriter, r *http.Request, route string) {
	if s.keep(r, route) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
}
