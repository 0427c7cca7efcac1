package callrelay

import (
	"net/url"
	"strings"
	"unicode/utf8"
)

// A greeting or voicemail prompt may be a recording (<Play>) rather than text (<Say>). Twilio
// has no fallback for a <Play> whose audio cannot be fetched (no failover URL, no
// continue-on-error attribute): when both are given, callrelay answers the <Play> alone and the
// text is kept as what the recording says (docs/design.md).

// maxAudioURLLen bounds an audio URL: it is written into every answer that plays it.
const maxAudioURLLen = 1024

// validAudioURL checks an audio URL: empty, or an absolute https URL with a host, without
// credentials (answers and API output show it) or fragment.
func validAudioURL(field, s string) error {
	if s == "" {
		return nil
	}
	bad := Invalidf(field, "%s must be an https URL of an audio file, at most %d characters, without credentials or fragment.", field, maxAudioURLLen)
	if len(s) > maxAudioURLLen || !utf8.ValidString(s) || strings.ContainsAny(s, " \t\r\n\x00") {
		return bad
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return bad
	}
	return nil
}

// validateAudio checks the audio URLs of r.
func (r Routing) validateAudio() error {
	if err := validAudioURL("greeting_url", r.GreetingURL); err != nil {
		return err
	}
	if err := validAudioURL("voicemail.prompt_url", r.Voicemail.PromptURL); err != nil {
		return err
	}
	if a := r.AfterHours; a != nil {
		if err := validAudioURL("after_hours.greeting_url", a.GreetingURL); err != nil {
			return err
		}
		if err := validAudioURL("after_hours.voicemail_prompt_url", a.VoicemailPromptURL); err != nil {
			return err
		}
		if a.GreetingURL != "" && len(a.Targets) == 0 {
			// Straight to voicemail, greeting and prompt are one message.
			return Invalidf("after_hours.greeting_url", "after_hours.greeting_url applies with after_hours.targets; without targets, record the greeting into after_hours.voicemail_prompt_url.")
		}
	}
	return nil
}
