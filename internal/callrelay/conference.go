package callrelay

import (
	"context"
	"strconv"
	"strings"
	"time"
)

// Parties of a call, for hold and the timeline.
const (
	PartyCaller = "caller"
	PartyCallee = "callee"
)

// ValidParty reports whether p names a party of a call.
func ValidParty(p string) bool { return p == PartyCaller || p == PartyCallee }

// CallerLabel is the caller's participant label in its conference; callees are labelled
// CalleeLabel(i).
const CallerLabel = "caller"

// CalleeLabel is the participant label of the call to target i: callee-1…callee-N, unique
// per conference because each target is dialed at most once.
func CalleeLabel(i int) string { return "callee-" + strconv.Itoa(i+1) }

// CalleeIndex is the target index of a callee label, or -1.
func CalleeIndex(label string) int {
	s, ok := strings.CutPrefix(label, "callee-")
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxTargets {
		return -1
	}
	return n - 1
}

// ParticipantTo is the To of CreateParticipant for a target: the number, the SIP URI (with
// transport, region and headers) or client:identity.
func (t Target) ParticipantTo() string {
	if t.Type == TargetSIP {
		return t.SIPURI()
	}
	return t.String()
}

// Conference events Twilio posts to the conference's statusCallback (StatusCallbackEvent).
const (
	ConferenceStart   = "conference-start"
	ConferenceEnd     = "conference-end"
	ParticipantJoin   = "participant-join"
	ParticipantLeave  = "participant-leave"
	ParticipantHold   = "participant-hold"
	ParticipantUnhold = "participant-unhold"
)

// LeftViaAPI is the ReasonParticipantLeft of a participant that left because callrelay
// redirected or ended its call: not a hang-up.
const LeftViaAPI = "participant_updated_via_api"

// PlanConferenceOutcome decides what follows the caller's <Dial><Conference> ending, given
// Twilio's DialCallStatus, the caller's CallStatus and the call's status in the store.
//
// A caller callrelay has redirected to voicemail still posts its Dial action, and Twilio
// ignores the answer: nothing is done then. DialCallStatus answered (or completed) is the end of
// a conversation. Anything else means the conference never connected anyone: voicemail, unless
// the caller has gone.
func PlanConferenceOutcome(r Routing, dialStatus, callerStatus, callStatus string) Plan {
	switch {
	case callStatus == StatusVoicemail:
		return Plan{Action: ActNone}
	case dialStatus == DialAnswered || dialStatus == DialCompleted || CallerGone(callerStatus):
		return Plan{Action: ActHangup}
	case r.Voicemail.Enabled:
		return Plan{Action: ActVoicemail}
	}
	return Plan{Action: ActUnavailable}
}

// CallState is what a webhook's decision needs to know of a stored call.
type CallState struct {
	Status string
	// Hold is the call's hold state; while a direct-mode hold request waits for Twilio, the
	// state that request asks for (the redirect it sent is what ends a Dial meanwhile).
	Hold HoldState
	// Legs are the call's dialed legs and their screens (direct mode), for AttemptAnswered.
	Legs []LegScreen
}

// RingOwner is the job that dials the owner's targets into a conference-mode call's
// conference (internal/conference works it). It is written in the transaction that records the
// caller's participant-join, so that the owner is dialled even if this process dies right after
// answering the callback: any replica, or the next start, picks it up.
type RingOwner struct {
	CallSid string `json:"call_sid"`
}

// Kind is River's name of the job.
func (RingOwner) Kind() string { return "conference-ring" }

// ConferenceDeadline is the job that watches a conference-mode call (internal/conference works
// it): it dials the owner if the ring job has not a while after the join, and sends the caller
// to voicemail when, later, no leg rings or has answered. It is written when the voice webhook
// sends the caller to the conference, so that it exists even if Twilio's participant-join
// never arrives.
type ConferenceDeadline struct {
	CallSid string `json:"call_sid"`
}

// Kind is River's name of the job.
func (ConferenceDeadline) Kind() string { return "conference-deadline" }

// ConferenceEvent is one of Twilio's conference status callbacks.
type ConferenceEvent struct {
	CallSid        string // the caller's CallSid: the conference's FriendlyName
	ConferenceSid  string
	Event          string // StatusCallbackEvent: conference-start, participant-join, …
	Participant    string // the participant's CallSid (participant events)
	Label          string // ParticipantLabel
	Sequence       int    // SequenceNumber, counted per conference; -1 when absent
	At             time.Time
	Hold           bool   // Hold: the participant is held
	ReasonLeft     string // ReasonParticipantLeft
	ReasonEnded    string // ReasonConferenceEnded
	EndingCallSid  string // CallSidEndingConference
	StatusCallback string // the route, for the timeline
}

// ConferenceResult says what a conference event changed and what must follow.
type ConferenceResult struct {
	Known bool // the call exists
	New   bool // the event was not seen before
	// Ring: the caller has just joined a call that is still ringing: dial the owner.
	Ring bool
	// Ended: a party hung up and so the call ended now; LiveLegs are still ringing or
	// connected and must be ended.
	Ended    bool
	LiveLegs []LiveLeg
}

// LiveLeg is a forwarded leg that has not ended.
type LiveLeg struct {
	CallSid       string
	Answered      bool
	ConferenceSid string // "" in direct mode
}

// ConferenceWatch is what a conference-mode call's deadline is decided from.
type ConferenceWatch struct {
	Known bool
	// Waiting: the call is a conference-mode call still ringing, nobody has answered (no
	// callee, no leg answered) and the caller has not gone.
	Waiting   bool
	Routing   Routing
	StartedAt time.Time  // the voice webhook
	JoinedAt  *time.Time // the caller's participant-join; nil when none has arrived
	Claimed   int        // targets claimed for dialling (ClaimTarget)
	// LastRing is when the newest leg that still rings (not ended, not answered) was created;
	// nil when none rings.
	LastRing *time.Time
}

// RingTarget is a target claimed for dialing into a call's conference.
type RingTarget struct {
	Index         int
	Target        Target
	Routing       Routing
	ConferenceSid string
	Number        string // the masked number
	From          string // the caller
	CallToken     string
}

// RingResult is how adding a claimed target to the conference went.
type RingResult struct {
	Index  int
	Target string // as shown on legs
	Label  string
	Leg    string // the participant's CallSid; "" when Twilio refused
	Err    error  // Twilio's refusal
	// Screen is the target's screen when it was called with its screen (CreateCall) rather
	// than added as a participant: its leg counts as answered only once it accepts.
	Screen string
}

// ConferenceQueue is the job queue of the conference jobs (RingOwner, ConferenceDeadline): a
// caller waiting for the owner must not wait behind emails.
const ConferenceQueue = "conference"

// ConferenceStore is what conference mode (internal/conference) needs of the store.
type ConferenceStore interface {
	// Now is the store's clock, which the conference jobs decide on.
	Now() time.Time
	RecordConferenceEvent(ctx context.Context, ev ConferenceEvent) (ConferenceResult, error)
	RecordLegProgress(ctx context.Context, p LegProgress) (LegResult, error)
	WatchConference(ctx context.Context, callSid string, firstCheck time.Duration) error
	WatchConferenceCall(ctx context.Context, callSid string) (ConferenceWatch, error)
	LiveLegs(ctx context.Context, callSid string) ([]LiveLeg, error)
	ClaimTarget(ctx context.Context, callSid string) (RingTarget, bool, error)
	FinishTarget(ctx context.Context, callSid string, d RingResult) (bool, error)
	StopRinging(ctx context.Context, callSid string, giveUp bool, reason string) (bool, []LiveLeg, error)
}
