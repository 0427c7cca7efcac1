package twiliofake

import (
	"fmt"
	"slices"
	"time"
)

// Model is Twilio's REST state: calls, conferences and their participants, queues and their
// members, recordings, and Twilio's rules about them (what ends a conference, what a call that
// has ended still accepts). It is the one model of Twilio in the project: the Fake's REST API
// reads and changes it, unit tests set it up through the Fake's helpers (AddCall,
// SetCallStatus, …), and internal/twiliosim's call engine drives it (a call rings, answers,
// joins a conference by TwiML, hangs up) and hears of every change through OnEvent.
//
// A Model is not safe for concurrent use: every method is called with the Fake's lock held
// (Options.Mu, which a simulator shares so that its own state and the model change together).
// Its records (Call, Conference, …) are read under that lock and changed only by its methods.
type Model struct {
	accountSID string
	now        func() time.Time
	newSid     func(prefix string) string
	onEvent    func(Event)
	rules      Rules

	calls       map[string]*Call
	conferences map[string]*Conference
	queues      map[string]*Queue
	queueOrder  []*Queue // creation order, for ListQueue
	recordings  map[string]*Recording
	numbers     map[string]bool // the account's phone numbers (SetNumbers)
	lastCreate  time.Time       // the last CreateCall or CreateParticipant, for Rules.CreateInterval
	req         *Request        // the REST request being handled, for Event.Request
}

// Rules are the account's limits that the model enforces only when asked to: unit tests do not
// set up numbers, and create calls faster than Twilio allows.
type Rules struct {
	// CreateInterval paces CreateCall and CreateParticipant: Twilio places an account's calls at
	// one per second by default (its CPS). Twilio documents that it queues the faster requests
	// (support article "How fast can I place or receive phone calls with Twilio?"); the model
	// refuses them, 429 (20429), the harsher answer, which a client that paces itself as
	// callrelay does never gets. Zero: no limit.
	CreateInterval time.Duration
	// CheckFrom refuses (21210) a placed call whose From is neither one of the account's
	// numbers (SetNumbers) nor an inbound caller's number sent with that call's CallToken.
	CheckFrom bool
}

// Call is a call as Twilio's Call resource has it.
type Call struct {
	Sid, From, To, Direction string
	ParentSid                string // the call whose <Dial> placed it
	Token                    string // an inbound call's CallToken
	Status                   string // call_enum_status
	// URL, Method and Twiml say what the call runs: the TwiML it was placed with (CreateCall)
	// or last sent to (UpdateCall, UpdateMember).
	URL, Method, Twiml           string
	Created, Updated, Start, End time.Time // Start: answered; End: ended

	participant *Participant // its place in a conference (joined or being dialed in), if any
	member      *Member      // its place in a queue, if any
}

// Ended reports whether the call has a final status.
func (c *Call) Ended() bool { return ended(c.Status) }

// Answered reports whether the call has been answered (it may have ended since).
func (c *Call) Answered() bool { return !c.Start.IsZero() }

// Conference is a conference room.
type Conference struct {
	Sid, FriendlyName string
	Status            string // in-progress, then completed
	// Started: two participants are in the room, one of them with StartConferenceOnEnter (the
	// conference-start event). Twilio's resource says in-progress from the first one on.
	Started       bool
	ReasonEnded   string // reason_conference_ended, once completed
	EndingCallSid string // call_sid_ending_conference
	// Participants are those in the room and those being dialed into it (CreateParticipant),
	// in the order they were added.
	Participants     []*Participant
	Created, Updated time.Time
}

// Participant is a call in a conference, or being dialed into one.
type Participant struct {
	Conference *Conference
	Call       *Call
	Label      string
	// Joined: the participant is (or was, once it left) in the room. One added by the REST API
	// joins when its call answers; one added by TwiML (<Dial><Conference>) at once.
	Joined                                      bool
	Hold, Muted, Coaching                       bool
	EndConferenceOnExit, StartConferenceOnEnter bool
	CallSidToCoach, HoldURL, HoldMethod         string
	Created, Updated                            time.Time
}

