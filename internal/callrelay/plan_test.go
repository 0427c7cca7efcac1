package callrelay_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// planRouting returns a valid routing with n phone targets.
func planRouting(ring string, n int, voicemail, enabled bool) callrelay.Routing {
	r := defaultRouting()
	r.Ring = ring
	r.Targets = nil
	for i := range n {
		r.Targets = append(r.Targets, callrelay.Target{Type: callrelay.TargetPhone, To: fmt.Sprintf("+1555000000%d", i)})
	}
	r.Voicemail.Enabled = voicemail
	r.Enabled = enabled
	return r
}

const (
	sim = callrelay.RingSimultaneous
	seq = callrelay.RingSequential
)

func TestPlanInbound(t *testing.T) {
	tests := []struct {
		name    string
		routing callrelay.Routing
		want    callrelay.Plan
	}{
		{"simultaneous, one target", planRouting(sim, 1, true, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0}}},
		{"simultaneous, three targets", planRouting(sim, 3, true, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0, 1, 2}}},
		{"simultaneous, ten targets", planRouting(sim, 10, true, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}},
		{"simultaneous, no voicemail", planRouting(sim, 2, false, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0, 1}}},
		{"sequential, one target", planRouting(seq, 1, true, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0}}},
		{"sequential, three targets", planRouting(seq, 3, true, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0}}},
		{"sequential, no voicemail", planRouting(seq, 3, false, true),
			callrelay.Plan{Action: callrelay.ActForward, Targets: []int{0}}},
		{"disabled, voicemail", planRouting(sim, 3, true, false),
			callrelay.Plan{Action: callrelay.ActVoicemail}},
		{"disabled sequential, voicemail", planRouting(seq, 3, true, false),
			callrelay.Plan{Action: callrelay.ActVoicemail}},
		{"disabled, no voicemail", planRouting(sim, 3, false, false),
			callrelay.Plan{Action: callrelay.ActReject}},
		{"disabled sequential, no voicemail", planRouting(seq, 1, false, false),
			callrelay.Plan{Action: callrelay.ActReject}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := callrelay.PlanInbound(tt.routing)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PlanInbound: got %+v (%v), want %+v (%v)", got, got.Action, tt.want, tt.want.Action)
			}
			for _, i := range got.Targets {
				if i < 0 || i >= len(tt.routing.Targets) {
					t.Errorf("PlanInbound: target index %d out of range of %d targets", i, len(tt.routing.Targets))
				}
			}
		})
	}
}

var (
	dialStatuses    = []string{callrelay.DialCompleted, callrelay.DialAnswered, callrelay.DialNoAnswer, callrelay.DialBusy, callrelay.DialFailed, callrelay.DialCanceled}
	dialFailures    = []string{callrelay.DialNoAnswer, callrelay.DialBusy, callrelay.DialFailed, callrelay.DialCanceled}
	callerGone      = []string{callrelay.StatusCompleted, callrelay.StatusCanceled, callrelay.StatusBusy, callrelay.StatusFailed, callrelay.StatusNoAnswer}
	callerConnected = []string{"in-progress", "ringing", "queued", ""}
)

