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
// Twilio's DialCallStatus and the caller's own CallStatus, when a completed Dial means a person
// took the call (no screening information): PlanDial with Answered set.
func PlanDialOutcome(r Routing, attempt int, dialStatus, callerStatus string) Plan {
	return PlanDial(r, DialResult{Attempt: attempt, DialCallStatus: dialStatus, CallerStatus: callerStatus, Answered: true})
}

// CallerGone reports whether the caller's CallStatus says it has hung up.
func CallerGone(callerStatus string) bool {
	return IsTerminal(callerStatus)
}

// DialResult is what callrelay knows when a <Dial> ends.
type DialResult struct {
	Attempt        int    // which <Dial> of the call (from the action URL)
	DialCallStatus string // Twilio's DialCallStatus
	CallerStatus   string // the caller's own CallStatus
	// Answered: a person took the call. A screened leg counts only once it accepted (recorded
	// before Twilio bridged it); a leg without a screen counts once bridged. See AttemptAnswered.
	Answered bool
}

// PlanDialAction decides what a <Dial>'s action answers: what follows the Dial that Twilio
// reports ended (o), for a call with routing r whose committed state is c (the store reads
// it, decides, and records the plan in one call: RecordDialOutcome).
func PlanDialAction(r Routing, c CallState, o DialOutcome) Plan {
	if r.Mode == ModeConference {
		return PlanConferenceOutcome(r, o.DialCallStatus, o.CallerStatus, c.Status)
	}
	// A hold ended the Dial (the callee's leg was redirected): the caller goes to its queue, or
	// waits while the callee is held. A hang-up ends the call as always.
	if p, ok := PlanHeldLeg(PartyCaller, c.Hold); ok && !CallerGone(o.CallerStatus) {
		return p
	}
	// Screening: completed means a person took the call only if one accepted.
	return PlanDial(r, DialResult{Attempt: o.Attempt, DialCallStatus: o.DialCallStatus,
		CallerStatus: o.CallerStatus, Answered: AttemptAnswered(r, o.Attempt, o.DialCallSid, c.Legs)})
}

// DialNeedsLegs reports whether PlanDialAction, for a Dial that Twilio reports ended with
// dialStatus, reads the call's legs (CallState.Legs): only a completed or answered Dial asks
// whether a person took the call. The store reads them only then.
func DialNeedsLegs(dialStatus string) bool {
	return dialStatus == DialCompleted || dialStatus == DialAnswered
}

// PlanDial decides what follows a <Dial> of a call with routing r. A Dial that Twilio reports
// completed or answered is over only if a person took the call: a carrier's voicemail, a
// declined screen or a leg that pressed nothing is treated like no answer (docs/design.md
// "Screening"), and the caller is never hung up on while it is still there.
func PlanDial(r Routing, d DialResult) Plan {
	switch d.DialCallStatus {
	case DialCompleted, DialAnswered:
		if d.Answered {
			return Plan{Action: ActHangup, Attempt: d.Attempt}
		}
	}
	// no-answer, busy, failed, canceled, unknown, or bridged to nobody who accepted.
	if CallerGone(d.CallerStatus) {
		return Plan{Action: ActHangup, Attempt: d.Attempt}
	}
	if r.Ring == RingSequential && d.Attempt+1 < len(r.Targets) && r.Enabled {
		return forward(r, d.Attempt+1)
	}
	if r.Voicemail.Enabled {
		return Plan{Action: ActVoicemail, Attempt: d.Attempt}
	}
	return Plan{Action: ActUnavailable, Attempt: d.Attempt}
}

// LegScreen is what callrelay recorded of one dialed leg, for AttemptAnswered.
type LegScreen struct {
	CallSid     string
	TargetIndex int  // -1 when unknown
	Screened    bool // the leg fetched its screen (a row exists because of it)
	Accepted    bool // the leg accepted its screen (key 1, or an announce)
}

// AttemptAnswered reports whether a person took the call the attempt-th <Dial> bridged to
// dialCallSid (Twilio's DialCallSid, "" when absent), from the legs callrelay recorded rather
// than from DialCallStatus alone: Twilio may report a Dial whose screened leg answered and hung
// up as completed. With no targets known (the routing was not found) nothing can be told, and
// DialCallStatus decides.
func AttemptAnswered(r Routing, attempt int, dialCallSid string, legs []LegScreen) bool {
	if len(r.Targets) == 0 {
		return true
	}
	inAttempt := map[int]bool{}
	for _, i := range forward(r, attempt).Targets {
		inAttempt[i] = true
	}
	for _, l := range legs {
		if l.Accepted && (l.TargetIndex < 0 || inAttempt[l.TargetIndex]) {
			return true
		}
	}
	for _, l := range legs {
		if l.CallSid == dialCallSid && dialCallSid != "" && l.TargetIndex >= 0 && l.TargetIndex < len(r.Targets) {
			// The bridged leg is known: a person took the call if it needed no screen.
			return !l.Screened && !r.ScreensTarget(l.TargetIndex)
		}
	}
	// The bridged leg is unknown (its callbacks are late, or Twilio named none): a screened leg
	// always has a row before it can be bridged, so only a target without a screen can be it.
	for i := range inAttempt {
		if i < len(r.Targets) && !r.ScreensTarget(i) {
			return true
		}
	}
	return false
}
