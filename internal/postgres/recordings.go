package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// Recordings (issue 19): callrelay's own copy of each voicemail's audio, the deletion of
// Twilio's copy once ours is verified, and retention. The jobs that do the work are in
// internal/recordings; this is their state, on the voicemail row and the call's timeline.

// recordingMaxAttempts: the copy and purge jobs retry for days (backoff capped at an hour) —
// a store or Twilio outage delays them, and Twilio's copy stays until ours is verified.
const recordingMaxAttempts = 200

// enqueueCopy adds, in the voicemail's own transaction, the job that copies its recording.
func (db *DB) enqueueCopy(ctx context.Context, tx pgx.Tx, id int64) error {
	if !db.CopyRecordings {
		return nil
	}
	_, err := db.Jobs.InsertTx(ctx, tx, callrelay.CopyRecording{VoicemailID: id}, &river.InsertOpts{
		MaxAttempts: recordingMaxAttempts,
		UniqueOpts:  river.UniqueOpts{ByArgs: true},
	})
	if err != nil {
		return fmt.Errorf("enqueue recording copy: %w", err)
	}
	return nil
}

// RecordingTask returns a voicemail's recording state, or ENOTFOUND.
func (db *DB) RecordingTask(ctx context.Context, id int64) (*callrelay.RecordingTask, error) {
	var t callrelay.RecordingTask
	var routingJSON []byte
	var key, contentType, sha *string
	var size *int64
	var copiedAt *time.Time
	err := db.pool.QueryRow(ctx, `
		SELECT v.id, v.call_sid, v.recording_sid, v.recording_url, c.routing,
			v.audio_key, v.audio_content_type, v.audio_size, v.audio_sha256, v.copied_at,
			v.twilio_deleted_at, v.expired_at, v.purged_at
		FROM voicemails v JOIN calls c USING (call_sid) WHERE v.id = $1`, id).
		Scan(&t.VoicemailID, &t.CallSid, &t.RecordingSid, &t.RecordingURL, &routingJSON,
			&key, &contentType, &size, &sha, &copiedAt, &t.Audio.TwilioDeletedAt, &t.Audio.ExpiredAt, &t.PurgedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %d is unknown.", id)
	} else if err != nil {
		return nil, fmt.Errorf("recording of voicemail %d: %w", id, err)
	}
	var routing callrelay.Routing
	if err := json.Unmarshal(routingJSON, &routing); err != nil {
		return nil, fmt.Errorf("recording of voicemail %d: routing: %w", id, err)
	}
	t.Format, t.DeleteAtTwilio = routing.Voicemail.RecordingFormat(), routing.Voicemail.DeletesAtTwilio()
	if key != nil && copiedAt != nil {
		t.Audio.Copy = &callrelay.AudioCopy{Key: *key, ContentType: deref(contentType), Size: derefInt(size),
			SHA256: deref(sha), CopiedAt: copiedAt.UTC()}
	}
	t.Audio.TwilioDeletedAt, t.Audio.ExpiredAt, t.PurgedAt = utc(t.Audio.TwilioDeletedAt), utc(t.Audio.ExpiredAt), utc(t.PurgedAt)
	return &t, nil
}

// AudioState returns a voicemail's audio state, or ENOTFOUND.
func (db *DB) AudioState(ctx context.Context, id int64) (callrelay.StoredAudio, error) {
	t, err := db.RecordingTask(ctx, id)
	if err != nil {
		return callrelay.StoredAudio{}, err
	}
	return t.Audio, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefInt(n *int64) int64 {
	if n == nil {
		return 0
	}
	return *n
}

// SaveAudioCopy records a verified copy, and says so on the call's timeline. A voicemail that
// expired meanwhile answers ECONFLICT: the caller deletes the copy it just made.
func (db *DB) SaveAudioCopy(ctx context.Context, id int64, c callrelay.AudioCopy) error {
	now := db.now()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid, recordingSid string
		err := tx.QueryRow(ctx, `
			UPDATE voicemails SET audio_key = $2, audio_content_type = $3, audio_size = $4, audio_sha256 = $5,
				copied_at = $6, updated_at = $6
			WHERE id = $1 AND expired_at IS NULL
			RETURNING call_sid, recording_sid`,
			id, c.Key, c.ContentType, c.Size, c.SHA256, now).Scan(&callSid, &recordingSid)
		if errors.Is(err, pgx.ErrNoRows) {
			return callrelay.Errorf(callrelay.ECONFLICT, "Voicemail %d is gone or expired.", id)
		} else if err != nil {
			return err
		}
		detail := map[string]any{"recording_sid": recordingSid, "voicemail_id": id, "size": c.Size,
			"sha256": c.SHA256, "content_type": c.ContentType}
		return insertEvent(ctx, tx, callSid, now, "recording-copy", "", "callrelay", "copied", detail, "recording-copy:"+recordingSid)
	})
	if err != nil {
		return fmt.Errorf("save copy of voicemail %d: %w", id, err)
	}
	return nil
}

