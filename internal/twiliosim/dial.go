package twiliosim

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// bridge is two calls talking: a ran the <Dial> that made it, b was dialed or dequeued.
type bridge struct {
	a, b    *call
	started time.Time
	done    chan struct{}
	ended   bool
	leaver  *call  // who ended it
	why     string // "hangup" or "redirect"
}

func (s *Sim) bridgeLocked(a, b *call) *bridge {
	br := &bridge{a: a, b: b, started: s.clock.Now(), done: make(chan struct{})}
	a.bridge, b.bridge = br, br
	s.hearLocked(a.party, "talking with "+b.party)
	s.hearLocked(b.party, "talking with "+a.party)
	return br
}

func (s *Sim) endBridgeLocked(br *bridge, leaver *call, why string) {
	if br.ended {
		return
	}
	br.ended, br.leaver, br.why = true, leaver, why
	br.a.bridge, br.b.bridge = nil, nil
	close(br.done)
}

// dialParams are the Dial action's parameters for a bridge that ended: DialCallDuration only
// when the dialed leg hung up (a redirected child leaves none).
func dialParams(status, dialSid string, br *bridge, now time.Time) url.Values {
	p := url.Values{"DialCallStatus": {status}}
	if dialSid != "" {
		p.Set("DialCallSid", dialSid)
	}
	if br != nil && br.why == "hangup" {
		p.Set("DialCallDuration", strconv.Itoa(int(now.Sub(br.started).Seconds())))
	}
	return p
}

func (c *call) dial(ctx context.Context, v node) (*fetch, error) {
	timeout, err := v.intAttr("timeout", 30)
	if err != nil {
		return nil, err
	}
	action := fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "dial action"}
	nouns := v.Children
	if len(nouns) == 0 && v.text() != "" {
		nouns = []node{{XMLName: v.XMLName, Text: v.text()}} // <Dial>+15551230000</Dial>
		nouns[0].XMLName.Local = "Number"
	}
	for _, n := range nouns {
		switch n.XMLName.Local {
		case "Conference":
			return c.dialConference(ctx, n, action)
		case "Queue":
			return c.dialQueue(ctx, n, action, time.Duration(timeout)*time.Second)
		}
	}
	return c.dialTargets(ctx, v, nouns, action, time.Duration(timeout)*time.Second)
}

// outcome is what a ringing leg did.
type outcome struct {
	leg    *call
	status string // "in-progress" (answered), busy, failed, no-answer
	sip    int
}

// address is what a <Number>, <Sip> or <Client> noun dials.
func address(n node) string {
	if n.XMLName.Local == "Client" {
		for _, ch := range n.Children {
			if ch.XMLName.Local == "Identity" {
				return "client:" + ch.text()
			}
		}
		return "client:" + n.text()
	}
	return n.text()
}

