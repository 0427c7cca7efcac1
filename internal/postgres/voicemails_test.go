package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// The voicemail tests enqueue with River's client (never started: no job is worked here) and
// read river_job back. River schedules on the wall clock, the store's timestamps follow db.Now.

const (
	vmNumber  = "+15551230000"
	vmCaller  = "+15559870000"
	vmOwner   = "dana@example.com"
	vmWait    = time.Hour // CALLRELAY_TRANSCRIPT_WAIT, long enough to tell "later" from "now"
	vmLease   = 5 * time.Minute
	vmSlack   = 5 * time.Second // wall-clock tolerance for River's scheduled_at
	vmRouting = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`
)

// jobSpy counts the store's calls to JobRetryTx, passing everything on to River.
type jobSpy struct {
	postgres.Jobs
	retries atomic.Int32
}

func (s *jobSpy) JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error) {
	s.retries.Add(1)
	return s.Jobs.JobRetryTx(ctx, tx, id)
}

// newVoicemailDB returns a store (clock at t0, moved by advance) whose Jobs is a River client
// wrapped in a spy, with the number vmNumber routed by routingJSON.
func newVoicemailDB(t *testing.T, routingJSON string) (*postgres.DB, func(time.Duration), *jobSpy) {
	t.Helper()
	db, advance := newDB(t)
	// The queue is never started: it only inserts, on the store's clock.
	n := voicemail.NewNotifier(db, nil, nil, nil, "callrelay@example.com", db.Now, slog.New(slog.DiscardHandler))
	client, err := voicemail.NewQueue(db.Pool(), n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: db.Now})
	if err != nil {
		t.Fatal(err)
	}
	spy := &jobSpy{Jobs: client}
	db.Jobs = spy
	if _, _, err := db.PutNumber(context.Background(), vmNumber, mustRouting(t, routingJSON)); err != nil {
		t.Fatal(err)
	}
	return db, advance, spy
}

func vmStartCall(t *testing.T, db *postgres.DB, callSid string) {
	t.Helper()
	if _, err := db.StartCall(context.Background(), callrelay.InboundCall{CallSid: callSid, Number: vmNumber, From: vmCaller}); err != nil {
		t.Fatal(err)
	}
}

func vmRecording(callSid, recSid string, seconds int) callrelay.Recording {
	return callrelay.Recording{
		CallSid: callSid, RecordingSid: recSid, Status: "completed", DurationSeconds: seconds,
		RecordingURL: "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/" + recSid,
	}
}

// newVoicemail starts a call and completes its recording: a voicemail waiting for its
// transcript (30 s, en-US), its email job scheduled vmWait from now.
func newVoicemail(t *testing.T, db *postgres.DB, callSid, recSid string) *callrelay.Voicemail {
	t.Helper()
	vmStartCall(t, db, callSid)
	vm, err := db.RecordRecording(context.Background(), vmRecording(callSid, recSid, 30), vmWait)
	if err != nil {
		t.Fatal(err)
	}
	if vm == nil {
		t.Fatal("RecordRecording returned no voicemail for a completed recording")
	}
	return vm
}

// riverJob is a notify_voicemail row of river_job.
type riverJob struct {
	ID          int64
	State       string
	ScheduledAt time.Time
	Attempt     int
	VoicemailID int64
}

func riverJobs(t *testing.T, db *postgres.DB) []riverJob {
	t.Helper()
	rows, err := db.Pool().Query(context.Background(), `
		SELECT id, state, scheduled_at, attempt, (args->>'voicemail_id')::bigint
		FROM river_job WHERE kind = 'notify_voicemail' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (riverJob, error) {
		var j riverJob
		err := row.Scan(&j.ID, &j.State, &j.ScheduledAt, &j.Attempt, &j.VoicemailID)
		return j, err
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// oneJob returns the only notify_voicemail job, failing the test when there is not exactly one.
func oneJob(t *testing.T, db *postgres.DB) riverJob {
	t.Helper()
	jobs := riverJobs(t, db)
	if len(jobs) != 1 {
		t.Fatalf("notify_voicemail jobs = %+v, want exactly one", jobs)
	}
	return jobs[0]
}

func countRows(t *testing.T, db *postgres.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := db.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// callEvents returns the events of a call's timeline of type typ.
func callEvents(t *testing.T, db *postgres.DB, callSid, typ string) []callrelay.Event {
	t.Helper()
	c, err := db.GetCall(context.Background(), callSid)
	if err != nil {
		t.Fatal(err)
	}
	var evs []callrelay.Event
	for _, e := range c.Events {
		if e.Type == typ {
			evs = append(evs, e)
		}
	}
	return evs
}

func assertDue(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if d := got.Sub(want); d < -vmSlack || d > vmSlack {
		t.Errorf("%s scheduled_at = %v, want about %v (off by %v)", what, got, want, d)
	}
}

func getVM(t *testing.T, db *postgres.DB, id int64) *callrelay.Voicemail {
	t.Helper()
	vm, err := db.GetVoicemail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func TestRecordRecording_OK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Recorded a day before, in another zone: stored as the instant it is.
	startedAt := t0.Add(-24*time.Hour - 30*time.Second).In(time.FixedZone("CST", -6*3600))
	db, _, _ := newVoicemailDB(t, vmRouting)
	for i, tc := range []struct {
		name      string
		routing   string
		seconds   int
		startedAt *time.Time
		want      string // transcript_status
	}{
		{"pending", vmRouting, 30, nil, callrelay.TranscriptPending},
		{"pending at 3 s", vmRouting, 3, nil, callrelay.TranscriptPending},
		{"pending at 119 s", vmRouting, 119, &startedAt, callrelay.TranscriptPending},
		{"too short", vmRouting, 2, nil, callrelay.TranscriptTooShort},
		{"too short at 0 s", vmRouting, 0, nil, callrelay.TranscriptTooShort},
		{"too long", vmRouting, 120, nil, callrelay.TranscriptTooLong},
		{"off", strings.Replace(vmRouting, `"targets"`, `"voicemail":{"transcribe":false},"targets"`, 1), 30, nil, callrelay.TranscriptOff},
		{"language", strings.Replace(vmRouting, `"targets"`, `"language":"fr-FR","targets"`, 1), 30, &startedAt, callrelay.TranscriptLanguage},
	} {
		// One database, one number and call per case: cloning a database costs more than a case.
		number, callSid, recSid := fmt.Sprintf("+1555123100%d", i), fmt.Sprintf("CA%d", i), fmt.Sprintf("RE%d", i)
		if _, _, err := db.PutNumber(ctx, number, mustRouting(t, tc.routing)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: callSid, Number: number, From: vmCaller}); err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := vmRecording(callSid, recSid, tc.seconds)
			rec.StartedAt = tc.startedAt
			before := db.Now()
			vm, err := db.RecordRecording(ctx, rec, vmWait)
			if err != nil {
				t.Fatal(err)
			}
			if vm == nil {
				t.Fatal("voicemail = nil, want one for a completed recording")
			}
			wantRecorded := t0
			if tc.startedAt != nil {
				wantRecorded = tc.startedAt.UTC()
			}
			want := callrelay.Voicemail{
				ID: vm.ID, CallSid: callSid, Number: number, From: vmCaller, OwnerEmail: vmOwner,
				RecordingSid: recSid, RecordingURL: rec.RecordingURL, DurationSeconds: tc.seconds,
				RecordedAt: wantRecorded, TranscriptStatus: tc.want, CreatedAt: t0,
				Notification: callrelay.Notify{Status: callrelay.NotifyPending},
			}
			if vm.CallSid != want.CallSid || vm.Number != want.Number || vm.From != want.From ||
				vm.OwnerEmail != want.OwnerEmail || vm.RecordingSid != want.RecordingSid ||
				vm.RecordingURL != want.RecordingURL || vm.DurationSeconds != want.DurationSeconds ||
				!vm.RecordedAt.Equal(want.RecordedAt) || vm.RecordedAt.Location() != time.UTC ||
				vm.TranscriptStatus != want.TranscriptStatus || !vm.CreatedAt.Equal(want.CreatedAt) ||
				vm.Transcript != nil || vm.TranscribedAt != nil || vm.Notification != want.Notification {
				t.Errorf("got voicemail %+v,\nwant %+v", *vm, want)
			}
			if got := getVM(t, db, vm.ID); got.TranscriptStatus != tc.want || got.RecordingSid != recSid {
				t.Errorf("GetVoicemail = %+v, want the voicemail written", *got)
			}

			var jobs []riverJob
			for _, j := range riverJobs(t, db) {
				if j.VoicemailID == vm.ID {
					jobs = append(jobs, j)
				}
			}
			if len(jobs) != 1 {
				t.Fatalf("jobs of voicemail %d = %+v, want exactly one", vm.ID, jobs)
			}
			job := jobs[0]
			if tc.want == callrelay.TranscriptPending {
				if job.State != string(rivertype.JobStateScheduled) {
					t.Errorf("job state = %s, want scheduled: the email waits for the transcript", job.State)
				}
				assertDue(t, "job", job.ScheduledAt, before.Add(vmWait))
			} else {
				if job.State != string(rivertype.JobStateAvailable) {
					t.Errorf("job state = %s, want available: no transcript will come", job.State)
				}
				assertDue(t, "job", job.ScheduledAt, before)
			}
			if evs := callEvents(t, db, callSid, "recording"); len(evs) != 1 || evs[0].Outcome != "completed" {
				t.Errorf("recording events = %+v, want one completed", evs)
			}
		})
	}
}

