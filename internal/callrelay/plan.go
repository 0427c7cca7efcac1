package callrelay

// Action is what the caller's call does next.
type Action int

const (
	ActForward     Action = iota // dial Plan.Targets
	ActVoicemail                 // prompt and record
	ActReject                    // <Reject/>: unknown or refused number, not billed
	ActHangup                    // the call is over
	ActUnavailable               // nobody answered and there is no voicemail: say so, hang up
	ActNone                      // Twilio ignores the answer (a redirected call's Dial action): change nothing
	ActEnqueue                   // direct-mode hold: Plan.Party's leg into its queue
	ActHoldWait                  // direct-mode hold: Plan.Party's leg waits while the other is held
)

func (a Action) String() string {
	switch a {
	case ActForward:
		return "forward"
	case ActVoicemail:
		return "voicemail"
	case ActReject:
		return "reject"
	case ActHangup:
		return "hangup"
	case ActUnavailable:
		return "unavailable"
	case ActNone:
		return "none"
	case ActEnqueue:
		return "enqueue"
	case ActHoldWait:
		return "hold-wait"
	}
	return "unknown"
}

// Plan is a routing decision: what to answer Twilio.
type Plan struct {
	Action Action
	// Targets are indexes into Routing.Targets to dial at once.
	Targets []int
	// Attempt numbers the <Dial>s of a call from 0; dial-outcome gets it back in its URL, so
	// that a repeated callback decides the same thing instead of skipping a target.
	Attempt int
	// Party is whose leg an ActEnqueue or ActHoldWait is for.
	Party string
}

// Status is the call status a plan puts the call in; "" leaves it as it is.
func (p Plan) Status() string {
	switch p.Action {
	case ActForward:
		return StatusRinging
	case ActVoicemail:
		return StatusVoicemail
	case ActNone, ActEnqueue, ActHoldWait:
		return ""
	}
	return StatusCompleted
}

// PlanInbound decides what a new call to a number with routing r does.
func PlanInbound(r Routing) Plan {
	if !r.Enabled {
		if r.Voicemail.Enabled {
			return Plan{Action: ActVoicemail}
		}
		return Plan{Action: ActReject}
	}
	return forward(r, 0)
}

func forward(r Routing, attempt int) Plan {
	if r.Ring == RingSequential {
		return Plan{Action: ActForward, Targets: []int{attempt}, Attempt: attempt}
	}
	all := make([]int, len(r.Targets))
	for i := range all {
		all[i] = i
	}
	return Plan{Action: ActForward, Targets: all, Attempt: attempt}
}

// Dial outcomes Twilio reports in DialCallStatus.
const (
	DialCompleted = "completed"
	DialAnswered  = "answered"
	DialBusy      = "busy"
	DialNoAnswer  = "no-answer"
	DialFailed    = "failed"
	DialCanceled  = "canceled"
)

// PlanDialOutcome decides what follows the attempt-th <Dial> of a call with routing r, given
// Twilio's DialCallStatus and the caller's own CallStatus.
func PlanDialOutcome(r Routing, attempt int, dialStatus, callerStatus string) Plan {
	switch dialStatus {
	case DialCompleted, DialAnswered:
		return Plan{Action: ActHangup, Attempt: attempt}
	}
	// no-answer, busy, failed, canceled (and anything unknown, treated as a failure).
	if CallerGone(callerStatus) {
		return Plan{Action: ActHangup, Attempt: attempt}
	}
	if r.Ring == RingSequential && attempt+1 < len(r.Targets) && r.Enabled {
		return forward(r, attempt+1)
	}
	if r.Voicemail.Enabled {
		return Plan{Action: ActVoicemail, Attempt: attempt}
	}
	return Plan{Action: ActUnavailable, Attempt: attempt}
}

// CallerGone reports whether the caller's CallStatus says it has hung up.
func CallerGone(callerStatus string) bool {
	return IsTerminal(callerStatus)
}
