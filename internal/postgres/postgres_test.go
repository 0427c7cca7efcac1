package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

var t0 = clocktest.Start()

// newDB returns a store on a fresh database whose clock (t0) is moved by advance. It enqueues
// jobs as production's does, through an insert-only River client on the same clock (nobody
// works them); tune, when given, changes the options (wraps Jobs, sets Notices).
func newDB(t *testing.T, tune ...func(*postgres.Options)) (*postgres.DB, func(time.Duration)) {
	t.Helper()
	return newDBOn(t, pgtest.NewPool(t), tune...)
}

// newDBOn is newDB on a pool of the test's own.
func newDBOn(t *testing.T, pool *pgxpool.Pool, tune ...func(*postgres.Options)) (*postgres.DB, func(time.Duration)) {
	t.Helper()
	now := t0
	clock := func() time.Time { return now }
	jobs, err := postgres.NewJobs(pool, clock)
	if err != nil {
		t.Fatal(err)
	}
	opts := postgres.Options{Now: clock, Jobs: jobs}
	for _, f := range tune {
		f(&opts)
	}
	return postgres.New(pool, opts), func(d time.Duration) { now = now.Add(d) }
}

func mustRouting(t *testing.T, js string) callrelay.Routing {
	t.Helper()
	r, err := callrelay.DecodeRouting(strings.NewReader(js))
	if err != nil {
		t.Fatalf("DecodeRouting: %v", err)
	}
	return r
}

// The phone does not screen: these tests are about legs and dials as Twilio reports them.
const seqRouting = `{"owner_email":"dana@example.com","ring":"sequential","targets":[
	{"type":"phone","to":"+15550001111","screen":"off"},{"type":"sip","uri":"sip:dana@pbx.example.com","username":"dana","password":"s3cret"}]}`

func TestNumbers(t *testing.T) {
	db, _ := newDB(t)
	ctx := context.Background()
	r := mustRouting(t, seqRouting)

	t.Run("OK", func(t *testing.T) {
		n, created, err := db.PutNumber(ctx, "+15551230000", r)
		if err != nil {
			t.Fatal(err)
		}
		if !created {
			t.Errorf("created = false, want true for a new number")
		}
		if !n.CreatedAt.Equal(t0) {
			t.Errorf("CreatedAt = %v, want %v", n.CreatedAt, t0)
		}
		r2 := r
		r2.TimeoutSeconds = 45
		if _, created, err = db.PutNumber(ctx, "+15551230000", r2); err != nil || created {
			t.Fatalf("replace: created=%v err=%v, want false, nil", created, err)
		}
		got, err := db.GetNumber(ctx, "+15551230000")
		if err != nil {
			t.Fatal(err)
		}
		if got.Routing.TimeoutSeconds != 45 || got.Routing.Targets[1].Password != "s3cret" {
			t.Errorf("got routing %+v, want the replaced one with its password stored", got.Routing)
		}
		list, more, err := db.ListNumbers(ctx, callrelay.NumberPage{})
		if err != nil || len(list) != 1 || more {
			t.Fatalf("ListNumbers = %d numbers, %v; want 1", len(list), err)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		if _, err := db.GetNumber(ctx, "+15559999999"); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("GetNumber err = %v, want not_found", err)
		}
		if err := db.DeleteNumber(ctx, "+15559999999"); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("DeleteNumber err = %v, want not_found", err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := db.DeleteNumber(ctx, "+15551230000"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.GetNumber(ctx, "+15551230000"); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("after delete: err = %v, want not_found", err)
		}
	})
}

func TestStartCall(t *testing.T) {
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		db, _ := newDB(t)
		if _, _, err := db.PutNumber(ctx, "+15551230000", mustRouting(t, seqRouting)); err != nil {
			t.Fatal(err)
		}
		in := callrelay.InboundCall{CallSid: "CA01", Number: "+15551230000", From: "+15559870000"}
		for range 2 { // Twilio may send the same webhook twice
			r, err := db.StartCall(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if r.Ring != callrelay.RingSequential {
				t.Errorf("routing ring = %q, want sequential", r.Ring)
			}
		}
		c, err := db.GetCall(ctx, "CA01")
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != callrelay.StatusRinging || c.From != "+15559870000" || c.Mode != "direct" || !c.StartedAt.Equal(t0) {
			t.Errorf("call = %+v, want ringing direct call from +15559870000 at %v", c, t0)
		}
		if len(c.Events) != 1 || c.Events[0].Type != "inbound" {
			t.Errorf("events = %+v, want one inbound event", c.Events)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		db, _ := newDB(t)
		_, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA02", Number: "+15550000000", From: "+15559870000"})
		if callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Fatalf("err = %v, want not_found", err)
		}
		if _, err := db.GetCall(ctx, "CA02"); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("a call to an unknown number was stored: err = %v", err)
		}
	})

	// The initial status is computed in SQL; it must agree with the Go plan, for a call alone
	// (startOneSQL) and for calls recorded together (startCallsSQL).
	t.Run("StatusFollowsPlan", func(t *testing.T) {
		db, _ := newDB(t)
		routings := []callrelay.Routing{
			mustRouting(t, `{"owner_email":"a@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`),
			mustRouting(t, `{"owner_email":"a@example.com","enabled":false,"targets":[{"type":"phone","to":"+15550001111"}]}`),
			mustRouting(t, `{"owner_email":"a@example.com","enabled":false,"voicemail":{"enabled":false},"targets":[{"type":"phone","to":"+15550001111"}]}`),
		}
		var batch []callrelay.InboundCall
		for i, r := range routings {
			number := "+1555123000" + string(rune('0'+i))
			if _, _, err := db.PutNumber(ctx, number, r); err != nil {
				t.Fatal(err)
			}
			if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA1" + string(rune('0'+i)), Number: number, From: "+15559870000"}); err != nil {
				t.Fatal(err)
			}
			batch = append(batch, callrelay.InboundCall{CallSid: "CA2" + string(rune('0'+i)), Number: number, From: "+15559870000"})
		}
		if _, errs := db.StartBatch(ctx, batch); errors.Join(errs...) != nil {
			t.Fatal(errors.Join(errs...))
		}
		for i, r := range routings {
			want := callrelay.PlanInbound(r).Status()
			for _, sid := range []string{"CA1" + string(rune('0'+i)), "CA2" + string(rune('0'+i))} {
				c, err := db.GetCall(ctx, sid)
				if err != nil {
					t.Fatal(err)
				}
				if c.Status != want {
					t.Errorf("routing %d, %s: status = %q, want %q", i, sid, c.Status, want)
				}
				if ended := c.EndedAt != nil; ended != callrelay.IsTerminal(want) {
					t.Errorf("routing %d, %s: ended_at = %v, want set only for a terminal status", i, sid, c.EndedAt)
				}
			}
		}
	})
}