// MarkTwilioDeleted records that Twilio's copy is gone: deleted now, or found already gone
// (Twilio answered 404).
func (db *DB) MarkTwilioDeleted(ctx context.Context, id int64, alreadyGone bool) error {
	now := db.now()
	outcome := "deleted"
	if alreadyGone {
		outcome = "already-gone"
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid, recordingSid string
		err := tx.QueryRow(ctx, `
			UPDATE voicemails SET twilio_deleted_at = $2, updated_at = $2
			WHERE id = $1 AND twilio_deleted_at IS NULL
			RETURNING call_sid, recording_sid`, id, now).Scan(&callSid, &recordingSid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // marked already
		} else if err != nil {
			return err
		}
		detail := map[string]any{"recording_sid": recordingSid, "voicemail_id": id}
		return insertEvent(ctx, tx, callSid, now, "recording-delete", "", "callrelay", outcome, detail, "recording-delete:"+recordingSid)
	})
	if err != nil {
		return fmt.Errorf("mark voicemail %d deleted at Twilio: %w", id, err)
	}
	return nil
}

// Expiry reasons, on the timeline's recording-expire entry.
const (
	ExpiredByRetention = "retention"
	ExpiredByRequest   = "deleted" // DELETE /api/voicemails/{id}
)

// ExpireVoicemail removes a voicemail's transcript and marks its audio expired (the audio
// endpoints answer 410 from now on), and enqueues, in the same transaction, the job that
// deletes the audio itself: callrelay's copy and Twilio's, if still there. Who called and when
// stay. Expiring an expired voicemail changes nothing (false); ENOTFOUND for an unknown one.
func (db *DB) ExpireVoicemail(ctx context.Context, id int64, reason string) (bool, error) {
	now := db.now()
	var expired bool
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid, recordingSid string
		err := tx.QueryRow(ctx, `
			UPDATE voicemails SET expired_at = $2, transcript = NULL, updated_at = $2
			WHERE id = $1 AND expired_at IS NULL
			RETURNING call_sid, recording_sid`, id, now).Scan(&callSid, &recordingSid)
		if errors.Is(err, pgx.ErrNoRows) {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM voicemails WHERE id = $1)`, id).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return callrelay.Errorf(callrelay.ENOTFOUND, "Voicemail %d is unknown.", id)
			}
			return nil
		} else if err != nil {
			return err
		}
		expired = true
		detail := map[string]any{"recording_sid": recordingSid, "voicemail_id": id}
		if err := insertEvent(ctx, tx, callSid, now, "recording-expire", "", "callrelay", reason, detail, "recording-expire:"+recordingSid); err != nil {
			return err
		}
		if db.Jobs == nil {
			return errors.New("no job queue configured")
		}
		_, err = db.Jobs.InsertTx(ctx, tx, callrelay.PurgeRecording{VoicemailID: id}, &river.InsertOpts{
			MaxAttempts: recordingMaxAttempts,
			UniqueOpts:  river.UniqueOpts{ByArgs: true},
		})
		return err
	})
	if err != nil {
		return false, fmt.Errorf("expire voicemail %d: %w", id, err)
	}
	return expired, nil
}

// MarkPurged records that an expired voicemail's audio is deleted everywhere.
func (db *DB) MarkPurged(ctx context.Context, id int64) error {
	now := db.now()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var callSid, recordingSid string
		err := tx.QueryRow(ctx, `
			UPDATE voicemails SET audio_key = NULL, audio_content_type = NULL, audio_size = NULL,
				audio_sha256 = NULL, copied_at = NULL, purged_at = $2, updated_at = $2
			WHERE id = $1 AND purged_at IS NULL
			RETURNING call_sid, recording_sid`, id, now).Scan(&callSid, &recordingSid)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		} else if err != nil {
			return err
		}
		detail := map[string]any{"recording_sid": recordingSid, "voicemail_id": id}
		return insertEvent(ctx, tx, callSid, now, "recording-purge", "", "callrelay", "purged", detail, "recording-purge:"+recordingSid)
	})
	if err != nil {
		return fmt.Errorf("mark voicemail %d purged: %w", id, err)
	}
	return nil
}

// DueForExpiry returns up to limit live voicemails older than their number's retention:
// voicemail.retention_days of the number as it is now (or, for a deleted number, as the call
// started), else defaultDays; 0 days keeps forever.
func (db *DB) DueForExpiry(ctx context.Context, defaultDays, limit int) ([]int64, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT v.id FROM voicemails v
		JOIN calls c USING (call_sid)
		LEFT JOIN numbers n ON n.number = v.number
		CROSS JOIN LATERAL (SELECT COALESCE(
			(n.routing->'voicemail'->>'retention_days')::int,
			(c.routing->'voicemail'->>'retention_days')::int,
			$2::int) AS days) r
		WHERE v.expired_at IS NULL AND r.days > 0 AND v.created_at < $1::timestamptz - make_interval(days => r.days)
		ORDER BY v.created_at LIMIT $3`, db.now(), defaultDays, limit)
	if err != nil {
		return nil, fmt.Errorf("voicemails due for expiry: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("voicemails due for expiry: %w", err)
	}
	return ids, nil
}

// DeleteTimelinesBefore removes call timeline entries older than before; the calls themselves
// (who called, when, how it ended) stay. It returns how many entries went.
func (db *DB) DeleteTimelinesBefore(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM call_events WHERE at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("delete old timelines: %w", err)
	}
	return tag.RowsAffected(), nil
}
