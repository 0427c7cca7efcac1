package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Jobs enqueues background work in the caller's transaction, so that a job exists exactly when
// the change that asked for it commits. River's client implements it.
type Jobs interface {
	InsertTx(ctx context.Context, tx pgx.Tx, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	JobRetryTx(ctx context.Context, tx pgx.Tx, id int64) (*rivertype.JobRow, error)
}

// notifyMaxAttempts is high on purpose: the worker gives up by age (about a day), not by count.
const notifyMaxAttempts = 200

// RecordRecording applies a recording-status callback. A completed recording becomes a
// voicemail and, in the same transaction, a job to email it: at once when no transcript will
// come (or one already came), else after transcriptWait. Absent and failed recordings are kept
// on the call's timeline only. A repeated callback changes nothing and returns the voicemail
// written the first time; nil for a recording that is not a voicemail.
func (db *DB) RecordRecording(ctx context.Context, rec callrelay.Recording, transcriptWait time.Duration) (*callrelay.Voicemail, error) {
	if db.opts.Jobs == nil {
		return nil, errors.New("record recording: no job queue configured")
	}
	var vm *callrelay.Voicemail
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var err error
		vm, err = db.recordRecording(ctx, tx, rec, transcriptWait)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record recording %s of %s: %w", rec.RecordingSid, rec.CallSid, err)
	}
	return vm, nil
}

