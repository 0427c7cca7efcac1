package twiliosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Scenario is one simulated call, read from a small YAML file (testdata/scenarios): the masked
// number and its routing, what the caller and every dialed target do, when ops hold or resume
// whom, how Twilio's callbacks misbehave, and what must be true afterwards.
type Scenario struct {
	Name string `yaml:"name"`
	// Number is the masked number called; From the caller.
	Number string `yaml:"number"`
	From   string `yaml:"from"`
	// Routing, when set, is PUT to /api/numbers/{number} before the call (the ops API's JSON,
	// written as YAML).
	Routing map[string]any `yaml:"routing"`
	// VoicePath is the number's voice URL on callrelay's public URL (/twilio/voice).
	VoicePath string `yaml:"voice_path"`
	// StatusCallback sends the number's own status callback (/twilio/call-status) when the
	// inbound call ends, as the Twilio console does when one is configured (default true).
	StatusCallback *bool `yaml:"status_callback"`

	Caller  Caller              `yaml:"caller"`
	Targets map[string]Behavior `yaml:"targets"`
	// Transcription is what Twilio's transcriber makes of the voicemail: "completed" (the
	// caller's words), "failed", or "none" (no callback at all).
	Transcription string     `yaml:"transcription"`
	Ops           []OpAction `yaml:"ops"`
	Callbacks     Quirks     `yaml:"callbacks"`
	// MaxSeconds ends the scenario (as a failure) if the call is still going after it; 600 by
	// default.
	MaxSeconds float64 `yaml:"max_seconds"`
	Expect     Expect  `yaml:"expect"`
}

// Caller is what the calling party does.
type Caller struct {
	// HangupAt hangs the caller up this many seconds into the call (0: never, the call ends
	// by itself).
	HangupAt float64 `yaml:"hangup_at"`
	// Voicemail is what the caller does at the beep of a <Record>.
	Voicemail Voicemail `yaml:"voicemail"`
}

// Voicemail is the message the caller leaves.
type Voicemail struct {
	Seconds float64 `yaml:"seconds"` // how long the caller speaks; 0: silence (no recording)
	Words   string  `yaml:"words"`   // what the caller says (the transcript, when one is made)
	// End is how the recording ends: "hangup" (the default: the caller hangs up after
	// speaking) or "key" (the caller presses # and stays on the line).
	End string `yaml:"end"`
}

// Behavior is what a dialed target (a <Number>, <Sip> or <Client>, or a conference
// participant) does. With neither AnswerAfter nor a failure it rings until it is given up on.
type Behavior struct {
	AnswerAfter *float64 `yaml:"answer_after"` // seconds of ringing before it answers
	Busy        bool     `yaml:"busy"`
	Failed      bool     `yaml:"failed"`
	// SIPStatus is the SIP final response a <Sip> target answers (486 busy, 404, 503 …),
	// reported as DialSipResponseCode and SipResponseCode.
	SIPStatus int `yaml:"sip_status"`
	// HangupAfter hangs the answered target up after this many seconds of conversation (0:
	// it stays until the other side ends).
	HangupAfter float64 `yaml:"hangup_after"`
}

// OpAction is an ops request made during the call, through callrelay's ops API.
type OpAction struct {
	At     float64 `yaml:"at"`     // seconds into the call
	Hold   string  `yaml:"hold"`   // "caller" or "callee": POST /api/calls/{sid}/hold
	Unhold string  `yaml:"unhold"` // POST /api/calls/{sid}/unhold
	// Status is the HTTP status the request must answer (200 when zero).
	Status int `yaml:"status"`
}

// Quirks are Twilio's delivery habits the scenario switches on.
type Quirks struct {
	Duplicate bool `yaml:"duplicate"` // every callback is delivered twice
	// Reorder delays each callback by a random 0–3 simulated seconds, so they arrive out of
	// order.
	Reorder bool `yaml:"reorder"`
}

// Expect is what must be true once the call is over. Fields left out are not checked.
type Expect struct {
	CallStatus string            `yaml:"call_status"` // GET /api/calls/{sid} status
	Hold       map[string]bool   `yaml:"hold"`        // caller/callee → held
	Legs       map[string]string `yaml:"legs"`        // leg target → status
	Voicemail  *ExpectVoicemail  `yaml:"voicemail"`
	MissedCall *ExpectMissedCall `yaml:"missed_call"`
	// Heard lists, per party ("caller", "callee" or a target), what it must have heard, in
	// order: each entry is a substring of one thing heard ("hold music", "talking", a phrase).
	Heard map[string][]string `yaml:"heard"`
	// NotHeard lists, per party, substrings that must not appear in anything it heard.
	NotHeard map[string][]string `yaml:"not_heard"`
	// TwilioRequests counts the REST requests callrelay made, by operation
	// (CreateParticipant, UpdateParticipant, UpdateCall, DeleteQueue …).
	TwilioRequests map[string]int `yaml:"twilio_requests"`
}

