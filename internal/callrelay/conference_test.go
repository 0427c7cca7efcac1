package callrelay_test

import (
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

func TestPlanConferenceOutcome(t *testing.T) {
	withVM := planRouting(sim, 2, true, true)
	withoutVM := planRouting(sim, 2, false, true)
	tests := []struct {
		name                               string
		r                                  callrelay.Routing
		dialStatus, callerStatus, callStat string
		want                               callrelay.Action
	}{
		// Twilio posts the Dial action of a caller callrelay redirected, and ignores the answer.
		{"redirected to voicemail, answered", withVM, callrelay.DialAnswered, "in-progress", callrelay.StatusVoicemail, callrelay.ActNone},
		{"redirected to voicemail, completed", withVM, callrelay.DialCompleted, "in-progress", callrelay.StatusVoicemail, callrelay.ActNone},
		{"redirected to voicemail, caller gone", withVM, callrelay.DialAnswered, "completed", callrelay.StatusVoicemail, callrelay.ActNone},
		{"conversation over", withVM, callrelay.DialAnswered, "in-progress", callrelay.StatusInProgress, callrelay.ActHangup},
		{"conversation over, completed", withVM, callrelay.DialCompleted, "in-progress", callrelay.StatusCompleted, callrelay.ActHangup},
		{"caller hung up while ringing", withVM, callrelay.DialAnswered, "completed", callrelay.StatusRinging, callrelay.ActHangup},
		{"conference failed: voicemail", withVM, callrelay.DialFailed, "in-progress", callrelay.StatusRinging, callrelay.ActVoicemail},
		{"conference failed, no voicemail", withoutVM, callrelay.DialFailed, "in-progress", callrelay.StatusRinging, callrelay.ActUnavailable},
		{"conference failed, caller gone", withVM, callrelay.DialFailed, "completed", callrelay.StatusRinging, callrelay.ActHangup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := callrelay.PlanConferenceOutcome(tt.r, tt.dialStatus, tt.callerStatus, tt.callStat)
			if got.Action != tt.want {
				t.Errorf("PlanConferenceOutcome(%s, caller %s, call %s) = %v, want %v", tt.dialStatus, tt.callerStatus, tt.callStat, got.Action, tt.want)
			}
		})
	}
}

func TestCalleeLabel(t *testing.T) {
	for i := range callrelay.MaxTargets {
		label := callrelay.CalleeLabel(i)
		if got := callrelay.CalleeIndex(label); got != i {
			t.Errorf("CalleeIndex(%q) = %d, want %d", label, got, i)
		}
	}
	if got := callrelay.CalleeLabel(0); got != "callee-1" {
		t.Errorf("CalleeLabel(0) = %q, want callee-1", got)
	}
	for _, label := range []string{"caller", "callee-0", "callee-11", "callee-x", "", "callee-"} {
		if got := callrelay.CalleeIndex(label); got != -1 {
			t.Errorf("CalleeIndex(%q) = %d, want -1", label, got)
		}
	}
}

func TestTarget_ParticipantTo(t *testing.T) {
	tests := []struct {
		t    callrelay.Target
		want string
	}{
		{callrelay.Target{Type: callrelay.TargetPhone, To: "+15550001111"}, "+15550001111"},
		{callrelay.Target{Type: callrelay.TargetClient, Identity: "dana"}, "client:dana"},
		{callrelay.Target{Type: callrelay.TargetSIP, URI: "sip:dana@pbx.example.com", Transport: "tls", Region: "ie1",
			Headers: map[string]string{"x-team": "sales ops"}}, "sip:dana@pbx.example.com;transport=tls;region=ie1?x-team=sales%20ops"},
	}
	for _, tt := range tests {
		if got := tt.t.ParticipantTo(); got != tt.want {
			t.Errorf("ParticipantTo(%v) = %q, want %q", tt.t.Type, got, tt.want)
		}
	}
}