func startCall(t *testing.T, db *postgres.DB, sid string) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := db.PutNumber(ctx, "+15551230000", mustRouting(t, seqRouting)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: sid, Number: "+15551230000", From: "+15559870000"}); err != nil {
		t.Fatal(err)
	}
}

func intp(i int) *int { return &i }

func TestRecordLegProgress(t *testing.T) {
	ctx := context.Background()
	progress := func(status string, seq int, at time.Time) callrelay.LegProgress {
		return callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_parent", Status: status,
			Sequence: seq, At: at, Target: "+15550001111", TargetIndex: intp(0)}
	}

	t.Run("OK", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_parent")
		steps := []callrelay.LegProgress{
			progress("initiated", 0, t0), progress("ringing", 1, t0.Add(time.Second)),
			progress("in-progress", 2, t0.Add(3*time.Second)), progress("completed", 3, t0.Add(60*time.Second)),
		}
		for _, p := range steps {
			if res, err := db.RecordLegProgress(ctx, p); err != nil || !res.Known {
				t.Fatalf("%s: known=%v err=%v", p.Status, res.Known, err)
			}
		}
		c, err := db.GetCall(ctx, "CA_parent")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Legs) != 1 {
			t.Fatalf("legs = %+v, want 1", c.Legs)
		}
		l := c.Legs[0]
		if l.Status != "completed" || l.AnsweredAt == nil || !l.AnsweredAt.Equal(t0.Add(3*time.Second)) || l.Target != "+15550001111" {
			t.Errorf("leg = %+v, want completed, answered at t0+3s, target +15550001111", l)
		}
		if c.Status != callrelay.StatusInProgress {
			t.Errorf("call status = %q, want in-progress once a leg answered", c.Status)
		}
	})

	t.Run("OutOfOrderAndDuplicates", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_parent")
		// completed overtakes answered; ringing arrives last and twice.
		for _, p := range []callrelay.LegProgress{
			progress("initiated", 0, t0), progress("completed", 3, t0.Add(60*time.Second)),
			progress("in-progress", 2, t0.Add(3*time.Second)), progress("ringing", 1, t0.Add(time.Second)),
			progress("ringing", 1, t0.Add(time.Second)), progress("completed", 3, t0.Add(60*time.Second)),
		} {
			if _, err := db.RecordLegProgress(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		c, err := db.GetCall(ctx, "CA_parent")
		if err != nil {
			t.Fatal(err)
		}
		l := c.Legs[0]
		if l.Status != "completed" {
			t.Errorf("leg status = %q, want completed: a leg never leaves a terminal status", l.Status)
		}
		if l.AnsweredAt == nil {
			t.Errorf("answered_at lost when answered arrived after completed")
		}
		legEvents := 0
		for _, e := range c.Events {
			if e.Type == "leg" {
				legEvents++
			}
		}
		if legEvents != 4 {
			t.Errorf("leg events = %d, want 4 (one per distinct status)", legEvents)
		}
	})

	t.Run("LowerSequenceIgnored", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_parent")
		for _, p := range []callrelay.LegProgress{progress("ringing", 1, t0), progress("initiated", 0, t0)} {
			if _, err := db.RecordLegProgress(ctx, p); err != nil {
				t.Fatal(err)
			}
		}
		c, _ := db.GetCall(ctx, "CA_parent")
		if got := c.Legs[0].Status; got != "ringing" {
			t.Errorf("status = %q, want ringing: initiated has a lower sequence", got)
		}
	})

	t.Run("UnknownParent", func(t *testing.T) {
		db, _ := newDB(t)
		res, err := db.RecordLegProgress(ctx, progress("ringing", 1, t0))
		if err != nil || res.Known {
			t.Errorf("known=%v err=%v, want false, nil", res.Known, err)
		}
	})
}

