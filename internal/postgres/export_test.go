package postgres

import (
	"context"

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
