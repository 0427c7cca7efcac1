package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// directCall drives a direct-mode call whose one target answered, for the hold tests: Twilio's
// webhooks are sent as Twilio sends them, and the REST requests go to the spec-enforcing fake.
type directCall struct {
	*confCall
	callee string // the answered leg
}

func newDirectCall(t *testing.T, opts ...option) *directCall {
	t.Helper()
	c := &directCall{confCall: newConfCall(t, `{"owner_email":"dana@example.com","timeout_seconds":15,"targets":[{"type":"phone","to":"+15550001111"}]}`, opts...),
		callee: "CA" + strings.Repeat("e", 32)}
	c.fake.AddCall(c.caller, "in-progress")
	c.fake.AddCall(c.callee, "in-progress")
	if dial := twiml(t, c.s.twilio("/twilio/voice", inbound(c.caller))).Find("Dial"); dial == nil {
		t.Fatal("voice: no Dial")
	}
	c.legStatus("in-progress", "1")
	// The phone screens by default: the callee presses 1 before Twilio bridges it.
	acceptScreen(t, c.s, c.caller, c.callee, 0)
	return c
}

// legStatus posts the callee leg's progress (a child of the caller's call).
func (c *directCall) legStatus(status, seq string) {
	c.t.Helper()
	f := url.Values{"CallSid": {c.callee}, "ParentCallSid": {c.caller}, "CallStatus": {status}, "SequenceNumber": {seq},
		"To": {"+15550001111"}, "From": {caller}, "Direction": {"outbound-dial"}}
	if rec := c.s.twilio("/twilio/call-status?target=0", f); rec.Code != http.StatusNoContent {
		c.t.Fatalf("call-status: %d %s", rec.Code, rec.Body)
	}
	c.s.wait()
}

// redirected checks the last UpdateCall: leg redirected to path with query, and returns the
// TwiML Twilio would fetch there.
func (c *directCall) redirected(leg, pathAndQuery string) *twimltest.Node {
	c.t.Helper()
	updates := c.fake.RequestsFor("UpdateCall")
	if len(updates) == 0 {
		c.t.Fatal("no UpdateCall")
	}
	r := updates[len(updates)-1]
	wantURL := publicURL + pathAndQuery
	if r.PathParams["Sid"] != leg || r.Form.Get("Url") != wantURL || r.Form.Get("Method") != "POST" ||
		r.Form.Get("StatusCallback") != publicURL+"/twilio/call-status?call="+c.caller {
		c.t.Fatalf("UpdateCall %s %s,\nwant %s Url=%s with the call's StatusCallback", r.PathParams["Sid"], r.Form.Encode(), leg, wantURL)
	}
	f := url.Values{"CallSid": {leg}, "CallStatus": {"in-progress"}}
	return twiml(c.t, c.s.twilio(pathAndQuery, f))
}

// actionOf posts the action of a Dial or Enqueue that ended and returns the answer.
func (c *directCall) actionOf(pathAndQuery, leg string, form url.Values) *twimltest.Node {
	c.t.Helper()
	f := url.Values{"CallSid": {leg}, "CallStatus": {"in-progress"}}
	for k, v := range form {
		f[k] = v
	}
	doc := twiml(c.t, c.s.twilio(pathAndQuery, f))
	c.s.wait()
	return doc
}

func (c *directCall) mustHold(action, party string, caller, callee bool) {
	c.t.Helper()
	code, body := c.hold(action, party)
	if code != http.StatusOK {
		c.t.Fatalf("%s %s: %d %v", action, party, code, body)
	}
	wantHold(c.t, body, caller, callee)
}

func wantEnqueue(t *testing.T, doc *twimltest.Node, queue, action string) {
	t.Helper()
	enq := doc.Find("Enqueue")
	if enq == nil || enq.Text != queue || enq.Attr("action") != publicURL+action || enq.Attr("waitUrl") != publicURL+"/twilio/hold-music" {
		t.Fatalf("answer = %s, want <Enqueue action=%s waitUrl=hold-music>%s", doc, action, queue)
	}
}

func wantWaiting(t *testing.T, doc *twimltest.Node) {
	t.Helper()
	if got := strings.Join(doc.ChildNames(), " "); got != "Say Redirect" || doc.Find("Hangup") != nil {
		t.Fatalf("answer = %s, want the waiting loop (Say, Redirect)", doc)
	}
}

