package callrelay

import (
	"context"
	"time"
)

// Event types sent to webhook endpoints (docs/events.md).
const (
	EventCallMissed           = "call.missed"
	EventCallCompleted        = "call.completed"
	EventVoicemailCreated     = "voicemail.created"
	EventVoicemailTranscribed = "voicemail.transcribed"
)

// DeliverEvent is the durable job that POSTs one event to one endpoint.
type DeliverEvent struct {
	EventID string `json:"event_id"`
	URL     string `json:"url"`
}

// Kind names the job in the queue.
func (DeliverEvent) Kind() string { return "deliver_event" }

// EventBody is every event's JSON body: its type, when it happened, and its data
// (CallEventData or VoicemailEventData).
type EventBody struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      any       `json:"data"`
}

// CallEventData is the data of call.missed and call.completed.
type CallEventData struct {
	CallSid   string     `json:"call_sid"`
	Number    string     `json:"number"`
	From      string     `json:"from"`
	Mode      string     `json:"mode"`
	Outcome   string     `json:"outcome"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	// DurationSeconds is from the call's start to its end.
	DurationSeconds int `json:"duration_seconds"`
	// Stage is how far a missed call got (ringing, greeting, prompt, silence).
	Stage string `json:"stage,omitempty"`
	// Callee is the target that answered (call.completed), as Twilio reported it.
	Callee string `json:"callee,omitempty"`
}

// VoicemailEventData is the data of voicemail.created and voicemail.transcribed.
type VoicemailEventData struct {
	VoicemailID      int64     `json:"voicemail_id"`
	CallSid          string    `json:"call_sid"`
	Number           string    `json:"number"`
	From             string    `json:"from"`
	RecordingSid     string    `json:"recording_sid"`
	DurationSeconds  int       `json:"duration_seconds"`
	RecordedAt       time.Time `json:"recorded_at"`
	TranscriptStatus string    `json:"transcript_status"`
	Transcript       *string   `json:"transcript"`
}

// StoredEvent is an event as stored: its body is the exact bytes every delivery signs and sends.
type StoredEvent struct {
	ID        string
	Type      string
	CallSid   string
	Body      []byte
	CreatedAt time.Time
}

// EventStore is what event delivery needs of the store.
type EventStore interface {
	// GetEvent returns a stored event, or ENOTFOUND.
	GetEvent(ctx context.Context, id string) (*StoredEvent, error)
	// RecordDelivery puts an attempt to deliver e to endpoint on the call's timeline.
	RecordDelivery(ctx context.Context, e *StoredEvent, endpoint, outcome string, attempt int, deliverErr error) error
}
