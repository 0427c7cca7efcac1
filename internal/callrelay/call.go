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

// InboundCall is what Twilio tells of a new call to a masked number.
type InboundCall struct {
	CallSid   string
	Number    string // To: the masked number
	From      string
	CallToken string // lets a conference participant show the caller's number
	// CallerName is Twilio's CallerName (with caller-name lookup), already cleaned and bounded
	// (phone.Clean); empty when Twilio sent none.
	CallerName string
}

// DialOutcome is what Twilio posts to a <Dial>'s action when the dial ends.
type DialOutcome struct {
	CallSid         string // the caller's call
	Attempt         int    // which <Dial> of the call ended (from the action URL)
	DialCallStatus  string
	DialCallSid     string // absent when no leg was created or answered
	DurationSeconds *int   // absent after a redirect of the child
	SipResponseCode *int
	SipCallID       string
	SipHeaders      map[string]string
	CallerStatus    string // the caller's own CallStatus
}

// LegProgress is a status callback for a forwarded leg (statusCallback of a <Dial> noun).
type LegProgress struct {
	CallSid         string // the leg
	ParentCallSid   string // the caller's call
	Status          string // Twilio's CallStatus: initiated, ringing, in-progress, completed, ...
	Sequence        int    // SequenceNumber; -1 when absent
	At              time.Time
	Target          string
	TargetIndex     *int
	SipResponseCode *int
	DurationSeconds *int
}

// LegResult is what RecordLegProgress found.
type LegResult struct {
	Known         bool   // the parent call exists
	Mode          string // the call's mode
	Callee        string // the leg that answered first (the callee), "" while none has
	ConferenceSid string // "" outside conference mode
	Held          bool   // direct mode: the call has been through a hold or has one pending (its Dial no longer ends it), and has not ended
	Screened      bool   // the leg's target is screened: it becomes the callee when it accepts
}

// CallStatusResult is what RecordCallStatus found: the caller's own status callback.
type CallStatusResult struct {
	Known bool   // the call exists
	Mode  string // the call's mode
	Held  bool   // direct mode: the call has been through a hold or has one pending
}

// StartedCall is what StartCall recorded for a new call.
type StartedCall struct {
	// Routing is the call's routing: the number's, with its schedule and caller policies
	// applied (Decide). PlanInbound(Routing) is the call's answer.
	Routing Routing
	// Number is the number's routing as stored, for the routing cache; nil for a repeated
	// webhook, which answers from the call's routing.
	Number *Routing
	// Reason and Rule are the decision, as on the inbound timeline entry ("" without a
	// schedule or policy, or for a repeated webhook).
	Reason, Rule string
}

// CallSearch selects calls for the console's history.
type CallSearch struct {
	Number string
	Status string
	From   *time.Time // started at or after
	Until  *time.Time // started before
	Live   bool       // only calls that have not ended
	Limit  int
}