// dialTargets rings every noun at once; the first to answer is bridged with the caller, the
// others are canceled.
func (c *call) dialTargets(ctx context.Context, v node, nouns []node, action fetch, timeout time.Duration) (*fetch, error) {
	s := c.s
	sc := s.scenario()
	from := v.attr("callerId")
	var legs []*call
	s.mu.Lock()
	if from == "" {
		from = c.rec.From
	}
	for _, n := range nouns {
		switch n.XMLName.Local {
		case "Number", "Sip", "Client":
		default:
			s.mu.Unlock()
			return nil, fmt.Errorf("<Dial> cannot contain <%s>", n.XMLName.Local)
		}
		addr := address(n)
		key, b := sc.behavior(addr)
		leg := s.newCallLocked(s.model.NewCall(twiliofake.Call{From: from, To: addr, Direction: outboundDial, ParentSid: c.sid}), key)
		leg.behavior, leg.sip = b, n.XMLName.Local == "Sip"
		leg.cb = newStatusCallback(n.attr("statusCallback"), methodOf(n, "statusCallbackMethod"), n.attr("statusCallbackEvent"))
		if u := n.attr("url"); u != "" {
			leg.screen = fetch{url: u, method: methodOf(n, "method"), what: "screen (noun url)"}
			leg.amd = n.attr("machineDetection")
			leg.amdCallback = n.attr("amdStatusCallback")
		}
		legs = append(legs, leg)
		s.logLocked(c.party, "dials %s (%s)", addr, leg.sid)
	}
	s.mu.Unlock()

	// A leg reports its ringing's outcome, then (with a screen) the screen's: two at most.
	outcomes := make(chan outcome, 2*len(legs))
	ringCtx, stopRinging := context.WithCancel(ctx)
	defer stopRinging()
	for _, leg := range legs {
		s.goTracked(func() { leg.ring(ringCtx, outcomes, 0) })
	}
	deadline := time.NewTimer(s.clock.Real(timeout))
	defer deadline.Stop()

	var winner *call
	var br *bridge
	var screenedOut *call // the last leg that answered and was hung up by its screen
	last, sip := "no-answer", 0
	screening := 0 // legs running their screen: the Dial waits for them
	for pending := len(legs); winner == nil && pending > 0; {
		select {
		case o := <-outcomes:
			s.mu.Lock()
			switch {
			case o.status == "in-progress" && o.leg.screen.url != "":
				// Twilio runs the noun's url on the leg after it answers; the caller keeps
				// hearing ringback, the other legs keep ringing.
				if o.leg.aliveLocked() && c.aliveLocked() {
					o.leg.progressLocked("in-progress", sipExtra(o.leg, 200))
					o.leg.executing = true
					screening++
					s.goTracked(func() { o.leg.runScreen(outcomes) })
				}
			case o.status == "in-progress" || o.status == screenAccepted:
				if o.status == screenAccepted {
					screening--
					pending--
					o.leg.executing = false
				}
				if o.leg.aliveLocked() && c.aliveLocked() {
					winner = o.leg
					if o.status == "in-progress" {
						o.leg.progressLocked("in-progress", sipExtra(o.leg, 200))
					}
					c.answerInboundLocked()
					s.run.callee = o.leg.party
					br = s.bridgeLocked(c, o.leg)
				}
			case o.status == screenedOutcome:
				// A screened leg that hangs up does not end the Dial (docs/design.md "Screening").
				screening--
				pending--
				screenedOut = o.leg
			default:
				o.leg.endLocked(o.status, "", sipExtra(o.leg, o.sip))
				pending--
				if last != "busy" {
					last = o.status
				}
				if o.sip != 0 {
					sip = o.sip
				}
			}
			s.mu.Unlock()
		case <-deadline.C:
			// The timeout ends the legs still ringing; a leg already answered finishes its
			// screen (an assumption: Twilio documents the timeout as time to answer).
			stopRinging()
			s.mu.Lock()
			for _, l := range legs {
				if !l.answered() {
					l.endLocked("no-answer", "", nil)
				}
			}
			s.mu.Unlock()
			last, pending = "no-answer", screening
		case <-ctx.Done():
			s.mu.Lock()
			for _, l := range legs {
				l.endLocked(endStatus(l, "canceled"), "", nil)
			}
			s.mu.Unlock()
			c.ignore(withParams(action, url.Values{"DialCallStatus": {"canceled"}}))
			return nil, ctx.Err()
		}
	}
	stopRinging()
	s.mu.Lock()
	for _, l := range legs {
		if l != winner {
			// Twilio hangs up the others: those still ringing are canceled, those answered
			// (in their screen) completed.
			l.endLocked(endStatus(l, "canceled"), "", nil)
		}
	}
	s.mu.Unlock()

	if winner == nil && screenedOut != nil {
		// Nobody was bridged but a leg answered: Twilio's DialCallStatus is not documented for
		// this; the simulator reports the worst case for callrelay, completed with that leg.
		return c.after(action, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {screenedOut.sid}})
	}
	if winner == nil {
		p := url.Values{"DialCallStatus": {last}}
		if sip != 0 {
			p.Set("DialSipResponseCode", strconv.Itoa(sip))
			p.Set("DialSipCallId", s.sid("SIP"))
		}
		return c.after(action, p)
	}
	if winner.behavior.HangupAfter > 0 {
		s.later(time.Duration(winner.behavior.HangupAfter*float64(time.Second)), func() {
			winner.hangup("hangs up")
		})
	}
	select {
	case <-br.done:
	case <-ctx.Done():
	}
	s.mu.Lock()
	s.endBridgeLocked(br, c, "hangup") // no effect unless the caller left it
	p := dialParams("completed", winner.sid, br, s.clock.Now())
	if winner.sip {
		p.Set("DialSipResponseCode", "200")
		p.Set("DialSipCallId", winner.sid)
	}
	if br.leaver == c {
		// The caller hung up or was redirected: the callee is hung up, and the Dial action is
		// still requested, its TwiML ignored.
		if !winner.executing {
			winner.endLocked("completed", "", nil)
		}
		s.mu.Unlock()
		c.ignore(withParams(action, p))
		return nil, ctx.Err()
	}
	s.mu.Unlock()
	return c.after(action, p)
}

