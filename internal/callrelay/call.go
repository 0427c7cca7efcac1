package callrelay

import (
	"slices"
	"time"
)

// Call statuses. The first four are callrelay's own view of the inbound call; the terminal
// ones are Twilio's call statuses.
const (
	StatusRinging    = "ringing"     // forwarding: targets are being dialed
	StatusInProgress = "in-progress" // a target answered
	StatusVoicemail  = "voicemail"   // the caller is leaving a message
	StatusCompleted  = "completed"
	StatusBusy       = "busy"
	StatusFailed     = "failed"
	StatusNoAnswer   = "no-answer"
	StatusCanceled   = "canceled"
)

// TerminalStatuses are the statuses a call or leg never leaves.
var TerminalStatuses = []string{StatusCompleted, StatusBusy, StatusFailed, StatusNoAnswer, StatusCanceled}

// IsTerminal reports whether status is one a call or leg never leaves.
func IsTerminal(status string) bool { return slices.Contains(TerminalStatuses, status) }

// Call is an inbound call to a masked number, identified by the caller's CallSid.
type Call struct {
	CallSid       string     `json:"call_sid"`
	Number        string     `json:"number"`
	From          string     `json:"from"`
	Mode          string     `json:"mode"`
	Status        string     `json:"status"`
	StartedAt     time.Time  `json:"started_at"`
	EndedAt       *time.Time `json:"ended_at"`
	Legs          []Leg      `json:"legs"`
	ConferenceSid *string    `json:"conference_sid"`
	Hold          HoldState  `json:"hold"`
	Events        []Event    `json:"events"`

	// Routing is the number's routing when the call arrived: a call keeps the plan it started
	// with even if the number is changed while it rings.
	Routing Routing `json:"-"`
}

// Leg is a forwarded (child) call to one target.
type Leg struct {
	CallSid         string     `json:"call_sid"`
	Target          string     `json:"target"`
	Status          string     `json:"status"`
	SipResponseCode *int       `json:"sip_response_code"`
	SipCallID       *string    `json:"sip_call_id,omitempty"`
	DurationSeconds *int       `json:"duration_seconds,omitempty"`
	AnsweredAt      *time.Time `json:"answered_at"`
	EndedAt         *time.Time `json:"ended_at,omitempty"`
}

// HoldState says which party of a call is on hold.
type HoldState struct {
	Caller bool `json:"caller"`
	Callee bool `json:"callee"`
}

// Event is one entry of a call's timeline.
type Event struct {
	At      time.Time      `json:"at"`
	Type    string         `json:"type"`
	Party   string         `json:"party,omitempty"`
	By      string         `json:"by,omitempty"`
	Outcome string         `json:"outcome,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// CallFilter selects calls for GET /api/calls.
type CallFilter struct {
	Status string
	Limit  int
}
