package recordings

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/twilioapi"
)

// Job policy.
const (
	// MaxCopy bounds a copy: an hour of WAV (8 kHz, 16 bit: about 58 MB), Twilio's longest
	// voicemail, with room to spare. An hour of MP3 is about 14 MB.
	MaxCopy = 100 << 20
	// jobTimeout bounds one attempt (download, upload, read-back, deletion at Twilio); under
	// the queue's RescueStuckJobsAfter (voicemail.NewQueue), so a live attempt is not rescued.
	jobTimeout = 5 * time.Minute
	minBackoff = 30 * time.Second
	maxBackoff = time.Hour
)

// Twilio is what the jobs ask of Twilio's REST API (twilioapi.Client).
type Twilio interface {
	DeleteRecording(ctx context.Context, recordingSid string) error
}

// Jobs does the recording store's work: it is the copy, purge and expiry workers.
type Jobs struct {
	DB     callrelay.RecordingStore
	Store  *Store
	Media  *recording.Fetcher
	Twilio Twilio
	Now    func() time.Time
	Log    *slog.Logger
	// RetentionDays is CALLRELAY_RETENTION_DAYS: the default of voicemail.retention_days
	// (0: keep forever).
	RetentionDays int
	// TimelineRetentionDays is CALLRELAY_TIMELINE_RETENTION_DAYS: call timeline entries older
	// than this are removed (0: kept forever).
	TimelineRetentionDays int
	// ExpiryInterval is how often the expiry job runs (DefaultExpiryInterval when zero).
	ExpiryInterval time.Duration
}

// DefaultExpiryInterval: how often voicemails past their retention are looked for.
const DefaultExpiryInterval = time.Hour

// expiryBatch bounds the voicemails one expiry run handles; the rest wait for the next.
const expiryBatch = 1000

// Register adds the workers to the queue's and returns the periodic expiry job, for
// voicemail.QueueOptions.
func (j *Jobs) Register(workers *river.Workers) error {
	if err := river.AddWorkerSafely(workers, &copyWorker{j: j}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(workers, &purgeWorker{j: j}); err != nil {
		return err
	}
	return river.AddWorkerSafely(workers, &expireWorker{j: j})
}

// PeriodicJobs are the expiry job, run at start and every ExpiryInterval.
func (j *Jobs) PeriodicJobs() []*river.PeriodicJob {
	every := j.ExpiryInterval
	if every <= 0 {
		every = DefaultExpiryInterval
	}
	return []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) {
			return callrelay.ExpireRecordings{}, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
		}, &river.PeriodicJobOpts{RunOnStart: true, ID: "expire_recordings"})}
}

func (j *Jobs) nextRetry(attempt int) time.Time {
	d := minBackoff << min(attempt-1, 10)
	return j.Now().Add(min(d, maxBackoff))
}

// objectKey is where a recording's copy is stored: by recording SID, with the format's
// extension, so that the store's listing reads on its own.
func objectKey(recordingSid, contentType string) string {
	return "voicemail/" + recordingSid + callrelay.AudioExtension(contentType)
}

// mediaURL is the recording's media in the number's format: Twilio serves WAV on the
// RecordingUrl itself and MP3 with .mp3 appended (recording.Fetcher.MediaURL appends .mp3 to a
// URL without an extension).
func mediaURL(recordingURL, format string) string {
	if format == callrelay.FormatWAV && path.Ext(strings.TrimRight(recordingURL, "/")) == "" {
		return recordingURL + ".wav"
	}
	return recordingURL
}

type copyWorker struct {
	river.WorkerDefaults[callrelay.CopyRecording]
	j *Jobs
}

func (w *copyWorker) Timeout(*river.Job[callrelay.CopyRecording]) time.Duration { return jobTimeout }

func (w *copyWorker) NextRetry(job *river.Job[callrelay.CopyRecording]) time.Time {
	return w.j.nextRetry(job.Attempt)
}

// Work copies the recording, verifies the copy and, when the number says so, deletes Twilio's.
// Each step is skipped when done already, so a retry picks up where an attempt failed.
func (w *copyWorker) Work(ctx context.Context, job *river.Job[callrelay.CopyRecording]) error {
	return w.j.Copy(ctx, job.Args.VoicemailID, job.Attempt)
}

