package callrelay

import (
	"context"
	"time"
)

// Transcript statuses of a voicemail: pending (asked, not arrived), completed, failed, or why
// none was asked.
const (
	TranscriptPending   = "pending"
	TranscriptCompleted = "completed"
	TranscriptFailed    = "failed"
	TranscriptOff       = "off"       // the number's voicemail.transcribe is false
	TranscriptLanguage  = "language"  // Twilio transcribes American English (en-US) only
	TranscriptTooShort  = "too_short" // Twilio does not transcribe 2 s or less
	TranscriptTooLong   = "too_long"  // nor 120 s or more (its warning 13617)
)

// Notification statuses of a voicemail's email.
const (
	NotifyPending = "pending"
	NotifySending = "sending"
	NotifySent    = "sent"
	NotifyFailed  = "failed"
)

// TranscriptExpectation says whether Twilio will send a transcript for a recording of the
// given length under routing r, or why not. Twilio sends no transcribeCallback at all outside
// these bounds, so waiting for one would only delay the email.
func TranscriptExpectation(r Routing, durationSeconds int) string {
	switch {
	case !r.Voicemail.Transcribe:
		return TranscriptOff
	case r.Language != "en-US":
		return TranscriptLanguage
	case durationSeconds <= 2:
		return TranscriptTooShort
	case durationSeconds >= 120:
		return TranscriptTooLong
	}
	return TranscriptPending
}

// TranscriptReason explains in a sentence for the owner why an email carries no transcript.
func TranscriptReason(status string) string {
	switch status {
	case TranscriptPending:
		return "The transcript did not arrive in time."
	case TranscriptFailed:
		return "Twilio could not transcribe this message."
	case TranscriptOff:
		return "Transcription is turned off for this number."
	case TranscriptLanguage:
		return "Twilio transcribes American English (en-US) only."
	case TranscriptTooShort:
		return "The message is too short to transcribe (2 seconds or less)."
	case TranscriptTooLong:
		return "The message is too long to transcribe (2 minutes or more)."
	}
	return ""
}

// Voicemail is a recorded message and the state of its email.
type Voicemail struct {
	ID               int64      `json:"id"`
	CallSid          string     `json:"call_sid"`
	Number           string     `json:"number"`
	From             string     `json:"from"`
	CallerName       *string    `json:"caller_name"` // Twilio's CallerName, when it sent one
	OwnerEmail       string     `json:"owner_email"`
	RecordingSid     string     `json:"recording_sid"`
	RecordingURL     string     `json:"-"` // fetched with the account's credentials; shown as audio_url
	DurationSeconds  int        `json:"duration_seconds"`
	RecordedAt       time.Time  `json:"recorded_at"`
	TranscriptStatus string     `json:"transcript_status"`
	Transcript       *string    `json:"transcript"`
	Notification     Notify     `json:"notification"`
	CreatedAt        time.Time  `json:"created_at"`
	TranscribedAt    *time.Time `json:"transcribed_at,omitempty"`
	// TimeZone is the number's time_zone when the message was left ("": the instance's).
	TimeZone string `json:"-"`
	// FollowUp is the state of the email that brings a late transcript ("": none asked).
	FollowUp string `json:"-"`
}

// Notify is the delivery state of a voicemail's one email.
type Notify struct {
	Status    string     `json:"status"`
	Attempts  int        `json:"attempts"`
	LastError *string    `json:"last_error"`
	SentAt    *time.Time `json:"sent_at"`
}

// VoicemailFilter selects voicemails for GET /api/voicemails.
type VoicemailFilter struct {
	Number string
	Limit  int
}

// NotifyVoicemail is the durable job that emails a voicemail to its owner.
type NotifyVoicemail struct {
	VoicemailID int64 `json:"voicemail_id"`
}

// Kind names the job in the queue.
func (NotifyVoicemail) Kind() string { return "notify_voicemail" }

// NotifyTranscript is the durable job that emails a transcript that arrived after its
// voicemail's email went, as a follow-up in the same thread.
type NotifyTranscript struct {
	VoicemailID int64 `json:"voicemail_id"`
}

// Kind names the job in the queue.
func (NotifyTranscript) Kind() string { return "notify_transcript" }

// Follow-up statuses beyond the Notify* ones: skipped when the voicemail's email carried the
// transcript after all, or never went.
const FollowUpSkipped = "skipped"

// Recording is a recording-status callback.
type Recording struct {
	CallSid         string
	RecordingSid    string
	RecordingURL    string
	Status          string // completed, absent, failed
	DurationSeconds int
	StartedAt       *time.Time
}

// Transcription is a transcribeCallback.
type Transcription struct {
	CallSid          string
	RecordingSid     string
	TranscriptionSid string
	Status           string // completed or failed
	Text             string
}

// VoicemailEmailStore is what the voicemail emails (the first, and the transcript's
// follow-up) need of the store: each is claimed for a lease, sent, then finished, so that
// replicas and retries send it once.
type VoicemailEmailStore interface {
	GetVoicemail(ctx context.Context, id int64) (*Voicemail, error)
	ClaimNotification(ctx context.Context, id int64, lease time.Duration) (*Voicemail, error)
	FinishNotification(ctx context.Context, id int64, sendErr error, final bool) error
	ClaimFollowUp(ctx context.Context, id int64, lease time.Duration) (*Voicemail, error)
	FinishFollowUp(ctx context.Context, id int64, sendErr error, final bool) error
}

// Voicemail statuses in the console and the inbox.
const (
	VoicemailNew     = "new"
	VoicemailHandled = "handled"
	VoicemailDeleted = "deleted" // its audio and transcript are gone (DELETE or retention)
)

// ConsoleVoicemail is a voicemail with what the console shows besides the ops API's fields.
type ConsoleVoicemail struct {
	*Voicemail
	HandledAt *time.Time
	HandledBy string
	ExpiredAt *time.Time
}

// Status is new, handled or deleted; a deleted voicemail may have been handled before.
func (v *ConsoleVoicemail) Status() string {
	switch {
	case v.ExpiredAt != nil:
		return VoicemailDeleted
	case v.HandledAt != nil:
		return VoicemailHandled
	}
	return VoicemailNew
}

// ConsoleVoicemailFilter selects voicemails for the console and the inbox.
type ConsoleVoicemailFilter struct {
	Number     string // "": every number
	OwnerEmail string // "": every owner (the inbox sets it: an owner sees only their own)
	Status     string // "", new, handled or deleted
	CallSids   []string
	Limit      int
}
