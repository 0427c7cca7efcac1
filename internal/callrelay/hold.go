package callrelay

import (
	"context"
	"time"
)

// Hold and resume (docs/design.md "Hold and resume"). A request runs in three steps, so that
// no webhook ever waits behind Twilio: its intent is recorded (HoldIntent), Twilio is asked with
// no transaction open, and the outcome is recorded (HoldAttempt, HoldResult).

// HoldRequest is an ops request to hold or resume a party of a call.
type HoldRequest struct {
	CallSid   string
	Party     string // PartyCaller or PartyCallee
	Hold      bool   // true: hold, false: resume
	By        string // who asked, for the timeline
	RequestID string
}

// Kind is the request's timeline entry type: hold, or unhold for a resume.
func (r HoldRequest) Kind() string {
	if r.Hold {
		return "hold"
	}
	return "unhold"
}

// HoldTarget is what a hold request changes: the party's call and, for direct mode, where
// both legs are.
type HoldTarget struct {
	Mode          string
	ConferenceSid string
	CallSid       string // the party's own call: the caller's, or the callee's leg
	CallerSid     string
	CalleeSid     string    // "" before anyone answered
	Held          HoldState // before the request
	// Owner is, in direct mode with nobody held, the party whose leg runs the bridging <Dial>.
	Owner string
}

// After is the hold state once req is done, and in direct mode the bridge's owner then: a
// resume that frees both has the other party's leg dial the queue, so that leg owns the bridge
// ("" while someone is held, and in conference mode).
func (t HoldTarget) After(req HoldRequest) (HoldState, string) {
	h := t.Held
	if req.Party == PartyCallee {
		h.Callee = req.Hold
	} else {
		h.Caller = req.Hold
	}
	if t.Mode == ModeDirect && !h.Any() {
		return h, OtherParty(req.Party)
	}
	return h, ""
}

// Of reports whether party is held.
func (h HoldState) Of(party string) bool {
	if party == PartyCallee {
		return h.Callee
	}
	return h.Caller
}

// Any reports whether either party is held.
func (h HoldState) Any() bool { return h.Caller || h.Callee }

// OtherParty is the caller for the callee and the callee for the caller.
func OtherParty(party string) string {
	if party == PartyCaller {
		return PartyCallee
	}
	return PartyCaller
}

// Where a direct-mode hold moves a leg (DirectMove.To).
const (
	MoveWait    = "wait"    // the waiting loop, while the other party is held
	MoveEnqueue = "enqueue" // its own queue: held, hearing the music
	MoveResume  = "resume"  // a <Dial><Queue> of the other party's queue: bridged again
)

// DirectMove is the one leg a direct-mode hold or resume redirects (UpdateCall), and where.
type DirectMove struct {
	Party string
	To    string // MoveWait, MoveEnqueue or MoveResume
}

// PlanDirectHold decides the move of a direct-mode hold or resume (docs/design.md's table).
// Each leg is in the bridge, in its own queue (held) or in the waiting loop. The parent is
// never redirected while its original <Dial> runs: that would hang up the callee.
//
//	hold X, nobody held, X owns the bridge:  the other → waiting loop; X's Dial ends and its
//	                                          action puts X in X's queue
//	hold X, nobody held, X does not own it:  X → X's queue; the owner's Dial ends and its action
//	                                          puts the owner in the waiting loop
//	hold X, the other held (X waiting):      X → X's queue
//	resume X, the other waiting:             the other → <Dial><Queue> of X's queue: bridged
//	                                          again, the other owns the bridge
//	resume X, the other held too:            X → waiting loop
func PlanDirectHold(req HoldRequest, t HoldTarget) DirectMove {
	x, o := req.Party, OtherParty(req.Party)
	switch {
	case req.Hold && !t.Held.Of(o) && t.Owner == x:
		return DirectMove{Party: o, To: MoveWait}
	case req.Hold:
		return DirectMove{Party: x, To: MoveEnqueue}
	case !t.Held.Of(o):
		return DirectMove{Party: o, To: MoveResume}
	}
	return DirectMove{Party: x, To: MoveWait}
}