func TestRecordRecording_Duplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	first := newVoicemail(t, db, "CA1", "RE1")
	job := oneJob(t, db)

	advance(time.Minute)
	second, err := db.RecordRecording(ctx, vmRecording("CA1", "RE1", 30), vmWait)
	if err != nil {
		t.Fatal(err)
	}
	if second == nil || second.ID != first.ID || !second.CreatedAt.Equal(t0) {
		t.Fatalf("repeated callback: voicemail %+v, want the first one (id %d, created %v)", second, first.ID, t0)
	}
	if got := oneJob(t, db); got != job {
		t.Errorf("job after a repeated callback = %+v, want unchanged %+v", got, job)
	}
	if n := countRows(t, db, `SELECT count(*) FROM voicemails`); n != 1 {
		t.Errorf("voicemails = %d, want 1", n)
	}
	if evs := callEvents(t, db, "CA1", "recording"); len(evs) != 1 {
		t.Errorf("recording events = %d, want 1", len(evs))
	}
}

func TestRecordRecording_NotAVoicemail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, vmRouting)
	for i, status := range []string{"absent", "failed"} {
		callSid, recSid := fmt.Sprintf("CA%d", i), fmt.Sprintf("RE%d", i)
		vmStartCall(t, db, callSid)
		t.Run(status, func(t *testing.T) {
			t.Parallel()
			rec := vmRecording(callSid, recSid, 0)
			rec.Status = status
			for range 2 { // repeated by Twilio
				vm, err := db.RecordRecording(ctx, rec, vmWait)
				if err != nil || vm != nil {
					t.Fatalf("RecordRecording = %+v, %v; want nil, nil", vm, err)
				}
			}
			if n := countRows(t, db, `SELECT count(*) FROM voicemails WHERE call_sid = $1`, callSid); n != 0 {
				t.Errorf("voicemails = %d, want 0", n)
			}
			if jobs := riverJobs(t, db); len(jobs) != 0 {
				t.Errorf("jobs = %+v, want none: no email", jobs)
			}
			evs := callEvents(t, db, callSid, "recording")
			if len(evs) != 1 || evs[0].Outcome != status || evs[0].Detail["recording_sid"] != recSid {
				t.Errorf("recording events = %+v, want one %s event for %s", evs, status, recSid)
			}
		})
	}
}

