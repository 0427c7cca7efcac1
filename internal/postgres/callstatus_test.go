package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// Nothing indexes a call's status (migration 012): its changes while the call is live are HOT
// updates, and the status filters find calls through final_status.

// final_status is the status exactly when it is one of callrelay.TerminalStatuses, which
// migration 012 writes out again in SQL.
func TestFinalStatus(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startCall(t, db, "CA_f")
	statuses := append([]string{callrelay.StatusRinging, callrelay.StatusInProgress, callrelay.StatusVoicemail, "queued", "weird"},
		callrelay.TerminalStatuses...)
	for _, status := range statuses {
		var final *string
		if err := db.Pool().QueryRow(ctx, `UPDATE calls SET status = $2 WHERE call_sid = $1 RETURNING final_status`,
			"CA_f", status).Scan(&final); err != nil {
			t.Fatal(err)
		}
		got := "NULL"
		if final != nil {
			got = *final
		}
		want := "NULL"
		if callrelay.IsTerminal(status) {
			want = status
		}
		if got != want {
			t.Errorf("status %q: final_status = %s, want %s", status, got, want)
		}
	}
}

// A call's status changes before its end (a Dial that moves it to the next target or to
// voicemail) are HOT updates: no new entry in any of the calls' indexes. Its end is not.
func TestCallUpdates_HOT(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1 // the statistics read below are the writes' own backend's
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db, _ := newDBOn(t, pool)
	startCall(t, db, "CA_hot")
	updates := func() (upd, hot int64) {
		t.Helper()
		// A backend's counts reach pg_stat_user_tables when it goes idle, at most once a
		// second unless forced.
		if _, err := pool.Exec(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
			t.Fatal(err)
		}
		if err := pool.QueryRow(ctx, `SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'calls'`).
			Scan(&upd, &hot); err != nil {
			t.Fatal(err)
		}
		return upd, hot
	}
	upd0, hot0 := updates()

	for attempt, want := range []string{callrelay.StatusRinging, callrelay.StatusVoicemail} {
		if _, plan, err := db.RecordDialOutcome(ctx, callrelay.DialOutcome{CallSid: "CA_hot", Attempt: attempt,
			DialCallStatus: callrelay.DialNoAnswer, CallerStatus: "in-progress"}); err != nil {
			t.Fatal(err)
		} else if got := plan.Status(); got != want {
			t.Fatalf("attempt %d: plan's status = %q, want %q", attempt, got, want)
		}
	}
	upd, hot := updates()
	if upd-upd0 != 2 || hot-hot0 != 2 {
		t.Errorf("two Dial actions: %d updates of calls, %d HOT; want 2, 2", upd-upd0, hot-hot0)
	}

	if _, err := db.RecordCallStatus(ctx, "CA_hot", callrelay.StatusCompleted, t0); err != nil {
		t.Fatal(err)
	}
	upd2, hot2 := updates()
	if upd2-upd != 1 || hot2-hot != 0 {
		t.Errorf("the call's end: %d updates of calls, %d HOT; want 1, 0 (final_status is indexed)", upd2-upd, hot2-hot)
	}
}

