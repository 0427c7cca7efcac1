package twiliosim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/callrelay/callrelay/internal/twiliofake"
)

// Call directions, as Twilio's Direction parameter.
const (
	inbound      = "inbound"
	outboundAPI  = "outbound-api"
	outboundDial = "outbound-dial"
)

// call is the engine's side of one call leg of the model: what runs it. Its fields after
// construction, and the model's record, are guarded by Sim.mu.
type call struct {
	s        *Sim
	sid      string
	rec      *twiliofake.Call // the model's call: from, to, direction, status, times
	party    string           // timeline name: "caller" or the target's key
	behavior Behavior
	sip      bool
	seq      int // call-progress SequenceNumber
	cb       statusCallback
	extra    url.Values // parameters for the status callback of the change being made (progressLocked)

	life      context.Context // ends when the call does
	kill      context.CancelFunc
	cancelDoc context.CancelFunc // interrupts the TwiML running now (a redirect)
	next      *fetch             // the redirect that interrupted it
	executing bool               // a TwiML executor runs this call

	// A dialed leg's screen: the noun's url (run after it answers, before the bridge) and
	// machineDetection; pressed is set once the person has pressed its key.
	screen      fetch
	amd         string
	amdCallback string // where the detection result goes (amdStatusCallback)
	pressed     bool

	bridge *bridge      // the two-party connection it is in, if any
	member *member      // its place in a queue, if any (the model's Member says whether it still is)
	part   *participant // its place in a conference, joined or being dialed in, if any
}

// statusCallback is where a call's progress events go.
type statusCallback struct {
	url, method string
	events      map[string]bool
}

func newStatusCallback(rawURL, method, events string) statusCallback {
	cb := statusCallback{url: rawURL, method: method, events: map[string]bool{}}
	for _, e := range strings.Fields(strings.ReplaceAll(events, ",", " ")) {
		cb.events[e] = true
	}
	if len(cb.events) == 0 {
		cb.events["completed"] = true // Twilio's default
	}
	return cb
}

// fetch is a TwiML request to make next.
type fetch struct {
	url, method string
	twiml       string     // TwiML sent inline (UpdateCall's Twiml), run without a request
	params      url.Values // extra parameters (DialCallStatus, RecordingUrl, …)
	what        string
}

// errHangup ends a call's TwiML (<Hangup>, <Reject>, or the end of the document).
var errHangup = errors.New("hang up")

// final statuses of a call.
func isFinal(status string) bool {
	switch status {
	case "completed", "busy", "failed", "no-answer", "canceled":
		return true
	}
	return false
}

// newCallLocked runs a call of the model. s.mu is held.
func (s *Sim) newCallLocked(rec *twiliofake.Call, party string) *call {
	c := &call{s: s, sid: rec.Sid, rec: rec, party: party}
	c.life, c.kill = context.WithCancel(context.Background())
	s.calls[rec.Sid] = c
	return c
}

// params are the parameters Twilio sends with every request about a call. s.mu is held.
func (c *call) params() url.Values {
	r := c.rec
	v := url.Values{}
	v.Set("AccountSid", c.s.cfg.AccountSID)
	v.Set("ApiVersion", "2010-04-01")
	v.Set("CallSid", c.sid)
	v.Set("CallStatus", r.Status)
	v.Set("Direction", r.Direction)
	v.Set("From", r.From)
	v.Set("To", r.To)
	v.Set("Caller", r.From)
	v.Set("Called", r.To)
	if r.ParentSid != "" {
		v.Set("ParentCallSid", r.ParentSid)
	}
	if r.Token != "" {
		v.Set("CallToken", r.Token)
	}
	return v
}

// alive reports whether the call has not ended. s.mu is held.
func (c *call) aliveLocked() bool { return !c.rec.Ended() }

// answered reports whether the call has been answered. s.mu is held.
func (c *call) answered() bool { return c.rec.Answered() }

func (c *call) alive() bool {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return c.aliveLocked()
}

