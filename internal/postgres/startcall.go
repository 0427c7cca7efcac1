package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Inbound calls arrive in bursts and each one must be written before Twilio gets its answer.
// Rather than one statement and one commit per call, concurrent StartCalls share a round
// trip: the first caller runs a batch of whatever is waiting, and callers that arrive while
// all lanes are busy join the next batch. No timer: a lone call goes out at once, and a batch
// never waits to fill up. Each call still gets its answer only after its row is committed.
const (
	// startLanes is how many batches may be in flight at once (connections they use). Fewer
	// lanes make larger batches and less work per call; two, so that one slow commit does not
	// stop every new call. Measured on the voice webhook (wrk, 32 connections, this 2-core
	// machine, a new database): 1 lane 7.7–10.2k req/s, 2 lanes 7.5–8.3k, 4 lanes 6.2–6.9k,
	// 8 lanes 5.6–5.7k; one statement per call 4.0–4.3k.
	startLanes = 2
	// startBatchMax caps one batch: larger batches buy little and hold locks longer.
	startBatchMax = 64
	// startTimeout bounds one batch: it runs detached from the request that started it,
	// since it carries other requests' calls too.
	startTimeout = 10 * time.Second
)

// initialStatusSQL is a new call's status from its routing, as callrelay.PlanInbound decides
// it (TestStartCall/StatusFollowsPlan holds the two together, for both statements).
const initialStatusSQL = `CASE WHEN (routing->>'enabled')::boolean THEN 'ringing'
	WHEN (routing->'voicemail'->>'enabled')::boolean THEN 'voicemail'
	ELSE 'completed' END`

// startCallsSQL records calls ($1..$4 and $6 are parallel arrays, one element per call) and returns,
// per element index, the routing of each call it inserted. A call it did not insert (its
// number is not configured, or its CallSid is already known: a repeated webhook) gets no row;
// startOneSQL then answers for it.
//
// The plan must not depend on table statistics: a prepared statement's generic plan is made
// once per connection, and one made while calls was empty (a new database, before autovacuum's
// first ANALYZE) joined calls by a sequential scan, which grew with every call (measured: the
// voice webhook's rate fell to a third over a 10 s run). So the statement never reads calls
// (the insert's arbiter index decides conflicts) and looks numbers up by a scalar subquery,
// which is an index probe whatever the estimates.
const startCallsSQL = `
	WITH req AS (
		SELECT r.*, (SELECT routing FROM numbers WHERE numbers.number = r.number) AS routing
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])
			WITH ORDINALITY AS r(call_sid, number, from_number, call_token, caller_name, i)
	), n AS (
		SELECT req.*, ` + initialStatusSQL + ` AS status
		FROM req WHERE routing IS NOT NULL
	), ins AS (
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token, caller_name)
		SELECT call_sid, number, from_number, routing->>'mode', status, routing, $5, $5,
			CASE WHEN status = 'completed' THEN $5::timestamptz END, call_token, nullif(caller_name, '')
		FROM n
		ON CONFLICT (call_sid) DO NOTHING
		RETURNING call_sid, status, number, from_number, routing
	), ev AS (
		INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
		SELECT call_sid, $5, 'inbound', 'twilio', status, jsonb_build_object('from', from_number, 'to', number), 'inbound'
		FROM ins
	)
	SELECT req.i, ins.routing FROM req JOIN ins ON ins.call_sid = req.call_sid`

// startOneSQL records one call, like startCallsSQL, or returns the routing a known CallSid
// started with (a repeated webhook answers as the first did, even if the number has changed or
// gone since). No row: the number is not configured. The snapshot does not see the row
// inserted by the statement itself.
const startOneSQL = `
	WITH n AS (
		SELECT routing, ` + initialStatusSQL + ` AS status
		FROM numbers WHERE number = $2
	), ins AS (
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token, caller_name)
		SELECT $1, $2, $3, routing->>'mode', status, routing, $5, $5,
			CASE WHEN status = 'completed' THEN $5::timestamptz END, $4, nullif($6, '')
		FROM n
		ON CONFLICT (call_sid) DO NOTHING
		RETURNING call_sid, status
	), ev AS (
		INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
		SELECT call_sid, $5, 'inbound', 'twilio', status, jsonb_build_object('from', $3::text, 'to', $2::text), 'inbound'
		FROM ins
	)
	SELECT routing FROM calls WHERE call_sid = $1
	UNION ALL
	SELECT routing FROM n WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_sid = $1)`

// startWait is one StartCall waiting for its batch.
type startWait struct {
	in      InboundCall
	routing []byte // nil: the number is not configured
	err     error
	done    chan struct{}
}

// startBatcher coalesces concurrent StartCalls (see startCallsSQL).
type startBatcher struct {
	db *DB

	mu      sync.Mutex
	pending []*startWait
	flying  int // batches running
}

