package postgres_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// The missed-call tests drive a call with the store's own methods, as the webhooks do, then
// decide its outcome as the check_call job does (DecideOutcome), without a running queue.

const missedSid = "CA" + "00000000000000000000000000000a01"

// checkJobs counts the check_call jobs of a call.
func checkJobs(t *testing.T, db *postgres.DB, callSid string) int {
	t.Helper()
	var n int
	if err := db.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM river_job WHERE kind = 'check_call' AND args->>'call_sid' = $1`, callSid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// timeline returns a call's entries of one type, as outcomes.
func timeline(t *testing.T, db *postgres.DB, callSid, typ string) []string {
	t.Helper()
	c, err := db.GetCall(context.Background(), callSid)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range c.Events {
		if e.Type == typ {
			out = append(out, e.Outcome)
		}
	}
	return out
}

func endCall(t *testing.T, db *postgres.DB, callSid, status string, at time.Time) {
	t.Helper()
	if _, err := db.RecordCallStatus(context.Background(), callSid, status, at); err != nil {
		t.Fatal(err)
	}
}

func TestMissedCallRinging(t *testing.T) {
	db, advance, _ := newVoicemailDB(t, vmRouting)
	ctx := context.Background()
	vmStartCall(t, db, missedSid)
	if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA" + "00000000000000000000000000000b01",
		ParentCallSid: missedSid, Status: "ringing", Sequence: 1, At: t0, Target: "+15550001111"}); err != nil {
		t.Fatal(err)
	}
	advance(8 * time.Second)
	endCall(t, db, missedSid, "completed", t0.Add(8*time.Second))
	endCall(t, db, missedSid, "completed", t0.Add(8*time.Second)) // Twilio retries
	if n := checkJobs(t, db, missedSid); n != 1 {
		t.Fatalf("%d check_call jobs, want 1", n)
	}
	var due time.Time
	if err := db.Pool().QueryRow(ctx, `SELECT scheduled_at FROM river_job WHERE kind = 'check_call'`).Scan(&due); err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(8*time.Second + postgres.DefaultMissedCallDelay); due.Sub(want).Abs() > time.Second {
		t.Errorf("check due at %v, want %v (the delay after the end)", due, want)
	}
	if _, err := db.GetMissedCall(ctx, missedSid); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Fatalf("decided before the job ran: %v", err)
	}

	advance(postgres.DefaultMissedCallDelay)
	mc, err := db.DecideOutcome(ctx, missedSid)
	if err != nil {
		t.Fatal(err)
	}
	if mc == nil || mc.Stage != callrelay.StageRinging || mc.WaitedSeconds != 8 || mc.From != vmCaller ||
		mc.OwnerEmail != vmOwner || mc.Email.Status != callrelay.NotifyPending {
		t.Fatalf("missed call %+v", mc)
	}
	again, err := db.DecideOutcome(ctx, missedSid)
	if err != nil || again == nil || again.Stage != mc.Stage {
		t.Fatalf("decided again: %+v, %v", again, err)
	}
	if got := timeline(t, db, missedSid, "outcome"); len(got) != 1 || got[0] != "missed" {
		t.Errorf("outcome entries %q, want one missed", got)
	}
	if got := timeline(t, db, missedSid, "missed-call-email"); len(got) != 1 || got[0] != "queued" {
		t.Errorf("missed-call-email entries %q, want one queued", got)
	}
}

// TestMissedCallLateRecording: the voicemail's recording-status arrives after the caller's
// completed status (Twilio does not order them). Decided at run time, the call is not missed.
func TestMissedCallLateRecording(t *testing.T) {
	db, advance, _ := newVoicemailDB(t, vmRouting)
	ctx := context.Background()
	vmStartCall(t, db, missedSid)
	if _, err := db.StartVoicemail(ctx, missedSid); err != nil {
		t.Fatal(err)
	}
	endCall(t, db, missedSid, "completed", t0.Add(30*time.Second))
	advance(40 * time.Second)
	if _, err := db.RecordRecording(ctx, vmRecording(missedSid, "RE"+"00000000000000000000000000000a01", 9), vmWait); err != nil {
		t.Fatal(err)
	}
	advance(postgres.DefaultMissedCallDelay)
	mc, err := db.DecideOutcome(ctx, missedSid)
	if err != nil || mc != nil {
		t.Fatalf("DecideOutcome = %+v, %v; want not missed", mc, err)
	}
	if got := timeline(t, db, missedSid, "outcome"); len(got) != 1 || got[0] != "voicemail" {
		t.Errorf("outcome entries %q, want one voicemail", got)
	}
	if got := timeline(t, db, missedSid, "missed-call-email"); len(got) != 0 {
		t.Errorf("missed-call-email entries %q, want none", got)
	}
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("claim of a call that was not missed: %v, want conflict", err)
	}
}

func TestMissedCallStages(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, routing string
		drive         func(t *testing.T, db *postgres.DB)
		want          string
	}{
		{"greeting", `{"owner_email":"dana@example.com","greeting":"Hello.","targets":[{"type":"phone","to":"+15550001111"}]}`,
			func(*testing.T, *postgres.DB) {}, callrelay.StageGreeting},
		{"ringing without greeting", vmRouting, func(*testing.T, *postgres.DB) {}, callrelay.StageRinging},
		{"prompt", vmRouting, func(t *testing.T, db *postgres.DB) {
			if _, err := db.StartVoicemail(ctx, missedSid); err != nil {
				t.Fatal(err)
			}
		}, callrelay.StagePrompt},
		{"silence", vmRouting, func(t *testing.T, db *postgres.DB) {
			if _, err := db.StartVoicemail(ctx, missedSid); err != nil {
				t.Fatal(err)
			}
			if _, err := db.RecordRecording(ctx, callrelay.Recording{CallSid: missedSid,
				RecordingSid: "RE" + "00000000000000000000000000000a02", Status: "absent"}, vmWait); err != nil {
				t.Fatal(err)
			}
		}, callrelay.StageSilence},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db, _, _ := newVoicemailDB(t, tc.routing)
			vmStartCall(t, db, missedSid)
			tc.drive(t, db)
			endCall(t, db, missedSid, "completed", t0.Add(5*time.Second))
			mc, err := db.DecideOutcome(ctx, missedSid)
			if err != nil || mc == nil || mc.Stage != tc.want {
				t.Fatalf("DecideOutcome = %+v, %v; want missed at %s", mc, err, tc.want)
			}
		})
	}
}

// TestAnsweredDecidedAtOnce: a call with a conversation is decided with its final status
// (call.completed needs no wait), and no check is scheduled.
func TestAnsweredDecidedAtOnce(t *testing.T) {
	db, _, _ := newVoicemailDB(t, vmRouting)
	ctx := context.Background()
	vmStartCall(t, db, missedSid)
	if _, err := db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: "CA" + "00000000000000000000000000000b01",
		ParentCallSid: missedSid, Status: "in-progress", Sequence: 2, At: t0, Target: "+15550001111"}); err != nil {
		t.Fatal(err)
	}
	endCall(t, db, missedSid, "completed", t0.Add(time.Minute))
	if n := checkJobs(t, db, missedSid); n != 0 {
		t.Errorf("%d check_call jobs for an answered call, want 0", n)
	}
	if got := timeline(t, db, missedSid, "outcome"); len(got) != 1 || got[0] != "answered" {
		t.Errorf("outcome entries %q, want one answered", got)
	}
}

func TestMissedCallsOff(t *testing.T) {
	db, _, _ := newVoicemailDB(t, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],
		"notify":{"missed_calls":false}}`)
	ctx := context.Background()
	vmStartCall(t, db, missedSid)
	endCall(t, db, missedSid, "canceled", t0.Add(3*time.Second))
	mc, err := db.DecideOutcome(ctx, missedSid)
	if err != nil || mc == nil || mc.Email.Status != callrelay.NotifyOff {
		t.Fatalf("DecideOutcome = %+v, %v; want missed, email off", mc, err)
	}
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("claim with missed-call emails off: %v, want conflict", err)
	}
	if got := timeline(t, db, missedSid, "missed-call-email"); len(got) != 0 {
		t.Errorf("missed-call-email entries %q, want none", got)
	}
}

