package server

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// numberJSON is a number as the ops API shows it: its routing, flattened, without secrets.
type numberJSON struct {
	Number string `json:"number"`
	callrelay.Routing
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// ScheduleState: open now or not, why, and when that next changes (GET of one number with
	// a schedule).
	ScheduleState *callrelay.ScheduleState `json:"schedule_state,omitempty"`
}

func toNumberJSON(n *callrelay.Number) numberJSON {
	return numberJSON{Number: n.Number, Routing: n.Routing.Redacted(), CreatedAt: n.CreatedAt, UpdatedAt: n.UpdatedAt}
}

// pathNumber reads and checks the {number} of a route.
func pathNumber(r *http.Request) (string, error) {
	// chi hands over the escaped segment when the path was escaped: %2B15551230000 is +1555….
	number, err := url.PathUnescape(r.PathValue("number"))
	if err != nil || !callrelay.ValidNumber(number) {
		return "", callrelay.Invalidf("number", "Number %q is not E.164, like +15551230000 (URL-encode + as %%2B).", number)
	}
	return number, nil
}

func handlePutNumber(db *postgres.DB, cache *routingCache) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		number, err := pathNumber(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		rt, err := callrelay.DecodeRouting(bytes.NewReader(body))
		if err != nil {
			writeError(w, r, err)
			return
		}
		n, created, err := db.PutNumber(r.Context(), number, rt)
		if err != nil {
			writeError(w, r, err)
			return
		}
		cache.put(number, rt)
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, toNumberJSON(n))
	})
}

func handleGetNumber(db *postgres.DB, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		number, err := pathNumber(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		n, err := db.GetNumber(r.Context(), number)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := toNumberJSON(n)
		out.ScheduleState = n.Routing.ScheduleState(now())
		writeJSON(w, http.StatusOK, out)
	})
}

// handleListNumbers answers a page of numbers: ?limit= (1 to postgres.MaxListLimit, default
// postgres.DefaultListLimit) after ?after= (a number; none: from the first). "next" is the
// URL of the following page, null on the last.
func handleListNumbers(db *postgres.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p callrelay.NumberPage
		var err error
		if p.Limit, err = queryLimit(r); err != nil {
			writeError(w, r, err)
			return
		}
		if p.After = r.URL.Query().Get("after"); p.After != "" && !callrelay.ValidNumber(p.After) {
			writeError(w, r, callrelay.Invalidf("after", "after must be a number in E.164, like +15551230000 (URL-encode + as %%2B), the last of the previous page."))
			return
		}
		ns, more, err := db.ListNumbers(r.Context(), p)
		if err != nil {
			writeError(w, r, err)
			return
		}
		out := make([]numberJSON, len(ns))
		for i, n := range ns {
			out[i] = toNumberJSON(n)
		}
		var next *string
		if more {
			q := url.Values{"after": {ns[len(ns)-1].Number}}
			if p.Limit != 0 {
				q.Set("limit", strconv.Itoa(p.Limit))
			}
			link := "/api/numbers?" + q.Encode()
			next = &link
		}
		writeJSON(w, http.StatusOK, map[string]any{"numbers": out, "next": next})
	})
}

func handleDeleteNumber(db *postgres.DB, cache *routingCache) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		number, err := pathNumber(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := db.DeleteNumber(r.Context(), number); err != nil {
			writeError(w, r, err)
			return
		}
		cache.remove(number)
		w.WriteHeader(http.StatusNoContent)
	})
}