func (db *DB) recordRecording(ctx context.Context, tx pgx.Tx, rec callrelay.Recording, transcriptWait time.Duration) (*callrelay.Voicemail, error) {
	now := db.now()
	if err := lockRecording(ctx, tx, rec.RecordingSid); err != nil {
		return nil, err
	}
	var number, from string
	var callerName *string
	var routingJSON []byte
	err := tx.QueryRow(ctx, `SELECT number, from_number, caller_name, routing FROM calls WHERE call_sid = $1`, rec.CallSid).
		Scan(&number, &from, &callerName, &routingJSON)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Call %s is unknown.", rec.CallSid)
	} else if err != nil {
		return nil, err
	}
	var routing callrelay.Routing
	if err := json.Unmarshal(routingJSON, &routing); err != nil {
		return nil, err
	}
	detail := map[string]any{"recording_sid": rec.RecordingSid, "duration_seconds": rec.DurationSeconds}
	if err := insertEvent(ctx, tx, rec.CallSid, now, "recording", "caller", "twilio", rec.Status, detail, "recording:"+rec.RecordingSid); err != nil {
		return nil, err
	}
	if rec.Status != "completed" {
		return nil, nil
	}

	recordedAt := now
	if rec.StartedAt != nil {
		recordedAt = rec.StartedAt.UTC()
	}
	expect := callrelay.TranscriptExpectation(routing, rec.DurationSeconds)
	var id int64
	err = tx.QueryRow(ctx, `
		INSERT INTO voicemails (call_sid, recording_sid, recording_url, number, from_number, owner_email,
			duration_seconds, recorded_at, transcript_status, created_at, updated_at, caller_name, time_zone)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12)
		ON CONFLICT (recording_sid) DO NOTHING
		RETURNING id`,
		rec.CallSid, rec.RecordingSid, rec.RecordingURL, number, from, routing.OwnerEmail,
		rec.DurationSeconds, recordedAt, expect, now, callerName, routing.TimeZone).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return getVoicemail(ctx, tx, `recording_sid = $1`, rec.RecordingSid) // a repeated callback
	} else if err != nil {
		return nil, err
	}

	// A transcription that overtook its recording-status is applied now.
	tag, err := tx.Exec(ctx, `
		WITH early AS (
			DELETE FROM early_transcriptions WHERE recording_sid = $1
			RETURNING status, transcript, transcription_sid, received_at
		)
		UPDATE voicemails v SET transcript_status = early.status, transcript = early.transcript,
			transcription_sid = early.transcription_sid, transcribed_at = early.received_at
		FROM early WHERE v.id = $2`, rec.RecordingSid, id)
	if err != nil {
		return nil, err
	}
	// The zero time means now. The queue runs on the same clock as the store (see
	// voicemail.QueueOptions.Now).
	var sendAt time.Time
	if tag.RowsAffected() == 0 && expect == callrelay.TranscriptPending {
		sendAt = now.Add(transcriptWait)
	}
	res, err := db.opts.Jobs.InsertTx(ctx, tx, callrelay.NotifyVoicemail{VoicemailID: id}, &river.InsertOpts{
		ScheduledAt: sendAt,
		MaxAttempts: notifyMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue email: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE voicemails SET job_id = $1 WHERE id = $2`, res.Job.ID, id); err != nil {
		return nil, err
	}
	if err := db.emitVoicemailEvents(ctx, tx, rec.RecordingSid, tag.RowsAffected() > 0); err != nil {
		return nil, err
	}
	if err := db.enqueueCopy(ctx, tx, id); err != nil {
		return nil, err
	}
	return getVoicemail(ctx, tx, `id = $1`, id)
}

// recordingLock is the advisory-lock namespace of lockRecording.
const recordingLock = 7272741

// lockRecording serialises, until tx ends, the transactions that touch one recording's
// voicemail and early transcription. Without it a transcription racing its recording-status
// sees no voicemail yet and parks itself in early_transcriptions, while the recording-status,
// not seeing that uncommitted row, never applies it: the transcript is lost.
func lockRecording(ctx context.Context, tx pgx.Tx, recordingSid string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, recordingLock, recordingSid)
	return err
}

// RecordTranscription stores a transcript (or its failure) on its voicemail and, if the email
// has not gone yet, makes it due now. A transcription that arrives before its recording-status
// is kept until the voicemail exists. A transcript that arrives once the email is being sent,
// or has gone, is also emailed on its own: the follow-up job is written in this transaction.
func (db *DB) RecordTranscription(ctx context.Context, t callrelay.Transcription) error {
	if t.Status != callrelay.TranscriptCompleted && t.Status != callrelay.TranscriptFailed {
		return callrelay.Invalidf("TranscriptionStatus", "TranscriptionStatus %q is not completed or failed.", t.Status)
	}
	var text *string
	if t.Status == callrelay.TranscriptCompleted {
		text = &t.Text
	}
	now := db.now()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := lockRecording(ctx, tx, t.RecordingSid); err != nil {
			return err
		}
		detail := map[string]any{"recording_sid": t.RecordingSid}
		if _, err := tx.Exec(ctx, `
			INSERT INTO call_events (call_sid, at, type, party, by, outcome, detail, dedupe_key)
			SELECT call_sid, $2, 'transcription', 'caller', 'twilio', $3, $4, 'transcription:' || $5
			FROM calls WHERE call_sid = $1
			ON CONFLICT (call_sid, dedupe_key) DO NOTHING`,
			t.CallSid, now, t.Status, detail, t.RecordingSid); err != nil {
			return err
		}
		var jobID *int64
		var id int64
		var notify string
		err := tx.QueryRow(ctx, `
			UPDATE voicemails SET transcript_status = $2, transcript = $3, transcription_sid = $4,
				transcribed_at = $5, updated_at = $5
			WHERE recording_sid = $1 AND transcript_status NOT IN ('completed', 'failed') AND expired_at IS NULL
			RETURNING id, job_id, notify_status`,
			t.RecordingSid, t.Status, text, t.TranscriptionSid, now).Scan(&id, &jobID, &notify)
		if errors.Is(err, pgx.ErrNoRows) {
			// Either a duplicate, or the recording-status has not come yet: keep it for then.
			_, err = tx.Exec(ctx, `
				INSERT INTO early_transcriptions (recording_sid, call_sid, status, transcript, transcription_sid, received_at)
				SELECT $1, $2, $3, $4, $5, $6
				WHERE NOT EXISTS (SELECT 1 FROM voicemails WHERE recording_sid = $1)
				ON CONFLICT (recording_sid) DO NOTHING`,
				t.RecordingSid, t.CallSid, t.Status, text, t.TranscriptionSid, now)
			return err
		} else if err != nil {
			return err
		}
		if t.Status == callrelay.TranscriptCompleted {
			if err := db.emitVoicemailEvent(ctx, tx, callrelay.EventVoicemailTranscribed, t.RecordingSid); err != nil {
				return err
			}
		}
		if notify == callrelay.NotifyPending && jobID != nil {
			if _, err := db.opts.Jobs.JobRetryTx(ctx, tx, *jobID); err != nil && !errors.Is(err, river.ErrNotFound) {
				return fmt.Errorf("make email due: %w", err)
			}
		}
		// Once claimed, the email is composed from the row the claim read (the row lock orders
		// the claim and this update): a transcript stored after that is not in it. Whether a
		// follow-up is still needed when the email is finally sent is the job's to decide.
		if (notify == callrelay.NotifySending || notify == callrelay.NotifySent) && hasWords(text) {
			if _, err := tx.Exec(ctx, `UPDATE voicemails SET followup_status = 'pending' WHERE id = $1 AND followup_status IS NULL`, id); err != nil {
				return err
			}
			if _, err := db.opts.Jobs.InsertTx(ctx, tx, callrelay.NotifyTranscript{VoicemailID: id}, &river.InsertOpts{
				MaxAttempts: notifyMaxAttempts,
				UniqueOpts:  river.UniqueOpts{ByArgs: true},
			}); err != nil {
				return fmt.Errorf("enqueue transcript email: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record transcription of %s: %w", t.RecordingSid, err)
	}
	return nil
}

// hasWords reports whether a transcript says anything: the email shows no empty transcript.
func hasWords(text *string) bool {
	return text != nil && strings.TrimSpace(*text) != ""
}

// withTranscriptSQL is hasWords in SQL, over a voicemail's columns.
const withTranscriptSQL = `(transcript_status = 'completed' AND coalesce(btrim(transcript, E' \t\r\n\f\v'), '') <> '')`

// ClaimNotification claims a voicemail's email for one sender and returns the voicemail as
// claimed: the email is composed from this row, and the claim records whether it carries the
// transcript. It answers ECONFLICT when the email was sent, has failed for good, or is being
// sent by another worker whose claim is younger than lease (a claim older than that is taken
// over: its worker died mid-send).
func (db *DB) ClaimNotification(ctx context.Context, id int64, lease time.Duration) (*callrelay.Voicemail, error) {
	now := db.now()
	rows, err := db.pool.Query(ctx, `
		WITH claimed AS (
			UPDATE voicemails SET notify_status = 'sending', notify_claimed_at = $2,
				notify_attempts = notify_attempts + 1, updated_at = $2,
				notify_with_transcript = `+withTranscriptSQL+`
			WHERE id = $1 AND (notify_status = 'pending' OR (notify_status = 'sending' AND notify_claimed_at < $3))
			RETURNING *
		)
		SELECT `+voicemailColumns+` FROM claimed`, id, now, now.Add(-lease))
	if err != nil {
		return nil, fmt.Errorf("claim voicemail %d: %w", id, err)
	}
	vm, err := pgx.CollectExactlyOneRow(rows, scanVoicemail)
	if errors.Is(err, pgx.ErrNoRows) {
		vm, err := db.GetVoicemail(ctx, id)
		if err != nil {
			return nil, err
		}
		return nil, callrelay.Errorf(callrelay.ECONFLICT, "Voicemail %d email is %s.", id, vm.Notification.Status)
	} else if err != nil {
		return nil, fmt.Errorf("claim voicemail %d: %w", id, err)
	}
	return vm, nil
}

// ClaimFollowUp claims the email that brings a voicemail's late transcript, like
// ClaimNotification. A follow-up that is no longer needed — the voicemail's email carried the
// transcript after all (a retry composed after it arrived), or failed for good — is marked
// skipped. ECONFLICT: nothing to send now; the voicemail says whether to look again later (its
// FollowUp still pending or sending).
func (db *DB) ClaimFollowUp(ctx context.Context, id int64, lease time.Duration) (*callrelay.Voicemail, error) {
	now := db.now()
	if _, err := db.pool.Exec(ctx, `
		UPDATE voicemails SET followup_status = 'skipped', updated_at = $2
		WHERE id = $1 AND followup_status = 'pending'
			AND (notify_status = 'failed' OR (notify_status = 'sent' AND notify_with_transcript))`, id, now); err != nil {
		return nil, fmt.Errorf("claim voicemail %d follow-up: %w", id, err)
	}
	rows, err := db.pool.Query(ctx, `
		WITH claimed AS (
			UPDATE voicemails SET followup_status = 'sending', followup_claimed_at = $2,
				followup_attempts = followup_attempts + 1, updated_at = $2
			WHERE id = $1 AND notify_status = 'sent' AND NOT notify_with_transcript
				AND (followup_status = 'pending' OR (followup_status = 'sending' AND followup_claimed_at < $3))
			RETURNING *
		)
		SELECT `+voicemailColumns+` FROM claimed`, id, now, now.Add(-lease))
	if err != nil {
		return nil, fmt.Errorf("claim voicemail %d follow-up: %w", id, err)
	}
	vm, err := pgx.CollectExactlyOneRow(rows, scanVoicemail)
	if errors.Is(err, pgx.ErrNoRows) {
		cur, err := db.GetVoicemail(ctx, id)
		if err != nil {
			return nil, err
		}
		return cur, callrelay.Errorf(callrelay.ECONFLICT, "Voicemail %d follow-up is %s (its email is %s).", id, cmp.Or(cur.FollowUp, "not asked"), cur.Notification.Status)
	} else if err != nil {
		return nil, fmt.Errorf("claim voicemail %d follow-up: %w", id, err)
	}
	return vm, nil
}

// sendOutcome is what an email's send did to its state: sent, or back to pending for the next
// try ("retry"), or failed for good when final; with the error's text.
func sendOutcome(sendErr error, final bool) (status, outcome string, lastErr *string) {
	if sendErr == nil {
		return callrelay.NotifySent, "sent", nil
	}
	msg := sendErr.Error()
	if final {
		return callrelay.NotifyFailed, "failed", &msg
	}
	return callrelay.NotifyPending, "retry", &msg
}

// FinishFollowUp records the outcome of a follow-up send, like FinishNotification; each
// attempt is a transcript-email entry on the call's timeline.
func (db *DB) FinishFollowUp(ctx context.Context, id int64, sendErr error, final bool) error {
	if err := db.finishVoicemailSend(ctx, finishFollowUpSQL, "transcript-email", id, sendErr, final); err != nil {
		return fmt.Errorf("finish voicemail %d follow-up: %w", id, err)
	}
	return nil
}

// FinishNotification records the outcome of a send: sent, or failed with sendErr — for good
// when final, else back to pending for the next try. Each attempt is on the call's timeline.
func (db *DB) FinishNotification(ctx context.Context, id int64, sendErr error, final bool) error {
	if err := db.finishVoicemailSend(ctx, finishNotificationSQL, "voicemail-email", id, sendErr, final); err != nil {
		return fmt.Errorf("finish voicemail %d email: %w", id, err)
	}
	return nil
}

// The two emails of a voicemail keep their states in columns of their own: each statement
// records an attempt's outcome ($2 status, $3 last error, $4 now) and returns what its timeline
// entry names.
const (
	finishNotificationSQL = `
		UPDATE voicemails SET notify_status = $2, notify_last_error = $3,
			notified_at = CASE WHEN $2 = 'sent' THEN $4 ELSE notified_at END, updated_at = $4
		WHERE id = $1 RETURNING call_sid, owner_email, notify_attempts`
	finishFollowUpSQL = `
		UPDATE voicemails SET followup_status = $2, followup_last_error = $3,
			followup_sent_at = CASE WHEN $2 = 'sent' THEN $4 ELSE followup_sent_at END, updated_at = $4
		WHERE id = $1 RETURNING call_sid, owner_email, followup_attempts`
)

// finishVoicemailSend records one send attempt of voicemail id's email with update (one of
// the statements above) and its entry, of type event, on the call's timeline.
func (db *DB) finishVoicemailSend(ctx context.Context, update, event string, id int64, sendErr error, final bool) error {
	now := db.now()
	status, outcome, lastErr := sendOutcome(sendErr, final)
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid, owner string
		var attempts int
		if err := tx.QueryRow(ctx, update, id, status, lastErr, now).Scan(&callSid, &owner, &attempts); err != nil {
			return err
		}
		detail := map[string]any{"voicemail_id": id, "to": owner, "attempt": attempts}
		if lastErr != nil {
			detail["error"] = *lastErr
		}
		return insertEvent(ctx, tx, callSid, now, event, "", "callrelay", outcome, detail, "")
	})
}

// GetVoicemail returns a voicemail, or ENOTFOUND.
func (db *DB) GetVoicemail(ctx context.Context, id int64) (*callrelay.Voicemail, error) {
	return getVoicemail(ctx, db.pool, `id = $1`, id)
}

// ListVoicemails returns the newest voicemails first, of one number or all.
func (db *DB) ListVoicemails(ctx context.Context, f callrelay.VoicemailFilter) ([]*callrelay.Voicemail, error) {
	rows, err := db.pool.Query(ctx, voicemailSelect+`
		WHERE ($1 = '' OR number = $1) ORDER BY created_at DESC, id DESC LIMIT $2`, f.Number, listLimit(f.Limit))
	if err != nil {
		return nil, fmt.Errorf("list voicemails: %w", err)
	}
	vms, err := pgx.CollectRows(rows, scanVoicemail)
	if err != nil {
		return nil, fmt.Errorf("list voicemails: %w", err)
	}
	return vms, nil
}

// voicemailColumns are what scanVoicemail reads.
const voicemailColumns = `id, call_sid, number, from_number, owner_email, recording_sid, recording_url, duration_seconds,
		recorded_at, transcript_status, transcript, transcribed_at, notify_status, notify_attempts,
		notify_last_error, notified_at, created_at, caller_name, time_zone, coalesce(followup_status, '')`

const voicemailSelect = `SELECT ` + voicemailColumns + ` FROM voicemails`

// querier is what both a pool and a transaction can do.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func getVoicemail(ctx context.Context, q querier, where string, arg any) (*callrelay.Voicemail, error) {
	rows, err := q.Query(ctx, voicemailSelect+` WHERE `+where, arg)
	if err != nil {
		return nil, fmt.Errorf("get voicemail %v: %w", arg, err)
	}
	vm, err := pgx.CollectExactlyOneRow(rows, scanVoicemail)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %v is unknown.", arg)
	} else if err != nil {
		return nil, fmt.Errorf("get voicemail %v: %w", arg, err)
	}
	return vm, nil
}

func scanVoicemail(row pgx.CollectableRow) (*callrelay.Voicemail, error) {
	var v callrelay.Voicemail
	err := row.Scan(voicemailDest(&v)...)
	voicemailUTC(&v)
	return &v, err
}

// voicemailDest is where voicemailColumns scan to, in their order.
func voicemailDest(v *callrelay.Voicemail) []any {
	return []any{&v.ID, &v.CallSid, &v.Number, &v.From, &v.OwnerEmail, &v.RecordingSid, &v.RecordingURL,
		&v.DurationSeconds, &v.RecordedAt, &v.TranscriptStatus, &v.Transcript, &v.TranscribedAt,
		&v.Notification.Status, &v.Notification.Attempts, &v.Notification.LastError, &v.Notification.SentAt,
		&v.CreatedAt, &v.CallerName, &v.TimeZone, &v.FollowUp}
}

// voicemailUTC puts a scanned voicemail's times in UTC.
func voicemailUTC(v *callrelay.Voicemail) {
	v.RecordedAt, v.CreatedAt = v.RecordedAt.UTC(), v.CreatedAt.UTC()
	v.TranscribedAt, v.Notification.SentAt = utc(v.TranscribedAt), utc(v.Notification.SentAt)
}