func TestRecordRecording_ErrNotFound(t *testing.T) {
	t.Parallel()
	db, _, _ := newVoicemailDB(t, vmRouting)
	_, err := db.RecordRecording(context.Background(), vmRecording("CA404", "RE1", 30), vmWait)
	if callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Fatalf("err = %v, want not_found", err)
	}
	for table, n := range map[string]int{
		"voicemails":  countRows(t, db, `SELECT count(*) FROM voicemails`),
		"call_events": countRows(t, db, `SELECT count(*) FROM call_events`),
		"river_job":   countRows(t, db, `SELECT count(*) FROM river_job`),
	} {
		if n != 0 {
			t.Errorf("%s rows = %d, want 0 for an unknown call", table, n)
		}
	}
}

func TestRecordTranscription_OK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		status, text string
		want         *string
	}{
		{callrelay.TranscriptCompleted, "Call me back.", ptr("Call me back.")},
		{callrelay.TranscriptCompleted, "", ptr("")},
		{callrelay.TranscriptFailed, "ignored", nil},
	} {
		t.Run(fmt.Sprintf("%s %q", tc.status, tc.text), func(t *testing.T) {
			t.Parallel()
			db, advance, spy := newVoicemailDB(t, vmRouting)
			vm := newVoicemail(t, db, "CA1", "RE1")
			if job := oneJob(t, db); job.State != string(rivertype.JobStateScheduled) {
				t.Fatalf("job state = %s before the transcript, want scheduled", job.State)
			}
			advance(20 * time.Second)
			before := db.Now()
			err := db.RecordTranscription(ctx, callrelay.Transcription{
				CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR1", Status: tc.status, Text: tc.text,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := getVM(t, db, vm.ID)
			wantAt := t0.Add(20 * time.Second)
			if got.TranscriptStatus != tc.status || !equalPtr(got.Transcript, tc.want) ||
				got.TranscribedAt == nil || !got.TranscribedAt.Equal(wantAt) {
				t.Errorf("voicemail transcript = %s %v at %v, want %s %v at %v",
					got.TranscriptStatus, deref(got.Transcript), got.TranscribedAt, tc.status, deref(tc.want), wantAt)
			}
			// The email is due now, not after the wait.
			job := oneJob(t, db)
			if job.State != string(rivertype.JobStateAvailable) || spy.retries.Load() != 1 {
				t.Errorf("job state = %s after %d JobRetryTx, want available after 1", job.State, spy.retries.Load())
			}
			assertDue(t, "job", job.ScheduledAt, before)
			if evs := callEvents(t, db, "CA1", "transcription"); len(evs) != 1 || evs[0].Outcome != tc.status {
				t.Errorf("transcription events = %+v, want one %s", evs, tc.status)
			}
		})
	}
}

func TestRecordTranscription_BeforeRecording(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		status string
		want   *string
	}{
		{callrelay.TranscriptCompleted, ptr("Early bird.")},
		{callrelay.TranscriptFailed, nil},
	} {
		t.Run(tc.status, func(t *testing.T) {
			t.Parallel()
			db, advance, _ := newVoicemailDB(t, vmRouting)
			vmStartCall(t, db, "CA1")
			tr := callrelay.Transcription{CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR1", Status: tc.status, Text: "Early bird."}
			if err := db.RecordTranscription(ctx, tr); err != nil {
				t.Fatal(err)
			}
			advance(time.Second)
			dup := tr
			dup.Text = "A different text"
			if err := db.RecordTranscription(ctx, dup); err != nil {
				t.Fatal(err)
			}
			if n := countRows(t, db, `SELECT count(*) FROM early_transcriptions WHERE recording_sid = 'RE1'`); n != 1 {
				t.Fatalf("early transcriptions = %d, want 1 kept for the recording", n)
			}
			if n := countRows(t, db, `SELECT count(*) FROM voicemails`); n != 0 {
				t.Fatalf("voicemails = %d before the recording-status, want 0", n)
			}

			advance(time.Second)
			before := db.Now()
			vm, err := db.RecordRecording(ctx, vmRecording("CA1", "RE1", 30), vmWait)
			if err != nil {
				t.Fatal(err)
			}
			got := getVM(t, db, vm.ID)
			if got.TranscriptStatus != tc.status || !equalPtr(got.Transcript, tc.want) ||
				got.TranscribedAt == nil || !got.TranscribedAt.Equal(t0) {
				t.Errorf("voicemail transcript = %s %v at %v, want the first early one: %s %v at %v",
					got.TranscriptStatus, deref(got.Transcript), got.TranscribedAt, tc.status, deref(tc.want), t0)
			}
			if vm.TranscriptStatus != tc.status {
				t.Errorf("RecordRecording returned transcript_status %s, want %s", vm.TranscriptStatus, tc.status)
			}
			job := oneJob(t, db)
			if job.State != string(rivertype.JobStateAvailable) {
				t.Errorf("job state = %s, want available: the transcript is there", job.State)
			}
			assertDue(t, "job", job.ScheduledAt, before)
			if n := countRows(t, db, `SELECT count(*) FROM early_transcriptions`); n != 0 {
				t.Errorf("early transcriptions = %d after the recording-status, want 0", n)
			}
			if evs := callEvents(t, db, "CA1", "transcription"); len(evs) != 1 {
				t.Errorf("transcription events = %d, want 1", len(evs))
			}
		})
	}
}

func TestRecordTranscription_Duplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, spy := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	tr := callrelay.Transcription{CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR1", Status: "completed", Text: "First."}
	if err := db.RecordTranscription(ctx, tr); err != nil {
		t.Fatal(err)
	}
	first := getVM(t, db, vm.ID)
	job := oneJob(t, db)

	advance(time.Minute)
	for _, dup := range []callrelay.Transcription{
		tr,
		{CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR2", Status: "completed", Text: "Second."},
		{CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR3", Status: "failed"},
	} {
		if err := db.RecordTranscription(ctx, dup); err != nil {
			t.Fatal(err)
		}
	}
	got := getVM(t, db, vm.ID)
	if got.TranscriptStatus != "completed" || deref(got.Transcript) != "First." || !got.TranscribedAt.Equal(*first.TranscribedAt) {
		t.Errorf("after duplicates: %s %q at %v, want the first transcript unchanged", got.TranscriptStatus, deref(got.Transcript), got.TranscribedAt)
	}
	if n := countRows(t, db, `SELECT count(*) FROM early_transcriptions`); n != 0 {
		t.Errorf("early transcriptions = %d, want 0: the voicemail exists", n)
	}
	if got := oneJob(t, db); got != job || spy.retries.Load() != 1 {
		t.Errorf("job = %+v after %d JobRetryTx, want unchanged %+v after 1", got, spy.retries.Load(), job)
	}
	if evs := callEvents(t, db, "CA1", "transcription"); len(evs) != 1 {
		t.Errorf("transcription events = %d, want 1", len(evs))
	}
}

// A transcript that comes after the email went (or failed for good) is stored and does not
// touch the email's job: River's JobRetryTx would make even a completed or cancelled job
// available again, so the store must not call it. After a sent email, it asks for the
// follow-up (a notify_transcript job, in the same transaction); after a failed one, nothing.
func TestRecordTranscription_AfterEmail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		sendErr  error
		final    bool
		notify   string
		jobState rivertype.JobState
		followUp string
	}{
		{"sent", nil, false, callrelay.NotifySent, rivertype.JobStateCompleted, callrelay.NotifyPending},
		{"failed", errors.New("550 no such user"), true, callrelay.NotifyFailed, rivertype.JobStateCancelled, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, advance, spy := newVoicemailDB(t, vmRouting)
			vm := newVoicemail(t, db, "CA1", "RE1")
			if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
				t.Fatal(err)
			}
			if err := db.FinishNotification(ctx, vm.ID, tc.sendErr, tc.final); err != nil {
				t.Fatal(err)
			}
			// What the worker leaves in River after this attempt.
			if _, err := db.Pool().Exec(ctx, `
				UPDATE river_job SET state = $1, attempt = 1, attempted_at = now(), finalized_at = now()
				WHERE kind = 'notify_voicemail'`, tc.jobState); err != nil {
				t.Fatal(err)
			}
			job := oneJob(t, db)

			advance(time.Hour)
			err := db.RecordTranscription(ctx, callrelay.Transcription{
				CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR1", Status: "completed", Text: "Too late.",
			})
			if err != nil {
				t.Fatal(err)
			}
			got := getVM(t, db, vm.ID)
			if got.TranscriptStatus != "completed" || deref(got.Transcript) != "Too late." {
				t.Errorf("transcript = %s %q, want the late one stored", got.TranscriptStatus, deref(got.Transcript))
			}
			if got.Notification.Status != tc.notify || got.Notification.Attempts != 1 {
				t.Errorf("notification = %+v, want %s after 1 attempt", got.Notification, tc.notify)
			}
			if n := spy.retries.Load(); n != 0 {
				t.Errorf("JobRetryTx called %d times, want 0: the email is done", n)
			}
			if got := oneJob(t, db); got != job {
				t.Errorf("job = %+v, want unchanged %+v", got, job)
			}
			if got.FollowUp != tc.followUp {
				t.Errorf("follow-up = %q, want %q", got.FollowUp, tc.followUp)
			}
			wantJobs := 0
			if tc.followUp != "" {
				wantJobs = 1
			}
			if n := countRows(t, db, `SELECT count(*) FROM river_job WHERE kind = 'notify_transcript' AND (args->>'voicemail_id')::bigint = `+fmt.Sprint(vm.ID)); n != wantJobs {
				t.Errorf("notify_transcript jobs = %d, want %d", n, wantJobs)
			}
			// A repeated callback asks for nothing more.
			if err := db.RecordTranscription(ctx, callrelay.Transcription{
				CallSid: "CA1", RecordingSid: "RE1", TranscriptionSid: "TR1", Status: "completed", Text: "Too late.",
			}); err != nil {
				t.Fatal(err)
			}
			if n := countRows(t, db, `SELECT count(*) FROM river_job WHERE kind = 'notify_transcript'`); n != wantJobs {
				t.Errorf("after a repeat: notify_transcript jobs = %d, want %d", n, wantJobs)
			}
		})
	}
}

