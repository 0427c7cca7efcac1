package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// StartCall records a new inbound call and returns its number's routing, or ENOTFOUND for a
// number that is not configured (then nothing is written). It is one round trip: lookup, insert
// and timeline entry in one statement. A repeated webhook for the same CallSid writes nothing
// again and returns the routing the call started with. The initial status follows
// callrelay.PlanInbound (a test holds the two together).
func (db *DB) StartCall(ctx context.Context, in InboundCall) (callrelay.Routing, error) {
	var routing []byte
	err := db.pool.QueryRow(ctx, `
		WITH n AS (
			SELECT routing,
				CASE WHEN (routing->>'enabled')::boolean THEN 'ringing'
				     WHEN (routing->'voicemail'->>'enabled')::boolean THEN 'voicemail'
				     ELSE 'completed' END AS status
			FROM numbers WHERE number = $2
		), ins AS (
			INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token)
			SELECT $1, $2, $3, routing->>'mode', status, routing, $4, $4,
				CASE WHEN status = 'completed' THEN $4::timestamptz END, $5
			FROM n
			ON CONFLICT (call_sid) DO NOTHING
			RETURNING call_sid, status
		), ev AS (
			INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
			SELECT call_sid, $4, 'inbound', 'twilio', status, jsonb_build_object('from', $3::text, 'to', $2::text), 'inbound'
			FROM ins
		)
		-- A repeated webhook answers with the routing the call started with, even if the number
		-- has changed (or gone) since. The snapshot does not see the row inserted above.
		SELECT routing FROM calls WHERE call_sid = $1
		UNION ALL
		SELECT routing FROM n WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_sid = $1)`,
		in.CallSid, in.Number, in.From, db.now(), in.CallToken).Scan(&routing)
	if errors.Is(err, pgx.ErrNoRows) {
		return callrelay.Routing{}, callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", in.Number)
	} else if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start call %s: %w", in.CallSid, err)
	}
	r, err := db.routings.decode(routing)
	if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start call %s: %w", in.CallSid, err)
	}
	return r, nil
}

// routingMemo remembers decoded routings by their stored JSON. Every call to a number
// carries the same routing, and decoding it again for each call costs more than the rest of
// the voice webhook's Go work after the signature check. The routings it returns share their
// slices and maps: callers must not modify them (none does).
type routingMemo struct {
	mu sync.RWMutex
	m  map[string]callrelay.Routing
}

// routingMemoMax bounds the memo; when full it starts again (numbers are few, calls many).
const routingMemoMax = 4096

func (rm *routingMemo) decode(b []byte) (callrelay.Routing, error) {
	rm.mu.RLock()
	r, ok := rm.m[string(b)]
	rm.mu.RUnlock()
	if ok {
		return r, nil
	}
	r, err := decodeRouting(b)
	if err != nil {
		return r, err
	}
	rm.mu.Lock()
	if rm.m == nil || len(rm.m) >= routingMemoMax {
		rm.m = make(map[string]callrelay.Routing)
	}
	rm.m[string(b)] = r
	rm.mu.Unlock()
	return r, nil
}