// Queue is a call queue.
type Queue struct {
	Sid, FriendlyName string
	MaxSize           int
	Members           []*Member // front first
	Created, Updated  time.Time
}

// Member is a call waiting in a queue.
type Member struct {
	Queue    *Queue
	Call     *Call
	Enqueued time.Time
}

// Recording is a recording of (part of) a call.
type Recording struct {
	Sid, CallSid string
	Duration     int       // seconds
	Start        time.Time // when recording started
	Created      time.Time
}

// Call statuses: call_enum_status in the spec.
const (
	StatusQueued     = "queued"
	StatusRinging    = "ringing"
	StatusInProgress = "in-progress"
	StatusCompleted  = "completed"
	StatusBusy       = "busy"
	StatusFailed     = "failed"
	StatusNoAnswer   = "no-answer"
	StatusCanceled   = "canceled"
)

var callStatuses = []string{StatusQueued, StatusRinging, StatusInProgress, StatusCompleted, StatusBusy, StatusFailed, StatusNoAnswer, StatusCanceled}

// ended reports whether a call status is final.
func ended(status string) bool {
	return status != StatusQueued && status != StatusRinging && status != StatusInProgress
}

// Why a participant left (ReasonParticipantLeft) and why a conference ended
// (reason_conference_ended), as Twilio names them.
const (
	LeftHungUp          = "participant_hung_up"
	LeftUpdatedViaAPI   = "participant_updated_via_api"
	LeftConferenceEnded = "conference_ended"

	EndedByAPI       = "conference-ended-via-api"
	EndedLastLeft    = "last-participant-left"
	EndedByEndOnExit = "participant-with-end-conference-on-exit-left"
)

// defaultQueueMaxSize is Twilio's MaxSize for a queue created without one.
const defaultQueueMaxSize = 100

func newModel(accountSID string, now func() time.Time, newSid func(string) string, onEvent func(Event), rules Rules) *Model {
	return &Model{
		accountSID: accountSID, now: now, newSid: newSid, onEvent: onEvent, rules: rules,
		calls: map[string]*Call{}, conferences: map[string]*Conference{}, queues: map[string]*Queue{},
		recordings: map[string]*Recording{}, numbers: map[string]bool{},
	}
}

// emit tells OnEvent of a change that has been made.
func (m *Model) emit(e Event) {
	if m.onEvent == nil {
		return
	}
	e.Request = m.req
	m.onEvent(e)
}

// SetNumbers makes nums the account's phone numbers (Rules.CheckFrom), replacing the others.
func (m *Model) SetNumbers(nums ...string) {
	clear(m.numbers)
	for _, n := range nums {
		m.numbers[n] = true
	}
}

// Call returns a call, or nil.
func (m *Model) Call(sid string) *Call { return m.calls[sid] }

// Conference returns a conference, or nil.
func (m *Model) Conference(sid string) *Conference { return m.conferences[sid] }

// ActiveConference returns the conference of this friendly name that has not ended, or nil.
func (m *Model) ActiveConference(name string) *Conference {
	for _, c := range m.conferences {
		if c.FriendlyName == name && c.Status != StatusCompleted {
			return c
		}
	}
	return nil
}

// Queue returns a queue, or nil.
func (m *Model) Queue(sid string) *Queue { return m.queues[sid] }

// QueueNamed returns the queue of this friendly name, or nil.
func (m *Model) QueueNamed(name string) *Queue {
	for _, q := range m.queueOrder {
		if q.FriendlyName == name {
			return q
		}
	}
	return nil
}

// Recording returns a recording that exists (not deleted), or nil.
func (m *Model) Recording(sid string) *Recording { return m.recordings[sid] }

