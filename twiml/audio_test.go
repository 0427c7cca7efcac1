package twiml_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twiml"
	"github.com/callrelay/callrelay/twiml/twimltest"
)

// A recorded greeting or prompt is played instead of the text: Twilio cannot fall back from a
// <Play> it fails to fetch, so the text is not read as well.
func TestAudioGreetingAndPrompt(t *testing.T) {
	u, _ := url.Parse(base)
	b := twiml.NewBuilder(u)
	rt := routing(t, `{"owner_email": "dana@example.com", "targets": [{"type": "phone", "to": "+15550001111"}],
		"greeting": "Welcome to the dental office.", "greeting_url": "https://media.example.com/welcome.mp3",
		"voicemail": {"prompt": "Leave a message.", "prompt_url": "https://media.example.com/leave.mp3?v=2"}}`)
	in := twiml.Inbound{CallSid: callSid, From: caller, To: masked}

	doc, err := b.Respond(rt, callrelay.PlanInbound(rt), in)
	if err != nil {
		t.Fatal(err)
	}
	twimltest.Validate(t, doc)
	n := twimltest.Parse(t, doc)
	if got := strings.Join(n.ChildNames(), " "); got != "Play Dial" || n.Child(0).Text != "https://media.example.com/welcome.mp3" {
		t.Errorf("forward with a recorded greeting: %s %v, want the recording played, then Dial", got, n)
	}

	doc, err = b.Voicemail(rt)
	if err != nil {
		t.Fatal(err)
	}
	twimltest.Validate(t, doc)
	n = twimltest.Parse(t, doc)
	if got := strings.Join(n.ChildNames(), " "); got != "Play Record Say Hangup" || n.Child(0).Text != "https://media.example.com/leave.mp3?v=2" {
		t.Errorf("voicemail with a recorded prompt: %s, want the recording, then Record", got)
	}

	conf := rt
	conf.Mode = callrelay.ModeConference
	doc, err = b.Respond(conf, callrelay.PlanInbound(conf), in)
	if err != nil {
		t.Fatal(err)
	}
	twimltest.Validate(t, doc, twimltest.GapConferenceParticipantLabel)
	if got := strings.Join(twimltest.Parse(t, doc).ChildNames(), " "); got != "Play Dial" {
		t.Errorf("conference with a recorded greeting: %s", got)
	}
}