// progressLocked moves the call to status in the model, with extra parameters for its status
// callback (SipResponseCode). The model tells onEvent, and statusChangedLocked does what
// Twilio does then; "initiated" is a callback of its own, not a status of the Call resource
// (the model keeps the call queued). s.mu is held.
func (c *call) progressLocked(status string, extra url.Values) {
	if !c.aliveLocked() {
		return
	}
	if status == "initiated" {
		c.s.logLocked(c.party, "initiated")
		c.statusCallbackLocked("initiated", extra)
		return
	}
	c.extra = extra
	c.s.model.SetCallStatus(c.rec, status)
	c.extra = nil
}

// statusChangedLocked is what Twilio does when the call's status changes, whoever changed it
// (the engine, or callrelay's UpdateCall): it sends the status callback event that goes with
// it ("ringing", "answered" with CallStatus=in-progress, "completed" with the final status),
// and a call that ended stops its TwiML and leaves its bridge. The model takes it out of its
// conference and queue. s.mu is held.
func (c *call) statusChangedLocked(e twiliofake.Event) {
	status := c.rec.Status
	if r := e.Request; r != nil && r.Operation == "UpdateCall" && r.PathParams["Sid"] == c.sid {
		c.s.logLocked(c.party, "ended by the REST API (UpdateCall Status=%s)", r.Form.Get("Status"))
	}
	c.s.logLocked(c.party, "%s", describeStatus(status))
	event := status
	switch {
	case status == twiliofake.StatusInProgress:
		event = "answered"
	case isFinal(status):
		event = "completed"
	}
	c.statusCallbackLocked(event, c.extra)
	if isFinal(status) {
		c.kill()
		if c.bridge != nil {
			c.s.endBridgeLocked(c.bridge, c, "hangup")
		}
	}
}

// statusCallbackLocked sends a call progress event to the call's status callback if it asks
// for it: SequenceNumber counts the events sent for this call. s.mu is held.
func (c *call) statusCallbackLocked(event string, extra url.Values) {
	if c.cb.url == "" || !c.cb.events[event] {
		return
	}
	now := c.s.clock.Now()
	p := c.params()
	if event == "initiated" {
		p.Set("CallStatus", "initiated")
	}
	p.Set("CallbackSource", "call-progress-events")
	p.Set("SequenceNumber", strconv.Itoa(c.seq))
	p.Set("Timestamp", twilioTime(now))
	c.seq++
	if event == "completed" {
		d := 0
		if c.answered() {
			d = int(c.rec.End.Sub(c.rec.Start).Seconds())
		}
		p.Set("CallDuration", strconv.Itoa(d))
		p.Set("Duration", strconv.Itoa((d+59)/60))
	}
	for k, vs := range extra {
		p[k] = vs
	}
	c.s.callbackLocked(webhook{method: c.cb.method, url: c.cb.url, params: p, what: "status " + event, party: c.party})
}

func describeStatus(status string) string {
	switch status {
	case "in-progress":
		return "answered"
	case "completed":
		return "hung up (completed)"
	}
	return status
}

// endLocked ends the call with a final status: its TwiML stops, and it leaves its bridge,
// queue or conference (statusChangedLocked, the model). s.mu is held.
func (c *call) endLocked(status, why string, extra url.Values) {
	if !c.aliveLocked() {
		return
	}
	if why != "" {
		c.s.logLocked(c.party, "%s", why)
	}
	c.progressLocked(status, extra)
}

// hangup ends the call as a hang-up by its party (or by Twilio for ops).
func (c *call) hangup(why string) {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	status := twiliofake.StatusCompleted
	if !c.answered() && c.rec.Direction != inbound {
		status = twiliofake.StatusCanceled
	}
	c.endLocked(status, why, nil)
}

// redirectLocked makes the call fetch new TwiML (Twilio's UpdateCall Url, or UpdateMember):
// the TwiML running now is interrupted and the call leaves its bridge (the model then takes it
// out of its queue or conference). A call without TwiML (a dialed leg) starts running it.
// s.mu is held.
func (c *call) redirectLocked(f fetch) {
	if f.twiml != "" {
		c.s.logLocked(c.party, "redirected to TwiML sent inline")
	} else {
		c.s.logLocked(c.party, "redirected to %s", path(f.url))
	}
	if c.bridge != nil {
		c.s.endBridgeLocked(c.bridge, c, "redirect")
	}
	if !c.executing {
		c.executing = true
		c.s.goTracked(func() { c.execute(f) })
		return
	}
	c.next = &f
	if c.cancelDoc != nil {
		c.cancelDoc()
	}
}

