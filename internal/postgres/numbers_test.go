package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// TestListNumbers_Pages: GET /api/numbers reads a page at a time, never every row (issue 14).
// Walking the pages with After gives every number once, in order; a page is at most Limit
// long, DefaultListLimit without one, and never over MaxListLimit.
func TestListNumbers_Pages(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	r := mustRouting(t, seqRouting)
	const total = postgres.MaxListLimit + 7
	var want []string
	for i := range total {
		// Put out of order: the pages are ordered by number, not by insertion.
		n := fmt.Sprintf("+1555%07d", (i*7919)%total)
		if _, _, err := db.PutNumber(ctx, n, r); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	slices.Sort(want)

	var got []string
	after, pages := "", 0
	for {
		page, more, err := db.ListNumbers(ctx, callrelay.NumberPage{After: after, Limit: 200})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 200 || len(page) == 0 {
			t.Fatalf("page %d: %d numbers, want 1 to 200", pages, len(page))
		}
		for _, n := range page {
			got = append(got, n.Number)
		}
		pages++
		if !more {
			break
		}
		after = page[len(page)-1].Number
	}
	if pages != 3 || !slices.Equal(got, want) {
		t.Errorf("%d pages of %d numbers in all, want 3 pages holding the %d numbers in order", pages, len(got), total)
	}

	for _, tt := range []struct{ limit, want int }{
		{0, postgres.DefaultListLimit}, {postgres.MaxListLimit, postgres.MaxListLimit}, {total, postgres.MaxListLimit},
	} {
		page, more, err := db.ListNumbers(ctx, callrelay.NumberPage{Limit: tt.limit})
		if err != nil || len(page) != tt.want || !more || page[0].Number != want[0] {
			t.Errorf("Limit %d: %d numbers, more %v, err %v; want the first %d, more", tt.limit, len(page), more, err, tt.want)
		}
	}
	last, more, err := db.ListNumbers(ctx, callrelay.NumberPage{After: want[total-1]})
	if err != nil || len(last) != 0 || more {
		t.Errorf("after the last number: %d numbers, more %v, err %v; want none", len(last), more, err)
	}
}
