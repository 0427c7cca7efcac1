// Package twiml builds every TwiML document callrelay answers Twilio with, on twilio-go's
// twiml package. Callback URLs are absolute on the public base URL, because Twilio calls
// them and signs them as they are written.
package twiml

import (
	"bytes"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	PathConferenceStatus  = "/twilio/conference-status"
	PathHoldMusic         = "/twilio/hold-music"
	PathHoldWait          = "/twilio/hold-wait"       // direct-mode hold: the loop of the party who is not held
	PathHoldEnqueue       = "/twilio/hold-enqueue"    // direct-mode hold: the held party into its queue
	PathHoldResume        = "/twilio/hold-resume"     // direct-mode resume: dial the held party's queue
	PathEnqueueOutcome    = "/twilio/enqueue-outcome" // an <Enqueue>'s action (QueueResult)
	PathBridgeOutcome     = "/twilio/bridge-outcome"  // a resuming <Dial><Queue>'s action
	QueryParty            = "party"                   // on the hold paths: whose leg the document is for
	QueryQueue            = "queue"                   // on PathHoldResume: whose queue to dial
	QueryAttempt          = "attempt"                 // on PathDialOutcome: Plan.Attempt of the <Dial>
	QueryTarget           = "target"                  // on PathCallStatus: index of the target in Routing.Targets
	QueryCall             = "call"                    // on PathCallStatus: the caller's CallSid, for a conference participant (it has no ParentCallSid)
	CallStatusEvents      = "initiated ringing answered completed"
	RecordingStatusEvents = "completed absent"
	// ConferenceEvents are the conference events asked for: Twilio has no "unhold" value,
	// "hold" brings participant-hold and participant-unhold.
	ConferenceEvents = "start end join leave hold"
	// HoldMethod is how Twilio fetches a held party's hold music: GET suits both our
	// /twilio/hold-music and a plain audio file.
	HoldMethod = "GET"
)

// What callrelay says.
const (
	MsgNoMessage   = "We did not get a message. Goodbye."
	MsgThanks      = "Thank you, your message has been recorded. Goodbye."
	MsgUnavailable = "Sorry, nobody is available to take your call right now. Please try again later. Goodbye."
	MsgApology     = "We are sorry, we cannot take your call right now. Please try again later."
	MsgHold        = "Please hold. You will be connected in a moment."
	MsgCallerHeld  = "The caller is on hold. Please stay on the line."
	MsgCalleeHeld  = "Please hold. You will be reconnected in a moment."
	MsgStillHeld   = "Please stay on the line."
)

// resumeTimeout is how long a resuming <Dial><Queue> waits for the held party to be taken off
// its queue (immediate when it is there).
const resumeTimeout = 20

// holdPause is the silence between two spoken hold messages of the built-in hold loop.
const holdPause = 20

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
	emptyDoc   = mustRender()
	apologyDoc = mustRender(twiml.VoiceSay{Message: MsgApology, Language: callrelay.DefaultLanguage}, twiml.VoiceHangup{})
)

// Builder builds TwiML whose callback URLs are absolute on the public base URL Twilio uses
// to reach us. It is safe for concurrent use.
type Builder struct {
	base string
	// URLs of every document, built once rather than on every webhook.
	dialOutcome      []string // by attempt, for attempts < callrelay.MaxTargets
	callStatus       []string // by target index
	recording        string
	recordingStatus  string
	transcription    string
	voicemail        string
	conferenceStatus string
	holdMusic        string
	holdLoop         []byte // the built-in hold loop
	docs             docMemo
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
	b.voicemail = b.URL(PathVoicemail)
	b.conferenceStatus = b.URL(PathConferenceStatus)
	b.holdMusic = b.URL(PathHoldMusic)
	b.holdLoop = mustRender(
		twiml.VoiceSay{Message: MsgHold, Language: callrelay.DefaultLanguage},
		twiml.VoicePause{Length: strconv.Itoa(holdPause)},
		twiml.VoiceRedirect{Url: b.holdMusic, Method: "POST"})
	return b
}

// VoicemailURL is where a caller redirected to voicemail is sent.
func (b *Builder) VoicemailURL() string { return b.voicemail }

// HoldMusicURL is callrelay's own hold music (GET or POST).
func (b *Builder) HoldMusicURL() string { return b.holdMusic }

