package callrelay_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

func TestDecodeRouting_screenDefaults(t *testing.T) {
	r, err := decode(t, body(t, targets(phone("+15550001111"), sip("sip:desk@pbx.example.com"),
		map[string]any{"type": "client", "identity": "dana"})))
	if err != nil {
		t.Fatalf("DecodeRouting: %v", err)
	}
	want := []string{callrelay.ScreenPress, callrelay.ScreenOff, callrelay.ScreenOff}
	for i, tg := range r.Targets {
		if tg.Screen != want[i] {
			t.Errorf("targets[%d] (%s) screen = %q, want %q", i, tg.Type, tg.Screen, want[i])
		}
	}
	if r.MachineDetection || r.Label != "" {
		t.Errorf("machine_detection = %v, label = %q: want false and none by default", r.MachineDetection, r.Label)
	}
}

func TestDecodeRouting_screenSet(t *testing.T) {
	p := phone("+15550001111")
	p["screen"] = "announce"
	s := sip("sip:desk@pbx.example.com", "screen", "press")
	q := phone("+15550002222")
	q["screen"] = "off"
	r, err := decode(t, body(t, func(m map[string]any) {
		targets(p, s, q)(m)
		set("label", "Sales line", "machine_detection", true)(m)
	}))
	if err != nil {
		t.Fatalf("DecodeRouting: %v", err)
	}
	for i, want := range []string{callrelay.ScreenAnnounce, callrelay.ScreenPress, callrelay.ScreenOff} {
		if got := r.Targets[i].Screen; got != want {
			t.Errorf("targets[%d].screen = %q, want %q", i, got, want)
		}
	}
	if !r.MachineDetection || r.Label != "Sales line" {
		t.Errorf("machine_detection = %v, label = %q: want true and %q", r.MachineDetection, r.Label, "Sales line")
	}
	if err := r.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestDecodeRouting_screenInvalid(t *testing.T) {
	bad := func(screen any) map[string]any {
		p := phone("+15550001111")
		p["screen"] = screen
		return p
	}
	tests := []struct {
		name, body, field string
	}{
		{"screen unknown", body(t, targets(bad("ask"))), "targets[0].screen"},
		{"screen other case", body(t, targets(phone("+15550002222"), bad("Press"))), "targets[1].screen"},
		{"screen not a string", body(t, targets(bad(1))), "targets.screen"},
		{"label too long", body(t, set("label", strings.Repeat("é", callrelay.MaxLabelLength+1))), "label"},
		{"label two lines", body(t, set("label", "Sales\nline")), "label"},
		{"label with NUL", body(t, set("label", "Sales\x00")), "label"},
		{"label not a string", body(t, set("label", 7)), "label"},
		{"machine_detection not a boolean", body(t, set("machine_detection", "yes")), "machine_detection"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(t, tt.body)
			var e *callrelay.Error
			if !errors.As(err, &e) || e.Code != callrelay.EINVALID {
				t.Fatalf("DecodeRouting: got %v, want an %s error", err, callrelay.EINVALID)
			}
			if e.Field != tt.field {
				t.Errorf("Field = %q, want %q (message %q)", e.Field, tt.field, e.Message)
			}
		})
	}
	// A label of exactly the limit is fine.
	if _, err := decode(t, body(t, set("label", strings.Repeat("é", callrelay.MaxLabelLength)))); err != nil {
		t.Errorf("label of %d characters: %v", callrelay.MaxLabelLength, err)
	}
}

// TestPlanDial is the decision when a <Dial> ends: whether a person accepted × DialCallStatus ×
// the attempt (sequential or simultaneous, last target or not) × the caller still there.
func TestPlanDial(t *testing.T) {
	voicemail := func(a int) callrelay.Plan { return callrelay.Plan{Action: callrelay.ActVoicemail, Attempt: a} }
	hangup := func(a int) callrelay.Plan { return callrelay.Plan{Action: callrelay.ActHangup, Attempt: a} }
	next := func(a int) callrelay.Plan {
		return callrelay.Plan{Action: callrelay.ActForward, Targets: []int{a}, Attempt: a}
	}
	unavailable := func(a int) callrelay.Plan { return callrelay.Plan{Action: callrelay.ActUnavailable, Attempt: a} }
	type attempt struct {
		name    string
		routing callrelay.Routing
		attempt int
		// notAnswered is the plan when nobody took the call: the next target or voicemail.
		notAnswered callrelay.Plan
	}
	attempts := []attempt{
		{"simultaneous", planRouting(sim, 3, true, true), 0, voicemail(0)},
		{"sequential first of three", planRouting(seq, 3, true, true), 0, next(1)},
		{"sequential second of three", planRouting(seq, 3, true, true), 1, next(2)},
		{"sequential last", planRouting(seq, 3, true, true), 2, voicemail(2)},
		{"simultaneous without voicemail", planRouting(sim, 2, false, true), 0, unavailable(0)},
		{"sequential last without voicemail", planRouting(seq, 2, false, true), 1, unavailable(1)},
	}
	for _, a := range attempts {
		for _, accepted := range []bool{true, false} {
			for _, status := range append(dialStatuses, "", "weird") {
				for _, caller := range append(callerConnected, callerGone...) {
					name := fmt.Sprintf("%s/accepted=%v/%s/caller=%s", a.name, accepted, status, caller)
					d := callrelay.DialResult{Attempt: a.attempt, DialCallStatus: status, CallerStatus: caller, Answered: accepted}
					bridged := status == callrelay.DialCompleted || status == callrelay.DialAnswered
					var want callrelay.Plan
					switch {
					case bridged && accepted:
						want = hangup(a.attempt) // the conversation happened and is over
					case callrelay.IsTerminal(caller):
						want = hangup(a.attempt) // the caller has gone
					default:
						want = a.notAnswered // never hang up on a caller nobody took
					}
					if got := callrelay.PlanDial(a.routing, d); fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("%s: PlanDial = %+v (%v), want %+v (%v)", name, got, got.Action, want, want.Action)
					}
				}
			}
		}
	}
}

