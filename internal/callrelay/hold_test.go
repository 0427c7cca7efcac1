package callrelay_test

import (
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// TestPlanDirectHold plays docs/design.md's direct-mode table, for each party, with the state
// and bridge's owner the request finds, and the state it leaves (After).
func TestPlanDirectHold(t *testing.T) {
	const caller, callee = callrelay.PartyCaller, callrelay.PartyCallee
	for _, tc := range []struct {
		name      string
		hold      bool
		party     string
		held      callrelay.HoldState
		owner     string
		want      callrelay.DirectMove
		after     callrelay.HoldState
		afterOwns string
	}{
		{"hold X, nobody held, X owns", true, caller, callrelay.HoldState{}, caller,
			callrelay.DirectMove{Party: callee, To: callrelay.MoveWait}, callrelay.HoldState{Caller: true}, ""},
		{"hold X, nobody held, X owns (callee)", true, callee, callrelay.HoldState{}, callee,
			callrelay.DirectMove{Party: caller, To: callrelay.MoveWait}, callrelay.HoldState{Callee: true}, ""},
		{"hold X, nobody held, the other owns", true, callee, callrelay.HoldState{}, caller,
			callrelay.DirectMove{Party: callee, To: callrelay.MoveEnqueue}, callrelay.HoldState{Callee: true}, ""},
		{"hold X, the other held", true, caller, callrelay.HoldState{Callee: true}, caller,
			callrelay.DirectMove{Party: caller, To: callrelay.MoveEnqueue}, callrelay.HoldState{Caller: true, Callee: true}, ""},
		{"resume X, the other waiting", false, caller, callrelay.HoldState{Caller: true}, caller,
			callrelay.DirectMove{Party: callee, To: callrelay.MoveResume}, callrelay.HoldState{}, callee},
		{"resume X, the other waiting (callee)", false, callee, callrelay.HoldState{Callee: true}, caller,
			callrelay.DirectMove{Party: caller, To: callrelay.MoveResume}, callrelay.HoldState{}, caller},
		{"resume X, the other held too", false, caller, callrelay.HoldState{Caller: true, Callee: true}, caller,
			callrelay.DirectMove{Party: caller, To: callrelay.MoveWait}, callrelay.HoldState{Callee: true}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := callrelay.HoldRequest{CallSid: "CA1", Party: tc.party, Hold: tc.hold}
			target := callrelay.HoldTarget{Mode: callrelay.ModeDirect, Held: tc.held, Owner: tc.owner}
			if got := callrelay.PlanDirectHold(req, target); got != tc.want {
				t.Errorf("move = %+v, want %+v", got, tc.want)
			}
			after, owner := target.After(req)
			if after != tc.after || owner != tc.afterOwns {
				t.Errorf("after = %+v, owner %q; want %+v, %q", after, owner, tc.after, tc.afterOwns)
			}
		})
	}
	// Conference mode has no bridge's owner.
	if _, owner := (callrelay.HoldTarget{Mode: callrelay.ModeConference, Held: callrelay.HoldState{Caller: true}}).After(
		callrelay.HoldRequest{Party: caller}); owner != "" {
		t.Errorf("conference-mode owner after a resume = %q, want none", owner)
	}
}
