package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
)

// The caller's name (Twilio's CallerName) and the number's time zone reach the voicemail, as
// they were when the call came in.
func TestRecordRecording_CallerNameAndTimeZone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, `{"owner_email":"dana@example.com","time_zone":"Europe/Paris","targets":[{"type":"phone","to":"+15550001111"}]}`)
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA1", Number: vmNumber, From: vmCaller, CallerName: "JOHN SMITH"}); err != nil {
		t.Fatal(err)
	}
	vmStartCall(t, db, "CA2") // no CallerName
	// A batch of calls carries each one's name.
	var wg sync.WaitGroup
	for i, name := range []string{"ANNA", "", "BOB"} {
		wg.Go(func() {
			if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CB" + string(rune('0'+i)), Number: vmNumber, From: vmCaller, CallerName: name}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// "<nil>": NULL, Twilio sent no name.
	for sid, want := range map[string]string{"CA1": "JOHN SMITH", "CA2": "<nil>", "CB0": "ANNA", "CB1": "<nil>", "CB2": "BOB"} {
		var got *string
		if err := db.Pool().QueryRow(ctx, `SELECT caller_name FROM calls WHERE call_sid = $1`, sid).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if deref(got) != want {
			t.Errorf("%s: caller_name = %s, want %s", sid, deref(got), want)
		}
	}
	// Moving the number to another zone does not move the call's.
	if _, _, err := db.PutNumber(ctx, vmNumber, mustRouting(t, `{"owner_email":"dana@example.com","time_zone":"Asia/Tokyo","targets":[{"type":"phone","to":"+15550001111"}]}`)); err != nil {
		t.Fatal(err)
	}
	for sid, want := range map[string]string{"CA1": "JOHN SMITH", "CA2": "<nil>"} {
		vm, err := db.RecordRecording(ctx, vmRecording(sid, "RE"+sid, 30), vmWait)
		if err != nil {
			t.Fatal(err)
		}
		if deref(vm.CallerName) != want || vm.TimeZone != "Europe/Paris" {
			t.Errorf("%s: voicemail caller %s, zone %q, want %s and Europe/Paris", sid, deref(vm.CallerName), vm.TimeZone, want)
		}
	}
}

// claimSent claims and sends a voicemail's email.
func claimSent(t *testing.T, db *postgres.DB, id int64) {
	t.Helper()
	if _, err := db.ClaimNotification(context.Background(), id, vmLease); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishNotification(context.Background(), id, nil, false); err != nil {
		t.Fatal(err)
	}
}

func transcribe(t *testing.T, db *postgres.DB, recSid, text string) {
	t.Helper()
	if err := db.RecordTranscription(context.Background(), callrelay.Transcription{
		CallSid: "CA1", RecordingSid: recSid, TranscriptionSid: "TR" + recSid, Status: "completed", Text: text,
	}); err != nil {
		t.Fatal(err)
	}
}

// A transcript stored while the email is being sent is not in it (the claim read the row
// first): it asks for a follow-up, which is sent once.
func TestFollowUp_TranscriptDuringSend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	claimed, err := db.ClaimNotification(ctx, vm.ID, vmLease)
	if err != nil {
		t.Fatal(err)
	}
	if claimed.Transcript != nil {
		t.Fatalf("claimed voicemail has a transcript %q before one arrived", *claimed.Transcript)
	}
	transcribe(t, db, "RE1", "Call me back.")
	if got := getVM(t, db, vm.ID); got.FollowUp != callrelay.NotifyPending {
		t.Fatalf("follow-up = %q, want pending", got.FollowUp)
	}
	// The email is still being sent: the follow-up waits.
	got, err := db.ClaimFollowUp(ctx, vm.ID, vmLease)
	if callrelay.ErrorCode(err) != callrelay.ECONFLICT || got == nil || got.FollowUp != callrelay.NotifyPending {
		t.Fatalf("claim while the email is sending: %v, %+v; want ECONFLICT with the follow-up still pending", err, got)
	}
	if err := db.FinishNotification(ctx, vm.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	got, err = db.ClaimFollowUp(ctx, vm.ID, vmLease)
	if err != nil {
		t.Fatal(err)
	}
	if deref(got.Transcript) != "Call me back." || got.FollowUp != callrelay.NotifySending {
		t.Errorf("claimed follow-up: %q %s, want the transcript, sending", deref(got.Transcript), got.FollowUp)
	}
	// A second worker within the lease gets nothing; after it, it takes over.
	if _, err := db.ClaimFollowUp(ctx, vm.ID, vmLease); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("second claim: %v, want ECONFLICT", err)
	}
	advance(vmLease + time.Second)
	if _, err := db.ClaimFollowUp(ctx, vm.ID, vmLease); err != nil {
		t.Errorf("claim after the lease: %v, want taken over", err)
	}
	if err := db.FinishFollowUp(ctx, vm.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	got, err = db.ClaimFollowUp(ctx, vm.ID, vmLease)
	if callrelay.ErrorCode(err) != callrelay.ECONFLICT || got.FollowUp != callrelay.NotifySent {
		t.Errorf("claim after sent: %v, %q; want ECONFLICT, sent", err, got.FollowUp)
	}
	if evs := callEvents(t, db, "CA1", "transcript-email"); len(evs) != 1 || evs[0].Outcome != "sent" {
		t.Errorf("transcript-email events = %+v, want one sent", evs)
	}
}

// A transcript that arrived while the email was being sent, whose send then failed, is in the
// retry: the follow-up is skipped.
func TestFollowUp_SkippedWhenTheRetryCarriesIt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
		t.Fatal(err)
	}
	transcribe(t, db, "RE1", "Call me back.")
	if err := db.FinishNotification(ctx, vm.ID, errors.New("421 try later"), false); err != nil {
		t.Fatal(err)
	}
	retry, err := db.ClaimNotification(ctx, vm.ID, vmLease)
	if err != nil {
		t.Fatal(err)
	}
	if deref(retry.Transcript) != "Call me back." {
		t.Fatalf("retry composed without the transcript")
	}
	if err := db.FinishNotification(ctx, vm.ID, nil, false); err != nil {
		t.Fatal(err)
	}
	got, err := db.ClaimFollowUp(ctx, vm.ID, vmLease)
	if callrelay.ErrorCode(err) != callrelay.ECONFLICT || got.FollowUp != callrelay.FollowUpSkipped {
		t.Errorf("claim: %v, %q; want ECONFLICT, skipped", err, got.FollowUp)
	}
}

// A transcript that arrives before the claim is in the email: no follow-up. Nor for an empty
// transcript or a failed transcription after the email.
func TestFollowUp_NotAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	transcribe(t, db, "RE1", "Hello.")
	claimSent(t, db, vm.ID)

	vm2 := newVoicemail(t, db, "CA2", "RE2")
	claimSent(t, db, vm2.ID)
	transcribe(t, db, "RE2", " \n ")

	vm3 := newVoicemail(t, db, "CA3", "RE3")
	claimSent(t, db, vm3.ID)
	if err := db.RecordTranscription(ctx, callrelay.Transcription{CallSid: "CA3", RecordingSid: "RE3", Status: "failed"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{vm.ID, vm2.ID, vm3.ID} {
		if got := getVM(t, db, id); got.FollowUp != "" {
			t.Errorf("voicemail %d: follow-up %q, want none", id, got.FollowUp)
		}
	}
	if n := countRows(t, db, `SELECT count(*) FROM river_job WHERE kind = 'notify_transcript'`); n != 0 {
		t.Errorf("notify_transcript jobs = %d, want 0", n)
	}
}