// NewCall registers a call made outside the REST API: an inbound call, a leg a <Dial> places.
// Sid is made when empty, Status is queued when empty; a call created in progress has
// answered now.
func (m *Model) NewCall(c Call) *Call {
	if c.Sid == "" {
		c.Sid = m.newSid("CA")
	}
	if c.Status == "" {
		c.Status = StatusQueued
	}
	now := m.now()
	c.Created, c.Updated = now, now
	if c.Status == StatusInProgress {
		c.Start = now
	}
	if ended(c.Status) {
		c.End = now
	}
	m.calls[c.Sid] = &c
	return &c
}

// SetCallStatus moves a call that has not ended, and reports whether it did (a final status
// is final). Answering (in-progress) joins a participant that was being dialed into a
// conference that goes on; a final status takes the call out of its conference and queue.
// EventCallStatus comes before the events of leaving.
func (m *Model) SetCallStatus(c *Call, status string) bool {
	if c.Ended() || c.Status == status {
		return false
	}
	old := c.Status
	now := m.now()
	c.Status, c.Updated = status, now
	if status == StatusInProgress && c.Start.IsZero() {
		c.Start = now
	}
	if ended(status) {
		c.End = now
	}
	m.emit(Event{Kind: EventCallStatus, Call: c, Old: old})
	switch {
	case ended(status):
		m.leaveRooms(c, LeftHungUp)
	case status == StatusInProgress && c.participant != nil && !c.participant.Joined:
		m.join(c.participant)
	}
	return true
}

// NewConference creates an in-progress conference (one that <Dial><Conference> or
// CreateParticipant names and that is not going on); sid is made when empty.
func (m *Model) NewConference(sid, friendlyName string) *Conference {
	if sid == "" {
		sid = m.newSid("CF")
	}
	now := m.now()
	conf := &Conference{Sid: sid, FriendlyName: friendlyName, Status: StatusInProgress, Created: now, Updated: now}
	m.conferences[sid] = conf
	return conf
}

// JoinOptions are a <Conference> noun's attributes for a joining participant.
type JoinOptions struct {
	Label                  string
	StartConferenceOnEnter bool
	EndConferenceOnExit    bool
}

// Join puts a call in a conference at once, as <Dial><Conference> does. It fails when the
// conference has ended, the call is in a conference already or the label is in use.
func (m *Model) Join(conf *Conference, c *Call, o JoinOptions) (*Participant, error) {
	switch {
	case conf.Status == StatusCompleted:
		return nil, fmt.Errorf("conference %s has ended", conf.Sid)
	case c.participant != nil:
		return nil, fmt.Errorf("call %s is in conference %s already", c.Sid, c.participant.Conference.Sid)
	case o.Label != "" && conf.find(o.Label) != nil:
		return nil, fmt.Errorf("label %q is in use in conference %s", o.Label, conf.Sid)
	}
	p := m.addParticipant(conf, c, o)
	m.join(p)
	return p, nil
}

func (m *Model) addParticipant(conf *Conference, c *Call, o JoinOptions) *Participant {
	now := m.now()
	p := &Participant{Conference: conf, Call: c, Label: o.Label, StartConferenceOnEnter: o.StartConferenceOnEnter,
		EndConferenceOnExit: o.EndConferenceOnExit, Created: now, Updated: now}
	conf.Participants = append(conf.Participants, p)
	c.participant = p
	return p
}

// join puts a participant in the room; the conference starts when two are there and one of
// them has StartConferenceOnEnter. EventParticipantJoined comes first, then
// EventConferenceStarted when this join started it.
func (m *Model) join(p *Participant) {
	conf := p.Conference
	p.Joined, p.Updated = true, m.now()
	starts := !conf.Started && len(conf.joined()) >= 2 &&
		slices.ContainsFunc(conf.joined(), func(q *Participant) bool { return q.StartConferenceOnEnter })
	if starts {
		conf.Started, conf.Updated = true, m.now()
	}
	m.emit(Event{Kind: EventParticipantJoined, Call: p.Call, Conference: conf, Participant: p})
	if starts {
		m.emit(Event{Kind: EventConferenceStarted, Conference: conf, Participant: p})
	}
}