// start queues in and waits for the batch that records it.
func (b *startBatcher) start(ctx context.Context, in InboundCall) ([]byte, error) {
	w := &startWait{in: in, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	if b.flying < startLanes {
		// A free lane: run what is waiting now, in this goroutine.
		b.flying++
		batch := b.takeLocked()
		b.mu.Unlock()
		b.run(ctx, batch)
		b.next()
	} else {
		b.mu.Unlock()
	}
	select {
	case <-w.done:
		return w.routing, w.err
	case <-ctx.Done():
		// The call is still recorded when its batch runs; this request just stops waiting.
		return nil, ctx.Err()
	}
}

// takeLocked removes the next batch from pending.
func (b *startBatcher) takeLocked() []*startWait {
	n := min(len(b.pending), startBatchMax)
	batch := b.pending[:n:n]
	b.pending = b.pending[n:]
	if len(b.pending) == 0 {
		b.pending = nil
	}
	return batch
}

// next keeps the lane busy with the calls that queued meanwhile, in a new goroutine so that
// the request which ran the last batch can answer now; or frees the lane.
func (b *startBatcher) next() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.pending) == 0 {
		b.flying--
		return
	}
	batch := b.takeLocked()
	go func() {
		b.run(context.Background(), batch)
		b.next()
	}()
}

// run records a batch and hands each waiter its result. Calls the batch statement did not
// insert (a repeated CallSid, an unknown number) are answered by startOneSQL, after the others
// have their answer. A statement refused by PostgreSQL (not a lost connection) is retried call
// by call, so that one bad call fails alone.
func (b *startBatcher) run(ctx context.Context, batch []*startWait) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	var rest []*startWait
	if len(batch) == 1 {
		rest = batch
	} else {
		err := b.exec(ctx, batch)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr):
			rest = batch
		case err != nil:
			for _, w := range batch {
				w.err = err
				close(w.done)
			}
			return
		default:
			for _, w := range batch {
				if w.routing == nil {
					rest = append(rest, w)
				} else {
					close(w.done)
				}
			}
		}
	}
	for _, w := range rest {
		w.routing, w.err = b.one(ctx, w.in)
		close(w.done)
	}
}

// exec runs startCallsSQL for batch and stores each inserted call's routing on its waiter.
func (b *startBatcher) exec(ctx context.Context, batch []*startWait) error {
	sids := make([]string, len(batch))
	numbers := make([]string, len(batch))
	froms := make([]string, len(batch))
	tokens := make([]string, len(batch))
	names := make([]string, len(batch))
	for i, w := range batch {
		sids[i], numbers[i], froms[i], tokens[i] = w.in.CallSid, w.in.Number, w.in.From, w.in.CallToken
		names[i] = w.in.CallerName
	}
	rows, err := b.db.pool.Query(ctx, startCallsSQL, sids, numbers, froms, tokens, b.db.now(), names)
	if err != nil {
		return fmt.Errorf("start %d calls: %w", len(batch), err)
	}
	defer rows.Close()
	for rows.Next() {
		var i int
		var routing []byte
		if err := rows.Scan(&i, &routing); err != nil {
			return fmt.Errorf("start %d calls: %w", len(batch), err)
		}
		if i < 1 || i > len(batch) {
			return fmt.Errorf("start %d calls: row for element %d", len(batch), i)
		}
		batch[i-1].routing = routing
	}
	if err := rows.Err(); err != nil {
		// Nothing was committed: no waiter keeps a routing it may have been given.
		for _, w := range batch {
			w.routing = nil
		}
		return fmt.Errorf("start %d calls: %w", len(batch), err)
	}
	return nil
}

// one runs startOneSQL: the call's routing, or nil for a number that is not configured.
func (b *startBatcher) one(ctx context.Context, in InboundCall) ([]byte, error) {
	var routing []byte
	err := b.db.pool.QueryRow(ctx, startOneSQL, in.CallSid, in.Number, in.From, in.CallToken, b.db.now(), in.CallerName).Scan(&routing)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return routing, err
}

// StartCall records a new inbound call and returns its number's routing, or ENOTFOUND for a
// number that is not configured (then nothing is written). Lookup, insert and timeline entry
// are one statement, shared with the other calls starting at the same moment (startBatcher).
// A repeated webhook for the same CallSid writes nothing again and returns the routing the
// call started with (a second statement, startOneSQL, answers for it). The initial status
// follows callrelay.PlanInbound (initialStatusSQL).
func (db *DB) StartCall(ctx context.Context, in InboundCall) (callrelay.Routing, error) {
	routing, err := db.starts.start(ctx, in)
	if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start call %s: %w", in.CallSid, err)
	}
	if routing == nil {
		return callrelay.Routing{}, callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", in.Number)
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
