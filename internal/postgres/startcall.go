package postgres

import (
	"context"
	"encoding/json"
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

// initialStatusSQL is a new call's status from its (effective) routing, as
// callrelay.PlanInbound decides it (TestStartCall/StatusFollowsPlan holds the two together,
// for both statements).
const initialStatusSQL = `CASE WHEN (routing->>'enabled')::boolean THEN 'ringing'
	WHEN (routing->'voicemail'->>'enabled')::boolean THEN 'voicemail'
	ELSE 'completed' END`

// stripSQL is a stored routing without what callrelay.Decide applies and removes: the
// effective routing of a call the decision does not change.
const stripSQL = `'{schedule,after_hours,callers}'::text[]`

// A call's schedule and caller policies are decided in Go (callrelay.Decide) from the number's
// routing, before the statement that records the call: the decision sets the call's routing,
// status and inbound timeline entry, and must not cost a round trip of its own. So the store
// remembers each number's routing with its version (numberMemo), decides from it, and the
// statement records the decision only if the number's routing is still that version
// (md5 of its text); otherwise it records nothing for that call and returns the current
// routing, and the call is decided again (startOneSQL). The first call to a number on a replica,
// and the first after its routing changed, take that second round trip; the others none.

// startCallsSQL records calls ($1..$4, $6..$9 are parallel arrays, one element per call:
// CallSid, number, From, CallToken, the routing version decided from, the decided routing or
// NULL for the stored one stripped, the decision's timeline detail or NULL, Twilio's CallerName
// or an empty string) and returns, per element index, whether it inserted the call and, when
// not, the number's routing and version.
// A call it did not insert (its number is not configured, its routing changed, or its CallSid is
// already known: a repeated webhook) is answered by startOneSQL.
//
// The plan must not depend on table statistics: a prepared statement's generic plan is made
// once per connection, and one made while calls was empty (a new database, before autovacuum's
// first ANALYZE) joined calls by a sequential scan, which grew with every call (measured: the
// voice webhook's rate fell to a third over a 10 s run). So the statement never reads calls
// (the insert's arbiter index decides conflicts) and looks numbers up by a scalar subquery,
// which is an index probe whatever the estimates.
const startCallsSQL = `
	WITH req AS (
		SELECT r.*, (SELECT routing FROM numbers WHERE numbers.number = r.number) AS stored
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $6::text[], $7::text[], $8::text[], $9::text[])
			WITH ORDINALITY AS r(call_sid, number, from_number, call_token, version, decided, detail, caller_name, i)
	), e AS (
		SELECT call_sid, number, from_number, call_token, detail, caller_name,
			COALESCE(decided::jsonb, stored - ` + stripSQL + `) AS routing
		FROM req WHERE stored IS NOT NULL AND md5(stored::text) = version
	), n AS (
		SELECT e.*, ` + initialStatusSQL + ` AS status FROM e
	), ins AS (
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token, caller_name)
		SELECT call_sid, number, from_number, routing->>'mode', status, routing, $5, $5,
			CASE WHEN status = 'completed' THEN $5::timestamptz END, call_token, nullif(caller_name, '')
		FROM n
		ON CONFLICT (call_sid) DO NOTHING
		RETURNING call_sid
	), ev AS (
		INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
		SELECT DISTINCT ON (n.call_sid) n.call_sid, $5, 'inbound', 'twilio', n.status,
			jsonb_build_object('from', n.from_number, 'to', n.number) || COALESCE(n.detail::jsonb, '{}'), 'inbound'
		FROM n JOIN ins ON ins.call_sid = n.call_sid
	)
	SELECT req.i, ins.call_sid IS NOT NULL,
		CASE WHEN ins.call_sid IS NULL THEN req.stored END,
		CASE WHEN ins.call_sid IS NULL THEN md5(req.stored::text) END
	FROM req LEFT JOIN ins ON ins.call_sid = req.call_sid`

// startOneSQL records one call, like startCallsSQL, and says what happened: "inserted"; "known"
// with the routing a known CallSid started with (a repeated webhook answers as the first did,
// even if the number has changed or gone since); "stale" with the number's routing and version
// when the decision was made from another version. No row: the number is not configured. The
// snapshot does not see the row inserted by the statement itself.
const startOneSQL = `
	WITH nb AS (
		SELECT routing AS stored, md5(routing::text) AS version FROM numbers WHERE number = $2
	), n AS (
		SELECT routing, ` + initialStatusSQL + ` AS status
		FROM (SELECT COALESCE($7::text::jsonb, stored - ` + stripSQL + `) AS routing
			FROM nb WHERE version = $6::text) e
	), ins AS (
		INSERT INTO calls (call_sid, number, from_number, mode, status, routing, started_at, updated_at, ended_at, call_token, caller_name)
		SELECT $1, $2, $3, routing->>'mode', status, routing, $5, $5,
			CASE WHEN status = 'completed' THEN $5::timestamptz END, $4, nullif($9, '')
		FROM n
		ON CONFLICT (call_sid) DO NOTHING
		RETURNING call_sid, status
	), ev AS (
		INSERT INTO call_events (call_sid, at, type, by, outcome, detail, dedupe_key)
		SELECT call_sid, $5, 'inbound', 'twilio', status,
			jsonb_build_object('from', $3::text, 'to', $2::text) || COALESCE($8::text::jsonb, '{}'), 'inbound'
		FROM ins
	)
	SELECT 'known', routing, NULL::text FROM calls WHERE call_sid = $1
	UNION ALL
	SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'inserted' ELSE 'stale' END,
		CASE WHEN NOT EXISTS (SELECT 1 FROM ins) THEN stored END, version
	FROM nb WHERE NOT EXISTS (SELECT 1 FROM calls WHERE call_sid = $1)`

// startWait is one StartCall waiting for its batch.
type startWait struct {
	in    callrelay.InboundCall
	d     startDecision
	res   callrelay.StartedCall
	found bool // false: the number is not configured
	err   error
	done  chan struct{}
}

// startDecision is a call decided from the remembered routing of its number.
type startDecision struct {
	version string  // of the routing decided from; "" when none is remembered
	decided *string // the call's routing as JSON when the decision changes it, else NULL
	detail  *string // the decision on the timeline, as JSON, or NULL
	number  callrelay.Routing
	dec     callrelay.Decision
}

// decide decides in from the remembered routing of its number, at now.
func (db *DB) decide(in callrelay.InboundCall, now time.Time) (startDecision, error) {
	e, ok := db.numbers.get(in.Number)
	if !ok {
		return startDecision{}, nil
	}
	sd := startDecision{version: e.version, number: e.routing, dec: callrelay.Decide(e.routing, in.From, now)}
	if sd.dec.Changed() {
		b, err := json.Marshal(sd.dec.Routing)
		if err != nil {
			return startDecision{}, fmt.Errorf("encode call routing: %w", err)
		}
		js := string(b)
		sd.decided = &js
	}
	if sd.dec.Reason != "" {
		b, err := json.Marshal(map[string]string{"decision": sd.dec.Reason, "rule": sd.dec.Rule})
		if err != nil {
			return startDecision{}, fmt.Errorf("encode decision: %w", err)
		}
		js := string(b)
		sd.detail = &js
	}
	return sd, nil
}

func (sd startDecision) started() callrelay.StartedCall {
	number := sd.number
	return callrelay.StartedCall{Routing: sd.dec.Routing, Number: &number, Reason: sd.dec.Reason, Rule: sd.dec.Rule}
}

// startBatcher coalesces concurrent StartCalls (see startCallsSQL).
type startBatcher struct {
	db *DB

	mu      sync.Mutex
	pending []*startWait
	flying  int // batches running
}

// start queues in and waits for the batch that records it.
func (b *startBatcher) start(ctx context.Context, in callrelay.InboundCall) (callrelay.StartedCall, bool, error) {
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
		return w.res, w.found, w.err
	case <-ctx.Done():
		// The call is still recorded when its batch runs; this request just stops waiting.
		return callrelay.StartedCall{}, false, ctx.Err()
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
// insert (a repeated CallSid, an unknown number, a routing decided from an old version) are
// answered by startOneSQL, after the others have their answer. A statement refused by
// PostgreSQL (not a lost connection) is retried call by call, so that one bad call fails alone.
func (b *startBatcher) run(ctx context.Context, batch []*startWait) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	now := b.db.now()
	var rest []*startWait
	if len(batch) == 1 {
		rest = batch
	} else {
		inserted, err := b.exec(ctx, batch, now)
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
			for i, w := range batch {
				if inserted[i] {
					w.res, w.found = w.d.started(), true
					close(w.done)
				} else {
					rest = append(rest, w)
				}
			}
		}
	}
	for _, w := range rest {
		w.res, w.found, w.err = b.one(ctx, w.in, now)
		close(w.done)
	}
}

