package postgres_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/migrations"
)

// screenedRouting rings a screened phone and an unscreened SIP endpoint.
const screenedRouting = `{"owner_email":"dana@example.com","targets":[
	{"type":"phone","to":"+15550001111"},{"type":"sip","uri":"sip:dana@pbx.example.com"}]}`

func startScreenedCall(t *testing.T, db *postgres.DB) {
	t.Helper()
	ctx := context.Background()
	if _, _, err := db.PutNumber(ctx, "+15551230000", mustRouting(t, screenedRouting)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA_parent", Number: "+15551230000", From: "+15559870000"}); err != nil {
		t.Fatal(err)
	}
}

func screenEvent(leg string, target int, outcome string) callrelay.ScreenEvent {
	return callrelay.ScreenEvent{CallSid: leg, ParentCallSid: "CA_parent", Target: "+15550001111", TargetIndex: target,
		Screen: callrelay.ScreenPress, Outcome: outcome, At: t0}
}

// TestRecordScreen: a screened leg that answers is not the callee; the one that accepts is,
// once, and a final outcome is never replaced.
func TestRecordScreen(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startScreenedCall(t, db)

	// The phone answers (a carrier voicemail, say): the call still rings.
	if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA_a", ParentCallSid: "CA_parent", Status: "in-progress",
		Sequence: 2, At: t0, Target: "+15550001111", TargetIndex: intp(0)}); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.GetCall(ctx, "CA_parent"); c.Status != callrelay.StatusRinging {
		t.Errorf("call status after a screened leg answered = %q, want ringing", c.Status)
	}
	steps := []struct {
		leg, outcome, want string
	}{
		{"CA_a", postgres.ScreenOffered, postgres.ScreenOffered},
		{"CA_a", postgres.ScreenUnanswered, postgres.ScreenUnanswered},
		{"CA_a", postgres.ScreenAccepted, postgres.ScreenUnanswered}, // too late: stays unanswered
		{"CA_b", postgres.ScreenOffered, postgres.ScreenOffered},
		{"CA_b", postgres.ScreenAccepted, postgres.ScreenAccepted},
		{"CA_b", postgres.ScreenAccepted, postgres.ScreenAccepted}, // repeated
		{"CA_b", postgres.ScreenDeclined, postgres.ScreenAccepted}, // never undone
		{"CA_b", postgres.ScreenOffered, postgres.ScreenAccepted},  // a repeated screen fetch
	}
	for i, s := range steps {
		got, err := db.RecordScreen(ctx, screenEvent(s.leg, 0, s.outcome))
		if err != nil || got != s.want {
			t.Errorf("step %d: %s %s = %q, %v; want %q", i, s.leg, s.outcome, got, err, s.want)
		}
	}
	c, err := db.GetCall(ctx, "CA_parent")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != callrelay.StatusInProgress {
		t.Errorf("call status = %q, want in-progress after an acceptance", c.Status)
	}
	var got []string
	for _, e := range c.Events {
		if e.Type == "screen" {
			got = append(got, e.Detail["leg"].(string)+":"+e.Outcome)
		}
	}
	want := "CA_a:offered CA_a:unanswered CA_b:offered CA_b:accepted"
	if strings.Join(got, " ") != want {
		t.Errorf("screen entries = %v, want %s", got, want)
	}
	// The Dial action's view: b accepted, a did not.
	var plan callrelay.Plan
	_, plan, err = db.RecordDialOutcome(ctx, callrelay.DialOutcome{CallSid: "CA_parent", DialCallStatus: "completed", DialCallSid: "CA_a", CallerStatus: "in-progress"})
	if err != nil || plan.Action != callrelay.ActHangup {
		t.Errorf("dial outcome = %v, %v; want hangup (b accepted)", plan.Action, err)
	}

	// A leg that ends while its screen waits (its person hung up): ended, once.
	if _, err := db.RecordScreen(ctx, screenEvent("CA_c", 0, postgres.ScreenOffered)); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA_c", ParentCallSid: "CA_parent", Status: "completed",
			Sequence: 5, At: t0, Target: "+15550001111", TargetIndex: intp(0)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := db.RecordScreen(ctx, screenEvent("CA_c", 0, postgres.ScreenAccepted)); got != postgres.ScreenEnded {
		t.Errorf("accepted after the leg ended = %q, want %q", got, postgres.ScreenEnded)
	}
	// A leg whose screen is over keeps its outcome when it ends.
	if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA_b", ParentCallSid: "CA_parent", Status: "completed",
		Sequence: 9, At: t0, Target: "+15550001111", TargetIndex: intp(0)}); err != nil {
		t.Fatal(err)
	}
	c, _ = db.GetCall(ctx, "CA_parent")
	got = nil
	for _, e := range c.Events {
		if e.Type == "screen" {
			got = append(got, e.Detail["leg"].(string)+":"+e.Outcome)
		}
	}
	if want := "CA_a:offered CA_a:unanswered CA_b:offered CA_b:accepted CA_c:offered CA_c:ended"; strings.Join(got, " ") != want {
		t.Errorf("screen entries = %v, want %s", got, want)
	}

	// A leg of an unknown call, or one claimed by another call, records nothing.
	if _, err := db.RecordScreen(ctx, callrelay.ScreenEvent{CallSid: "CA_x", ParentCallSid: "CA_nope", TargetIndex: 0,
		Screen: callrelay.ScreenPress, Outcome: postgres.ScreenAccepted, At: t0}); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Errorf("unknown call: %v, want ENOTFOUND", err)
	}
}

