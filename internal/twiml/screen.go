package twiml

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/twilio/twilio-go/twiml"
)

// Screening (docs/design.md "Screening"): the TwiML a dialed leg runs after it answers and before
// Twilio bridges it (<Number url>, <Sip url>, <Client url>). A document that ends without
// <Hangup> lets Twilio bridge the leg; <Hangup> ends that leg only.
const (
	PathScreen       = "/twilio/screen"        // the leg's screen (the noun's url)
	PathScreenResult = "/twilio/screen-result" // its <Gather> action, and where silence is reported
	PathScreenAMD    = "/twilio/screen-amd"    // a phone leg's amdStatusCallback (machine detection)
	QueryWait        = "wait"                  // on PathScreen: how many seconds the screen has waited for detection
	// AMDWait is how long, at most, a screen waits for the machine detection result before
	// going on as for a person (Twilio's detection blocks the leg until it has one, so it
	// normally arrives with or just after the screen's request).
	AMDWait = 3
	// ScreenTimeout is how long each round of the screen waits for a key, in seconds.
	ScreenTimeout = 5
	// MachineDetection is the answering-machine detection asked on phone legs: Enable reports
	// as soon as Twilio tells a person from a machine (machine_start), without waiting for the
	// greeting's end (DetectMessageEnd), so a machine is hung up sooner.
	MachineDetection = "Enable"
	// Withheld is how the screen names a caller without a number to show.
	Withheld = "a withheld number"
)

// screenURL is the url of target i's noun.
func (b *Builder) screenURL(i int) string {
	return b.URL(PathScreen + "?" + QueryTarget + "=" + strconv.Itoa(i))
}

// screenQuery is the query of a screen's URLs: the target and, for a conference-mode leg (a
// call of its own, without ParentCallSid), the caller's call.
func screenQuery(call string, i int) string {
	q := "?" + QueryTarget + "=" + strconv.Itoa(i)
	if call != "" {
		q = "?" + QueryCall + "=" + url.QueryEscape(call) + "&" + QueryTarget + "=" + strconv.Itoa(i)
	}
	return q
}

// ConferenceScreenURL is the Url of the call placed to screened target i of the
// conference-mode call callSid: its screen, which joins the conference on acceptance.
func (b *Builder) ConferenceScreenURL(callSid string, i int) string {
	return b.URL(PathScreen + screenQuery(callSid, i))
}

// screenAMDURL is the amdStatusCallback of target i of the call callSid: the callback may not
// name the caller's call, so the URL does.
func (b *Builder) screenAMDURL(callSid string, i int) string {
	return b.URL(PathScreenAMD + "?" + QueryCall + "=" + url.QueryEscape(callSid) + "&" + QueryTarget + "=" + strconv.Itoa(i))
}

// ScreenWait has the leg wait a second for the machine detection result, then fetch its screen
// again (waited: the seconds waited so far; call: the caller's call for a conference-mode leg,
// else "").
func (b *Builder) ScreenWait(call string, target, waited int) ([]byte, error) {
	return render(twiml.VoicePause{Length: "1"}, twiml.VoiceRedirect{Method: "POST",
		Url: b.URL(PathScreen + screenQuery(call, target) + "&" + QueryWait + "=" + strconv.Itoa(waited+1))})
}

func (b *Builder) screenResultURL(call string, i int) string {
	return b.URL(PathScreenResult + screenQuery(call, i))
}

// ScreenLine is what the screen says of a call: who is called (the number's label, else the
// masked number read digit by digit) and who calls (digit by digit, or "a withheld number" for
// Twilio's anonymous sentinels and anything that is not a number).
func ScreenLine(r callrelay.Routing, masked, from string) string {
	line := r.Label
	if line == "" {
		line = readDigits(masked)
	}
	caller := Withheld
	if ShowableCallerID(from) {
		caller = readDigits(from)
	}
	return "Call for " + line + " from " + caller + "."
}

// readDigits spells a number one digit at a time ("5 5 5 1 2"), as text to speech reads it.
func readDigits(number string) string {
	var b strings.Builder
	for _, r := range number {
		if r < '0' || r > '9' {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	if b.Len() == 0 {
		return "an unknown number"
	}
	return b.String()
}

// MsgScreenPress follows the screen line when a key is asked.
const MsgScreenPress = "Press 1 to accept."

// ScreenPress asks the leg to press 1: the line and the question, twice, each round waiting
// ScreenTimeout seconds for one key (sent to /twilio/screen-result). Silence after both rounds
// is reported there too (a <Redirect> without Digits), which hangs the leg up: a carrier's
// voicemail never presses a key.
// call is the caller's call for a conference-mode leg, else "".
func (b *Builder) ScreenPress(r callrelay.Routing, call string, target int, masked, from string) ([]byte, error) {
	line := ScreenLine(r, masked, from)
	action := b.screenResultURL(call, target)
	round := func() twiml.VoiceGather {
		return twiml.VoiceGather{
			Action:        action,
			Method:        "POST",
			NumDigits:     "1",
			Timeout:       strconv.Itoa(ScreenTimeout),
			InnerElements: []twiml.Element{say(r, line+" "+MsgScreenPress)},
		}
	}
	return render(round(), round(), twiml.VoiceRedirect{Url: action, Method: "POST"})
}

// ScreenAnnounce whispers who is calling; the document then ends and Twilio bridges the leg.
func (b *Builder) ScreenAnnounce(r callrelay.Routing, masked, from string) ([]byte, error) {
	return render(say(r, ScreenLine(r, masked, from)))
}

// ConferenceJoin is what a conference-mode leg does once it accepted (or, announced, once it
// heard who calls): it joins the caller's conference (named after the caller's CallSid) as
// target i's callee, with what CreateParticipant gives an unscreened target: no beep, it starts
// the conference and ends it when it leaves, and the conference's events reach callrelay.
// whisper, when not empty, is said first (the announce screen).
func (b *Builder) ConferenceJoin(r callrelay.Routing, callSid string, i int, whisper string) ([]byte, error) {
	if callSid == "" {
		return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: conference join without a CallSid")
	}
	dial := twiml.VoiceDial{
		TimeLimit: strconv.Itoa(ConferenceTimeLimit),
		InnerElements: []twiml.Element{twiml.VoiceConference{
			Name:                   callSid,
			ParticipantLabel:       callrelay.CalleeLabel(i),
			Beep:                   "false",
			StartConferenceOnEnter: "true",
			EndConferenceOnExit:    "true",
			StatusCallback:         b.conferenceStatus,
			StatusCallbackMethod:   "POST",
			StatusCallbackEvent:    ConferenceEvents,
		}},
	}
	if whisper == "" {
		return render(dial)
	}
	return render(say(r, whisper), dial)
}

// screenAttrs are the url (and, on a phone, machine detection) of target i's noun: nil when
// the leg is bridged as soon as it answers.
func (b *Builder) screenAttrs(r callrelay.Routing, i int) (url, amd string) {
	if !r.ScreensTarget(i) {
		return "", ""
	}
	if r.MachineDetection && r.Targets[i].Type == callrelay.TargetPhone {
		amd = MachineDetection
	}
	return b.screenURL(i), amd
}
