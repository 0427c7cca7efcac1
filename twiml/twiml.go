// Package twiml builds every TwiML document callrelay answers Twilio with, on twilio-go's
// twiml package. Callback URLs are absolute on the public base URL, because Twilio calls
// them and signs them as they are written.
package twiml

import (
	"bytes"
	"net/url"
	"strconv"
	"strings"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/twilio/twilio-go/twiml"
)

// Callback paths, their query parameters and the status events asked for, shared with the
// HTTP server's routes.
const (
	PathVoice             = "/twilio/voice"
	PathDialOutcome       = "/twilio/dial-outcome"
	PathCallStatus        = "/twilio/call-status"
	PathVoicemail         = "/twilio/voicemail"
	PathRecording         = "/twilio/recording"
	PathRecordingStatus   = "/twilio/recording-status"
	PathTranscription     = "/twilio/transcription"
	QueryAttempt          = "attempt" // on PathDialOutcome: Plan.Attempt of the <Dial>
	QueryTarget           = "target"  // on PathCallStatus: index of the target in Routing.Targets
	CallStatusEvents      = "initiated ringing answered completed"
	RecordingStatusEvents = "completed absent"
)

// What callrelay says.
const (
	MsgNoMessage   = "We did not get a message. Goodbye."
	MsgThanks      = "Thank you, your message has been recorded. Goodbye."
	MsgUnavailable = "Sorry, nobody is available to take your call right now. Please try again later. Goodbye."
	MsgApology     = "We are sorry, we cannot take your call right now. Please try again later."
)

// withheld are the E.164-looking numbers Twilio sends as From for a withheld caller ID: the
// words ANONYMOUS, RESTRICTED, BLOCKED, UNKNOWN and UNAVAILABLE spelled on a phone keypad.
var withheld = map[string]bool{
	"+266696687": true, "+7378742833": true, "+2562533": true, "+8656696": true, "+86282452253": true,
}

// Precomputed documents: they do not depend on a routing, and the error paths that answer
// them must not fail.
var (
	rejectDoc  = mustRender(twiml.VoiceReject{})
	hangupDoc  = mustRender(twiml.VoiceHangup{})
	apologyDoc = mustRender(twiml.VoiceSay{Message: MsgApology, Language: callrelay.DefaultLanguage}, twiml.VoiceHangup{})
)

// Builder builds TwiML whose callback URLs are absolute on the public base URL Twilio uses
// to reach us. It is safe for concurrent use.
type Builder struct {
	base string
	// URLs of every document, built once rather than on every webhook.
	dialOutcome     []string // by attempt, for attempts < callrelay.MaxTargets
	callStatus      []string // by target index
	recording       string
	recordingStatus string
	transcription   string
}

// NewBuilder returns a Builder for the public base URL publicURL (CALLRELAY_PUBLIC_URL). A
// path prefix is kept, a trailing slash, query and fragment are dropped.
func NewBuilder(publicURL *url.URL) *Builder {
	u := *publicURL
	u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = "", false, "", ""
	b := &Builder{base: strings.TrimRight(u.String(), "/")}
	for i := range callrelay.MaxTargets {
		b.dialOutcome = append(b.dialOutcome, b.dialOutcomeURL(i))
		b.callStatus = append(b.callStatus, b.URL(PathCallStatus+"?"+QueryTarget+"="+strconv.Itoa(i)))
	}
	b.recording = b.URL(PathRecording)
	b.recordingStatus = b.URL(PathRecordingStatus)
	b.transcription = b.URL(PathTranscription)
	return b
}

// URL returns the absolute URL of path (which may carry a query), e.g. b.URL("/twilio/voicemail").
func (b *Builder) URL(path string) string {
	if !strings.HasPrefix(path, "/") {
		return b.base + "/" + path
	}
	return b.base + path
}

func (b *Builder) dialOutcomeURL(attempt int) string {
	if attempt >= 0 && attempt < len(b.dialOutcome) {
		return b.dialOutcome[attempt]
	}
	return b.URL(PathDialOutcome + "?" + QueryAttempt + "=" + strconv.Itoa(attempt))
}

func (b *Builder) callStatusURL(target int) string {
	if target < len(b.callStatus) {
		return b.callStatus[target]
	}
	return b.URL(PathCallStatus + "?" + QueryTarget + "=" + strconv.Itoa(target))
}

// Respond renders the answer for plan p of a call from `from` to the masked number `to`.
func (b *Builder) Respond(r callrelay.Routing, p callrelay.Plan, from, to string) ([]byte, error) {
	switch p.Action {
	case callrelay.ActForward:
		return b.Forward(r, p, from, to)
	case callrelay.ActVoicemail:
		return b.Voicemail(r)
	case callrelay.ActReject:
		return Reject(), nil
	case callrelay.ActHangup:
		return Hangup(), nil
	case callrelay.ActUnavailable:
		return b.Unavailable(r)
	}
	return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: no TwiML for plan action %s", p.Action)
}