// ParticipantStatusURL is the StatusCallback of the conference participant dialing target i
// of the call callSid: a participant's call has no ParentCallSid, so the URL says whose it is.
func (b *Builder) ParticipantStatusURL(callSid string, target int) string {
	return b.URL(PathCallStatus + "?" + QueryCall + "=" + url.QueryEscape(callSid) + "&" + QueryTarget + "=" + strconv.Itoa(target))
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

// Inbound is the caller's call, as Twilio describes it in a webhook.
type Inbound struct {
	CallSid string
	From    string // the caller
	To      string // the masked number
}

// Respond renders the answer for plan p of the call in.
func (b *Builder) Respond(r callrelay.Routing, p callrelay.Plan, in Inbound) ([]byte, error) {
	switch p.Action {
	case callrelay.ActForward:
		if r.Mode == callrelay.ModeConference {
			return b.Conference(r, in)
		}
		return b.ForwardCall(r, p, in)
	case callrelay.ActVoicemail:
		return b.Voicemail(r)
	case callrelay.ActReject:
		return Reject(), nil
	case callrelay.ActHangup:
		return Hangup(), nil
	case callrelay.ActUnavailable:
		return b.Unavailable(r)
	case callrelay.ActNone:
		return Empty(), nil
	case callrelay.ActEnqueue:
		return b.Enqueue(in.CallSid, p.Party)
	case callrelay.ActHoldWait:
		return b.HoldWait(in.CallSid, p.Party, false)
	}
	return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: no TwiML for plan action %s", p.Action)
}

// Forward dials the targets of p, after the greeting if there is one. Each noun reports its
// progress to the call-status callback with its target index, so that legs can be told apart.
func (b *Builder) Forward(r callrelay.Routing, p callrelay.Plan, from, to string) ([]byte, error) {
	return b.ForwardCall(r, p, Inbound{From: from, To: to})
}

// ForwardCall is Forward for the call in: with its CallSid, a phone leg's answering-machine
// detection reports to /twilio/screen-amd?call=….
func (b *Builder) ForwardCall(r callrelay.Routing, p callrelay.Plan, in Inbound) ([]byte, error) {
	from, to := in.From, in.To
	if len(p.Targets) == 0 {
		return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: forward plan without targets")
	}
	nouns := make([]twiml.Element, len(p.Targets))
	for k, i := range p.Targets {
		if i < 0 || i >= len(r.Targets) {
			return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: plan target %d out of range (%d targets)", i, len(r.Targets))
		}
		n, err := b.noun(r, i, in.CallSid)
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
	if g := greeting(r); g != nil {
		return render(g, dial)
	}
	return render(dial)
}

// ConferenceTimeLimit caps, in seconds, the caller's <Dial> into its conference (timeLimit):
// 4 hours, Twilio's own default, written out so that an account whose call limit was raised
// (up to 24 h) still cannot bill a stalled conference call for longer.
const ConferenceTimeLimit = 4 * 60 * 60

// Conference puts the caller into a conference named after its CallSid, where it hears the
// hold music until the owner, added by callrelay through the REST API, joins. The caller does
// not start the conference (so the wait music plays) but ends it when leaving; the Dial action
// learns how the conference ended. Every conference event goes to /twilio/conference-status.
// The Dial's timeLimit bounds the whole call (ConferenceTimeLimit).
func (b *Builder) Conference(r callrelay.Routing, in Inbound) ([]byte, error) {
	if in.CallSid == "" {
		return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: conference without a CallSid")
	}
	dial := twiml.VoiceDial{
		Action:    b.dialOutcomeURL(0),
		TimeLimit: strconv.Itoa(ConferenceTimeLimit),
		InnerElements: []twiml.Element{twiml.VoiceConference{
			Name:                   in.CallSid,
			ParticipantLabel:       callrelay.CallerLabel,
			Beep:                   "false",
			StartConferenceOnEnter: "false",
			EndConferenceOnExit:    "true",
			WaitUrl:                b.holdMusic,
			WaitMethod:             "POST",
			StatusCallback:         b.conferenceStatus,
			StatusCallbackMethod:   "POST",
			StatusCallbackEvent:    ConferenceEvents,
		}},
	}
	if g := greeting(r); g != nil {
		return render(g, dial)
	}
	return render(dial)
}

// HoldMusic loops the hold audio: music (a <Play> of musicURL, looped for ever) or, without
// one, a spoken line and a pause, again and again through <Redirect>. It depends on nothing
// that can fail: a failing waitUrl keeps a conference from starting.
func (b *Builder) HoldMusic(musicURL string) []byte {
	if musicURL != "" {
		if doc, err := render(twiml.VoicePlay{Url: musicURL, Loop: "0"}); err == nil {
			return doc
		}
	}
	return b.holdLoop
}

func (b *Builder) noun(r callrelay.Routing, i int, callSid string) (twiml.Element, error) {
	t := r.Targets[i]
	cb := b.callStatusURL(i)
	screen, amd := b.screenAttrs(r, i) // docs/design.md "Screening"; both empty without one
	amdCallback := ""
	if amd != "" && callSid != "" {
		amdCallback = b.screenAMDURL(callSid, i)
	}
	method := ""
	if screen != "" {
		method = "POST"
	}
	switch t.Type {
	case callrelay.TargetPhone:
		return twiml.VoiceNumber{PhoneNumber: t.To, StatusCallback: cb, StatusCallbackEvent: CallStatusEvents,
			Url: screen, Method: method, MachineDetection: amd, AmdStatusCallback: amdCallback}, nil
	case callrelay.TargetSIP:
		// twilio-go leaves out empty attributes: username and password appear only when set.
		return twiml.VoiceSip{SipUrl: t.SIPURI(), Username: t.Username, Password: t.Password,
			StatusCallback: cb, StatusCallbackEvent: CallStatusEvents, Url: screen, Method: method}, nil
	case callrelay.TargetClient:
		// <Identity> rather than text inside <Client>: both validate, and it is the form that
		// takes <Parameter> siblings.
		return twiml.VoiceClient{StatusCallback: cb, StatusCallbackEvent: CallStatusEvents, Url: screen, Method: method,
			InnerElements: []twiml.Element{twiml.VoiceIdentity{ClientIdentity: t.Identity}}}, nil
	}
	return nil, callrelay.Errorf(callrelay.EINTERNAL, "twiml: target %d has unknown type %q", i, t.Type)
}

// callerID is the number the forwarded leg shows: the caller's when asked and usable, else
// the masked number (a withheld caller has no number to show, and Twilio refuses a callerId
// that is not a number).
func callerID(r callrelay.Routing, from, to string) string {
	if r.CallerID == callrelay.CallerIDCaller && ShowableCallerID(from) {
		return from
	}
	return to
}

// ShowableCallerID reports whether a caller's From can be shown as a caller ID: a number, and
// not one of the keypad spellings Twilio sends for a withheld number.
func ShowableCallerID(from string) bool {
	return callrelay.ValidNumber(from) && !withheld[from]
}

// Voicemail prompts and records. Transcription is asked only where Twilio can transcribe
// (en-US). The closing <Say> is reached only when the caller records nothing: Twilio then
// skips the action and goes on with the next verb.
func (b *Builder) Voicemail(r callrelay.Routing) ([]byte, error) {
	k := docKey{kind: docVoicemail, language: r.Language, voice: r.Voice, prompt: r.VoicemailPrompt(),
		promptURL: r.Voicemail.PromptURL, maxLength: r.Voicemail.MaxLengthSeconds, transcribe: r.TranscriptionPossible()}
	return b.docs.get(k, func() ([]byte, error) {
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
		return render(voicemailPrompt(r), rec, say(r, MsgNoMessage), twiml.VoiceHangup{})
	})
}

// RecordingThanks answers the <Record> action.
func (b *Builder) RecordingThanks(r callrelay.Routing) ([]byte, error) {
	return b.docs.get(docKey{kind: docThanks, language: r.Language, voice: r.Voice}, func() ([]byte, error) {
		return render(say(r, MsgThanks), twiml.VoiceHangup{})
	})
}

// Unavailable tells the caller nobody answered when there is no voicemail to leave.
func (b *Builder) Unavailable(r callrelay.Routing) ([]byte, error) {
	return b.docs.get(docKey{kind: docUnavailable, language: r.Language, voice: r.Voice}, func() ([]byte, error) {
		return render(say(r, MsgUnavailable), twiml.VoiceHangup{})
	})
}

// The documents of docMemo.
const (
	docVoicemail = iota + 1
	docThanks
	docUnavailable
)

// docKey is every routing field a document of docMemo is made of, and which document.
type docKey struct {
	kind              int
	language, voice   string
	prompt, promptURL string
	maxLength         int
	transcribe        bool
}

// docMemo remembers the documents made of a few routing fields only (the voicemail prompt
// and <Record>, the apologies that end a call): every call to a number answers the same bytes,
// and rendering them through twilio-go's element tree again for each Dial action cost a third
// of the handler's Go time and a quarter of the request's allocations (docs/performance.md). The documents are
// shared: callers must not modify them (as Reject's).
type docMemo struct {
	mu sync.RWMutex
	m  map[docKey][]byte
}

// docMemoMax bounds the memo; when full it starts again (numbers are few, calls many).
const docMemoMax = 1024

func (dm *docMemo) get(k docKey, render func() ([]byte, error)) ([]byte, error) {
	dm.mu.RLock()
	doc, ok := dm.m[k]
	dm.mu.RUnlock()
	if ok {
		return doc, nil
	}
	doc, err := render()
	if err != nil {
		return nil, err
	}
	dm.mu.Lock()
	if dm.m == nil || len(dm.m) >= docMemoMax {
		dm.m = make(map[docKey][]byte)
	}
	doc = slices.Clip(doc) // shared: an append must copy, never write into another's
	dm.m[k] = doc
	dm.mu.Unlock()
	return doc, nil
}

// Reject refuses the call before it is answered: the only answer Twilio does not bill. The
// document is shared: callers must not modify it.
func Reject() []byte { return rejectDoc }

// Hangup ends the call. The document is shared: callers must not modify it.
func Hangup() []byte { return hangupDoc }

// QueueName is the queue a direct-mode call's party waits in while held: one per party and
// call, so a queue is never shared with another call, and well under Twilio's 64 characters.
func QueueName(callSid, party string) string { return "cr-" + callSid + "-" + party }

// holdURL is a direct-mode hold path with the call and party (and more) in its query.
func (b *Builder) holdURL(path, callSid, party string, extra ...string) string {
	q := url.Values{QueryCall: {callSid}, QueryParty: {party}}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return b.URL(path + "?" + q.Encode())
}

// LegStatusURL is the StatusCallback of a leg callrelay redirects: it names the caller's call.
func (b *Builder) LegStatusURL(callSid string) string {
	return b.URL(PathCallStatus + "?" + QueryCall + "=" + url.QueryEscape(callSid))
}

// HoldWaitURL is where the party who is not held waits (UpdateCall Url).
func (b *Builder) HoldWaitURL(callSid, party string) string {
	return b.holdURL(PathHoldWait, callSid, party)
}

// HoldEnqueueURL puts party into its queue (UpdateCall Url).
func (b *Builder) HoldEnqueueURL(callSid, party string) string {
	return b.holdURL(PathHoldEnqueue, callSid, party)
}

// HoldResumeURL makes party's leg dial the queue of queueParty, bridging the two again.
func (b *Builder) HoldResumeURL(callSid, party, queueParty string) string {
	return b.holdURL(PathHoldResume, callSid, party, QueryQueue, queueParty)
}

// HoldWait keeps the party who is not held on the line: a spoken line, then a pause and a
// reminder again and again through <Redirect>; never a hang-up. again is true on the loops.
func (b *Builder) HoldWait(callSid, party string, again bool) ([]byte, error) {
	msg := MsgCallerHeld // the callee waits while the caller is held
	if party == callrelay.PartyCaller {
		msg = MsgCalleeHeld
	}
	next := b.holdURL(PathHoldWait, callSid, party, "again", "1")
	if again {
		return render(twiml.VoicePause{Length: strconv.Itoa(holdPause)}, twiml.VoiceSay{Message: MsgStillHeld, Language: callrelay.DefaultLanguage},
			twiml.VoiceRedirect{Url: next, Method: "POST"})
	}
	return render(twiml.VoiceSay{Message: msg, Language: callrelay.DefaultLanguage}, twiml.VoiceRedirect{Url: next, Method: "POST"})
}

// Enqueue puts party's leg into its queue, where it hears the hold music. Its action learns
// how the leg left the queue (QueueResult).
func (b *Builder) Enqueue(callSid, party string) ([]byte, error) {
	return render(twiml.VoiceEnqueue{
		Name:          QueueName(callSid, party),
		Action:        b.holdURL(PathEnqueueOutcome, callSid, party),
		Method:        "POST",
		WaitUrl:       b.holdMusic,
		WaitUrlMethod: "POST",
	})
}

// ResumeDial has party's leg dial the queue where queueParty is held: the two are bridged again,
// and the bridge now belongs to this leg, whose Dial action is /twilio/bridge-outcome.
func (b *Builder) ResumeDial(callSid, party, queueParty string) ([]byte, error) {
	return render(twiml.VoiceDial{
		Action:        b.holdURL(PathBridgeOutcome, callSid, party),
		Timeout:       strconv.Itoa(resumeTimeout),
		InnerElements: []twiml.Element{twiml.VoiceQueue{Name: QueueName(callSid, queueParty)}},
	})
}

// Empty is a document without verbs: the answer Twilio ignores (a redirected call's Dial
// action). The document is shared: callers must not modify it.
func Empty() []byte { return emptyDoc }

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
