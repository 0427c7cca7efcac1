package twiliosim

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// node is a TwiML element: its attributes, text and children.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n node) text() string { return strings.TrimSpace(n.Text) }

// intAttr returns an integer attribute, or def when it is absent.
func (n node) intAttr(name string, def int) (int, error) {
	v := n.attr(name)
	if v == "" {
		return def, nil
	}
	i, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("<%s %s=%q>: not an integer", n.XMLName.Local, name, v)
	}
	return i, nil
}

// verbs Twilio knows in a voice <Response>; the simulator runs all of them that callrelay can
// answer, and refuses the others as Twilio refuses an unknown verb (error 12200).
var verbs = map[string]bool{
	"Say": true, "Play": true, "Pause": true, "Gather": true, "Dial": true, "Record": true,
	"Enqueue": true, "Redirect": true, "Hangup": true, "Reject": true, "Leave": true,
}

func parseTwiML(data []byte) (*node, error) {
	var doc node
	if err := xml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.XMLName.Local != "Response" {
		return nil, fmt.Errorf("root element <%s>, want <Response>", doc.XMLName.Local)
	}
	for _, v := range doc.Children {
		if !verbs[v.XMLName.Local] {
			return nil, fmt.Errorf("unknown verb <%s>", v.XMLName.Local)
		}
	}
	return &doc, nil
}

// resolve makes a TwiML URL absolute against the document's URL, as Twilio does.
func resolve(base, ref string) string {
	b, err := url.Parse(base)
	if err != nil {
		return ref
	}
	r, err := url.Parse(strings.TrimSpace(ref))
	if err != nil {
		return ref
	}
	return b.ResolveReference(r).String()
}

func methodOf(n node, attr string) string {
	if m := strings.ToUpper(n.attr(attr)); m == http.MethodGet {
		return m
	}
	return http.MethodPost
}

// verb runs one verb of a document. Its URLs are used as they are: callrelay's are absolute
// (docs/design.md), so a relative one would be a callrelay bug; only a waitUrl's <Redirect> is
// resolved.
func (c *call) verb(ctx context.Context, v node) (*fetch, error) {
	c.answerUnless(v)
	switch v.XMLName.Local {
	case "Say":
		return nil, c.say(ctx, v)
	case "Play":
		return nil, c.play(ctx, v)
	case "Pause":
		n, err := v.intAttr("length", 1)
		if err != nil {
			return nil, err
		}
		c.s.hear(c.party, fmt.Sprintf("silence (%ds pause)", n))
		return nil, c.s.clock.Sleep(ctx, time.Duration(n)*time.Second)
	case "Gather":
		return c.gather(ctx, v)
	case "Redirect":
		return &fetch{url: v.text(), method: methodOf(v, "method"), what: "redirect"}, nil
	case "Hangup":
		c.s.log(c.party, "hung up by TwiML <Hangup>")
		return nil, errHangup
	case "Reject":
		c.reject(v)
		return nil, errHangup
	case "Leave":
		return nil, nil // only meaningful in a queue's waitUrl
	case "Record":
		return c.record(ctx, v)
	case "Dial":
		return c.dial(ctx, v)
	case "Enqueue":
		return c.enqueue(ctx, v)
	}
	return nil, fmt.Errorf("unknown verb <%s>", v.XMLName.Local)
}

// answerUnless answers an inbound call when its first verb runs: every verb but <Reject>,
// and <Dial answerOnBridge="true"> which answers when the bridge is made.
func (c *call) answerUnless(v node) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.rec.Direction != inbound || c.rec.Status != twiliofake.StatusRinging {
		return
	}
	if v.XMLName.Local == "Reject" || (v.XMLName.Local == "Dial" && v.attr("answerOnBridge") == "true") {
		return
	}
	c.progressLocked("in-progress", nil)
}

// answerInboundLocked answers the inbound call if it still rings (answerOnBridge). s.mu is held.
func (c *call) answerInboundLocked() {
	if c.rec.Direction == inbound && c.rec.Status == twiliofake.StatusRinging {
		c.progressLocked("in-progress", nil)
	}
}

// speechDuration is how long a text takes to say: about 2.5 words per second.
func speechDuration(text string) time.Duration {
	words := len(strings.Fields(text))
	return time.Duration(float64(words)/2.5*float64(time.Second)) + 500*time.Millisecond
}

// loops runs one iteration loop times (0: until interrupted).
func (c *call) loops(ctx context.Context, v node, each time.Duration) error {
	n, err := v.intAttr("loop", 1)
	if err != nil {
		return err
	}
	if n == 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.s.clock.Sleep(ctx, time.Duration(n)*each)
}

func (c *call) say(ctx context.Context, v node) error {
	c.s.hear(c.party, "says: "+v.text())
	return c.loops(ctx, v, speechDuration(v.text()))
}

// playDuration is how long one play of an audio file lasts in the simulation.
const playDuration = 10 * time.Second

func (c *call) play(ctx context.Context, v node) error {
	c.s.hear(c.party, "plays: "+v.text())
	return c.loops(ctx, v, playDuration)
}