func TestPlanDialOutcome(t *testing.T) {
	type test struct {
		name         string
		routing      callrelay.Routing
		attempt      int
		dialStatus   string
		callerStatus string
		want         callrelay.Plan
	}
	var tests []test
	add := func(name string, r callrelay.Routing, attempt int, dial, caller string, want callrelay.Plan) {
		tests = append(tests, test{fmt.Sprintf("%s/attempt=%d/dial=%s/caller=%s", name, attempt, dial, caller), r, attempt, dial, caller, want})
	}
	hangup := func(attempt int) callrelay.Plan { return callrelay.Plan{Action: callrelay.ActHangup, Attempt: attempt} }
	voicemail := func(attempt int) callrelay.Plan {
		return callrelay.Plan{Action: callrelay.ActVoicemail, Attempt: attempt}
	}
	unavailable := func(attempt int) callrelay.Plan {
		return callrelay.Plan{Action: callrelay.ActUnavailable, Attempt: attempt}
	}
	next := func(attempt int) callrelay.Plan {
		return callrelay.Plan{Action: callrelay.ActForward, Targets: []int{attempt}, Attempt: attempt}
	}

	// Answered: the conversation happened, whatever else is true.
	for _, dial := range []string{callrelay.DialCompleted, callrelay.DialAnswered} {
		for _, caller := range append(callerConnected, callerGone...) {
			add("sim3", planRouting(sim, 3, true, true), 0, dial, caller, hangup(0))
			add("seq3", planRouting(seq, 3, true, true), 0, dial, caller, hangup(0))
			add("seq3", planRouting(seq, 3, false, true), 1, dial, caller, hangup(1))
		}
	}
	for _, dial := range append(dialFailures, "", "unknown-status") {
		// The caller hung up: nothing more, not even voicemail.
		for _, caller := range callerGone {
			add("sim3", planRouting(sim, 3, true, true), 0, dial, caller, hangup(0))
			add("seq3", planRouting(seq, 3, true, true), 0, dial, caller, hangup(0))
			add("seq3-no-vm", planRouting(seq, 3, false, true), 1, dial, caller, hangup(1))
		}
		for _, caller := range callerConnected {
			// Simultaneous: every target was tried at once.
			add("sim1", planRouting(sim, 1, true, true), 0, dial, caller, voicemail(0))
			add("sim3", planRouting(sim, 3, true, true), 0, dial, caller, voicemail(0))
			add("sim3-no-vm", planRouting(sim, 3, false, true), 0, dial, caller, unavailable(0))
			// Sequential: the next target, then voicemail after the last one.
			add("seq3", planRouting(seq, 3, true, true), 0, dial, caller, next(1))
			add("seq3", planRouting(seq, 3, true, true), 1, dial, caller, next(2))
			add("seq3", planRouting(seq, 3, true, true), 2, dial, caller, voicemail(2))
			add("seq3-no-vm", planRouting(seq, 3, false, true), 1, dial, caller, next(2))
			add("seq3-no-vm", planRouting(seq, 3, false, true), 2, dial, caller, unavailable(2))
			add("seq1", planRouting(seq, 1, true, true), 0, dial, caller, voicemail(0))
			add("seq1-no-vm", planRouting(seq, 1, false, true), 0, dial, caller, unavailable(0))
			add("seq10", planRouting(seq, 10, true, true), 8, dial, caller, next(9))
			add("seq10", planRouting(seq, 10, true, true), 9, dial, caller, voicemail(9))
			// A repeated callback past the end still ends in voicemail.
			add("seq3", planRouting(seq, 3, true, true), 5, dial, caller, voicemail(5))
			// The number was disabled while it rang: no more targets.
			add("seq3-disabled", planRouting(seq, 3, true, false), 0, dial, caller, voicemail(0))
			add("seq3-disabled-no-vm", planRouting(seq, 3, false, false), 0, dial, caller, unavailable(0))
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := callrelay.PlanDialOutcome(tt.routing, tt.attempt, tt.dialStatus, tt.callerStatus)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("PlanDialOutcome: got %+v (%v), want %+v (%v)", got, got.Action, tt.want, tt.want.Action)
			}
			// A repeated callback decides the same.
			if again := callrelay.PlanDialOutcome(tt.routing, tt.attempt, tt.dialStatus, tt.callerStatus); !reflect.DeepEqual(again, got) {
				t.Errorf("PlanDialOutcome repeated: got %+v, want %+v", again, got)
			}
			for _, i := range got.Targets {
				if i < 0 || i >= len(tt.routing.Targets) {
					t.Errorf("PlanDialOutcome: target index %d out of range of %d targets", i, len(tt.routing.Targets))
				}
			}
		})
	}
}

