package twiml

import (
	"github.com/twilio/twilio-go/twiml"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// greeting is the number's greeting: its recording (<Play>) when it has one, else its text
// (<Say>); nil without either. Twilio has no fallback for a <Play> it cannot fetch, so a
// recording is played alone (callrelay/audio.go).
func greeting(r callrelay.Routing) twiml.Element {
	switch {
	case r.GreetingURL != "":
		return twiml.VoicePlay{Url: r.GreetingURL}
	case r.Greeting != "":
		return say(r, r.Greeting)
	}
	return nil
}

// voicemailPrompt is what the caller hears before the beep: the recording, else the text.
func voicemailPrompt(r callrelay.Routing) twiml.Element {
	if r.Voicemail.PromptURL != "" {
		return twiml.VoicePlay{Url: r.Voicemail.PromptURL}
	}
	return say(r, r.VoicemailPrompt())
}
