package postgres_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// Concurrent StartCalls, with the routing memo shared between them: every caller gets its own
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
		in  postgres.InboundCall
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
		in := postgres.InboundCall{CallSid: fmt.Sprintf("CA%032d", k), Number: number, From: "+15559870000"}
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