// Copy is the copy job's work for voicemail id (attempt is for the logs).
func (j *Jobs) Copy(ctx context.Context, id int64, attempt int) error {
	log := j.Log.With(slog.Int64("voicemail_id", id), slog.Int("attempt", attempt))
	t, err := j.DB.RecordingTask(ctx, id)
	if callrelay.ErrorCode(err) == callrelay.ENOTFOUND {
		return river.JobCancel(err)
	} else if err != nil {
		return err
	}
	log = log.With(slog.String("call_sid", t.CallSid), slog.String("recording_sid", t.RecordingSid))
	if t.Audio.ExpiredAt != nil {
		log.Info("recording copy: voicemail expired; nothing to copy")
		return nil
	}
	c := t.Audio.Copy
	if c == nil && j.Store == nil {
		return river.JobCancel(errors.New("recordings: no store configured (CALLRELAY_RECORDINGS_URL)"))
	}
	if c == nil {
		if c, err = j.copy(ctx, t); err != nil {
			if errors.Is(err, recording.ErrNotFound) {
				// Twilio has no such recording (deleted by hand?): no retry brings it back.
				log.Error("recording copy: Twilio has no recording", slog.String("error", err.Error()))
				return river.JobCancel(err)
			}
			log.Warn("recording copy failed; will retry", slog.String("error", err.Error()))
			return err
		}
		if err := j.DB.SaveAudioCopy(ctx, id, *c); callrelay.ErrorCode(err) == callrelay.ECONFLICT {
			// Expired while being copied: the purge may have run already, so this copy goes.
			return j.Store.Delete(ctx, c.Key)
		} else if err != nil {
			return err
		}
		log.Info("recording copied", slog.Int64("size", c.Size), slog.String("sha256", c.SHA256))
	} else if t.DeleteAtTwilio && t.Audio.TwilioDeletedAt == nil {
		// Copied by an earlier attempt: check it is still there, intact, before Twilio's goes.
		if err := j.Store.Verify(ctx, c.Key, c.Size, c.SHA256); err != nil {
			log.Warn("recording copy: cannot verify; Twilio's copy kept", slog.String("error", err.Error()))
			return err
		}
	}
	if !t.DeleteAtTwilio || t.Audio.TwilioDeletedAt != nil {
		return nil
	}
	if err := j.deleteAtTwilio(ctx, t); err != nil {
		log.Warn("recording: deletion at Twilio failed; will retry", slog.String("error", err.Error()))
		return err
	}
	log.Info("recording deleted at Twilio")
	return nil
}

// copy downloads the recording into the store and reads it back to verify it.
func (j *Jobs) copy(ctx context.Context, t *callrelay.RecordingTask) (*callrelay.AudioCopy, error) {
	m, err := j.Media.Open(ctx, mediaURL(t.RecordingURL, t.Format))
	if err != nil {
		return nil, err
	}
	defer m.Body.Close()
	if m.Size > MaxCopy {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, m.Size, MaxCopy)
	}
	key := objectKey(t.RecordingSid, m.ContentType)
	size, sum, err := j.Store.Put(ctx, key, m.ContentType, m.Body, MaxCopy)
	if err != nil {
		return nil, err
	}
	if m.Size >= 0 && size != m.Size {
		// A download cut short ends like a complete one for io.Copy only when the length
		// is unknown; a known one must match.
		_ = j.Store.Delete(ctx, key)
		return nil, fmt.Errorf("recordings: copied %d bytes of %d", size, m.Size)
	}
	if err := j.Store.Verify(ctx, key, size, sum); err != nil {
		return nil, err
	}
	return &callrelay.AudioCopy{Key: key, ContentType: m.ContentType, Size: size, SHA256: sum}, nil
}

// deleteAtTwilio deletes Twilio's copy; one already gone (404) counts as deleted.
func (j *Jobs) deleteAtTwilio(ctx context.Context, t *callrelay.RecordingTask) error {
	err := j.Twilio.DeleteRecording(ctx, t.RecordingSid)
	gone := twilioapi.IsNotFound(err)
	if err != nil && !gone {
		return err
	}
	return j.DB.MarkTwilioDeleted(ctx, t.VoicemailID, gone)
}