// Forward dials the targets of p, after the greeting if there is one. Each noun reports its
// progress to the call-status callback with its target index, so that legs can be told apart.
func (b *Builder) Forward(r callrelay.Routing, p callrelay.Plan, from, to string) ([]byte, error) {
	if len(p.Targets) == 0 {
		return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: forward plan without targets")
	}
	nouns := make([]twiml.Element, len(p.Targets))
	for k, i := range p.Targets {
		if i < 0 || i >= len(r.Targets) {
			return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: plan target %d out of range (%d targets)", i, len(r.Targets))
		}
		n, err := b.noun(r.Targets[i], i)
		if err != nil {
			return nil, err
		}
		nouns[k] = n
	}
	dial := twiml.VoiceDial{
		Action:         b.dialOutcomeURL(p.Attempt),
		Timeout:        strconv.Itoa(r.TimeoutSeconds),
		CallerId:       callerID(r, from, to),
		AnswerOnBridge: "true", // caller hears ringing, not silence, and is billed from the answer
		InnerElements:  nouns,
	}
	if r.Greeting == "" {
		return render(dial)
	}
	return render(say(r, r.Greeting), dial)
}

func (b *Builder) noun(t callrelay.Target, i int) (twiml.Element, error) {
	cb := b.callStatusURL(i)
	switch t.Type {
	case callrelay.TargetPhone:
		return twiml.VoiceNumber{PhoneNumber: t.To, StatusCallback: cb, StatusCallbackEvent: CallStatusEvents}, nil
	case callrelay.TargetSIP:
		// twilio-go leaves out empty attributes: username and password appear only when set.
		return twiml.VoiceSip{SipUrl: t.SIPURI(), Username: t.Username, Password: t.Password,
			StatusCallback: cb, StatusCallbackEvent: CallStatusEvents}, nil
	case callrelay.TargetClient:
		// <Identity> rather than text inside <Client>: both validate, and it is the form that
		// takes <Parameter> siblings.
		return twiml.VoiceClient{StatusCallback: cb, StatusCallbackEvent: CallStatusEvents,
			InnerElements: []twiml.Element{twiml.VoiceIdentity{ClientIdentity: t.Identity}}}, nil
	}
	return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: target %d has unknown type %q", i, t.Type)
}

// callerID is the number the forwarded leg shows: the caller's when asked and usable, else
// the masked number (a withheld caller has no number to show, and Twilio refuses a callerId
// that is not a number).
func callerID(r callrelay.Routing, from, to string) string {
	if r.CallerID == callrelay.CallerIDCaller && callrelay.ValidNumber(from) && !withheld[from] {
		return from
	}
	return to
}

// Voicemail prompts and records. Transcription is asked only where Twilio can transcribe
// (en-US). The closing <Say> is reached only when the caller records nothing: Twilio then
// skips the action and goes on with the next verb.
func (b *Builder) Voicemail(r callrelay.Routing) ([]byte, error) {
	rec := twiml.VoiceRecord{
		Action:                       b.recording,
		MaxLength:                    strconv.Itoa(r.Voicemail.MaxLengthSeconds),
		FinishOnKey:                  "#",
		PlayBeep:                     "true",
		RecordingStatusCallback:      b.recordingStatus,
		RecordingStatusCallbackEvent: RecordingStatusEvents,
	}
	if r.TranscriptionPossible() {
		rec.Transcribe = "true"
		rec.TranscribeCallback = b.transcription
	}
	return render(say(r, r.VoicemailPrompt()), rec, say(r, MsgNoMessage), twiml.VoiceHangup{})
}

// RecordingThanks answers the <Record> action.
func (b *Builder) RecordingThanks(r callrelay.Routing) ([]byte, error) {
	return render(say(r, MsgThanks), twiml.VoiceHangup{})
}

// Unavailable tells the caller nobody answered when there is no voicemail to leave.
func (b *Builder) Unavailable(r callrelay.Routing) ([]byte, error) {
	return render(say(r, MsgUnavailable), twiml.VoiceHangup{})
}

// Reject refuses the call before it is answered: the only answer Twilio does not bill. The
// document is shared: callers must not modify it.
func Reject() []byte { return rejectDoc }

// Hangup ends the call. The document is shared: callers must not modify it.
func Hangup() []byte { return hangupDoc }

// Apology tells the caller something failed on our side and hangs up, in the number's
// language and voice when given. It never fails: if rendering does, the answer is the en-US
// apology. The result may be shared: callers must not modify it.
func Apology(language, voice string) []byte {
	if (language == "" || language == callrelay.DefaultLanguage) && voice == "" {
		return apologyDoc
	}
	doc, err := render(twiml.VoiceSay{Message: MsgApology, Language: language, Voice: voice}, twiml.VoiceHangup{})
	if err != nil {
		return apologyDoc
	}
	return doc
}

// say is a <Say> in the number's language and voice (twilio-go omits them when empty).
func say(r callrelay.Routing, msg string) twiml.VoiceSay {
	return twiml.VoiceSay{Message: msg, Language: r.Language, Voice: r.Voice}
}

// render writes a <Response> of verbs. It is twiml.Voice writing straight to bytes, which
// saves the copy to and from a string of the whole document.
func render(verbs ...twiml.Element) ([]byte, error) {
	doc, resp := twiml.CreateDocument()
	twiml.AddAllVerbs(resp, verbs)
	var buf bytes.Buffer
	buf.Grow(1024)
	if _, err := doc.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func mustRender(verbs ...twiml.Element) []byte {
	doc, err := render(verbs...)
	if err != nil {
		panic(err)
	}
	return doc
}
