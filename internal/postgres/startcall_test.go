package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// Concurrent StartCalls (more than the batcher's lanes, so most share batches): every caller gets its own
// answer (its number's routing, ENOTFOUND for an unknown number, the first routing for a
// CallSid sent twice in one burst) and each call exactly one row and one inbound event.
func TestStartCall_Concurrent(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	numbers := map[string]string{ // number → ring, to tell the routings apart
		"+15551230000": "sequential",
		"+15551230001": "simultaneous",
	}
	for n, ring := range numbers {
		js := fmt.Sprintf(`{"owner_email":"dana@example.com","ring":%q,"targets":[{"type":"phone","to":"+15550001111"}]}`, ring)
		if _, _, err := db.PutNumber(ctx, n, mustRouting(t, js)); err != nil {
			t.Fatal(err)
		}
	}
	const calls = 300
	type result struct {
		in  callrelay.InboundCall
		r   callrelay.Routing
		err error
	}
	results := make([]result, 2*calls)
	var wg sync.WaitGroup
	for i := range 2 * calls {
		// Every CallSid twice (Twilio retries), every third call to an unknown number.
		k := i % calls
		number := "+1555123000" + fmt.Sprint(k%2)
		if k%3 == 0 {
			number = "+15550009999"
		}
		in := callrelay.InboundCall{CallSid: fmt.Sprintf("CA%032d", k), Number: number, From: "+15559870000"}
		wg.Go(func() {
			r, err := db.StartCall(ctx, in)
			results[i] = result{in, r, err}
		})
	}
	wg.Wait()
	for _, res := range results {
		want, known := numbers[res.in.Number]
		switch {
		case !known:
			if callrelay.ErrorCode(res.err) != callrelay.ENOTFOUND {
				t.Errorf("%s to %s: err = %v, want not_found", res.in.CallSid, res.in.Number, res.err)
			}
		case res.err != nil:
			t.Errorf("%s to %s: %v", res.in.CallSid, res.in.Number, res.err)
		case string(res.r.Ring) != want:
			t.Errorf("%s to %s: ring = %q, want %q (another call's routing?)", res.in.CallSid, res.in.Number, res.r.Ring, want)
		}
	}
	var rows, events, unknown int
	err := db.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM call_events WHERE type = 'inbound'),
		(SELECT count(*) FROM calls WHERE number = '+15550009999')`).Scan(&rows, &events, &unknown)
	if err != nil {
		t.Fatal(err)
	}
	if wantRows := calls - calls/3; rows != wantRows || events != wantRows || unknown != 0 {
		t.Errorf("calls = %d, inbound events = %d, calls to the unknown number = %d; want %d, %d, 0", rows, events, unknown, wantRows, wantRows)
	}
}

// One batch holding every kind of call StartCall can get: new calls to two numbers, a CallSid
// started earlier whose number has changed since (it keeps its first routing), one whose number
// was deleted since, a CallSid twice in the batch and an unknown number. Then a batch with a
// call PostgreSQL refuses (NUL in a text), which fails alone.
func TestStartCall_Batch(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	put := func(number, ring string) {
		t.Helper()
		js := fmt.Sprintf(`{"owner_email":"dana@example.com","ring":%q,"targets":[{"type":"phone","to":"+15550001111"}]}`, ring)
		if _, _, err := db.PutNumber(ctx, number, mustRouting(t, js)); err != nil {
			t.Fatal(err)
		}
	}
	put("+15551230000", "sequential")
	put("+15551230001", "simultaneous")
	put("+15551230002", "sequential")
	for _, sid := range []string{"CA_old0", "CA_old2"} {
		number := "+1555123000" + sid[len(sid)-1:]
		if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: sid, Number: number, From: "+15559870000"}); err != nil {
			t.Fatal(err)
		}
	}
	put("+15551230000", "simultaneous") // CA_old0 keeps sequential
	if err := db.DeleteNumber(ctx, "+15551230002"); err != nil {
		t.Fatal(err) // CA_old2 keeps sequential
	}

	tests := []struct {
		sid, number, from string
		want              string // ring; "" ENOTFOUND; "error" refused
	}{
		{"CA_new0", "+15551230000", "+15559870000", "simultaneous"},
		{"CA_old0", "+15551230000", "+15559870000", "sequential"},
		{"CA_new1", "+15551230001", "+15559870000", "simultaneous"},
		{"CA_twice", "+15551230001", "+15559870000", "simultaneous"},
		{"CA_old2", "+15551230002", "+15559870000", "sequential"},
		{"CA_unknown", "+15550009999", "+15559870000", ""},
		{"CA_twice", "+15551230001", "+15559870000", "simultaneous"},
		{"CA_new2", "+15551230000", "+15559870000", "simultaneous"},
		// The second batch.
		{"CA_new3", "+15551230000", "+15559870000", "simultaneous"},
		{"CA_nul", "+15551230000", "+1555\x00", "error"},
		{"CA_new4", "+15551230001", "+15559870000", "simultaneous"},
	}
	ins := make([]callrelay.InboundCall, len(tests))
	for i, tt := range tests {
		ins[i] = callrelay.InboundCall{CallSid: tt.sid, Number: tt.number, From: tt.from}
	}
	const second = 8
	routings, errs := db.StartBatch(ctx, ins[:second])
	routings2, errs2 := db.StartBatch(ctx, ins[second:])
	routings, errs = append(routings, routings2...), append(errs, errs2...)
	for i, tt := range tests {
		r, err := routings[i], errs[i]
		switch {
		case tt.want == "error":
			if err == nil {
				t.Errorf("%s: err = nil, want PostgreSQL's refusal", tt.sid)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.sid, err)
		case tt.want == "" && r != nil:
			t.Errorf("%s to %s: routing %+v, want none (not configured)", tt.sid, tt.number, r)
		case tt.want != "" && (r == nil || string(r.Ring) != tt.want):
			t.Errorf("%s to %s: routing %+v, want ring %s", tt.sid, tt.number, r, tt.want)
		}
	}

	var calls, events int
	err := db.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM calls), (SELECT count(*) FROM call_events WHERE type = 'inbound')`).Scan(&calls, &events)
	if err != nil {
		t.Fatal(err)
	}
	// CA_old0, CA_old2 (before) + CA_new0, CA_new1, CA_twice, CA_new2, CA_new3, CA_new4.
	if calls != 8 || events != 8 {
		t.Errorf("calls = %d, inbound events = %d, want 8 and 8", calls, events)
	}
}

