package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// A call's schedule and caller policies are decided before the statement that records it,
// from the routing the store remembers; the call, its status and its inbound entry must follow
// the number's routing as stored, whether the store remembered it, did not, or remembered an
// older version.
func TestStartCall_Decision(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	now := clocktest.Start()
	today := now.UTC().Format(time.DateOnly)
	newStore := func() *postgres.DB {
		db := postgres.New(pool)
		db.Now = clocktest.Fixed(now)
		return db
	}
	db := newStore()
	const (
		holiday = "+15551230000" // open every hour, but today is a holiday
		policy  = "+15551230001" // +1900 blocked, withheld callers rejected
	)
	put := func(number, extra string) {
		t.Helper()
		js := `{"owner_email": "dana@example.com", "targets": [{"type": "phone", "to": "+15550001111"}]` + extra + `}`
		if _, _, err := db.PutNumber(ctx, number, mustRouting(t, js)); err != nil {
			t.Fatal(err)
		}
	}
	allDay := `"00:00-24:00"`
	put(holiday, fmt.Sprintf(`, "time_zone": "UTC", "schedule": {"weekly": {"mon": [%[1]s], "tue": [%[1]s], "wed": [%[1]s],
		"thu": [%[1]s], "fri": [%[1]s], "sat": [%[1]s], "sun": [%[1]s]}, "exceptions": [{"date": %[2]q, "name": "holiday"}]},
		"after_hours": {"greeting": "Closed today."}`, allDay, today))
	put(policy, `, "callers": {"block": ["+1900"], "withheld": "reject"}`)

	type want struct {
		status, decision, rule, prompt string
	}
	check := func(t *testing.T, db *postgres.DB, sid string, w want) {
		t.Helper()
		c, err := db.GetCall(ctx, sid)
		if err != nil {
			t.Fatalf("%s: %v", sid, err)
		}
		if c.Status != w.status || (c.EndedAt != nil) != callrelay.IsTerminal(w.status) {
			t.Errorf("%s: status %q ended %v, want %q", sid, c.Status, c.EndedAt, w.status)
		}
		if len(c.Events) == 0 || c.Events[0].Type != "inbound" || c.Events[0].Outcome != w.status {
			t.Fatalf("%s: events %+v, want an inbound entry with outcome %s", sid, c.Events, w.status)
		}
		d := c.Events[0].Detail
		if d["decision"] != nilIfEmpty(w.decision) || d["rule"] != nilIfEmpty(w.rule) || d["from"] == nil {
			t.Errorf("%s: inbound detail %v, want decision %q rule %q", sid, d, w.decision, w.rule)
		}
		rt, err := db.CallRouting(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		if rt.Schedule != nil || rt.Callers != nil || rt.AfterHours != nil {
			t.Errorf("%s: the call's routing keeps schedule or policies: %+v", sid, rt)
		}
		if callrelay.PlanInbound(rt).Status() != w.status {
			t.Errorf("%s: the call's routing plans %s, want %s (a repeated webhook must answer the same)", sid, callrelay.PlanInbound(rt).Action, w.status)
		}
		if w.prompt != "" && rt.VoicemailPrompt() != w.prompt {
			t.Errorf("%s: prompt %q, want %q", sid, rt.VoicemailPrompt(), w.prompt)
		}
	}
	closedToday := want{callrelay.StatusVoicemail, callrelay.DecisionAfterHours, "closed: exceptions " + today + " (holiday)",
		"Closed today. " + callrelay.DefaultVoicemailPrompt}
	blocked := want{callrelay.StatusCompleted, callrelay.DecisionBlocked, "callers.block +1900 reject", ""}
	withheld := want{callrelay.StatusCompleted, callrelay.DecisionWithheld, "callers.withheld reject", ""}
	ringing := want{callrelay.StatusRinging, "", "", ""}

	calls := []struct {
		number, from string
		want         want
	}{
		{holiday, "+15557770000", closedToday},
		{policy, "+19005550000", blocked},
		{policy, "+266696687", withheld},
		{policy, "+15557770000", ringing},
	}

	t.Run("one at a time", func(t *testing.T) {
		for i, c := range calls {
			sid := fmt.Sprintf("CA_one%d", i)
			res, err := db.StartInbound(ctx, callrelay.InboundCall{CallSid: sid, Number: c.number, From: c.from})
			if err != nil {
				t.Fatal(err)
			}
			if res.Reason != c.want.decision || res.Number == nil || res.Number.Schedule == nil && res.Number.Callers == nil {
				t.Errorf("%s: StartInbound %+v", sid, res)
			}
			check(t, db, sid, c.want)
		}
		// A repeated webhook answers from the call's routing, without deciding again.
		res, err := db.StartInbound(ctx, callrelay.InboundCall{CallSid: "CA_one0", Number: holiday, From: "+15557770000"})
		if err != nil || res.Number != nil || callrelay.PlanInbound(res.Routing).Action != callrelay.ActVoicemail {
			t.Errorf("repeated webhook: %+v, %v", res, err)
		}
	})

	for _, store := range []string{"cold", "warm"} {
		t.Run("batch, "+store, func(t *testing.T) {
			s := db
			if store == "cold" {
				s = newStore() // remembers no routing: every call takes the second statement
			}
			var ins []callrelay.InboundCall
			for i, c := range calls {
				ins = append(ins, callrelay.InboundCall{CallSid: fmt.Sprintf("CA_%s%d", store, i), Number: c.number, From: c.from})
			}
			routings, errs := s.StartBatch(ctx, ins)
			for i, c := range calls {
				if errs[i] != nil || routings[i] == nil {
					t.Fatalf("%s: %v", ins[i].CallSid, errs[i])
				}
				check(t, s, ins[i].CallSid, c.want)
			}
		})
	}

	// The store remembers the policy number's routing; the number now blocks +1555 as well.
	put(policy, `, "callers": {"block": ["+1900", "+1555"], "blocked": "voicemail"}`)
	nowBlocked := want{callrelay.StatusVoicemail, callrelay.DecisionBlocked, "callers.block +1555 voicemail", ""}
	t.Run("routing changed, alone", func(t *testing.T) {
		if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA_changed1", Number: policy, From: "+15557770000"}); err != nil {
			t.Fatal(err)
		}
		check(t, db, "CA_changed1", nowBlocked)
	})
	put(policy, `, "callers": {"block": ["+1555"], "blocked": "reject"}`)
	t.Run("routing changed, in a batch", func(t *testing.T) {
		routings, errs := db.StartBatch(ctx, []callrelay.InboundCall{
			{CallSid: "CA_changed2", Number: policy, From: "+15557770000"},
			{CallSid: "CA_changed3", Number: holiday, From: "+15557770000"},
		})
		if errs[0] != nil || errs[1] != nil || routings[0] == nil {
			t.Fatal(errs)
		}
		check(t, db, "CA_changed2", want{callrelay.StatusCompleted, callrelay.DecisionBlocked, "callers.block +1555 reject", ""})
		check(t, db, "CA_changed3", closedToday)
	})
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// statementCounter counts the statements a pool sends.
type statementCounter struct{ n atomic.Int64 }

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The decision costs no round trip: once the store knows a number's routing, each call is one
// statement, as for a number without schedule or policies; the first call to a number, and the
// first after its routing changed, take one more.
func TestStartCall_DecisionRoundTrips(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgxpool.ParseConfig(pgtest.NewURL(t))
	if err != nil {
		t.Fatal(err)
	}
	counter := &statementCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	db := postgres.New(pool)
	db.Now = clocktest.Fixed(clocktest.Start())
	const number = "+15551230000"
	put := func(block string) {
		t.Helper()
		rt := mustRouting(t, `{"owner_email": "dana@example.com", "targets": [{"type": "phone", "to": "+15550001111"}],
			"time_zone": "UTC", "schedule": {"weekly": {"mon": ["00:00-24:00"], "tue": ["00:00-24:00"], "wed": ["00:00-24:00"],
			"thu": ["00:00-24:00"], "fri": ["00:00-24:00"], "sat": ["00:00-24:00"], "sun": ["00:00-24:00"]}},
			"callers": {"block": [`+block+`]}}`)
		if _, _, err := db.PutNumber(ctx, number, rt); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	start := func(from string) int64 {
		t.Helper()
		calls++
		before := counter.n.Load()
		if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: fmt.Sprintf("CA_rt%d", calls), Number: number, From: from}); err != nil {
			t.Fatal(err)
		}
		return counter.n.Load() - before
	}
	put(`"+1900"`)
	if n := start("+15557770000"); n != 2 {
		t.Errorf("first call to the number: %d statements, want 2 (the routing is learnt)", n)
	}
	for _, from := range []string{"+15557770000", "+19005550000", "+266696687"} {
		if n := start(from); n != 1 {
			t.Errorf("call from %s: %d statements, want 1", from, n)
		}
	}
	put(`"+1555"`)
	if n := start("+15557770000"); n != 2 {
		t.Errorf("first call after the routing changed: %d statements, want 2", n)
	}
	if n := start("+15557770000"); n != 1 {
		t.Errorf("next call: %d statements, want 1", n)
	}
}