func TestRecordTranscription_ErrInvalid(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	for _, status := range []string{"", "in-progress", "COMPLETED", "absent"} {
		err := db.RecordTranscription(ctx, callrelay.Transcription{CallSid: "CA1", RecordingSid: "RE1", Status: status, Text: "x"})
		if callrelay.ErrorCode(err) != callrelay.EINVALID {
			t.Errorf("status %q: err = %v, want invalid", status, err)
		}
	}
	if got := getVM(t, db, vm.ID); got.TranscriptStatus != callrelay.TranscriptPending || got.Transcript != nil {
		t.Errorf("voicemail after invalid transcriptions: %s %v, want pending without transcript", got.TranscriptStatus, deref(got.Transcript))
	}
	if evs := callEvents(t, db, "CA1", "transcription"); len(evs) != 0 {
		t.Errorf("transcription events = %d, want 0", len(evs))
	}
}

func TestClaimNotification_OK(t *testing.T) {
	t.Parallel()
	db, _, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	got, err := db.ClaimNotification(context.Background(), vm.ID, vmLease)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != vm.ID || got.Notification.Status != callrelay.NotifySending || got.Notification.Attempts != 1 {
		t.Errorf("claimed voicemail %d notification %+v, want %d sending after 1 attempt", got.ID, got.Notification, vm.ID)
	}
	if stored := getVM(t, db, vm.ID); stored.Notification != got.Notification {
		t.Errorf("stored notification %+v, want %+v", stored.Notification, got.Notification)
	}
}