// endStatus is the final status of a leg Twilio hangs up: completed once it has answered.
func endStatus(l *call, unanswered string) string {
	if l.answered() {
		return "completed"
	}
	return unanswered
}

// sipExtra is the SipResponseCode of a SIP leg's status callback.
func sipExtra(leg *call, code int) url.Values {
	if !leg.sip || code == 0 {
		return nil
	}
	return url.Values{"SipResponseCode": {strconv.Itoa(code)}}
}

func withParams(f fetch, p url.Values) fetch {
	f.params = p
	return f
}

// after continues with the action, if the verb has one, else with the next verb.
func (c *call) after(action fetch, p url.Values) (*fetch, error) {
	if action.url == "" {
		return nil, nil
	}
	action.params = p
	return &action, nil
}

// ring rings a dialed leg and reports what its target did; a participant's leg (timeout > 0)
// gives up by itself.
func (leg *call) ring(ctx context.Context, out chan<- outcome, timeout time.Duration) {
	s := leg.s
	s.mu.Lock()
	leg.progressLocked("initiated", nil)
	s.mu.Unlock()
	if s.clock.Sleep(ctx, 200*time.Millisecond) != nil {
		return
	}
	b := leg.behavior
	var o outcome
	var wait time.Duration
	switch {
	case b.Busy:
		o, wait = outcome{leg: leg, status: "busy", sip: sipIf(leg, 486)}, time.Second
	case b.Failed:
		o, wait = outcome{leg: leg, status: "failed", sip: sipIf(leg, 404)}, 500*time.Millisecond
	case b.SIPStatus != 0:
		o, wait = outcome{leg: leg, status: sipStatus(b.SIPStatus), sip: b.SIPStatus}, time.Second
	case b.AnswerAfter != nil:
		o, wait = outcome{leg: leg, status: "in-progress"}, time.Duration(*b.AnswerAfter*float64(time.Second))
	default:
		wait = -1 // rings until given up on
	}
	if o.status != "busy" && o.status != "failed" && b.SIPStatus == 0 {
		s.mu.Lock()
		leg.progressLocked("ringing", nil)
		s.mu.Unlock()
	}
	if wait < 0 || (timeout > 0 && wait >= timeout) {
		if timeout <= 0 || s.clock.Sleep(ctx, timeout) != nil {
			<-ctx.Done()
			return
		}
		o = outcome{leg: leg, status: "no-answer"}
		wait = 0
	}
	if s.clock.Sleep(ctx, wait) != nil {
		return
	}
	select {
	case out <- o:
	case <-ctx.Done():
	}
}

func sipIf(leg *call, code int) int {
	if leg.sip {
		return code
	}
	return 0
}

// sipStatus is the call status Twilio reports for a SIP final response.
func sipStatus(code int) string {
	switch code {
	case 486, 600, 603:
		return "busy"
	case 408, 480, 487:
		return "no-answer"
	}
	return "failed"
}
