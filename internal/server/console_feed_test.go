package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// TestFeedHub_BoundedWork: a poll that finds a few calls changed sends each one's rendering;
// one that finds more than feedMaxCalls (a busy hour) renders none, sends one resync and skips
// to the feed's end, so that the next poll starts from there (the load test found the feed,
// rendering every new call for every browser, taking the voice webhook from 8,500 to 2,500
// requests a second with 20 consoles open).
func TestFeedHub_BoundedWork(t *testing.T) {
	ctx := context.Background()
	db := postgres.New(pgtest.NewPool(t), postgres.Options{Now: clocktest.Now})
	r, err := callrelay.DecodeRouting(strings.NewReader(`{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.PutNumber(ctx, "+15551230000", r); err != nil {
		t.Fatal(err)
	}
	start := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: fmt.Sprintf("CA%032x", i), Number: "+15551230000", From: "+15559870000"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := newFeedHub(db, newConsoleTemplates(time.UTC), slog.New(slog.DiscardHandler), time.Hour)
	ch := make(chan []feedMessage, 10)
	h.subs[ch] = struct{}{}
	var cur postgres.FeedCursor
	h.step(ctx, &cur) // the cursor starts at the feed's end
	kinds := func() string {
		t.Helper()
		select {
		case msgs := <-ch:
			var k []string
			for _, m := range msgs {
				k = append(k, m.Kind)
			}
			return strings.Join(k, " ")
		default:
			return "(nothing)"
		}
	}

	start(1, 2)
	h.step(ctx, &cur)
	if got, want := kinds(), "call timeline call timeline"; got != want {
		t.Errorf("two new calls: sent %q, want %q", got, want)
	}
	start(100, feedMaxCalls+1)
	h.step(ctx, &cur)
	if got, want := kinds(), "resync"; got != want {
		t.Errorf("%d new calls: sent %q, want %q", feedMaxCalls+1, got, want)
	}
	h.step(ctx, &cur)
	if got, want := kinds(), "(nothing)"; got != want {
		t.Errorf("after the resync: sent %q, want %q (the feed skipped to its end)", got, want)
	}
	start(500, 1)
	h.step(ctx, &cur)
	if got, want := kinds(), "call timeline"; got != want {
		t.Errorf("one more call: sent %q, want %q", got, want)
	}
}