func TestClaimNotification_LeaseExpired(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
		t.Fatal(err)
	}
	advance(vmLease + time.Second) // the first worker died mid-send
	got, err := db.ClaimNotification(ctx, vm.ID, vmLease)
	if err != nil {
		t.Fatalf("claim after the lease: %v, want it taken over", err)
	}
	if got.Notification.Status != callrelay.NotifySending || got.Notification.Attempts != 2 {
		t.Errorf("notification = %+v, want sending after 2 attempts", got.Notification)
	}
	// The new claim has its own lease.
	advance(vmLease - time.Second)
	if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("claim within the new lease: err = %v, want conflict", err)
	}
}

func TestClaimNotification_AfterRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishNotification(ctx, vm.ID, errors.New("connection refused"), false); err != nil {
		t.Fatal(err)
	}
	advance(30 * time.Second) // the backoff, well within the lease
	got, err := db.ClaimNotification(ctx, vm.ID, vmLease)
	if err != nil {
		t.Fatalf("claim after a failed attempt: %v, want it claimed", err)
	}
	if got.Notification.Attempts != 2 || got.Notification.Status != callrelay.NotifySending {
		t.Errorf("notification = %+v, want sending after 2 attempts", got.Notification)
	}
}

func TestClaimNotification_ErrConflict(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		finish  func(db *postgres.DB, id int64) error // nil: the first claim is still running
		advance time.Duration
		status  string
	}{
		{"leased", nil, vmLease - time.Second, callrelay.NotifySending},
		{"sent", func(db *postgres.DB, id int64) error { return db.FinishNotification(ctx, id, nil, false) }, 48 * time.Hour, callrelay.NotifySent},
		{"failed", func(db *postgres.DB, id int64) error {
			return db.FinishNotification(ctx, id, errors.New("550 no such user"), true)
		}, 48 * time.Hour, callrelay.NotifyFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, advance, _ := newVoicemailDB(t, vmRouting)
			vm := newVoicemail(t, db, "CA1", "RE1")
			if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
				t.Fatal(err)
			}
			if tc.finish != nil {
				if err := tc.finish(db, vm.ID); err != nil {
					t.Fatal(err)
				}
			}
			advance(tc.advance)
			_, err := db.ClaimNotification(ctx, vm.ID, vmLease)
			if callrelay.ErrorCode(err) != callrelay.ECONFLICT {
				t.Fatalf("second claim: err = %v, want conflict", err)
			}
			got := getVM(t, db, vm.ID)
			if got.Notification.Status != tc.status || got.Notification.Attempts != 1 {
				t.Errorf("notification = %+v, want %s after 1 attempt", got.Notification, tc.status)
			}
		})
	}
}