// TestPlanDial_completedUnaccepted spells out the field failure of issue 15: a carrier's
// voicemail answers, Twilio reports completed, nobody accepted.
func TestPlanDial_completedUnaccepted(t *testing.T) {
	r := planRouting(sim, 1, true, true)
	got := callrelay.PlanDial(r, callrelay.DialResult{DialCallStatus: callrelay.DialCompleted, CallerStatus: "in-progress"})
	if got.Action != callrelay.ActVoicemail {
		t.Errorf("completed without an acceptance: %v, want voicemail", got.Action)
	}
	// Without screening information a completed Dial still ends the call, as before.
	if got := callrelay.PlanDialOutcome(r, 0, callrelay.DialCompleted, "in-progress"); got.Action != callrelay.ActHangup {
		t.Errorf("PlanDialOutcome completed: %v, want hangup", got.Action)
	}
}

func TestAttemptAnswered(t *testing.T) {
	mixed := planRouting(sim, 3, true, true) // phone press, sip off, phone announce
	mixed.Targets[0].Screen = callrelay.ScreenPress
	mixed.Targets[1] = callrelay.Target{Type: callrelay.TargetSIP, URI: "sip:desk@pbx.example.com", Screen: callrelay.ScreenOff}
	mixed.Targets[2].Screen = callrelay.ScreenAnnounce
	screened := planRouting(sim, 2, true, true)
	for i := range screened.Targets {
		screened.Targets[i].Screen = callrelay.ScreenPress
	}
	seqScreened := planRouting(seq, 3, true, true)
	for i := range seqScreened.Targets {
		seqScreened.Targets[i].Screen = callrelay.ScreenPress
	}
	seqScreened.Targets[1].Screen = callrelay.ScreenOff
	legacy := planRouting(sim, 1, true, true) // stored before screening: no screen is off

	tests := []struct {
		name    string
		r       callrelay.Routing
		attempt int
		dialSid string
		legs    []callrelay.LegScreen
		want    bool
	}{
		{"screened leg accepted", screened, 0, "CA1", []callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true, Accepted: true}}, true},
		{"screened leg bridged without accepting (carrier voicemail, completed)", screened, 0, "CA1",
			[]callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true}}, false},
		{"another leg accepted: the one Twilio names does not matter", screened, 0, "CA1",
			[]callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true}, {CallSid: "CA2", TargetIndex: 1, Screened: true, Accepted: true}}, true},
		{"all screened, no legs recorded, no DialCallSid", screened, 0, "", nil, false},
		{"all screened, DialCallSid unknown", screened, 0, "CA9", nil, false},
		{"unscreened SIP leg bridged", mixed, 0, "CA2", []callrelay.LegScreen{{CallSid: "CA2", TargetIndex: 1}}, true},
		{"unscreened target, bridged leg not yet recorded", mixed, 0, "CA7", []callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true}}, true},
		{"mixed, the phone's screen named by Twilio, not accepted", mixed, 0, "CA1", []callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true}}, false},
		{"announce counts once accepted", mixed, 0, "CA3", []callrelay.LegScreen{{CallSid: "CA3", TargetIndex: 2, Screened: true, Accepted: true}}, true},
		{"sequential: an acceptance of another attempt does not count", seqScreened, 2, "CA3",
			[]callrelay.LegScreen{{CallSid: "CA1", TargetIndex: 0, Screened: true, Accepted: true}, {CallSid: "CA3", TargetIndex: 2, Screened: true}}, false},
		{"sequential: the unscreened target's attempt", seqScreened, 1, "", nil, true},
		{"legacy routing without screens", legacy, 0, "CA1", nil, true},
		{"routing unknown: DialCallStatus decides", callrelay.Routing{}, 0, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := callrelay.AttemptAnswered(tt.r, tt.attempt, tt.dialSid, tt.legs); got != tt.want {
				t.Errorf("AttemptAnswered = %v, want %v", got, tt.want)
			}
		})
	}
}
