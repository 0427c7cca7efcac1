package twiliosim

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Outcomes of a leg's screen, reported to the <Dial> that dialed it.
const (
	screenAccepted  = "screen-accepted" // the document ended without <Hangup>: Twilio bridges the leg
	screenedOutcome = "screened-out"    // the leg was hung up (<Hangup>, the person, an error)
)

// How long Twilio's answering-machine detection takes in the simulation.
const (
	amdHuman   = 2 * time.Second
	amdMachine = 3 * time.Second // Enable: machine_start as soon as the greeting is heard
	greeting   = 8 * time.Second // a carrier's voicemail greeting, up to its beep
)

// amdResult is what answering-machine detection (machineDetection mode) says of who answered,
// and how long it takes: human after 2 s; a carrier voicemail machine_start after 3 s
// (Enable), or machine_end_beep at its beep (DetectMessageEnd).
func amdResult(mode string, b Behavior) (answeredBy string, after time.Duration) {
	switch {
	case !b.CarrierVoicemail:
		return "human", amdHuman
	case mode == "DetectMessageEnd":
		return "machine_end_beep", greeting
	}
	return "machine_start", amdMachine
}

// runScreen runs a dialed leg's screen (its noun's url) as Twilio does: after the leg answered
// and before it is bridged, with the leg's parameters (and AnsweredBy with machine detection).
// Say, Play, Pause, Gather and Redirect run; <Hangup> ends the leg only; a document that ends
// without one lets the leg be bridged. <Dial> is refused: Twilio forbids it there.
func (leg *call) runScreen(out chan<- outcome) {
	s := leg.s
	ctx := leg.life
	b := leg.behavior
	f := leg.screen
	if b.CarrierVoicemail {
		s.log(leg.party, "carrier voicemail answers: plays its greeting, then a beep")
	}
	if leg.amd != "" {
		by, wait := amdResult(leg.amd, b)
		if s.clock.Sleep(ctx, wait) != nil {
			out <- outcome{leg: leg, status: screenedOutcome}
			return
		}
		// The result goes to the amdStatusCallback (Twilio warns, 21262, when there is none),
		// not with the url's request: the strict reading, which callrelay must survive.
		s.mu.Lock()
		s.logLocked(leg.party, "answering-machine detection: AnsweredBy=%s", by)
		if leg.amdCallback != "" {
			p := leg.params()
			p.Set("AnsweredBy", by)
			p.Set("MachineDetectionDuration", strconv.Itoa(int(wait/time.Millisecond)))
			s.callbackLocked(webhook{method: "POST", url: leg.amdCallback, params: p, what: "amd status " + by, party: leg.party})
		}
		s.mu.Unlock()
	}
	accepted, err := leg.screenDocuments(ctx, f)
	if err != nil && !errors.Is(err, errHangup) && !errors.Is(err, context.Canceled) {
		s.fail("%s: screen: %v", leg.party, err)
	}
	s.mu.Lock()
	if accepted && err == nil && leg.aliveLocked() {
		s.mu.Unlock()
		out <- outcome{leg: leg, status: screenAccepted}
		return
	}
	leg.executing = false
	leg.endLocked("completed", "", nil)
	s.mu.Unlock()
	out <- outcome{leg: leg, status: screenedOutcome}
}

// screenDocuments fetches and runs the screen's documents; accepted is true when one ends
// without <Hangup>.
func (leg *call) screenDocuments(ctx context.Context, f fetch) (accepted bool, err error) {
	next := &f
	for next != nil {
		doc, err := leg.fetchTwiML(ctx, *next)
		if err != nil {
			return false, err
		}
		next = nil
		for _, v := range doc.Children {
			switch v.XMLName.Local {
			case "Say", "Play", "Pause", "Gather", "Redirect", "Hangup":
			default:
				return false, fmt.Errorf("<%s> in a screen: Twilio runs only verbs without <Dial> there (and callrelay needs none else)", v.XMLName.Local)
			}
			nf, err := leg.verb(ctx, v)
			if err != nil {
				return false, err
			}
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if nf != nil {
				next = nf
				break
			}
		}
		if next == nil {
			leg.s.log(leg.party, "screen over without <Hangup>: bridged")
			return true, nil
		}
	}
	return false, nil
}

// press is when the person on this leg presses its key (or hangs up), if it ever does.
func (c *call) press() (key string, at time.Time, ok bool) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	b := c.behavior
	if (c.rec.Direction != outboundDial && c.rec.Direction != outboundAPI) || b.CarrierVoicemail || b.Press == "" || c.pressed || !c.answered() {
		return "", time.Time{}, false
	}
	after := 2 * time.Second
	if b.PressAfter != nil {
		after = time.Duration(*b.PressAfter * float64(time.Second))
	}
	return b.Press, c.rec.Start.Add(after), true
}

// gatherPress runs a <Gather> whose listener presses a key (or hangs up) before it times
// out: the prompts are heard (a key interrupts them), then the key is posted to the action as
// Digits. ok is false when the person does not act during this <Gather>.
func (c *call) gatherPress(ctx context.Context, v node, prompts []string, window time.Duration) (*fetch, bool, error) {
	key, at, ok := c.press()
	if !ok {
		return nil, false, nil
	}
	wait := at.Sub(c.s.clock.Now())
	if wait >= window {
		return nil, false, nil
	}
	for _, p := range prompts {
		c.s.hear(c.party, "says: "+p)
	}
	if err := c.s.clock.Sleep(ctx, max(wait, 0)); err != nil {
		return nil, true, err
	}
	c.s.mu.Lock()
	c.pressed = true
	c.s.mu.Unlock()
	if key == "hangup" {
		c.hangup("hangs up during the screen")
		return nil, true, errHangup
	}
	c.s.log(c.party, "presses %s", key)
	if v.attr("action") == "" {
		return nil, true, errors.New("<Gather> without an action in a screen")
	}
	return &fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "gather action (Digits=" + key + ")",
		params: url.Values{"Digits": {key}}}, true, nil
}

// sayText is the text of a <Gather>'s nested <Say>s.
func sayTexts(v node) (texts []string, d time.Duration) {
	for _, n := range v.Children {
		if n.XMLName.Local == "Say" {
			texts = append(texts, strings.TrimSpace(n.text()))
			d += speechDuration(n.text())
		}
	}
	return texts, d
}