// TestMissedCallRejected: a disabled number without voicemail refuses calls; that is the
// owner's choice, not a missed call.
func TestMissedCallRejected(t *testing.T) {
	db, _, _ := newVoicemailDB(t, `{"owner_email":"dana@example.com","enabled":false,"voicemail":{"enabled":false},
		"targets":[{"type":"phone","to":"+15550001111"}]}`)
	vmStartCall(t, db, missedSid)
	endCall(t, db, missedSid, "completed", t0)
	if mc, err := db.DecideOutcome(context.Background(), missedSid); err != nil || mc != nil {
		t.Fatalf("DecideOutcome = %+v, %v; want not missed", mc, err)
	}
	if got := timeline(t, db, missedSid, "outcome"); len(got) != 1 || got[0] != "rejected" {
		t.Errorf("outcome entries %q, want one rejected", got)
	}
}

// TestMissedCallDecideConcurrently: duplicate jobs on two replicas decide together; one
// decision, one queued email.
func TestMissedCallDecideConcurrently(t *testing.T) {
	db, _, _ := newVoicemailDB(t, vmRouting)
	vmStartCall(t, db, missedSid)
	endCall(t, db, missedSid, "no-answer", t0)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if mc, err := db.DecideOutcome(context.Background(), missedSid); err != nil || mc == nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("DecideOutcome: %v", err)
	}
	if got := timeline(t, db, missedSid, "missed-call-email"); len(got) != 1 {
		t.Errorf("missed-call-email entries %q, want one queued", got)
	}
}

func TestClaimMissedEmail(t *testing.T) {
	db, advance, _ := newVoicemailDB(t, vmRouting)
	ctx := context.Background()
	vmStartCall(t, db, missedSid)
	endCall(t, db, missedSid, "completed", t0)
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Fatalf("claim before the decision: %v, want not found", err)
	}
	if _, err := db.DecideOutcome(ctx, missedSid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); err != nil {
		t.Fatal(err)
	}
	mc, err := db.ClaimMissedEmail(ctx, missedSid, vmLease)
	if callrelay.ErrorCode(err) != callrelay.ECONFLICT || mc == nil || mc.Email.Status != callrelay.NotifySending {
		t.Fatalf("second claim: %+v, %v; want conflict while sending", mc, err)
	}
	advance(vmLease + time.Second) // the first sender died
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); err != nil {
		t.Fatalf("claim after the lease: %v", err)
	}
	if err := db.FinishMissedEmail(ctx, missedSid, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimMissedEmail(ctx, missedSid, vmLease); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("claim after sent: %v, want conflict", err)
	}
	if got := timeline(t, db, missedSid, "missed-call-email"); len(got) != 2 || got[1] != "sent" {
		t.Errorf("missed-call-email entries %q, want queued, sent", got)
	}
}