// ExpectVoicemail is what the voicemail of the call must look like.
type ExpectVoicemail struct {
	// Email is the notification's status: "sent", or "none" when there must be no voicemail
	// (an absent recording).
	Email            string `yaml:"email"`
	Transcript       string `yaml:"transcript"`        // a substring of the transcript
	TranscriptStatus string `yaml:"transcript_status"` // completed, failed, none, …
}

// Transcription outcomes.
const (
	TranscriptCompleted = "completed"
	TranscriptFailed    = "failed"
	TranscriptNone      = "none"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// LoadScenario reads and checks a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	sc, err := ParseScenario(data)
	if err != nil {
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if sc.Name == "" {
		sc.Name = path
	}
	return sc, nil
}

// ParseScenario decodes a scenario; unknown keys are errors, so a typo does not silently
// change what is tested.
func ParseScenario(data []byte) (*Scenario, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var sc Scenario
	if err := dec.Decode(&sc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty scenario")
		}
		return nil, err
	}
	if err := sc.check(); err != nil {
		return nil, err
	}
	return &sc, nil
}

func (sc *Scenario) check() error {
	if !e164.MatchString(sc.Number) {
		return fmt.Errorf("number: %q is not an E.164 number", sc.Number)
	}
	if sc.From == "" {
		sc.From = "+15559870000"
	}
	if sc.VoicePath == "" {
		sc.VoicePath = "/twilio/voice"
	}
	if !strings.HasPrefix(sc.VoicePath, "/") {
		return fmt.Errorf("voice_path: %q must start with /", sc.VoicePath)
	}
	if sc.Routing != nil {
		// YAML allows what JSON does not (maps with non-string keys): the ops API gets JSON.
		if _, err := json.Marshal(sc.Routing); err != nil {
			return fmt.Errorf("routing: %w", err)
		}
	}
	switch sc.Transcription {
	case "":
		sc.Transcription = TranscriptCompleted
	case TranscriptCompleted, TranscriptFailed, TranscriptNone:
	default:
		return fmt.Errorf("transcription: %q: want completed, failed or none", sc.Transcription)
	}
	switch sc.Caller.Voicemail.End {
	case "":
		sc.Caller.Voicemail.End = "hangup"
	case "hangup", "key":
	default:
		return fmt.Errorf("caller.voicemail.end: %q: want hangup or key", sc.Caller.Voicemail.End)
	}
	for key, b := range sc.Targets {
		n := 0
		for _, set := range []bool{b.AnswerAfter != nil, b.Busy, b.Failed, b.SIPStatus != 0} {
			if set {
				n++
			}
		}
		if n > 1 {
			return fmt.Errorf("targets.%s: answer_after, busy, failed and sip_status exclude each other", key)
		}
		if b.SIPStatus != 0 && (b.SIPStatus < 300 || b.SIPStatus > 699) {
			return fmt.Errorf("targets.%s.sip_status: %d is not a SIP failure response (300–699)", key, b.SIPStatus)
		}
	}
	for i, op := range sc.Ops {
		party, name := op.Hold, "hold"
		if op.Unhold != "" {
			party, name = op.Unhold, "unhold"
		}
		if (op.Hold == "") == (op.Unhold == "") {
			return fmt.Errorf("ops[%d]: want exactly one of hold and unhold", i)
		}
		if party != "caller" && party != "callee" {
			return fmt.Errorf("ops[%d].%s: %q: want caller or callee", i, name, party)
		}
		if op.At < 0 {
			return fmt.Errorf("ops[%d].at: must not be negative", i)
		}
	}
	if sc.MaxSeconds == 0 {
		sc.MaxSeconds = 600
	}
	if v := sc.Expect.Voicemail; v != nil && v.Email != "" && v.Email != "sent" && v.Email != "none" {
		return fmt.Errorf("expect.voicemail.email: %q: want sent or none", v.Email)
	}
	return sc.Expect.MissedCall.check()
}

// behavior returns what the target dialed as address does: the entry whose key is the
// address, or the address without its SIP parameters and headers, else "default", else
// ringing until given up on.
func (sc *Scenario) behavior(address string) (string, Behavior) {
	key := TargetKey(address)
	if b, ok := sc.Targets[address]; ok {
		return key, b
	}
	if b, ok := sc.Targets[key]; ok {
		return key, b
	}
	return key, sc.Targets["default"]
}

// TargetKey is how a scenario names a dialed address: a phone number as is, a SIP URI
// without its parameters and headers, a client as client:identity.
func TargetKey(address string) string {
	if strings.HasPrefix(address, "sip:") || strings.HasPrefix(address, "sips:") {
		if i := strings.IndexAny(address, ";?"); i >= 0 {
			return address[:i]
		}
	}
	return address
}