func TestClaimNotification_ErrNotFound(t *testing.T) {
	t.Parallel()
	db, _, _ := newVoicemailDB(t, vmRouting)
	if _, err := db.ClaimNotification(context.Background(), 99, vmLease); callrelay.ErrorCode(err) != callrelay.ENOTFOUND {
		t.Errorf("err = %v, want not_found", err)
	}
}

func TestFinishNotification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		sendErr error
		final   bool
		status  string
		outcome string
	}{
		{"sent", nil, false, callrelay.NotifySent, "sent"},
		{"sent even if final", nil, true, callrelay.NotifySent, "sent"},
		{"retry", errors.New("dial tcp: connection refused"), false, callrelay.NotifyPending, "retry"},
		{"failed", errors.New("550 5.1.1 no such user"), true, callrelay.NotifyFailed, "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, advance, _ := newVoicemailDB(t, vmRouting)
			vm := newVoicemail(t, db, "CA1", "RE1")
			if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
				t.Fatal(err)
			}
			advance(3 * time.Second)
			if err := db.FinishNotification(ctx, vm.ID, tc.sendErr, tc.final); err != nil {
				t.Fatal(err)
			}
			got := getVM(t, db, vm.ID).Notification
			if got.Status != tc.status || got.Attempts != 1 {
				t.Errorf("notification = %+v, want %s after 1 attempt", got, tc.status)
			}
			at := t0.Add(3 * time.Second)
			if tc.sendErr == nil {
				if got.LastError != nil || got.SentAt == nil || !got.SentAt.Equal(at) {
					t.Errorf("sent notification: last_error %v, sent_at %v; want none, %v", deref(got.LastError), got.SentAt, at)
				}
			} else if deref(got.LastError) != tc.sendErr.Error() || got.SentAt != nil {
				t.Errorf("failed notification: last_error %q, sent_at %v; want %q, none", deref(got.LastError), got.SentAt, tc.sendErr)
			}

			evs := callEvents(t, db, "CA1", "voicemail-email")
			if len(evs) != 1 {
				t.Fatalf("voicemail-email events = %+v, want 1", evs)
			}
			e := evs[0]
			if e.Outcome != tc.outcome || !e.At.Equal(at) || e.Detail["to"] != vmOwner ||
				e.Detail["attempt"] != float64(1) || e.Detail["voicemail_id"] != float64(vm.ID) {
				t.Errorf("event = %+v, want %s at %v to %s, attempt 1", e, tc.outcome, at, vmOwner)
			}
			if _, hasErr := e.Detail["error"]; hasErr != (tc.sendErr != nil) {
				t.Errorf("event detail %v: error present = %v, want %v", e.Detail, hasErr, tc.sendErr != nil)
			}
		})
	}
}