// StartCall's statements are prepared once per connection, and PostgreSQL may then run a
// generic plan made from the statistics of that moment. On a new database (tables empty,
// never analyzed), the generic plans must still find calls and numbers by index: a plan that
// scans a table grows with the table (the first batched statement joined calls by a
// sequential scan and lost two thirds of its rate within a 10 s load test).
func TestStartCall_GenericPlanUsesIndexes(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET plan_cache_mode = force_generic_plan`); err != nil {
		t.Fatal(err)
	}
	args := map[string]string{
		"batch": `(text[], text[], text[], text[], timestamptz, text[], text[], text[], text[])`,
		"one":   `(text, text, text, text, timestamptz, text, text, text, text)`,
	}
	exec := map[string]string{
		"batch": `('{CA1,CA2}', '{+15551230000,+15551230000}', '{+15559870000,+15559870000}', '{t1,t2}', now(), '{v1,v2}', '{NULL,NULL}', '{NULL,NULL}', '{JOHN,""}')`,
		"one":   `('CA1', '+15551230000', '+15559870000', 't1', now(), 'v1', NULL, NULL, 'JOHN')`,
	}
	for name, sql := range postgres.StartCallSQL {
		t.Run(name, func(t *testing.T) {
			if _, err := conn.Exec(ctx, "PREPARE plan_"+name+args[name]+" AS "+sql); err != nil {
				t.Fatal(err)
			}
			rows, err := conn.Query(ctx, "EXPLAIN EXECUTE plan_"+name+exec[name])
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			text := strings.Join(lines, "\n")
			if strings.Contains(text, "Seq Scan") {
				t.Errorf("generic plan scans a table:\n%s", text)
			}
			if !strings.Contains(text, "Index Scan using numbers_pkey") {
				t.Errorf("generic plan does not look numbers up by index:\n%s", text)
			}
		})
	}
}
