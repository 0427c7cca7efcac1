package twiliofake

// EventKind says what changed in the Model.
type EventKind int

// The changes the Model tells Options.OnEvent of. A simulator turns them into what Twilio
// does next: the webhooks it sends, what the people on the calls hear, the TwiML it runs.
const (
	// EventCallPlaced: a REST request created a call (Request is CreateCall, or
	// CreateParticipant with Participant and Conference set). It is queued: someone must ring it.
	EventCallPlaced EventKind = iota + 1
	// EventCallStatus: Call's status changed from Old (whoever changed it).
	EventCallStatus
	// EventCallRedirected: a REST request sent a call in progress to new TwiML (Call.URL,
	// Method, Twiml): UpdateCall, or UpdateMember dequeuing it. It comes before the call
	// leaves its conference or queue, so that whoever runs its TwiML stops first.
	EventCallRedirected
	// EventParticipantJoined: Participant is in the room (Joined).
	EventParticipantJoined
	// EventParticipantLeft: Participant left Conference, or was being dialed in and never
	// joined (Participant.Joined false); Reason is ReasonParticipantLeft.
	EventParticipantLeft
	// EventParticipantHold: Participant was held or resumed (Participant.Hold, HoldURL).
	EventParticipantHold
	// EventConferenceStarted: Participant's joining started Conference.
	EventConferenceStarted
	// EventConferenceEnded: Conference completed; Reason is reason_conference_ended. Its
	// participants' EventParticipantLeft came before.
	EventConferenceEnded
)

var eventNames = map[EventKind]string{
	EventCallPlaced: "call-placed", EventCallStatus: "call-status", EventCallRedirected: "call-redirected",
	EventParticipantJoined: "participant-joined", EventParticipantLeft: "participant-left",
	EventParticipantHold: "participant-hold", EventConferenceStarted: "conference-started",
	EventConferenceEnded: "conference-ended",
}

func (k EventKind) String() string { return eventNames[k] }

// Event is one change to the Model, told to Options.OnEvent once it is made, with the Fake's
// lock held: the handler reads the records, may change the model further (its events come at
// once, nested), and must not block or take the lock again.
type Event struct {
	Kind        EventKind
	Call        *Call        // the call concerned; nil for conference events
	Conference  *Conference  // participant and conference events, CreateParticipant
	Participant *Participant // participant events, CreateParticipant, the start's joiner
	Old         string       // EventCallStatus: the status before
	Reason      string       // EventParticipantLeft, EventConferenceEnded
	// Request is the REST request being handled when the change was made (a copy, Status 0);
	// nil for a change made by the model's methods outside a request.
	Request *Request
}
