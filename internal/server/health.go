package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/callrelay/callrelay/internal/postgres"
)

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz answers 200 only when the database answers and has this binary's schema, so a
// load balancer sends no traffic to a replica that could not serve it.
func handleReadyz(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := db.Ready(ctx); err != nil {
			logger(r.Context()).Warn("not ready", slog.String("error", err.Error()))
			// The detail (user, database, host) is for the log, not for whoever asks.
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}