func TestRecordDialOutcome(t *testing.T) {
	ctx := context.Background()

	t.Run("SequentialThenVoicemail", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_p")
		first := callrelay.DialOutcome{CallSid: "CA_p", Attempt: 0, DialCallStatus: "no-answer", DialCallSid: "CA_c1", CallerStatus: "in-progress"}
		_, plan, err := db.RecordDialOutcome(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if plan.Action != callrelay.ActForward || plan.Attempt != 1 {
			t.Fatalf("plan = %+v, want forward attempt 1", plan)
		}
		second := callrelay.DialOutcome{CallSid: "CA_p", Attempt: 1, DialCallStatus: "failed", DialCallSid: "CA_c2",
			SipResponseCode: intp(486), SipCallID: "abc@pbx", SipHeaders: map[string]string{"X-Reason": "busy here"}, CallerStatus: "in-progress"}
		if _, plan, err = db.RecordDialOutcome(ctx, second); err != nil || plan.Action != callrelay.ActVoicemail {
			t.Fatalf("plan = %+v, %v; want voicemail", plan, err)
		}
		// A late duplicate of the first outcome decides forward again but must not move the
		// call back from voicemail.
		if _, _, err = db.RecordDialOutcome(ctx, first); err != nil {
			t.Fatal(err)
		}
		c, err := db.GetCall(ctx, "CA_p")
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != callrelay.StatusVoicemail {
			t.Errorf("status = %q, want voicemail", c.Status)
		}
		var sipLeg *callrelay.Leg
		for i := range c.Legs {
			if c.Legs[i].CallSid == "CA_c2" {
				sipLeg = &c.Legs[i]
			}
		}
		if sipLeg == nil || sipLeg.SipResponseCode == nil || *sipLeg.SipResponseCode != 486 || sipLeg.Status != "failed" {
			t.Errorf("SIP leg = %+v, want failed with SIP 486", sipLeg)
		}
		outcomes := 0
		for _, e := range c.Events {
			if e.Type == "dial-outcome" {
				outcomes++
			}
		}
		if outcomes != 2 {
			t.Errorf("dial-outcome events = %d, want 2 (the duplicate adds none)", outcomes)
		}
	})

	t.Run("Answered", func(t *testing.T) {
		db, _ := newDB(t)
		startCall(t, db, "CA_p")
		o := callrelay.DialOutcome{CallSid: "CA_p", DialCallStatus: "completed", DialCallSid: "CA_c1", DurationSeconds: intp(42), CallerStatus: "in-progress"}
		if _, plan, err := db.RecordDialOutcome(ctx, o); err != nil || plan.Action != callrelay.ActHangup {
			t.Fatalf("plan = %+v, %v; want hangup", plan, err)
		}
		c, _ := db.GetCall(ctx, "CA_p")
		if c.Status != callrelay.StatusCompleted || c.EndedAt == nil {
			t.Errorf("call = %s ended %v, want completed with ended_at", c.Status, c.EndedAt)
		}
		if d := c.Legs[0].DurationSeconds; d == nil || *d != 42 {
			t.Errorf("leg duration = %v, want 42", d)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		db, _ := newDB(t)
		o := callrelay.DialOutcome{CallSid: "CA_none", DialCallStatus: "no-answer"}
		if _, _, err := db.RecordDialOutcome(ctx, o); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
			t.Errorf("err = %v, want not_found", err)
		}
	})
}

