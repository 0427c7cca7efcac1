package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Hooks for the external tests.

// StartCallSQL holds the two statements StartCall runs, for plan checks.
var StartCallSQL = map[string]string{"batch": startCallsSQL, "one": startOneSQL}

// StartBatch records ins as one batch, as StartCall's batcher does when they arrive together,
// and returns StartCall's answer for each (nil routing: ENOTFOUND).
func (db *DB) StartBatch(ctx context.Context, ins []callrelay.InboundCall) ([]*callrelay.Routing, []error) {
	batch := make([]*startWait, len(ins))
	for i, in := range ins {
		batch[i] = &startWait{in: in, done: make(chan struct{})}
	}
	db.starts.run(ctx, batch)
	routings := make([]*callrelay.Routing, len(ins))
	errs := make([]error, len(ins))
	for i, w := range batch {
		<-w.done
		errs[i] = w.err
		if w.err == nil && w.found {
			r := w.res.Routing
			routings[i] = &r
		}
	}
	return routings, errs
}

// PendingWrites is how many callback writes wait for a lane (writeBatcher).
func (db *DB) PendingWrites() int {
	db.writes.mu.Lock()
	defer db.writes.mu.Unlock()
	return len(db.writes.pending)
}

// LegProgressBatch writes ps as one batch of the callback writer, as when they arrive
// together, and returns each one's error.
func (db *DB) LegProgressBatch(ctx context.Context, ps []callrelay.LegProgress) []error {
	var batch []*writeJob
	for _, p := range ps {
		var res callrelay.LegResult
		var callee string
		batch = append(batch, &writeJob{call: p.ParentCallSid, done: make(chan struct{}), queue: func(b *pgx.Batch) {
			queueLegProgress(b, p, nil, nil, db.now(), legDetail{Leg: p.CallSid, Target: p.Target}, &res, &callee)
		}})
	}
	db.writes.run(ctx, batch)
	errs := make([]error, len(batch))
	for i, j := range batch {
		<-j.done
		errs[i] = j.err
	}
	return errs
}

// LegProgressSQL is the statement of a leg's status callback, for plan checks.
var LegProgressSQL = legProgressSQL

// RecordDialOutcomeState is RecordDialOutcome that also returns the call's state the plan was
// decided from: what the store read.
func (db *DB) RecordDialOutcomeState(ctx context.Context, o callrelay.DialOutcome) (callrelay.Plan, callrelay.CallState, error) {
	_, plan, c, err := db.recordDialOutcome(ctx, o)
	return plan, c, err
}

// CallsListing is the WHERE, order and arguments ListCalls runs for status, for plan checks.
func CallsListing(status string) (string, []any) {
	var w callsWhere
	w.status(status)
	return w.newestFirst(0), w.args
}