type purgeWorker struct {
	river.WorkerDefaults[callrelay.PurgeRecording]
	j *Jobs
}

func (w *purgeWorker) Timeout(*river.Job[callrelay.PurgeRecording]) time.Duration { return jobTimeout }

func (w *purgeWorker) NextRetry(job *river.Job[callrelay.PurgeRecording]) time.Time {
	return w.j.nextRetry(job.Attempt)
}

// Work deletes an expired voicemail's audio: our copy, then Twilio's if still there.
func (w *purgeWorker) Work(ctx context.Context, job *river.Job[callrelay.PurgeRecording]) error {
	return w.j.Purge(ctx, job.Args.VoicemailID)
}

// Purge deletes an expired voicemail's audio everywhere: callrelay's copy, and Twilio's if still
// there. A voicemail that has not expired is left alone.
func (j *Jobs) Purge(ctx context.Context, id int64) error {
	log := j.Log.With(slog.Int64("voicemail_id", id))
	t, err := j.DB.RecordingTask(ctx, id)
	if callrelay.ErrorCode(err) == callrelay.ENOTFOUND {
		return river.JobCancel(err)
	} else if err != nil {
		return err
	}
	if t.Audio.ExpiredAt == nil || t.PurgedAt != nil {
		return nil
	}
	if t.Audio.Copy != nil {
		if j.Store == nil {
			return errors.New("recordings: a copy exists but no store is configured (CALLRELAY_RECORDINGS_URL)")
		}
		if err := j.Store.Delete(ctx, t.Audio.Copy.Key); err != nil {
			log.Warn("recording purge: store", slog.String("error", err.Error()))
			return err
		}
	}
	if t.Audio.TwilioDeletedAt == nil {
		if err := j.deleteAtTwilio(ctx, t); err != nil {
			log.Warn("recording purge: Twilio", slog.String("error", err.Error()))
			return err
		}
	}
	if err := j.DB.MarkPurged(ctx, id); err != nil {
		return err
	}
	log.Info("recording purged", slog.String("recording_sid", t.RecordingSid))
	return nil
}

type expireWorker struct {
	river.WorkerDefaults[callrelay.ExpireRecordings]
	j *Jobs
}

func (w *expireWorker) Timeout(*river.Job[callrelay.ExpireRecordings]) time.Duration {
	return jobTimeout
}

// Work expires the voicemails past their retention (each then purged by its own job) and
// removes old call timelines.
func (w *expireWorker) Work(ctx context.Context, _ *river.Job[callrelay.ExpireRecordings]) error {
	_, _, err := w.j.Expire(ctx)
	return err
}

// Expire runs one expiry pass: it returns how many voicemails expired and how many timeline
// entries were removed.
func (j *Jobs) Expire(ctx context.Context) (voicemails int, events int64, err error) {
	ids, err := j.DB.DueForExpiry(ctx, j.RetentionDays, expiryBatch)
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		expired, err := j.DB.ExpireVoicemail(ctx, id, callrelay.ExpiredByRetention)
		if err != nil {
			return voicemails, 0, err
		}
		if expired {
			voicemails++
		}
	}
	if j.TimelineRetentionDays > 0 {
		before := j.Now().AddDate(0, 0, -j.TimelineRetentionDays)
		if events, err = j.DB.DeleteTimelinesBefore(ctx, before); err != nil {
			return voicemails, 0, err
		}
	}
	if voicemails > 0 || events > 0 {
		j.Log.Info("retention", slog.Int("voicemails_expired", voicemails), slog.Int64("timeline_entries_removed", events))
	}
	return voicemails, events, nil
}

// StoredAudio reads a voicemail's copy whole, for the email's attachment (at most maxBytes:
// ErrTooLarge past that); no data and no error when there is no copy.
func (j *Jobs) StoredAudio(ctx context.Context, voicemailID, maxBytes int64) ([]byte, string, error) {
	if j.Store == nil {
		return nil, "", nil
	}
	a, err := j.DB.AudioState(ctx, voicemailID)
	if err != nil || a.Copy == nil {
		return nil, "", err
	}
	data, err := j.Store.ReadAll(ctx, a.Copy.Key, maxBytes)
	if err != nil {
		return nil, "", err
	}
	return data, a.Copy.ContentType, nil
}