// Each attempt is on the timeline: retry, retry, sent.
func TestFinishNotification_EveryAttempt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	vm := newVoicemail(t, db, "CA1", "RE1")
	for i, sendErr := range []error{errors.New("down"), errors.New("still down"), nil} {
		if _, err := db.ClaimNotification(ctx, vm.ID, vmLease); err != nil {
			t.Fatalf("claim %d: %v", i+1, err)
		}
		if err := db.FinishNotification(ctx, vm.ID, sendErr, false); err != nil {
			t.Fatal(err)
		}
		advance(time.Minute)
	}
	var got []string
	for _, e := range callEvents(t, db, "CA1", "voicemail-email") {
		got = append(got, fmt.Sprintf("%s#%v", e.Outcome, e.Detail["attempt"]))
	}
	if want := []string{"retry#1", "retry#2", "sent#3"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("voicemail-email events = %v, want %v", got, want)
	}
	if n := getVM(t, db, vm.ID).Notification; n.Status != callrelay.NotifySent || n.Attempts != 3 {
		t.Errorf("notification = %+v, want sent after 3 attempts", n)
	}
}

func TestFinishNotification_ErrUnknown(t *testing.T) {
	t.Parallel()
	db, _, _ := newVoicemailDB(t, vmRouting)
	if err := db.FinishNotification(context.Background(), 99, nil, false); err == nil {
		t.Error("FinishNotification of an unknown voicemail: nil error, want one")
	}
}