// PlanHeldLeg decides what party's leg of a direct-mode call does when the bridge it was in
// has ended while a hold is pending: into its queue when it is the one held, waiting while the
// other is held. ok is false when nobody is held: the bridge ended because someone hung up.
func PlanHeldLeg(party string, h HoldState) (p Plan, ok bool) {
	switch {
	case h.Of(party):
		return Plan{Action: ActEnqueue, Party: party}, true
	case h.Of(OtherParty(party)):
		return Plan{Action: ActHoldWait, Party: party}, true
	}
	return Plan{}, false
}

// HoldIntent is a hold request recorded before Twilio is asked: the call's one pending hold.
// While it is pending a second request for the call waits for its outcome, and a webhook that
// the request causes (a direct-mode Dial or Enqueue action) answers from After without waiting.
// It expires so that a replica that died while asking Twilio does not wedge the call.
type HoldIntent struct {
	ID      int64 // tells this intent from one that replaced it after it expired
	Request HoldRequest
	Target  HoldTarget // the call as the request found it
	After   HoldState  // the hold state once Twilio has done it
	// Owner is, in direct mode, the bridge's owner once Twilio has done it ("" while held).
	Owner     string
	StartedAt time.Time
	ExpiresAt time.Time
}

// HoldStart is what recording a hold request's intent found. With neither an Intent nor a
// Pending time the party was already in the asked state (recorded as unchanged): there is
// nothing to ask Twilio.
type HoldStart struct {
	Intent *HoldIntent // recorded: ask Twilio, then record the outcome
	// Pending is when the intent of another request for the call, still waiting for Twilio,
	// expires; nothing was recorded.
	Pending time.Time
}

// HoldAttempt is Twilio's answer to a hold intent's request.
type HoldAttempt struct {
	Err error // nil: Twilio did it
	// Refused: Twilio refused the request (4xx) and so did nothing; a timeout or a 5xx leaves
	// it unknown.
	Refused bool
}

// HoldResult is what recording a hold's outcome decided.
type HoldResult struct {
	// Applied: the hold state is now the one asked for: Twilio did it, or, in direct mode,
	// Twilio's answer was lost (timeout, 5xx) but a webhook the redirect causes arrived
	// meanwhile: Twilio's own word that the leg moved (ConfirmedBy names it).
	Applied     bool
	ConfirmedBy string
	// Finish: a direct-mode call whose legs the hold has moved has ended, or cannot go on (a
	// webhook already answered from the intent, but Twilio refused the move: the leg had gone).
	// Nothing else will hang up the legs left: finish it (FinishHeld).
	Finish bool
}

// HeldCall is a direct-mode call as the hold webhooks see it.
type HeldCall struct {
	Known  bool
	Status string
	// Hold is the call's hold state; while a hold request waits for Twilio, the state it asks
	// for (see CallState.Hold).
	Hold HoldState
	// Held is true once the call has been through a hold, or while one is pending: its original
	// Dial is over, and no Dial action will end the call any more.
	Held bool
}

// Ending is what is left to hang up and delete when a held call ends.
type Ending struct {
	Ended  bool     // this request ended the call
	Legs   []string // the calls still to hang up: the caller and the callee's leg, but the one gone
	Queues []string // the call's queue SIDs, to delete
}

// HoldStore is what hold (internal/hold) needs of the store: the intent and the outcome of a
// request, each in a short transaction of its own, and the end of a held call.
type HoldStore interface {
	RecordHoldIntent(ctx context.Context, req HoldRequest, ttl time.Duration) (HoldStart, error)
	AwaitHoldOutcome(ctx context.Context, callSid string, until time.Time) error
	RecordHoldOutcome(ctx context.Context, in HoldIntent, a HoldAttempt) (HoldResult, error)
	FinishHeldCall(ctx context.Context, callSid, gone, reason string) (Ending, error)
	GetCall(ctx context.Context, callSid string) (*Call, error)
}
