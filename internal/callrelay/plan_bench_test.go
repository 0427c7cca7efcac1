package callrelay_test

import (
	"fmt"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// benchPlanRouting is a valid routing with n phone targets, voicemail on.
func benchPlanRouting(ring string, n int) callrelay.Routing {
	r := callrelay.Routing{
		OwnerEmail: "dana@example.com", Mode: callrelay.ModeDirect, Ring: ring,
		TimeoutSeconds: callrelay.DefaultTimeoutSeconds, CallerID: callrelay.CallerIDCaller,
		Language: callrelay.DefaultLanguage, Enabled: true,
		Voicemail: callrelay.VoicemailSettings{Enabled: true, MaxLengthSeconds: callrelay.DefaultMaxLengthSeconds, Transcribe: true},
	}
	for i := range n {
		r.Targets = append(r.Targets, callrelay.Target{Type: callrelay.TargetPhone, To: fmt.Sprintf("+1555000111%d", i)})
	}
	return r
}

// BenchmarkPlanInbound is the voice webhook's decision.
func BenchmarkPlanInbound(b *testing.B) {
	for _, c := range []struct {
		name string
		r    callrelay.Routing
	}{
		{"simultaneous-1", benchPlanRouting(callrelay.RingSimultaneous, 1)},
		{"simultaneous-3", benchPlanRouting(callrelay.RingSimultaneous, 3)},
		{"sequential-3", benchPlanRouting(callrelay.RingSequential, 3)},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := callrelay.PlanInbound(c.r); p.Action != callrelay.ActForward {
					b.Fatal(p)
				}
			}
		})
	}
}

// BenchmarkPlanDialOutcomeCases is the dial-outcome webhook's decision, per outcome.
func BenchmarkPlanDialOutcomeCases(b *testing.B) {
	simultaneous := benchPlanRouting(callrelay.RingSimultaneous, 3)
	sequential := benchPlanRouting(callrelay.RingSequential, 3)
	for _, c := range []struct {
		name                     string
		r                        callrelay.Routing
		attempt                  int
		dialStatus, callerStatus string
		want                     callrelay.Action
	}{
		{"completed", simultaneous, 0, callrelay.DialCompleted, "in-progress", callrelay.ActHangup},
		{"no-answer/voicemail", simultaneous, 0, callrelay.DialNoAnswer, "in-progress", callrelay.ActVoicemail},
		{"busy/next-target", sequential, 0, callrelay.DialBusy, "in-progress", callrelay.ActForward},
		{"no-answer/caller-gone", sequential, 1, callrelay.DialNoAnswer, "completed", callrelay.ActHangup},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p := callrelay.PlanDialOutcome(c.r, c.attempt, c.dialStatus, c.callerStatus); p.Action != c.want {
					b.Fatal(p)
				}
			}
		})
	}
}