// TestDirectHold_Caller plays docs/design.md's direct-mode hold of the caller, twice, with every
// REST request and webhook as Twilio sends them, then a hang-up that ends the call.
func TestDirectHold_Caller(t *testing.T) {
	c := newDirectCall(t)
	qCaller := "cr-" + c.caller + "-caller"
	enqueueAction := "/twilio/enqueue-outcome?call=" + c.caller + "&party=caller"

	// Hold: the callee's leg is redirected to the waiting loop (never the dialing parent).
	c.mustHold("hold", "caller", true, false)
	wantWaiting(t, c.redirected(c.callee, "/twilio/hold-wait?call="+c.caller+"&party=callee"))
	// The caller's Dial ends (no DialCallDuration: the child was redirected): into the queue.
	wantEnqueue(t, c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}}),
		qCaller, enqueueAction)
	call := getCall(t, c.s, c.caller)
	if call["status"] != "in-progress" {
		t.Errorf("status = %v, want in-progress while held", call["status"])
	}
	if leg := call["legs"].([]any)[0].(map[string]any); leg["status"] != "in-progress" {
		t.Errorf("callee leg = %v, want in-progress: a hold is not its end", leg["status"])
	}

	// Resume: the callee's leg dials the caller's queue; it owns the bridge now.
	c.mustHold("unhold", "caller", false, false)
	dial := c.redirected(c.callee, "/twilio/hold-resume?call="+c.caller+"&party=callee&queue=caller").Find("Dial")
	if dial == nil || dial.Find("Queue") == nil || dial.Find("Queue").Text != qCaller ||
		dial.Attr("action") != publicURL+"/twilio/bridge-outcome?call="+c.caller+"&party=callee" {
		t.Fatalf("resume = %v, want <Dial action=bridge-outcome><Queue>%s", dial, qCaller)
	}

	// Hold again: now the caller's leg is the one taken off the bridge, straight into its queue.
	c.mustHold("hold", "caller", true, false)
	wantEnqueue(t, c.redirected(c.caller, "/twilio/hold-enqueue?call="+c.caller+"&party=caller"), qCaller, enqueueAction)
	// The first Enqueue's action (redirected out of its bridge) and the callee's Dial action.
	wantEnqueue(t, c.actionOf(enqueueAction, c.caller, url.Values{"QueueResult": {"redirected-from-bridged"}, "QueueSid": {"QU" + strings.Repeat("1", 32)}}),
		qCaller, enqueueAction)
	wantWaiting(t, c.actionOf("/twilio/bridge-outcome?call="+c.caller+"&party=callee", c.callee, url.Values{"DialCallStatus": {"completed"}}))

	// Twilio failing midway: 502, state as before, and it is on the timeline.
	c.fake.Fail("UpdateCall", twiliofake.Failure{Status: 500, Code: 20500, Message: "Internal Server Error"})
	if code, body := c.hold("unhold", "caller"); code != http.StatusBadGateway {
		t.Fatalf("unhold with Twilio failing: %d %v, want 502", code, body)
	}
	wantHold(t, getCall(t, c.s, c.caller), true, false)

	// The caller hangs up while held: the callee's leg is hung up and the queue deleted.
	c.fake.SetCallStatus(c.caller, "completed")
	doc := c.actionOf(enqueueAction, c.caller, url.Values{"QueueResult": {"hangup"}, "CallStatus": {"completed"}, "QueueSid": {"QU" + strings.Repeat("1", 32)}})
	if got := strings.Join(doc.ChildNames(), " "); got != "Hangup" {
		t.Errorf("enqueue-outcome after a hang-up = %s, want Hangup", got)
	}
	var hungUp, deleted bool
	for _, r := range c.fake.Requests() {
		hungUp = hungUp || r.Operation == "UpdateCall" && r.PathParams["Sid"] == c.callee && r.Form.Get("Status") == "completed"
		deleted = deleted || r.Operation == "DeleteQueue" && r.PathParams["Sid"] == "QU"+strings.Repeat("1", 32)
	}
	if !hungUp || !deleted {
		t.Errorf("callee hung up %v, queue deleted %v; want both", hungUp, deleted)
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "completed" {
		t.Errorf("status = %v, want completed", call["status"])
	}
	if code, _ := c.hold("unhold", "caller"); code != http.StatusConflict {
		t.Errorf("unhold after the end = %d, want 409", code)
	}
}

// TestDirectHold_DialOutcomeDuringHold: the caller's Dial action, which the hold's redirect of
// the callee's leg causes, can reach callrelay before the hold has been recorded (Twilio posts
// it while callrelay still waits for the REST answer). It is answered from the pending hold,
// without waiting for Twilio: with the caller's queue, not the end of the call.
func TestDirectHold_DialOutcomeDuringHold(t *testing.T) {
	c := newDirectCall(t)
	answer := make(chan *httptest.ResponseRecorder, 1)
	var once sync.Once
	c.fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation != "UpdateCall" || r.PathParams["Sid"] != c.callee {
			return
		}
		// Twilio answers the REST request only once the Dial action has been answered.
		once.Do(func() {
			f := url.Values{"CallSid": {c.caller}, "CallStatus": {"in-progress"}, "DialCallStatus": {"completed"}, "DialCallSid": {c.callee}}
			answer <- c.s.twilio("/twilio/dial-outcome?attempt=0", f)
		})
	})
	c.mustHold("hold", "caller", true, false)
	wantEnqueue(t, twiml(t, <-answer), "cr-"+c.caller+"-caller", "/twilio/enqueue-outcome?call="+c.caller+"&party=caller")
	c.s.wait()
	if call := getCall(t, c.s, c.caller); call["status"] != "in-progress" {
		t.Errorf("status = %v, want in-progress while held", call["status"])
	}
}