// execute runs the call's TwiML from f until the call ends.
func (c *call) execute(f fetch) {
	next := &f
	for next != nil {
		c.s.mu.Lock()
		if !c.aliveLocked() {
			c.s.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancel(c.life)
		c.cancelDoc, c.next = cancel, nil
		c.s.mu.Unlock()

		nf, err := c.document(ctx, *next)
		cancel()

		c.s.mu.Lock()
		pending := c.next
		c.next = nil
		c.s.mu.Unlock()
		switch {
		case pending != nil:
			next = pending
		case err != nil:
			if !errors.Is(err, errHangup) && !errors.Is(err, context.Canceled) {
				c.s.fail("%s: %v", c.party, err)
			}
			next = nil
		default:
			next = nf
		}
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.next == nil {
		c.endLocked("completed", "", nil)
	}
}

// document fetches one TwiML document and runs its verbs. It returns the next document to
// fetch (a <Redirect>, or an action that answered TwiML), or nil at the end of the call.
func (c *call) document(ctx context.Context, f fetch) (*fetch, error) {
	doc, err := c.fetchTwiML(ctx, f)
	if err != nil {
		return nil, err
	}
	for _, v := range doc.Children {
		next, err := c.verb(ctx, v)
		if err != nil || next != nil {
			return next, err
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
	return nil, errHangup // the end of the document hangs up
}

// fetchTwiML requests a TwiML document as Twilio does, and parses it. A failure is what
// Twilio would report as error 11200 (HTTP) or 12100/12200 (document): the caller hears an
// application error and the call ends.
func (c *call) fetchTwiML(ctx context.Context, f fetch) (*node, error) {
	if f.twiml != "" {
		doc, err := parseTwiML([]byte(f.twiml))
		if err != nil {
			return nil, fmt.Errorf("%s: invalid TwiML (Twilio error 12100/12200): %v\n%s", f.what, err, f.twiml)
		}
		return doc, nil
	}
	c.s.mu.Lock()
	p := c.params()
	c.s.mu.Unlock()
	for k, vs := range f.params {
		p[k] = vs
	}
	h := webhook{method: f.method, url: f.url, params: p, what: f.what, party: c.party}
	status, body, err := c.s.deliver(ctx, h)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("%s %s answered %d, not TwiML (Twilio error 11200: the caller hears an application error)", h.what, path(f.url), status)
	}
	doc, err := parseTwiML(body)
	if err == nil && c.s.cfg.CheckTwiML != nil {
		err = c.s.cfg.CheckTwiML(body)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: invalid TwiML (Twilio error 12100/12200): %v\n%s", h.what, path(f.url), err, body)
	}
	return doc, nil
}

// ignore posts a request whose TwiML Twilio ignores (a modified parent's Dial action, an
// Enqueue action after a redirect): it is still checked to be valid. A verb without an action
// posts nothing.
func (c *call) ignore(f fetch) {
	if f.url == "" {
		return
	}
	c.s.mu.Lock()
	p := c.params()
	c.s.mu.Unlock()
	for k, vs := range f.params {
		p[k] = vs
	}
	c.s.goTracked(func() {
		h := webhook{method: f.method, url: f.url, params: p, what: f.what + " (TwiML ignored)", party: c.party}
		status, body, err := c.s.deliver(context.Background(), h)
		if err != nil {
			c.s.fail("%s: %v", c.party, err)
			return
		}
		if status != http.StatusOK {
			c.s.fail("%s: %s %s answered %d", c.party, f.what, path(f.url), status)
			return
		}
		if _, err := parseTwiML(body); err != nil {
			c.s.fail("%s: %s %s: invalid TwiML: %v", c.party, f.what, path(f.url), err)
		}
	})
}