// TestRecordDialOutcome_screenedNotAccepted: the legs reach the decision.
func TestRecordDialOutcome_screenedNotAccepted(t *testing.T) {
	ctx := context.Background()
	db, _ := newDB(t)
	startScreenedCall(t, db)
	if _, err := db.RecordScreen(ctx, screenEvent("CA_a", 0, postgres.ScreenMachine)); err != nil {
		t.Fatal(err)
	}
	plan, cs, err := db.RecordDialOutcomeState(ctx, callrelay.DialOutcome{CallSid: "CA_parent", DialCallStatus: "completed", DialCallSid: "CA_a", CallerStatus: "in-progress"})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Action != callrelay.ActVoicemail {
		t.Errorf("plan = %v, want voicemail (the bridged leg was a machine)", plan.Action)
	}
	if legs := cs.Legs; len(legs) != 1 || legs[0] != (callrelay.LegScreen{CallSid: "CA_a", TargetIndex: 0, Screened: true}) {
		t.Errorf("CallState.Legs = %+v, want CA_a screened, target 0, not accepted", legs)
	}
}

// TestMigration005_backfill: numbers stored before screening get the new defaults, explicitly.
func TestMigration005_backfill(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	old := `{"owner_email":"dana@example.com","mode":"direct","targets":[{"type":"phone","to":"+15550001111"},
		{"type":"sip","uri":"sip:d@pbx.example.com"},{"type":"client","identity":"dana"},{"type":"phone","to":"+15550002222","screen":"off"}]}`
	if _, err := pool.Exec(ctx, `INSERT INTO numbers (number, routing, created_at, updated_at) VALUES ('+15551230000', $1, now(), now()),
		('+15551230001', '{"owner_email":"x@example.com","targets":[]}', now(), now())`, old); err != nil {
		t.Fatal(err)
	}
	sql, err := fs.ReadFile(migrations.FS, "005_screening.sql")
	if err != nil {
		t.Fatal(err)
	}
	update := string(sql[strings.Index(string(sql), "UPDATE numbers"):])
	if _, err := pool.Exec(ctx, update); err != nil {
		t.Fatalf("backfill: %v", err)
	}
	var raw []byte
	if err := pool.QueryRow(ctx, `SELECT routing FROM numbers WHERE number = '+15551230000'`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var r callrelay.Routing
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range r.Targets {
		got = append(got, tg.Type+":"+tg.Screen)
	}
	if want := "phone:press sip:off client:off phone:off"; strings.Join(got, " ") != want {
		t.Errorf("targets after the backfill = %v, want %s (order kept, a set screen kept)", got, want)
	}
	if err := pool.QueryRow(ctx, `SELECT routing FROM numbers WHERE number = '+15551230001'`).Scan(&raw); err != nil || !strings.Contains(string(raw), `"targets": []`) {
		t.Errorf("empty targets after the backfill: %s %v", raw, err)
	}
}
