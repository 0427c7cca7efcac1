package callrelay

import (
	"context"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Limits of a number's notify settings (docs/design.md).
const (
	MaxWebhooks      = 5   // endpoints per number
	MaxWebhookURLLen = 512 // bytes per endpoint URL
)

// NotifySettings say who hears of a number's calls besides the voicemail email.
type NotifySettings struct {
	// MissedCalls: email the owner when a call ends with no conversation and no voicemail.
	MissedCalls bool `json:"missed_calls"`
	// Webhooks are https endpoints that receive the number's signed events (docs/events.md),
	// besides the instance's (CALLRELAY_EVENT_WEBHOOKS).
	Webhooks []string `json:"webhooks,omitempty"`
}

type notifyInput struct {
	MissedCalls *bool    `json:"missed_calls"`
	Webhooks    []string `json:"webhooks"`
}

// settings applies the defaults: missed-call emails on, no webhooks of the number's own.
func (in *notifyInput) settings() *NotifySettings {
	s := &NotifySettings{MissedCalls: deref(in.MissedCalls, true)}
	if len(in.Webhooks) > 0 {
		s.Webhooks = in.Webhooks
	}
	return s
}

// MissedCallEmails reports whether the owner is emailed about missed calls; a routing stored
// before the setting existed has it on, its default.
func (r Routing) MissedCallEmails() bool { return r.Notify == nil || r.Notify.MissedCalls }

// EventWebhooks returns the number's own event endpoints.
func (r Routing) EventWebhooks() []string {
	if r.Notify == nil {
		return nil
	}
	return r.Notify.Webhooks
}

func (s *NotifySettings) validate() error {
	if s == nil {
		return nil
	}
	if len(s.Webhooks) > MaxWebhooks {
		return Invalidf("notify.webhooks", "notify.webhooks lists at most %d endpoints.", MaxWebhooks)
	}
	for i, u := range s.Webhooks {
		field := "notify.webhooks[" + strconv.Itoa(i) + "]"
		if err := ValidWebhookURL(field, u); err != nil {
			return err
		}
		if slices.Index(s.Webhooks, u) < i {
			return Invalidf(field, "%s repeats an endpoint.", field)
		}
	}
	return nil
}

// ValidWebhookURL checks an event endpoint: an absolute https URL of at most MaxWebhookURLLen
// bytes, without credentials or fragment. Where it may point (not a private address) is
// checked when connecting, on the address it resolves to then.
func ValidWebhookURL(field, s string) error {
	if s == "" {
		return Invalidf(field, "%s must not be empty.", field)
	}
	if len(s) > MaxWebhookURLLen {
		return Invalidf(field, "%s must be at most %d characters.", field, MaxWebhookURLLen)
	}
	if !isText(s) || strings.ContainsAny(s, " \t\r\n") {
		return Invalidf(field, "%s %s is not a URL.", field, quoteShort(s))
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.Opaque != "" {
		return Invalidf(field, "%s %s is not an absolute https URL.", field, quoteShort(s))
	}
	if u.User != nil || u.Fragment != "" {
		return Invalidf(field, "%s must have no credentials or fragment.", field)
	}
	return nil
}

// Stages a missed call reached: how far the caller got before the call ended.
const (
	StageRinging  = "ringing"  // the owner's phones rang (or nobody could be reached)
	StageGreeting = "greeting" // the number's greeting was playing
	StagePrompt   = "prompt"   // the voicemail prompt, before the beep
	StageSilence  = "silence"  // after the beep, the caller left no message (Twilio: absent)
)

// StageText says a stage for the owner.
func StageText(stage string) string {
	switch stage {
	case StageRinging:
		return "hung up while your phones rang, or nobody answered"
	case StageGreeting:
		return "hung up during the greeting"
	case StagePrompt:
		return "hung up during the voicemail prompt, before the beep"
	case StageSilence:
		return "left no message after the beep (silence)"
	}
	return stage
}

// Outcomes of a call, decided once it has ended (call_outcomes).
const (
	OutcomeAnswered  = "answered"  // a conversation: call.completed
	OutcomeVoicemail = "voicemail" // a message was left: voicemail.created went with it
	OutcomeMissed    = "missed"    // neither: call.missed and, when on, the owner's email
	OutcomeRejected  = "rejected"  // a disabled number without voicemail refused it
)

// Missed-call email statuses: Notify* (pending, sending, sent, failed), or off.
const NotifyOff = "off"

// MissedCall is a call that ended with no conversation and no voicemail.
type MissedCall struct {
	CallSid       string
	Number        string
	From          string
	OwnerEmail    string
	Stage         string
	StartedAt     time.Time
	EndedAt       time.Time
	WaitedSeconds int
	Email         Notify
	// CallerName is Twilio's CallerName (with caller-name lookup), cleaned; empty without.
	CallerName string
	// TimeZone is the call's routing's time_zone; empty: the instance's.
	TimeZone string
}

// CheckCall is the durable job that decides, once the callbacks of an ended call have had time
// to arrive, whether it was missed, and then emails the owner.
type CheckCall struct {
	CallSid string `json:"call_sid"`
}

// Kind names the job in the queue.
func (CheckCall) Kind() string { return "check_call" }

// MissedCallStore is what the missed-call check and its email need of the store.
type MissedCallStore interface {
	// DecideOutcome settles how a call ended, once, from the committed state.
	DecideOutcome(ctx context.Context, callSid string) (*MissedCall, error)
	ClaimMissedEmail(ctx context.Context, callSid string, lease time.Duration) (*MissedCall, error)
	FinishMissedEmail(ctx context.Context, callSid string, sendErr error, final bool) error
}
