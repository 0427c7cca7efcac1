package callrelay

import (
	"context"
	"time"
)

// Recording formats a number's voicemail is copied in (voicemail.format). Twilio serves both
// from one recording: MP3 (about 0.24 MB a minute) on the media URL with .mp3, WAV without.
const (
	FormatMP3 = "mp3"
	FormatWAV = "wav"
)

// DefaultRetentionDays is CALLRELAY_RETENTION_DAYS' default (docs/design.md, Recordings).
const DefaultRetentionDays = 90

// maxRetentionDays bounds voicemail.retention_days: 100 years is "forever" enough, and keeps
// the date arithmetic far from overflow.
const maxRetentionDays = 36500

// StoredAudio is the state of a voicemail's audio: callrelay's copy, Twilio's, and expiry.
type StoredAudio struct {
	// Copy is callrelay's verified copy in the recording store; nil when there is none (not yet,
	// or purged).
	Copy *AudioCopy `json:"copy"`
	// TwilioDeletedAt is when Twilio's copy was deleted (or found already gone).
	TwilioDeletedAt *time.Time `json:"twilio_deleted_at,omitempty"`
	// ExpiredAt is when the audio and the transcript were removed (retention or DELETE): the
	// audio endpoints then answer 410 Gone.
	ExpiredAt *time.Time `json:"expired_at,omitempty"`
}

// AudioCopy is a recording copied into the store, verified by its size and SHA-256.
type AudioCopy struct {
	Key         string    `json:"-"` // the object's key in the store
	ContentType string    `json:"content_type"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"` // hex
	CopiedAt    time.Time `json:"copied_at"`
}

// Extension is the file extension of the copy's format.
func (c AudioCopy) Extension() string { return AudioExtension(c.ContentType) }

// AudioExtension is the file name's extension for an audio content type.
func AudioExtension(contentType string) string {
	switch contentType {
	case "audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave":
		return ".wav"
	}
	return ".mp3"
}

// CopyRecording is the durable job that copies a voicemail's recording into callrelay's store,
// verifies it and then, if the number says so, deletes Twilio's copy.
type CopyRecording struct {
	VoicemailID int64 `json:"voicemail_id"`
}

// Kind names the job in the queue.
func (CopyRecording) Kind() string { return "copy_recording" }

// PurgeRecording is the durable job that deletes an expired voicemail's audio: callrelay's copy
// and Twilio's, if still there.
type PurgeRecording struct {
	VoicemailID int64 `json:"voicemail_id"`
}

// Kind names the job in the queue.
func (PurgeRecording) Kind() string { return "purge_recording" }

// ExpireRecordings is the periodic job that expires voicemails past their number's retention
// and removes old call timelines.
type ExpireRecordings struct{}

// Kind names the job in the queue.
func (ExpireRecordings) Kind() string { return "expire_recordings" }

// DeletesAtTwilio reports whether a voicemail's recording is deleted at Twilio once callrelay's
// copy is verified: voicemail.delete_at_twilio, true unless set false (a routing stored before
// the field existed has none).
func (v VoicemailSettings) DeletesAtTwilio() bool {
	return v.DeleteAtTwilio == nil || *v.DeleteAtTwilio
}

// RecordingFormat is the format the recording is copied in: voicemail.format, MP3 by default.
func (v VoicemailSettings) RecordingFormat() string {
	if v.Format == FormatWAV {
		return FormatWAV
	}
	return FormatMP3
}

// validateRecordings checks the recording fields of a number's voicemail settings.
func (v VoicemailSettings) validateRecordings() error {
	if v.Format != "" && v.Format != FormatMP3 && v.Format != FormatWAV {
		return Invalidf("voicemail.format", "voicemail.format must be %q or %q.", FormatMP3, FormatWAV)
	}
	if d := v.RetentionDays; d != nil && (*d < 0 || *d > maxRetentionDays) {
		return Invalidf("voicemail.retention_days", "voicemail.retention_days must be between 0 (keep forever) and %d.", maxRetentionDays)
	}
	return nil
}

// RecordingTask is what the copy and purge jobs need of a voicemail.
type RecordingTask struct {
	VoicemailID  int64
	CallSid      string
	RecordingSid string
	RecordingURL string
	// Format and DeleteAtTwilio are the number's settings as the call started.
	Format         string
	DeleteAtTwilio bool
	Audio          StoredAudio
	PurgedAt       *time.Time
}

// Expiry reasons, on the timeline's recording-expire entry.
const (
	ExpiredByRetention = "retention"
	ExpiredByRequest   = "deleted" // DELETE /api/voicemails/{id}
)

// RecordingStore is what the recording jobs (copy, purge, retention) need of the store.
type RecordingStore interface {
	// RecordingTask returns a voicemail's recording state, or ENOTFOUND.
	RecordingTask(ctx context.Context, id int64) (*RecordingTask, error)
	// AudioState is where a voicemail's audio is: callrelay's copy, Twilio, or expired.
	AudioState(ctx context.Context, id int64) (StoredAudio, error)
	// SaveAudioCopy records a verified copy in callrelay's store.
	SaveAudioCopy(ctx context.Context, id int64, c AudioCopy) error
	// MarkTwilioDeleted records that Twilio no longer has the recording.
	MarkTwilioDeleted(ctx context.Context, id int64, alreadyGone bool) error
	// ExpireVoicemail expires a voicemail (reason: ExpiredByRetention, ExpiredByRequest) and
	// enqueues its purge; false when it had expired already.
	ExpireVoicemail(ctx context.Context, id int64, reason string) (bool, error)
	// MarkPurged records that the audio is gone from everywhere.
	MarkPurged(ctx context.Context, id int64) error
	// DueForExpiry lists voicemails past their retention (defaultDays for numbers without one).
	DueForExpiry(ctx context.Context, defaultDays, limit int) ([]int64, error)
	// DeleteTimelinesBefore deletes the timelines of calls that ended before before.
	DeleteTimelinesBefore(ctx context.Context, before time.Time) (int64, error)
}