func TestListVoicemails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, advance, _ := newVoicemailDB(t, vmRouting)
	const other = "+15551230001"
	if _, _, err := db.PutNumber(ctx, other, mustRouting(t, vmRouting)); err != nil {
		t.Fatal(err)
	}
	// On vmNumber: CA1 (t0), CA2 (t0+1m), CA3 and CA4 both at t0+2m (ties go by id); on other: CA9.
	for i, sid := range []string{"CA1", "CA2", "CA3", "CA4"} {
		newVoicemail(t, db, sid, "RE"+sid[2:])
		if i < 2 {
			advance(time.Minute)
		}
	}
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA9", Number: other, From: vmCaller}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RecordRecording(ctx, vmRecording("CA9", "RE9", 30), vmWait); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		f    callrelay.VoicemailFilter
		want []string
	}{
		{"number", callrelay.VoicemailFilter{Number: vmNumber}, []string{"CA4", "CA3", "CA2", "CA1"}},
		{"number and limit", callrelay.VoicemailFilter{Number: vmNumber, Limit: 2}, []string{"CA4", "CA3"}},
		{"other number", callrelay.VoicemailFilter{Number: other}, []string{"CA9"}},
		{"all", callrelay.VoicemailFilter{}, []string{"CA9", "CA4", "CA3", "CA2", "CA1"}},
		{"all, limit 1", callrelay.VoicemailFilter{Limit: 1}, []string{"CA9"}},
		{"limit above max", callrelay.VoicemailFilter{Limit: postgres.MaxListLimit + 1}, []string{"CA9", "CA4", "CA3", "CA2", "CA1"}},
		{"unknown number", callrelay.VoicemailFilter{Number: "+15550000000"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			vms, err := db.ListVoicemails(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, vm := range vms {
				got = append(got, vm.CallSid)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("ListVoicemails(%+v) = %v, want %v", tc.f, got, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func equalPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// River's client must keep satisfying the store's Jobs interface.
var _ postgres.Jobs = (*river.Client[pgx.Tx])(nil)

// A transcription racing its recording-status (two replicas, or Twilio's retries) is not
// lost: whichever commits first, the voicemail ends with the transcript.
func TestRecordTranscription_ConcurrentWithRecording(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _, _ := newVoicemailDB(t, vmRouting)
	const n = 30
	for i := range n {
		vmStartCall(t, db, fmt.Sprintf("CA%d", i))
	}
	errs := make(chan error, 2*n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		callSid, recSid := fmt.Sprintf("CA%d", i), fmt.Sprintf("RE%d", i)
		wg.Go(func() {
			<-start
			_, err := db.RecordRecording(ctx, vmRecording(callSid, recSid, 30), vmWait)
			errs <- err
		})
		wg.Go(func() {
			<-start
			errs <- db.RecordTranscription(ctx, callrelay.Transcription{
				CallSid: callSid, RecordingSid: recSid, TranscriptionSid: "TR" + recSid[2:], Status: "completed", Text: "Hello.",
			})
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	vms, err := db.ListVoicemails(ctx, callrelay.VoicemailFilter{})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, vm := range vms {
		if vm.TranscriptStatus != callrelay.TranscriptCompleted {
			lost++
		}
	}
	if len(vms) != n || lost != 0 {
		t.Errorf("voicemails = %d, %d of them without their transcript; want %d, none", len(vms), lost, n)
	}
	if left := countRows(t, db, `SELECT count(*) FROM early_transcriptions`); left != 0 {
		t.Errorf("early transcriptions left over = %d, want 0", left)
	}
}
