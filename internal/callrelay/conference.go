package callrelay

import (
	"strconv"
	"strings"
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
