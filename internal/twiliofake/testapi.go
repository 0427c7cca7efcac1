package twiliofake

import (
	"fmt"
	"regexp"
	"slices"
)

// Test helpers: set up the model as Twilio would have it, and look at it, under the Fake's
// lock. They panic on misuse (a malformed SID, an unknown call), which is a bug in the test.

// CallState is a call as the fake has it.
type CallState struct {
	SID, Status, To, From string
	URL, Method, Twiml    string // what it runs: placed with (CreateCall) or last sent to (UpdateCall, UpdateMember)
}

// ParticipantState is a conference participant as the fake has it.
type ParticipantState struct {
	ConferenceSID, CallSID, Label, Status       string
	Hold, Muted                                 bool
	EndConferenceOnExit, StartConferenceOnEnter bool
	HoldURL, HoldMethod                         string
}

// ConferenceState is a conference as the fake has it.
type ConferenceState struct {
	SID, FriendlyName, Status string
	ReasonEnded               string // reason_conference_ended once completed
	Participants              []ParticipantState
}

// QueueState is a queue as the fake has it.
type QueueState struct {
	SID, FriendlyName string
	MaxSize           int
	Members           []string // call SIDs, front first
}

func mustSID(what string, re *regexp.Regexp, sid string) {
	if !re.MatchString(sid) {
		panic(fmt.Sprintf("twiliofake: %s: %q does not match %s", what, sid, re))
	}
}

func mustCallStatus(what, status string) {
	if !slices.Contains(callStatuses, status) {
		panic(fmt.Sprintf("twiliofake: %s: %q is not a call status (%v)", what, status, callStatuses))
	}
}

// AddCall registers a call (an inbound call, say) with this status, or moves a known one
// (SetCallStatus).
func (f *Fake) AddCall(sid, status string) {
	mustSID("AddCall", callSID, sid)
	mustCallStatus("AddCall", status)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ensureCall(sid, status)
}

func (f *Fake) ensureCall(sid, status string) *Call {
	if c := f.model.Call(sid); c != nil {
		f.model.SetCallStatus(c, status)
		return c
	}
	return f.model.NewCall(Call{Sid: sid, Status: status, Direction: "inbound"})
}

// SetCallStatus moves a known call, as the callee answering ("in-progress") or hanging up
// ("completed") would. Answering joins a participant being dialed into its conference; a final
// status takes the call out of its conference and queue. A call that has ended stays as it is.
func (f *Fake) SetCallStatus(sid, status string) {
	mustCallStatus("SetCallStatus", status)
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.model.Call(sid)
	if c == nil {
		panic(fmt.Sprintf("twiliofake: SetCallStatus: no call %s", sid))
	}
	f.model.SetCallStatus(c, status)
}

// AddConference registers an in-progress conference.
func (f *Fake) AddConference(sid, friendlyName string) {
	mustSID("AddConference", conferenceSID, sid)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.model.Conference(sid) == nil {
		f.model.NewConference(sid, friendlyName)
	}
}

// AddParticipant puts a call in a conference (label may be empty), registering the conference
// and an in-progress call if they are unknown: a caller who joined by TwiML.
func (f *Fake) AddParticipant(conferenceSid, callSid, label string) {
	mustSID("AddParticipant", conferenceSID, conferenceSid)
	mustSID("AddParticipant", callSID, callSid)
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.model.Conference(conferenceSid)
	if conf == nil {
		conf = f.model.NewConference(conferenceSid, "")
	}
	c := f.model.Call(callSid)
	if c == nil {
		c = f.ensureCall(callSid, StatusInProgress)
	}
	if _, err := f.model.Join(conf, c, JoinOptions{Label: label, StartConferenceOnEnter: true}); err != nil {
		panic("twiliofake: AddParticipant: " + err.Error())
	}
}

// AddQueueMember puts a call at the back of a queue, registering the queue and an in-progress
// call if they are unknown: a caller who was enqueued by TwiML.
func (f *Fake) AddQueueMember(queueSid, callSid string) {
	mustSID("AddQueueMember", queueSID, queueSid)
	mustSID("AddQueueMember", callSID, callSid)
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.model.Queue(queueSid)
	if q == nil {
		q = f.model.NewQueue(queueSid, queueSid)
	}
	c := f.model.Call(callSid)
	if c == nil {
		c = f.ensureCall(callSid, StatusInProgress)
	}
	f.model.Enqueue(q, c)
}

// AddRecording makes a recording (an RE… SID) exist at the fake.
func (f *Fake) AddRecording(sid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.model.AddRecording(Recording{Sid: sid})
}

// HasRecording reports whether a recording exists (added and not deleted).
func (f *Fake) HasRecording(sid string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.model.Recording(sid) != nil
}

// Call returns a call's state.
func (f *Fake) Call(sid string) (CallState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.model.Call(sid)
	if c == nil {
		return CallState{}, false
	}
	return CallState{SID: c.Sid, Status: c.Status, To: c.To, From: c.From, URL: c.URL, Method: c.Method, Twiml: c.Twiml}, true
}

// Participant returns the state of a participant (in the room or being dialed in), by call
// SID or label.
func (f *Fake) Participant(conferenceSid, callSidOrLabel string) (ParticipantState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.model.Conference(conferenceSid)
	if conf == nil {
		return ParticipantState{}, false
	}
	p := conf.find(callSidOrLabel)
	if p == nil {
		return ParticipantState{}, false
	}
	return participantState(p), true
}

func participantState(p *Participant) ParticipantState {
	return ParticipantState{
		ConferenceSID: p.Conference.Sid, CallSID: p.Call.Sid, Label: p.Label, Status: participantStatus(p.Call.Status),
		Hold: p.Hold, Muted: p.Muted, EndConferenceOnExit: p.EndConferenceOnExit, StartConferenceOnEnter: p.StartConferenceOnEnter,
		HoldURL: p.HoldURL, HoldMethod: p.HoldMethod,
	}
}

// Conference returns a conference's state, with its participants.
func (f *Fake) Conference(sid string) (ConferenceState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf := f.model.Conference(sid)
	if conf == nil {
		return ConferenceState{}, false
	}
	s := ConferenceState{SID: conf.Sid, FriendlyName: conf.FriendlyName, Status: conf.Status, ReasonEnded: conf.ReasonEnded}
	for _, p := range conf.Participants {
		s.Participants = append(s.Participants, participantState(p))
	}
	return s, true
}

// Queue returns a queue's state.
func (f *Fake) Queue(sid string) (QueueState, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.model.Queue(sid)
	if q == nil {
		return QueueState{}, false
	}
	s := QueueState{SID: q.Sid, FriendlyName: q.FriendlyName, MaxSize: q.MaxSize}
	for _, mb := range q.Members {
		s.Members = append(s.Members, mb.Call.Sid)
	}
	return s, true
}
