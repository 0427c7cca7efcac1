package twiml_test

import (
	"net/url"
	"testing"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/twiml"
)

// benchRouting is docs/design.md's example routing (designJSON) with mode and ring set.
func benchRouting(b *testing.B, mode, ring string) callrelay.Routing {
	b.Helper()
	return routing(b, edit(designJSON, `"mode": "`+mode+`", "ring": "`+ring+`"`))
}

// BenchmarkRespond renders the documents the voice and dial-outcome webhooks answer with,
// through Builder.Respond as the handlers call it.
func BenchmarkRespond(b *testing.B) {
	u, err := url.Parse("https://relay.example.com")
	if err != nil {
		b.Fatal(err)
	}
	bl := twiml.NewBuilder(u)
	in := twiml.Inbound{CallSid: "CA0123456789abcdef0123456789abcdef", From: "+15559870000", To: "+15551230000"}
	simultaneous := benchRouting(b, callrelay.ModeDirect, callrelay.RingSimultaneous)
	sequential := benchRouting(b, callrelay.ModeDirect, callrelay.RingSequential)
	conference := benchRouting(b, callrelay.ModeConference, callrelay.RingSimultaneous)
	for _, c := range []struct {
		name string
		r    callrelay.Routing
		p    callrelay.Plan
	}{
		// voice: simultaneous ring of the three targets, after the greeting.
		{"direct-simultaneous-3", simultaneous, callrelay.PlanInbound(simultaneous)},
		// dial-outcome: the first target did not answer, ring the second.
		{"direct-sequential", sequential, callrelay.PlanDialOutcome(sequential, 0, callrelay.DialNoAnswer, "in-progress")},
		{"conference", conference, callrelay.PlanInbound(conference)},
		// dial-outcome: nobody answered.
		{"voicemail", simultaneous, callrelay.PlanDialOutcome(simultaneous, 0, callrelay.DialNoAnswer, "in-progress")},
		{"hangup", simultaneous, callrelay.PlanDialOutcome(simultaneous, 0, callrelay.DialCompleted, "in-progress")},
	} {
		b.Run(c.name, func(b *testing.B) {
			doc, err := bl.Respond(c.r, c.p, in)
			if err != nil || len(doc) == 0 {
				b.Fatalf("Respond: %v (%d bytes)", err, len(doc))
			}
			b.SetBytes(int64(len(doc)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bl.Respond(c.r, c.p, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