// Each status filter finds exactly the calls in that status, newest first; the console's
// filters combine with it.
func TestListCalls_status(t *testing.T) {
	ctx := context.Background()
	db, advance := newDB(t)
	statusOf := map[string]string{
		"CA_ringing": callrelay.StatusRinging, "CA_answered": callrelay.StatusInProgress,
		"CA_vm": callrelay.StatusVoicemail, "CA_done": callrelay.StatusCompleted,
		"CA_failed": callrelay.StatusFailed, "CA_done2": callrelay.StatusCompleted,
	}
	order := []string{"CA_ringing", "CA_answered", "CA_vm", "CA_done", "CA_failed", "CA_done2"} // oldest first
	for _, sid := range order {
		startCall(t, db, sid)
		if _, err := db.Pool().Exec(ctx, `UPDATE calls SET status = $2,
			ended_at = CASE WHEN $2 IN ('completed', 'failed') THEN started_at END WHERE call_sid = $1`,
			sid, statusOf[sid]); err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
	}
	sids := func(calls []*callrelay.Call) []string {
		var s []string
		for _, c := range calls {
			s = append(s, c.CallSid)
		}
		return s
	}
	for _, tt := range []struct {
		status string
		want   []string
	}{
		{"", []string{"CA_done2", "CA_failed", "CA_done", "CA_vm", "CA_answered", "CA_ringing"}},
		{callrelay.StatusCompleted, []string{"CA_done2", "CA_done"}},
		{callrelay.StatusFailed, []string{"CA_failed"}},
		{callrelay.StatusBusy, nil},
		{callrelay.StatusRinging, []string{"CA_ringing"}},
		{callrelay.StatusInProgress, []string{"CA_answered"}},
		{callrelay.StatusVoicemail, []string{"CA_vm"}},
		{"weird", nil},
	} {
		calls, err := db.ListCalls(ctx, callrelay.CallFilter{Status: tt.status})
		if err != nil {
			t.Fatal(err)
		}
		if got := sids(calls); !slices.Equal(got, tt.want) {
			t.Errorf("ListCalls(status %q) = %v, want %v", tt.status, got, tt.want)
		}
	}

	from, until := t0.Add(90*time.Second), t0.Add(270*time.Second) // CA_vm, CA_done, CA_failed
	for _, tt := range []struct {
		name string
		f    callrelay.CallSearch
		want []string
	}{
		{"live", callrelay.CallSearch{Live: true}, []string{"CA_vm", "CA_answered", "CA_ringing"}},
		{"live and status", callrelay.CallSearch{Live: true, Status: callrelay.StatusVoicemail}, []string{"CA_vm"}},
		{"live and a final status", callrelay.CallSearch{Live: true, Status: callrelay.StatusCompleted}, nil},
		{"number and status", callrelay.CallSearch{Number: "+15551230000", Status: callrelay.StatusCompleted}, []string{"CA_done2", "CA_done"}},
		{"other number", callrelay.CallSearch{Number: "+15551239999", Status: callrelay.StatusCompleted}, nil},
		{"time range", callrelay.CallSearch{From: &from, Until: &until}, []string{"CA_failed", "CA_done", "CA_vm"}},
		{"time range and status", callrelay.CallSearch{From: &from, Until: &until, Status: callrelay.StatusCompleted}, []string{"CA_done"}},
		{"limit", callrelay.CallSearch{Limit: 2}, []string{"CA_done2", "CA_failed"}},
	} {
		calls, err := db.SearchCalls(ctx, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if got := sids(calls); !slices.Equal(got, tt.want) {
			t.Errorf("SearchCalls(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// A filter on a status that few calls have (a call stuck ringing, a failed one) reads an index
// of those calls, not every call newest first; in the generic plan PostgreSQL settles on for a
// prepared statement too.
func TestListCalls_statusPlan(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	conn := endedCalls(t, db, 5000)
	n := 0 // prepared statements
	for status, index := range map[string]string{
		callrelay.StatusRinging:   "calls_live_started_at_idx",
		callrelay.StatusVoicemail: "calls_live_started_at_idx",
		callrelay.StatusFailed:    "calls_final_status_started_at_idx",
	} {
		where, args := postgres.CallsListing(status)
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			if _, err := conn.Exec(ctx, `SET plan_cache_mode = `+mode); err != nil {
				t.Fatal(err)
			}
			n++
			// The arguments as literals: the status (a live one), then the limit.
			var types, values []string
			for _, a := range args {
				switch a := a.(type) {
				case string:
					types, values = append(types, "text"), append(values, "'"+a+"'")
				case int:
					types, values = append(types, "int"), append(values, strconv.Itoa(a))
				}
			}
			if _, err := conn.Exec(ctx, fmt.Sprintf(`PREPARE listing%d (%s) AS SELECT * FROM calls %s`,
				n, strings.Join(types, ", "), where)); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, fmt.Sprintf(`EXPLAIN EXECUTE listing%d (%s)`, n, strings.Join(values, ", ")))
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			if text := strings.Join(lines, "\n"); !strings.Contains(text, fmt.Sprintf("using %s on calls", index)) {
				t.Errorf("status %q, %s: plan does not read %s:\n%s", status, mode, index, text)
			}
		}
	}
}

// endedCalls adds n completed calls and analyzes calls: the statistics of a table whose calls
// have all ended (a quiet hour's), from which a generic plan may be built. It returns a
// connection of db's pool, released at the test's end, for the plans to be read on.
func endedCalls(t *testing.T, db *postgres.DB, n int) *pgxpool.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Release)
	if _, err := conn.Exec(ctx, `
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, ended_at, updated_at)
		SELECT 'CA' || md5(i::text), '+15551230000', '+15559870000', 'direct', 'completed', '{}', now(), now(), now()
		FROM generate_series(1, $1) i`, n); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `ANALYZE calls`); err != nil {
		t.Fatal(err)
	}
	return conn
}
