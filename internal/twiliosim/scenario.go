package twiliosim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

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
	// At is when the call is placed, as a local wall time in TimeZone: a date and time
	// ("2026-12-07T20:30:00") or a weekday and time ("mon 20:30": that weekday after the
	// clock's today). A time a DST change skips is the instant the clock jumps past it; one it
	// repeats, the first. Empty: now. The harness starts callrelay's clock and the simulator's
	// there (Start); cmd/callsim cannot set a running callrelay's clock, and refuses it.
	At string `yaml:"at"`
	// TimeZone is the IANA zone of At: the routing's time_zone when left out, else UTC.
	TimeZone string `yaml:"time_zone"`
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
	// CarrierVoicemail: the target's carrier voicemail answers (after answer_after seconds, 5
	// when unset). It plays a greeting and a beep and never presses a key; Twilio's
	// answering-machine detection, when asked, says machine_start (machineDetection Enable) or
	// machine_end_beep (DetectMessageEnd).
	CarrierVoicemail bool `yaml:"carrier_voicemail"`
	// Press is what the person who answers does with a screen (a <Number url> document): "1"
	// or another key (one of 0-9 * #), "hangup", or nothing when empty. Detection says human.
	Press string `yaml:"press"`
	// PressAfter is when the person presses or hangs up, in seconds after answering (2 when
	// unset). A key pressed while no <Gather> listens is lost.
	PressAfter *float64 `yaml:"press_after"`
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
	// Screens is, per leg target, the outcome of its screen on callrelay's timeline (the last
	// "screen" entry: accepted, declined, unanswered, machine; offered while it runs).
	Screens    map[string]string `yaml:"screens"`
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
	if sc.At != "" {
		if _, err := sc.Start(time.Now()); err != nil {
			return err
		}
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
		if b.CarrierVoicemail {
			if b.Busy || b.Failed || b.SIPStatus != 0 || b.Press != "" {
				return fmt.Errorf("targets.%s: carrier_voicemail answers and never presses: no busy, failed, sip_status or press", key)
			}
			if b.AnswerAfter == nil {
				five := 5.0
				b.AnswerAfter = &five
			}
		}
		if b.Press != "" && b.Press != "hangup" && (len(b.Press) != 1 || !strings.Contains("0123456789*#", b.Press)) {
			return fmt.Errorf("targets.%s.press: %q: want one key (0-9 * #) or hangup", key, b.Press)
		}
		if b.PressAfter != nil && *b.PressAfter < 0 {
			return fmt.Errorf("targets.%s.press_after: must not be negative", key)
		}
		sc.Targets[key] = b
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

// Start is the instant the call is placed: At in TimeZone, or now when At is empty. A weekday
// form is the first such day after now's date.
func (sc *Scenario) Start(now time.Time) (time.Time, error) {
	if sc.At == "" {
		return now, nil
	}
	name := sc.TimeZone
	if name == "" {
		name, _ = sc.Routing["time_zone"].(string)
	}
	if name == "" {
		name = "UTC"
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return time.Time{}, fmt.Errorf("time_zone: %q is not an IANA zone", name)
	}
	if wd, hm, ok := strings.Cut(sc.At, " "); ok {
		day := slices.Index([]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, strings.ToLower(wd))
		t, err := time.Parse("15:04", hm)
		if day < 0 || err != nil {
			return time.Time{}, fmt.Errorf("at: %q: want a weekday and time like \"mon 20:30\"", sc.At)
		}
		local := now.In(loc)
		for d := 1; d <= 7; d++ {
			date := time.Date(local.Year(), local.Month(), local.Day()+d, 12, 0, 0, 0, time.UTC)
			if int(date.Weekday()) == day {
				return wallTime(loc, date.Year(), date.Month(), date.Day(), t.Hour()*60+t.Minute()), nil
			}
		}
	}
	t, err := time.Parse("2006-01-02T15:04:05", sc.At)
	if err != nil {
		return time.Time{}, fmt.Errorf("at: %q: want a local date and time like 2026-12-07T20:30:00, or a weekday and time like \"mon 20:30\"", sc.At)
	}
	at := wallTime(loc, t.Year(), t.Month(), t.Day(), t.Hour()*60+t.Minute())
	return at.Add(time.Duration(t.Second()) * time.Second), nil
}

// wallTime is the first instant loc's clock reads at least the given date and minutes: a time
// a DST change skips is the instant of the change; a repeated one, its first occurrence. It
// repeats callrelay's wallReached on purpose: the simulator places a scenario's call by its
// own reading of the rule, so a wrong rule in callrelay fails the DST scenarios instead of
// moving the call with it.
func wallTime(loc *time.Location, y int, m time.Month, d, minutes int) time.Time {
	wall := time.Date(y, m, d, 0, minutes, 0, 0, time.UTC).Unix()
	_, before := time.Unix(wall-86400, 0).In(loc).Zone()
	_, after := time.Unix(wall+86400, 0).In(loc).Zone()
	var best int64
	found := false
	for _, off := range []int{before, after} {
		c := wall - int64(off)
		if _, o := time.Unix(c, 0).In(loc).Zone(); c+int64(o) == wall && (!found || c < best) {
			best, found = c, true
		}
	}
	if found {
		return time.Unix(best, 0).In(loc)
	}
	c := time.Unix(wall-int64(before), 0).In(loc)
	if start, _ := c.ZoneBounds(); !start.IsZero() && !start.After(c) {
		return start.In(loc)
	}
	return c
}