// TestPlanDialAction_legs: the store reads a call's legs only when DialNeedsLegs says so, so
// every other outcome must plan the same whatever the legs are.
func TestPlanDialAction_legs(t *testing.T) {
	screened := planRouting(seq, 2, true, true)
	screened.Targets[0].Screen = callrelay.ScreenPress
	legs := [][]callrelay.LegScreen{
		nil,
		{{CallSid: "CAleg0", TargetIndex: 0, Screened: true, Accepted: true}},
		{{CallSid: "CAleg0", TargetIndex: 0, Screened: true}, {CallSid: "CAleg1", TargetIndex: 1}},
	}
	routings := map[string]callrelay.Routing{
		"sequential": planRouting(seq, 2, true, true), "simultaneous": planRouting(sim, 2, false, true),
		"screened": screened, "disabled": planRouting(seq, 2, true, false),
	}
	statuses := []string{callrelay.DialCompleted, callrelay.DialAnswered, callrelay.DialBusy, callrelay.DialNoAnswer,
		callrelay.DialFailed, callrelay.DialCanceled, ""}
	needed := 0
	for name, r := range routings {
		for _, dial := range statuses {
			for _, caller := range []string{callrelay.StatusInProgress, callrelay.StatusCompleted} {
				o := callrelay.DialOutcome{CallSid: "CAcall", DialCallStatus: dial, CallerStatus: caller, DialCallSid: "CAleg0"}
				plans := map[string]bool{}
				for _, l := range legs {
					plans[fmt.Sprint(callrelay.PlanDialAction(r, callrelay.CallState{Status: callrelay.StatusRinging, Legs: l}, o))] = true
				}
				if len(plans) > 1 {
					needed++
					if !callrelay.DialNeedsLegs(dial) {
						t.Errorf("%s, DialCallStatus %q, caller %s: DialNeedsLegs is false, but the legs change the plan: %v", name, dial, caller, plans)
					}
				}
			}
		}
	}
	// The legs must matter somewhere, or the test tells nothing.
	if needed == 0 {
		t.Error("no outcome's plan depends on the legs")
	}
}

// TestPlanDialOutcome_sequentialWalk follows a sequential call from PlanInbound through every
// unanswered target to voicemail.
func TestPlanDialOutcome_sequentialWalk(t *testing.T) {
	r := planRouting(seq, 4, true, true)
	p := callrelay.PlanInbound(r)
	var dialed []int
	for p.Action == callrelay.ActForward {
		if len(dialed) > len(r.Targets) {
			t.Fatalf("more attempts than targets: dialed %v", dialed)
		}
		dialed = append(dialed, p.Targets...)
		p = callrelay.PlanDialOutcome(r, p.Attempt, callrelay.DialNoAnswer, "in-progress")
	}
	if want := []int{0, 1, 2, 3}; !reflect.DeepEqual(dialed, want) {
		t.Errorf("dialed: got %v, want %v", dialed, want)
	}
	if p.Action != callrelay.ActVoicemail || p.Attempt != 3 {
		t.Errorf("last plan: got %+v, want voicemail at attempt 3", p)
	}
}

func TestPlan_Status(t *testing.T) {
	tests := []struct {
		action callrelay.Action
		want   string
	}{
		{callrelay.ActForward, callrelay.StatusRinging},
		{callrelay.ActVoicemail, callrelay.StatusVoicemail},
		{callrelay.ActReject, callrelay.StatusCompleted},
		{callrelay.ActHangup, callrelay.StatusCompleted},
		{callrelay.ActUnavailable, callrelay.StatusCompleted},
		{callrelay.ActNone, ""},
	}
	for _, tt := range tests {
		if got := (callrelay.Plan{Action: tt.action}).Status(); got != tt.want {
			t.Errorf("Plan{%v}.Status(): got %q, want %q", tt.action, got, tt.want)
		}
	}
}

func TestAction_String(t *testing.T) {
	tests := []struct {
		action callrelay.Action
		want   string
	}{
		{callrelay.ActForward, "forward"},
		{callrelay.ActVoicemail, "voicemail"},
		{callrelay.ActReject, "reject"},
		{callrelay.ActHangup, "hangup"},
		{callrelay.ActUnavailable, "unavailable"},
		{callrelay.ActNone, "none"},
		{callrelay.Action(99), "unknown"},
	}
	for _, tt := range tests {
		if got := tt.action.String(); got != tt.want {
			t.Errorf("Action(%d).String(): got %q, want %q", int(tt.action), got, tt.want)
		}
	}
}

func TestCallerGone(t *testing.T) {
	for _, s := range callerGone {
		if !callrelay.CallerGone(s) || !callrelay.IsTerminal(s) {
			t.Errorf("CallerGone(%q), IsTerminal(%q): got false, want true", s, s)
		}
	}
	for _, s := range append(callerConnected, callrelay.StatusVoicemail, "Completed") {
		if callrelay.CallerGone(s) || callrelay.IsTerminal(s) {
			t.Errorf("CallerGone(%q), IsTerminal(%q): got true, want false", s, s)
		}
	}
}

func BenchmarkPlanDialOutcome(b *testing.B) {
	r := planRouting(seq, 10, true, true)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := callrelay.PlanDialOutcome(r, i%10, dialStatuses[i%len(dialStatuses)], "in-progress")
		if p.Attempt < 0 {
			b.Fatal(p)
		}
		i++
	}
}