// joined returns the participants in the room.
func (c *Conference) joined() []*Participant {
	var in []*Participant
	for _, p := range c.Participants {
		if p.Joined {
			in = append(in, p)
		}
	}
	return in
}

// find returns the participant with this call SID or label.
func (c *Conference) find(callSidOrLabel string) *Participant {
	for _, p := range c.Participants {
		if p.Call.Sid == callSidOrLabel || (p.Label != "" && p.Label == callSidOrLabel) {
			return p
		}
	}
	return nil
}

// leaveRooms takes a call out of its conference and queue. A participant in the room leaving
// with EndConferenceOnExit, or the last one in the room leaving, ends the conference (Twilio's
// reason_conference_ended values); one still being dialed was never in the room.
func (m *Model) leaveRooms(c *Call, reason string) {
	if mb := c.member; mb != nil {
		m.Dequeue(mb)
	}
	p := c.participant
	if p == nil {
		return
	}
	conf := p.Conference
	c.participant = nil
	conf.Participants = slices.DeleteFunc(conf.Participants, func(q *Participant) bool { return q == p })
	m.emit(Event{Kind: EventParticipantLeft, Call: c, Conference: conf, Participant: p, Reason: reason})
	if !p.Joined {
		return
	}
	switch {
	case p.EndConferenceOnExit:
		m.EndConference(conf, EndedByEndOnExit, c.Sid)
	case len(conf.joined()) == 0:
		m.EndConference(conf, EndedLastLeft, c.Sid)
	}
}

// EndConference completes a conference: every participant leaves it (those in the room with
// EventParticipantLeft, reason conference_ended), then EventConferenceEnded. The calls are
// left as they are: what a call does next depends on its TwiML (a simulator hangs up those
// that have none).
func (m *Model) EndConference(conf *Conference, reason, endingCallSid string) {
	if conf.Status == StatusCompleted {
		return
	}
	conf.Status, conf.ReasonEnded, conf.EndingCallSid, conf.Updated = StatusCompleted, reason, endingCallSid, m.now()
	parts := conf.Participants
	conf.Participants = nil
	for _, p := range parts {
		p.Call.participant = nil
		if p.Joined {
			m.emit(Event{Kind: EventParticipantLeft, Call: p.Call, Conference: conf, Participant: p, Reason: LeftConferenceEnded})
		}
	}
	m.emit(Event{Kind: EventConferenceEnded, Conference: conf, Reason: reason})
}

// NewQueue creates a queue (one that <Enqueue> names and that does not exist, or CreateQueue);
// sid is made when empty.
func (m *Model) NewQueue(sid, friendlyName string) *Queue {
	if sid == "" {
		sid = m.newSid("QU")
	}
	now := m.now()
	q := &Queue{Sid: sid, FriendlyName: friendlyName, MaxSize: defaultQueueMaxSize, Created: now, Updated: now}
	m.queues[sid] = q
	m.queueOrder = append(m.queueOrder, q)
	return q
}

// Enqueue puts a call at the back of a queue (<Enqueue>), taking it out of any other.
func (m *Model) Enqueue(q *Queue, c *Call) *Member {
	if c.member != nil {
		m.Dequeue(c.member)
	}
	mb := &Member{Queue: q, Call: c, Enqueued: m.now()}
	q.Members = append(q.Members, mb)
	c.member = mb
	return mb
}

// Dequeue takes a member out of its queue (a <Dial><Queue> bridging it, its call leaving).
func (m *Model) Dequeue(mb *Member) {
	mb.Queue.Members = slices.DeleteFunc(mb.Queue.Members, func(x *Member) bool { return x == mb })
	if mb.Call.member == mb {
		mb.Call.member = nil
	}
}

// AddRecording makes a recording exist (Sid is made when empty).
func (m *Model) AddRecording(r Recording) *Recording {
	if r.Sid == "" {
		r.Sid = m.newSid("RE")
	}
	r.Created = m.now()
	m.recordings[r.Sid] = &r
	return &r
}