// exec runs startCallsSQL for batch, decided at now, and reports which calls it inserted. It
// remembers the routing of the numbers whose calls it could not decide.
func (b *startBatcher) exec(ctx context.Context, batch []*startWait, now time.Time) ([]bool, error) {
	n := len(batch)
	sids, numbers, froms, tokens := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions, decided, details, names := make([]string, n), make([]*string, n), make([]*string, n), make([]string, n)
	for i, w := range batch {
		d, err := b.db.decide(w.in, now)
		if err != nil {
			return nil, fmt.Errorf("start %d calls: %w", n, err)
		}
		w.d = d
		sids[i], numbers[i], froms[i], tokens[i] = w.in.CallSid, w.in.Number, w.in.From, w.in.CallToken
		versions[i], decided[i], details[i], names[i] = d.version, d.decided, d.detail, w.in.CallerName
	}
	rows, err := b.db.pool.Query(ctx, startCallsSQL, sids, numbers, froms, tokens, now, versions, decided, details, names)
	if err != nil {
		return nil, fmt.Errorf("start %d calls: %w", n, err)
	}
	defer rows.Close()
	inserted := make([]bool, n)
	for rows.Next() {
		var i int
		var ok bool
		var routing []byte
		var version *string
		if err := rows.Scan(&i, &ok, &routing, &version); err != nil {
			return nil, fmt.Errorf("start %d calls: %w", n, err)
		}
		if i < 1 || i > n {
			return nil, fmt.Errorf("start %d calls: row for element %d", n, i)
		}
		inserted[i-1] = ok
		if !ok && routing != nil && version != nil {
			if err := b.db.numbers.put(batch[i-1].in.Number, *version, routing); err != nil {
				return nil, fmt.Errorf("start %d calls: %w", n, err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		// Nothing was committed: no waiter keeps an answer it may have been given.
		return nil, fmt.Errorf("start %d calls: %w", n, err)
	}
	return inserted, nil
}

// startTries bounds how often one call is decided again because its number's routing changed
// meanwhile: only a number rewritten faster than a round trip could use them all.
const startTries = 4

// one runs startOneSQL for in, decided at now; found is false for a number that is not
// configured.
func (b *startBatcher) one(ctx context.Context, in callrelay.InboundCall, now time.Time) (res callrelay.StartedCall, found bool, err error) {
	for range startTries {
		d, err := b.db.decide(in, now)
		if err != nil {
			return callrelay.StartedCall{}, false, err
		}
		var kind string
		var routing []byte
		var version *string
		err = b.db.pool.QueryRow(ctx, startOneSQL, in.CallSid, in.Number, in.From, in.CallToken, now,
			d.version, d.decided, d.detail, in.CallerName).Scan(&kind, &routing, &version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return callrelay.StartedCall{}, false, nil
		case err != nil:
			return callrelay.StartedCall{}, false, err
		case kind == "known":
			r, err := b.db.routings.decode(routing)
			return callrelay.StartedCall{Routing: r}, err == nil, err
		case kind == "inserted":
			return d.started(), true, nil
		case version == nil:
			return callrelay.StartedCall{}, false, fmt.Errorf("start call: no routing version")
		}
		if err := b.db.numbers.put(in.Number, *version, routing); err != nil {
			return callrelay.StartedCall{}, false, err
		}
	}
	return callrelay.StartedCall{}, false, fmt.Errorf("start call: number %s changed %d times while its call started", in.Number, startTries)
}

// StartCall records a new inbound call and returns its routing (schedule and caller policies
// applied), or ENOTFOUND for a number that is not configured (then nothing is written). See
// StartInbound.
func (db *DB) StartCall(ctx context.Context, in callrelay.InboundCall) (callrelay.Routing, error) {
	res, err := db.StartInbound(ctx, in)
	return res.Routing, err
}

// StartInbound records a new inbound call, decided by its number's schedule and caller
// policies, or answers ENOTFOUND for a number that is not configured (then nothing is
// written). Lookup, insert and timeline entry are one statement, shared with the other calls
// starting at the same moment (startBatcher). A repeated webhook for the same CallSid writes
// nothing again and returns the routing the call started with (a second statement,
// startOneSQL, answers for it). The initial status follows callrelay.PlanInbound of the call's
// routing (initialStatusSQL).
func (db *DB) StartInbound(ctx context.Context, in callrelay.InboundCall) (callrelay.StartedCall, error) {
	res, found, err := db.starts.start(ctx, in)
	if err != nil {
		return callrelay.StartedCall{}, fmt.Errorf("start call %s: %w", in.CallSid, err)
	}
	if !found {
		return callrelay.StartedCall{}, callrelay.Errorf(callrelay.ENOTFOUND, "Number %s is not configured.", in.Number)
	}
	return res, nil
}

// numberMemo remembers each number's routing, decoded, with its version (the md5 of its
// stored text), so that a call is decided before the statement that records it.
type numberMemo struct {
	mu sync.RWMutex
	m  map[string]numberEntry
}

type numberEntry struct {
	version string
	routing callrelay.Routing
}

func (nm *numberMemo) get(number string) (numberEntry, bool) {
	nm.mu.RLock()
	defer nm.mu.RUnlock()
	e, ok := nm.m[number]
	return e, ok
}

func (nm *numberMemo) put(number, version string, stored []byte) error {
	r, err := decodeRouting(stored)
	if err != nil {
		return err
	}
	nm.mu.Lock()
	defer nm.mu.Unlock()
	if nm.m == nil || len(nm.m) >= routingMemoMax {
		nm.m = make(map[string]numberEntry)
	}
	nm.m[number] = numberEntry{version: version, routing: r}
	return nil
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