func TestRecordCallStatus(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startCall(t, db, "CA_p")
	for _, s := range []string{"completed", "in-progress", "busy"} {
		res, err := db.RecordCallStatus(ctx, "CA_p", s, t0.Add(time.Minute))
		if want := (callrelay.CallStatusResult{Known: true, Mode: callrelay.ModeDirect}); err != nil || res != want {
			t.Fatalf("%s: %+v, %v; want %+v", s, res, err, want)
		}
	}
	c, _ := db.GetCall(ctx, "CA_p")
	if c.Status != "completed" || c.EndedAt == nil || !c.EndedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("call = %s ended %v; want completed at t0+1m, never leaving it", c.Status, c.EndedAt)
	}
	// A call that went through a hold says so: its end has a leg and queues to clean up.
	startCall(t, db, "CA_h")
	if _, err := db.Pool().Exec(ctx, `UPDATE calls SET held_since = $2 WHERE call_sid = $1`, "CA_h", t0); err != nil {
		t.Fatal(err)
	}
	if res, err := db.RecordCallStatus(ctx, "CA_h", "completed", t0.Add(time.Minute)); err != nil || !res.Held {
		t.Errorf("held call: %+v, %v; want Held", res, err)
	}
	if res, err := db.RecordCallStatus(ctx, "CA_unknown", "completed", t0); err != nil || res.Known {
		t.Errorf("unknown call: %+v, %v; want not Known", res, err)
	}
}

func TestListCalls(t *testing.T) {
	ctx := context.Background()
	db, advance := newDB(t)
	startCall(t, db, "CA_a")
	advance(time.Second)
	startCall(t, db, "CA_b")
	if _, err := db.RecordCallStatus(ctx, "CA_a", "completed", t0); err != nil {
		t.Fatal(err)
	}
	all, err := db.ListCalls(ctx, callrelay.CallFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].CallSid != "CA_b" {
		t.Errorf("calls = %d, first %q; want 2, newest first", len(all), all[0].CallSid)
	}
	done, err := db.ListCalls(ctx, callrelay.CallFilter{Status: "completed", Limit: 10})
	if err != nil || len(done) != 1 || done[0].CallSid != "CA_a" {
		t.Errorf("completed calls = %v, %v; want CA_a only", done, err)
	}
}

func TestStartVoicemail(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startCall(t, db, "CA_p")
	if _, err := db.StartVoicemail(ctx, "CA_p"); err != nil {
		t.Fatal(err)
	}
	c, _ := db.GetCall(ctx, "CA_p")
	if c.Status != callrelay.StatusVoicemail {
		t.Errorf("status = %q, want voicemail", c.Status)
	}
	if _, err := db.StartVoicemail(ctx, "CA_none"); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Errorf("unknown call: err = %v, want not_found", err)
	}
}

// Replicas start together: migrations from several at once must all succeed, once.
func TestMigrate_Concurrent(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmptyURL(t)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			errs[i] = postgres.Migrate(ctx, pool)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migrator %d: %v", i, err)
		}
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := postgres.New(pool, postgres.Options{}).Ready(ctx); err != nil {
		t.Errorf("Ready after migrations: %v", err)
	}
}

func TestReady_ErrSchemaBehind(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("Ready = %v, want nil on a migrated database", err)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE schema_version SET version = 0`); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil {
		t.Errorf("Ready = nil, want an error when the schema is behind")
	}
}

// A repeated voice webhook answers with the routing the call started with, even after the
// number was changed or deleted.
func TestStartCall_RepeatKeepsRouting(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startCall(t, db, "CA_rep")
	if err := db.DeleteNumber(ctx, "+15551230000"); err != nil {
		t.Fatal(err)
	}
	r, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA_rep", Number: "+15551230000", From: "+15559870000"})
	if err != nil {
		t.Fatalf("repeat after delete: %v, want the call's routing", err)
	}
	if r.Ring != callrelay.RingSequential {
		t.Errorf("routing = %+v, want the call's (sequential)", r)
	}
}

// A leg CallSid already owned by another call is not moved, and adds nothing to this call.
func TestRecordLegProgress_OtherCallsLeg(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startCall(t, db, "CA_one")
	startCall(t, db, "CA_two")
	leg := callrelay.LegProgress{CallSid: "CA_leg", ParentCallSid: "CA_one", Status: "ringing", Sequence: 1, At: t0}
	if _, err := db.RecordLegProgress(ctx, leg); err != nil {
		t.Fatal(err)
	}
	leg.ParentCallSid, leg.Status, leg.Sequence = "CA_two", "in-progress", 2
	if _, err := db.RecordLegProgress(ctx, leg); err != nil {
		t.Fatal(err)
	}
	two, err := db.GetCall(ctx, "CA_two")
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Legs) != 0 || two.Status != callrelay.StatusRinging || len(two.Events) != 1 {
		t.Errorf("CA_two = %s, legs %v, %d events; want untouched", two.Status, two.Legs, len(two.Events))
	}
	one, _ := db.GetCall(ctx, "CA_one")
	if one.Legs[0].Status != "ringing" {
		t.Errorf("CA_one's leg = %s, want ringing", one.Legs[0].Status)
	}
}
