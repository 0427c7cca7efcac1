package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Inbound calls arrive in bursts and each one must be written before Twilio gets its answer.
// Rather than one statement and one commit per call, concurrent StartCalls share a round
// trip: the first caller runs a batch of whatever is waiting, and callers that arrive while
// all lanes are busy join the next batch. No timer: a lone call goes out at once, and a batch
// never waits to fill up. Each call still gets its answer only after its row is committed.
const (
	// startLanes is how many batches may be in flight at once (connections they use).
	startLanes = 4
	// startBatchMax caps one batch: larger batches buy little and hold locks longer.
	startBatchMax = 64
	// startTimeout bounds one batch: it runs detached from the request that started it,
	// since it carries other requests' calls too.
	startTimeout = 10 * time.Second
)

// startCallSQL records calls ($1..$4 are parallel arrays, one element per call) and returns,
// per element index, the routing the call started with: a call already known keeps its own
// (a repeated webhook, even if the number changed since); an unknown number returns no row.
// The snapshot does not see the rows inserted by the statement itself.
const startCallSQL = `
	WITH req AS (
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
			WITH ORDINALITY AS r(call_sid, number, from_number, call_token, i)
	), n AS (
		SELECT req.*, numbers.routing,
			CASE WHEN (numbers.routing->>'enabled')::boolean THEN 'ringing'
			     WHEN (numbers.routing->'voicemail'->>'enabled')::boolean THEN 'voicemail'
			     ELSE 'completed' END AS status
		FROM req JOIN numbers ON numbers.number = req.number
	), ins AS (
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token)
		SELECT call_sid, number, from_number, routing->>'mode', status, routing, $5, $5,
			CASE WHEN status = 'completed' THEN $5::timestamptz END, call_token
		FROM n
		ON CONFLICT (call_sid) DO NOTHING
		RETURNING call_sid, status, number, from_number
	), ev AS (
		INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
		SELECT call_sid, $5, 'inbound', 'twilio', status, jsonb_build_object('from', from_number, 'to', number), 'inbound'
		FROM ins
	)
	SELECT req.i, coalesce(calls.routing, n.routing)
	FROM req
	LEFT JOIN calls ON calls.call_sid = req.call_sid
	LEFT JOIN n ON n.i = req.i
	WHERE calls.routing IS NOT NULL OR n.routing IS NOT NULL`

// startWait is one StartCall waiting for its batch.
type startWait struct {
	in      InboundCall
	routing []byte // nil: the number is not configured
	err     error
	done    chan struct{}
}

// startBatcher coalesces concurrent StartCalls (see startCallSQL).
type startBatcher struct {
	db       *DB
	routings routingMemo

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

// run records a batch and hands each waiter its result. A statement refused by PostgreSQL
// (not a lost connection) is retried call by call, so that one bad call fails alone.
func (b *startBatcher) run(ctx context.Context, batch []*startWait) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	err := b.exec(ctx, batch)
	var pgErr *pgconn.PgError
	if err != nil && len(batch) > 1 && errors.As(err, &pgErr) {
		for _, w := range batch {
			if err := b.exec(ctx, []*startWait{w}); err != nil {
				w.err = err
			}
			close(w.done)
		}
		return
	}
	for _, w := range batch {
		if err != nil {
			w.err = err
		}
		close(w.done)
	}
}

// exec runs startCallSQL for batch and stores each routing on its waiter.
func (b *startBatcher) exec(ctx context.Context, batch []*startWait) error {
	sids := make([]string, len(batch))
	numbers := make([]string, len(batch))
	froms := make([]string, len(batch))
	tokens := make([]string, len(batch))
	for i, w := range batch {
		sids[i], numbers[i], froms[i], tokens[i] = w.in.CallSid, w.in.Number, w.in.From, w.in.CallToken
	}
	rows, err := b.db.pool.Query(ctx, startCallSQL, sids, numbers, froms, tokens, b.db.now())
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

// StartCall records a new inbound call and returns its number's routing, or ENOTFOUND for a
// number that is not configured (then nothing is written). Lookup, insert and timeline entry
// are one statement, shared with the other calls starting at the same moment (startBatcher).
// A repeated webhook for the same CallSid writes nothing again and returns the routing the
// call started with. The initial status follows callrelay.PlanInbound (a test holds the two
// together).
func (db *DB) StartCall(ctx context.Context, in InboundCall) (callrelay.Routing, error) {
	routing, err := db.starts.start(ctx, in)
	if err != nil {
		return callrelay.Routing{}, fmt.Errorf("start call %s: %w", in.CallSid, err)
	}
	if routing == nil {
		return callrelay.Routing{}, callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", in.Number)
	}
	r, err := db.starts.routings.decode(routing)
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