// gather plays its nested prompts and waits for input: the simulated caller presses nothing,
// a dialed leg's person may (Behavior.Press). Twilio then moves on to the next verb (or, with actionOnEmptyResult, posts
// the action without Digits).
func (c *call) gather(ctx context.Context, v node) (*fetch, error) {
	timeout, err := v.intAttr("timeout", 5)
	if err != nil {
		return nil, err
	}
	// A person on a screened leg may press during this <Gather> (docs/design.md "Screening").
	texts, speech := sayTexts(v)
	if f, acted, err := c.gatherPress(ctx, v, texts, speech+time.Duration(timeout)*time.Second); acted || err != nil {
		return f, err
	}
	for _, n := range v.Children {
		var err error
		switch n.XMLName.Local {
		case "Say":
			err = c.say(ctx, n)
		case "Play":
			err = c.play(ctx, n)
		case "Pause":
			var l int
			if l, err = n.intAttr("length", 1); err == nil {
				err = c.s.clock.Sleep(ctx, time.Duration(l)*time.Second)
			}
		default:
			err = fmt.Errorf("<Gather> cannot contain <%s>", n.XMLName.Local)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := c.s.clock.Sleep(ctx, time.Duration(timeout)*time.Second); err != nil {
		return nil, err
	}
	c.s.log(c.party, "pressed nothing (<Gather> timed out)")
	if v.attr("actionOnEmptyResult") == "true" && v.attr("action") != "" {
		return &fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "gather action"}, nil
	}
	return nil, nil
}

// reject refuses the inbound call: not answered, so not billed, when it is the first verb.
func (c *call) reject(v node) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	status, why := "busy", "rejected"
	if v.attr("reason") == "busy" {
		why = "rejected as busy"
	}
	if c.answered() {
		why += " after answering (the call was billed: <Reject> was not the first verb)"
		c.s.noteLocked("reject after answer")
		status = "completed"
	}
	c.s.hearLocked(c.party, why)
	c.endLocked(status, why, nil)
}

// record takes the caller's voicemail: the caller speaks Voicemail.Seconds, then hangs up or
// presses # (Voicemail.End). Silence records nothing: Twilio then skips the action and
// reports the recording absent.
func (c *call) record(ctx context.Context, v node) (*fetch, error) {
	maxLength, err := v.intAttr("maxLength", 3600)
	if err != nil {
		return nil, err
	}
	timeout, err := v.intAttr("timeout", 5)
	if err != nil {
		return nil, err
	}
	vm := c.s.scenario().Caller.Voicemail
	if v.attr("playBeep") != "false" {
		c.s.hear(c.party, "beep")
	}
	action := fetch{url: v.attr("action"), method: methodOf(v, "method"), what: "record action"}
	statusCB := newStatusCallback(v.attr("recordingStatusCallback"), methodOf(v, "recordingStatusCallbackMethod"), v.attr("recordingStatusCallbackEvent"))
	started := c.s.clock.Now()

	if vm.Seconds <= 0 {
		if err := c.s.clock.Sleep(ctx, time.Duration(timeout)*time.Second); err != nil {
			return nil, err
		}
		c.s.log(c.party, "said nothing: no recording")
		if statusCB.url != "" && statusCB.events["absent"] {
			c.s.mu.Lock()
			p := c.params()
			p.Set("RecordingStatus", "absent")
			p.Set("RecordingSid", c.s.sidLocked("RE"))
			p.Set("ErrorCode", "16102") // silent recording
			c.s.callbackLocked(webhook{method: statusCB.method, url: statusCB.url, params: p, what: "recording status absent", party: c.party})
			c.s.mu.Unlock()
		}
		return nil, nil
	}

	speak := time.Duration(vm.Seconds * float64(time.Second))
	limit := time.Duration(maxLength) * time.Second
	c.s.log(c.party, "speaks for %s: %q", speak, vm.Words)
	err = c.s.clock.Sleep(ctx, min(speak, limit))
	hungUp := errors.Is(err, context.Canceled) && !c.alive()
	if err != nil && !hungUp {
		return nil, err
	}
	duration := int(min(speak, limit) / time.Second)
	if hungUp {
		duration = int(c.s.clock.Now().Sub(started) / time.Second)
	}
	digits := ""
	switch {
	case speak >= limit:
		c.s.log(c.party, "reached maxLength (%ds)", maxLength)
	case vm.End == "hangup" && !hungUp:
		c.hangup("hangs up after the message")
		hungUp = true
		digits = "hangup"
	case hungUp:
		digits = "hangup"
	default:
		digits = "#"
		c.s.log(c.party, "presses #")
	}

	rec := c.s.newRecording(c, duration, vm.Words, started)
	action.params = url.Values{
		"RecordingUrl":      {rec.url},
		"RecordingSid":      {rec.sid},
		"RecordingDuration": {strconv.Itoa(duration)},
		"Digits":            {digits},
	}
	if action.url == "" {
		return nil, errors.New("<Record> without an action: Twilio would post back to the same document")
	}
	c.s.afterRecording(c, rec, v, statusCB)
	if hungUp {
		c.ignore(action) // Twilio requests the action after a hang-up, and ignores its TwiML
		return nil, errHangup
	}
	return &action, nil
}