// TestDirectHold_CalleeAndBoth holds the callee (the mirror image), then both, resumes them one
// by one, and ends with the callee hanging up after the bridge is back.
func TestDirectHold_CalleeAndBoth(t *testing.T) {
	c := newDirectCall(t)
	qCallee := "cr-" + c.caller + "-callee"
	calleeAction := "/twilio/enqueue-outcome?call=" + c.caller + "&party=callee"

	// Hold the callee: its leg goes straight into its queue; the caller's Dial ends and the
	// caller waits.
	c.mustHold("hold", "callee", false, true)
	wantEnqueue(t, c.redirected(c.callee, "/twilio/hold-enqueue?call="+c.caller+"&party=callee"), qCallee, calleeAction)
	wantWaiting(t, c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}}))

	// Both: the caller, waiting, goes into its own queue.
	c.mustHold("hold", "caller", true, true)
	wantEnqueue(t, c.redirected(c.caller, "/twilio/hold-enqueue?call="+c.caller+"&party=caller"), "cr-"+c.caller+"-caller",
		"/twilio/enqueue-outcome?call="+c.caller+"&party=caller")
	// Resume the caller while the callee stays held: the caller waits.
	c.mustHold("unhold", "caller", false, true)
	wantWaiting(t, c.redirected(c.caller, "/twilio/hold-wait?call="+c.caller+"&party=caller"))
	wantWaiting(t, c.actionOf("/twilio/enqueue-outcome?call="+c.caller+"&party=caller", c.caller, url.Values{"QueueResult": {"redirected"}}))
	// Resume the callee: the caller's leg dials the callee's queue.
	c.mustHold("unhold", "callee", false, false)
	dial := c.redirected(c.caller, "/twilio/hold-resume?call="+c.caller+"&party=caller&queue=callee").Find("Dial")
	if dial == nil || dial.Find("Queue").Text != qCallee {
		t.Fatalf("resume = %v, want the callee's queue dialed", dial)
	}

	// The callee hangs up: the caller's Dial ends with nobody held: the call is over.
	c.fake.SetCallStatus(c.callee, "completed")
	doc := c.actionOf("/twilio/bridge-outcome?call="+c.caller+"&party=caller", c.caller, url.Values{"DialCallStatus": {"completed"}})
	if got := strings.Join(doc.ChildNames(), " "); got != "Hangup" {
		t.Errorf("bridge-outcome after the callee left = %s, want Hangup", got)
	}
	doc = c.actionOf(calleeAction, c.callee, url.Values{"QueueResult": {"bridged"}, "CallStatus": {"completed"}, "QueueSid": {"QU" + strings.Repeat("2", 32)}})
	if got := strings.Join(doc.ChildNames(), " "); got != "Hangup" {
		t.Errorf("enqueue-outcome after the bridge ended = %s, want Hangup", got)
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "completed" {
		t.Errorf("status = %v, want completed", call["status"])
	}
	var deleted bool
	for _, r := range c.fake.RequestsFor("DeleteQueue") {
		deleted = deleted || r.PathParams["Sid"] == "QU"+strings.Repeat("2", 32)
	}
	if !deleted {
		t.Error("the callee's queue was not deleted")
	}
}

// TestDirectHold_CalleeHangsUpWhileCallerHeld: the callee's leg ends while the caller waits in
// its queue: the caller is hung up (nothing else would end the call).
func TestDirectHold_CalleeHangsUpWhileCallerHeld(t *testing.T) {
	c := newDirectCall(t)
	c.mustHold("hold", "caller", true, false)
	c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}})
	c.fake.SetCallStatus(c.callee, "completed")
	c.legStatus("completed", "") // from the redirect's StatusCallback: no SequenceNumber
	var hungUp bool
	for _, r := range c.fake.RequestsFor("UpdateCall") {
		hungUp = hungUp || r.PathParams["Sid"] == c.caller && r.Form.Get("Status") == "completed"
	}
	if !hungUp {
		t.Errorf("the held caller was not hung up; requests %+v", c.fake.Requests())
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "completed" {
		t.Errorf("status = %v, want completed", call["status"])
	}
}

// TestDirectHold_PlainHangUp: without a hold, the Dial ending still ends the call.
func TestDirectHold_PlainHangUp(t *testing.T) {
	c := newDirectCall(t)
	doc := c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallDuration": {"42"}, "DialCallSid": {c.callee}})
	if got := strings.Join(doc.ChildNames(), " "); got != "Hangup" {
		t.Errorf("dial-outcome = %s, want Hangup", got)
	}
	if n := len(c.fake.Requests()); n != 0 {
		t.Errorf("%d REST requests, want none", n)
	}
}
