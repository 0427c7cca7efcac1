package server_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// slowTwilio is how long the slow Twilio takes to answer, and fastWebhook how long a webhook
// may take meanwhile (docs/design.md "Hold and resume": no webhook waits behind Twilio).
const (
	slowTwilio  = 5 * time.Second
	fastWebhook = 100 * time.Millisecond
)

// slowRequests makes the fake take d to answer each request of operation, and reports each as
// it arrives.
func slowRequests(fake *twiliofake.Fake, operation string, d time.Duration) <-chan twiliofake.Request {
	arrived := make(chan twiliofake.Request, 10)
	fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation == operation {
			arrived <- r
			time.Sleep(d) // Twilio being slow is what is tested, not a wait for work
		}
	})
	return arrived
}

// holdResult is an ops hold request's answer, and how long it took.
type holdResult struct {
	code int
	body map[string]any
	took time.Duration
}

// holdAsync sends an ops hold request in the background.
func (c *confCall) holdAsync(action, party string) <-chan holdResult {
	done := make(chan holdResult, 1)
	go func() {
		start := time.Now()
		code, body := c.hold(action, party)
		done <- holdResult{code, body, time.Since(start)}
	}()
	return done
}

// timed posts a webhook and fails the test if the answer took longer than fastWebhook. The
// answer is checked after, outside the time taken (xmllint is a process of its own).
func timed(t *testing.T, what string, post func() *httptest.ResponseRecorder) *httptest.ResponseRecorder {
	t.Helper()
	start := time.Now()
	rec := post()
	if took := time.Since(start); took > fastWebhook {
		t.Errorf("%s answered after %v while a hold waits for Twilio, want under %v", what, took.Round(time.Millisecond), fastWebhook)
	} else {
		t.Logf("%s answered in %v while a hold waits for Twilio", what, took.Round(time.Microsecond))
	}
	return rec
}

// TestHold_SlowTwilio_Direct: a direct-mode hold of the caller whose UpdateCall Twilio takes 5 s
// to answer. Meanwhile the caller's Dial action (which the redirect of the callee's leg causes)
// and the caller's status callback are answered at once, the Dial action with the caller's
// queue; once Twilio answers, the hold is recorded.
func TestHold_SlowTwilio_Direct(t *testing.T) {
	t.Parallel()
	c := newDirectCall(t, withRESTTimeout(2*slowTwilio))
	arrived := slowRequests(c.fake, "UpdateCall", slowTwilio)
	done := c.holdAsync("hold", "caller")
	if r := <-arrived; r.PathParams["Sid"] != c.callee {
		t.Fatalf("UpdateCall of %s, want the callee's leg redirected", r.PathParams["Sid"])
	}

	rec := timed(t, "the Dial action", func() *httptest.ResponseRecorder {
		return c.s.twilio("/twilio/dial-outcome?attempt=0", url.Values{"CallSid": {c.caller}, "CallStatus": {"in-progress"},
			"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}})
	})
	wantEnqueue(t, twiml(t, rec), "cr-"+c.caller+"-caller", "/twilio/enqueue-outcome?call="+c.caller+"&party=caller")
	rec = timed(t, "the caller's status callback", func() *httptest.ResponseRecorder {
		return c.s.twilio("/twilio/call-status", url.Values{"CallSid": {c.caller}, "CallStatus": {"in-progress"},
			"Timestamp": {t0.Format(time.RFC1123Z)}})
	})
	if rec.Code != http.StatusNoContent {
		t.Errorf("call-status: %d %s", rec.Code, rec.Body)
	}

	res := <-done
	if res.code != http.StatusOK || res.took < slowTwilio {
		t.Fatalf("hold = %d after %v %v, want 200 once Twilio answered (after %v)", res.code, res.took, res.body, slowTwilio)
	}
	wantHold(t, res.body, true, false)
	call := getCall(t, c.s, c.caller)
	wantHold(t, call, true, false)
	if call["status"] != "in-progress" {
		t.Errorf("status = %v, want in-progress while held", call["status"])
	}
	if got := holdTimeline(call); len(got) != 1 || got[0] != "hold caller by ops: ok" {
		t.Errorf("hold timeline %q, want one hold that went through", got)
	}
}

// TestHold_SlowTwilio_Conference: the same in conference mode, where Twilio takes 5 s to answer
// UpdateParticipant: a conference event and the callee's status callback are answered at once.
func TestHold_SlowTwilio_Conference(t *testing.T) {
	t.Parallel()
	c := connectedConference(t, withRESTTimeout(2*slowTwilio))
	arrived := slowRequests(c.fake, "UpdateParticipant", slowTwilio)
	done := c.holdAsync("hold", "callee")
	if r := <-arrived; r.PathParams["CallSid"] != c.legSid("callee-1") {
		t.Fatalf("UpdateParticipant of %s, want the callee's", r.PathParams["CallSid"])
	}
	callee := c.legSid("callee-1")
	rec := timed(t, "a conference event", func() *httptest.ResponseRecorder {
		return c.s.twilio("/twilio/conference-status", url.Values{"ConferenceSid": {c.conf}, "FriendlyName": {c.caller},
			"StatusCallbackEvent": {"participant-hold"}, "CallSid": {callee}, "ParticipantLabel": {"callee-1"},
			"SequenceNumber": {"10"}, "Hold": {"true"}, "Timestamp": {t0.Format(time.RFC1123Z)}})
	})
	if rec.Code != http.StatusNoContent {
		t.Errorf("conference-status: %d %s", rec.Code, rec.Body)
	}
	rec = timed(t, "the callee's status callback", func() *httptest.ResponseRecorder {
		return c.s.twilio("/twilio/call-status?call="+c.caller+"&target=0", url.Values{"CallSid": {callee}, "CallStatus": {"in-progress"},
			"SequenceNumber": {"10"}, "Timestamp": {t0.Format(time.RFC1123Z)}})
	})
	if rec.Code != http.StatusNoContent {
		t.Errorf("call-status: %d %s", rec.Code, rec.Body)
	}

	res := <-done
	if res.code != http.StatusOK || res.took < slowTwilio {
		t.Fatalf("hold = %d after %v %v, want 200 once Twilio answered (after %v)", res.code, res.took, res.body, slowTwilio)
	}
	wantHold(t, res.body, false, true)
	if got := holdTimeline(getCall(t, c.s, c.caller)); len(got) != 1 || got[0] != "hold callee by ops: ok" {
		t.Errorf("hold timeline %q, want one hold that went through", got)
	}
}

// holdTimeline lists a call's hold and unhold entries as "hold caller by ops: ok".
func holdTimeline(call map[string]any) []string {
	var got []string
	for _, e := range call["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "hold" || ev["type"] == "unhold" {
			got = append(got, ev["type"].(string)+" "+ev["party"].(string)+" by "+ev["by"].(string)+": "+ev["outcome"].(string))
		}
	}
	return got
}

// connectedConference is a conference-mode call whose one target answered and joined.
func connectedConference(t *testing.T, opts ...option) *confCall {
	t.Helper()
	c := newConfCall(t, `{"owner_email":"dana@example.com","mode":"conference","timeout_seconds":15,
		"targets":[{"type":"phone","to":"+15550001111","screen":"off"}]}`, opts...)
	c.voice()
	c.joined()
	c.leg("callee-1", "ringing")
	c.leg("callee-1", "in-progress")
	c.event("participant-join", c.legSid("callee-1"), "callee-1", nil)
	if call := getCall(t, c.s, c.caller); call["status"] != "in-progress" {
		t.Fatalf("call = %v, want in-progress", call)
	}
	return c
}

// gate holds Twilio's answer to the next request of an operation, once armed, until opened.
type gate struct {
	mu      sync.Mutex
	armed   bool
	release chan struct{}
	arrived chan twiliofake.Request
}

func newGate(fake *twiliofake.Fake, operation string) *gate {
	g := &gate{arrived: make(chan twiliofake.Request, 1)}
	fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation != operation {
			return
		}
		g.mu.Lock()
		armed, release := g.armed, g.release
		g.armed = false
		g.mu.Unlock()
		if armed {
			g.arrived <- r
			<-release
		}
	})
	return g
}

// arm holds the next request; open lets it go.
func (g *gate) arm() {
	g.mu.Lock()
	g.armed, g.release = true, make(chan struct{})
	g.mu.Unlock()
}

func (g *gate) open() { close(g.release) }

// duringHold sends an ops request whose UpdateCall Twilio holds: it checks that the request
// redirects leg to pathAndQuery, runs during (webhooks, each answered at once), then lets Twilio
// answer and returns the ops answer.
func (c *directCall) duringHold(g *gate, action, party, leg, pathAndQuery string, during func()) holdResult {
	c.t.Helper()
	g.arm()
	done := c.holdAsync(action, party)
	r := <-g.arrived
	if r.PathParams["Sid"] != leg || r.Form.Get("Url") != publicURL+pathAndQuery {
		c.t.Errorf("%s %s: UpdateCall %s Url=%s, want %s to %s", action, party, r.PathParams["Sid"], r.Form.Get("Url"), leg, pathAndQuery)
	}
	during()
	g.open()
	res := <-done
	c.s.wait()
	return res
}

// timedAction posts the action of a Dial or Enqueue that ended, answered within fastWebhook.
func (c *directCall) timedAction(pathAndQuery, leg string, form url.Values) *twimltest.Node {
	c.t.Helper()
	f := url.Values{"CallSid": {leg}, "CallStatus": {"in-progress"}}
	for k, v := range form {
		f[k] = v
	}
	doc := twiml(c.t, timed(c.t, pathAndQuery, func() *httptest.ResponseRecorder { return c.s.twilio(pathAndQuery, f) }))
	c.s.wait()
	return doc
}

// resumedByCallee brings a direct-mode call to "nobody held, the callee's leg owns the bridge":
// the caller held, then resumed (the callee's leg dials the caller's queue).
func resumedByCallee(c *directCall) {
	c.t.Helper()
	c.mustHold("hold", "caller", true, false)
	c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}})
	c.mustHold("unhold", "caller", false, false)
}

// TestDirectHold_ActionsDuringPendingHold plays each row of docs/design.md's direct-mode table
// whose redirect ends a Dial or an Enqueue: that action reaches callrelay while the hold still
// waits for Twilio, and is answered at once from the pending hold, as it would be once the hold
// is recorded. Twilio then answers and the hold is recorded.
func TestDirectHold_ActionsDuringPendingHold(t *testing.T) {
	for _, tc := range []struct {
		name           string
		setup          func(c *directCall)
		action, party  string
		moved          string // the party whose leg is redirected
		to             string // where, with the query (call= is added)
		during         func(c *directCall)
		caller, callee bool // held after
	}{{
		// hold X, nobody held, X runs the bridge (X = caller, its original Dial): TestHold_SlowTwilio_Direct.
		// hold X, nobody held, the other runs the bridge (the caller's original Dial).
		name: "hold callee, the caller's Dial", action: "hold", party: "callee",
		moved: "callee", to: "/twilio/hold-enqueue?party=callee",
		during: func(c *directCall) {
			wantWaiting(c.t, c.timedAction("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}}))
		},
		callee: true,
	}, {
		// hold X, nobody held, X runs the bridge (X = callee, after a resume).
		name: "hold callee, the callee's resumed Dial", setup: resumedByCallee, action: "hold", party: "callee",
		moved: "caller", to: "/twilio/hold-wait?party=caller",
		during: func(c *directCall) {
			wantEnqueue(c.t, c.timedAction("/twilio/bridge-outcome?call="+c.caller+"&party=callee", c.callee, url.Values{"DialCallStatus": {"completed"}}),
				"cr-"+c.caller+"-callee", "/twilio/enqueue-outcome?call="+c.caller+"&party=callee")
			wantWaiting(c.t, c.timedAction("/twilio/enqueue-outcome?call="+c.caller+"&party=caller", c.caller,
				url.Values{"QueueResult": {"redirected-from-bridged"}, "QueueSid": {"QU" + strings.Repeat("1", 32)}}))
		},
		callee: true,
	}, {
		// hold X, nobody held, the other runs the bridge (X = caller, the callee's resumed Dial).
		name: "hold caller, the callee's resumed Dial", setup: resumedByCallee, action: "hold", party: "caller",
		moved: "caller", to: "/twilio/hold-enqueue?party=caller",
		during: func(c *directCall) {
			wantEnqueue(c.t, c.timedAction("/twilio/enqueue-outcome?call="+c.caller+"&party=caller", c.caller,
				url.Values{"QueueResult": {"redirected-from-bridged"}, "QueueSid": {"QU" + strings.Repeat("1", 32)}}),
				"cr-"+c.caller+"-caller", "/twilio/enqueue-outcome?call="+c.caller+"&party=caller")
			wantWaiting(c.t, c.timedAction("/twilio/bridge-outcome?call="+c.caller+"&party=callee", c.callee, url.Values{"DialCallStatus": {"completed"}}))
		},
		caller: true,
	}, {
		// resume X, the other held too: X leaves its queue for the waiting loop.
		name: "resume caller, the callee held",
		setup: func(c *directCall) {
			c.mustHold("hold", "callee", false, true)
			c.actionOf("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}})
			c.mustHold("hold", "caller", true, true)
		},
		action: "unhold", party: "caller",
		moved: "caller", to: "/twilio/hold-wait?party=caller",
		during: func(c *directCall) {
			wantWaiting(c.t, c.timedAction("/twilio/enqueue-outcome?call="+c.caller+"&party=caller", c.caller,
				url.Values{"QueueResult": {"redirected"}, "QueueSid": {"QU" + strings.Repeat("1", 32)}}))
		},
		callee: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newDirectCall(t)
			g := newGate(c.fake, "UpdateCall")
			if tc.setup != nil {
				tc.setup(c)
			}
			leg := map[string]string{"caller": c.caller, "callee": c.callee}[tc.moved]
			path, query, _ := strings.Cut(tc.to, "?")
			res := c.duringHold(g, tc.action, tc.party, leg, path+"?call="+c.caller+"&"+query, func() { tc.during(c) })
			if res.code != http.StatusOK {
				t.Fatalf("%s %s = %d %v, want 200", tc.action, tc.party, res.code, res.body)
			}
			wantHold(t, res.body, tc.caller, tc.callee)
			call := getCall(t, c.s, c.caller)
			wantHold(t, call, tc.caller, tc.callee)
			if call["status"] != "in-progress" {
				t.Errorf("status = %v, want in-progress", call["status"])
			}
			if got := holdTimeline(call); len(got) == 0 || got[len(got)-1] != tc.action+" "+tc.party+" by ops: ok" {
				t.Errorf("hold timeline %q, want the last %s %s ok", got, tc.action, tc.party)
			}
			wantNoIntent(t, c.s, c.caller)
		})
	}
}

// wantNoIntent checks that no hold request of the call is left pending.
func wantNoIntent(t *testing.T, s *testServer, callSid string) {
	t.Helper()
	var n int
	if err := s.db.Pool().QueryRow(t.Context(), `SELECT count(*) FROM hold_intents WHERE call_sid = $1`, callSid).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d hold intents left for %s, want none", n, callSid)
	}
}

// TestHold_TwilioFails: Twilio answering 5xx, or not in time, is a 502; the hold state is as it
// was, the intent is gone (the next request goes ahead) and the timeline says failed.
func TestHold_TwilioFails(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, mode := range []string{"direct", "conference"} {
		for _, how := range []string{"5xx", "timeout"} {
			t.Run(mode+"/"+how, func(t *testing.T) {
				var c *confCall
				var op string
				if mode == "direct" {
					c, op = newDirectCall(t, withRESTTimeout(timeout)).confCall, "UpdateCall"
				} else {
					c, op = connectedConference(t, withRESTTimeout(timeout)), "UpdateParticipant"
				}
				g := newGate(c.fake, op)
				var release func()
				if how == "5xx" {
					c.fake.Fail(op, twiliofake.Failure{Status: 503, Code: 20503, Message: "Service Unavailable"})
				} else {
					g.arm()
					release = g.open // after the client has given up
				}
				code, body := c.hold("hold", "caller")
				if release != nil {
					release()
				}
				if e, _ := body["error"].(map[string]any); code != http.StatusBadGateway || e["code"] != "upstream" {
					t.Fatalf("hold = %d %v, want 502 upstream", code, body)
				}
				call := getCall(t, c.s, c.caller)
				wantHold(t, call, false, false)
				if call["status"] != "in-progress" {
					t.Errorf("status = %v, want in-progress", call["status"])
				}
				if got := holdTimeline(call); len(got) != 1 || got[0] != "hold caller by ops: failed" {
					t.Errorf("hold timeline %q, want one failed hold", got)
				}
				wantNoIntent(t, c.s, c.caller)
				if code, body := c.hold("hold", "caller"); code != http.StatusOK {
					t.Errorf("hold again = %d %v, want 200", code, body)
				}
			})
		}
	}
}

// TestDirectHold_FailsAfterTheDialAction: the Dial action that the hold's redirect ends came,
// and was answered from the pending hold, before Twilio's answer. A lost answer (5xx, timeout)
// is then taken for done, on the Dial action's word; a refusal means the leg to move had gone,
// and the call, which no Dial can end any more, is ended by callrelay.
func TestDirectHold_FailsAfterTheDialAction(t *testing.T) {
	dialAction := func(c *directCall) {
		wantEnqueue(c.t, c.timedAction("/twilio/dial-outcome?attempt=0", c.caller, url.Values{"DialCallStatus": {"completed"}, "DialCallSid": {c.callee}}),
			"cr-"+c.caller+"-caller", "/twilio/enqueue-outcome?call="+c.caller+"&party=caller")
	}

	t.Run("5xx", func(t *testing.T) {
		c := newDirectCall(t)
		g := newGate(c.fake, "UpdateCall")
		c.fake.Fail("UpdateCall", twiliofake.Failure{Status: 500, Code: 20500, Message: "Internal Server Error"})
		res := c.duringHold(g, "hold", "caller", c.callee, "/twilio/hold-wait?call="+c.caller+"&party=callee", func() { dialAction(c) })
		if res.code != http.StatusOK {
			t.Fatalf("hold = %d %v, want 200: the Dial action said the callee's leg moved", res.code, res.body)
		}
		call := getCall(t, c.s, c.caller)
		wantHold(t, call, true, false)
		var confirmed any
		for _, e := range call["events"].([]any) {
			if ev := e.(map[string]any); ev["type"] == "hold" && ev["outcome"] == "ok" {
				confirmed = ev["detail"].(map[string]any)["confirmed_by"]
			}
		}
		if confirmed != "dial-outcome" {
			t.Errorf("hold entry confirmed by %v, want dial-outcome", confirmed)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		c := newDirectCall(t)
		g := newGate(c.fake, "UpdateCall")
		c.fake.Fail("UpdateCall", twiliofake.Failure{Status: 400, Code: 21220, Message: "Call is not in-progress. Cannot redirect."})
		res := c.duringHold(g, "hold", "caller", c.callee, "/twilio/hold-wait?call="+c.caller+"&party=callee", func() { dialAction(c) })
		if res.code != http.StatusBadGateway {
			t.Fatalf("hold = %d %v, want 502", res.code, res.body)
		}
		call := getCall(t, c.s, c.caller)
		if call["status"] != "completed" {
			t.Errorf("status = %v, want completed: the caller waits in its queue for nobody", call["status"])
		}
		hungUp := map[string]bool{}
		for _, r := range c.fake.RequestsFor("UpdateCall") {
			if r.Form.Get("Status") == "completed" {
				hungUp[r.PathParams["Sid"]] = true
			}
		}
		if !hungUp[c.caller] {
			t.Errorf("legs hung up %v, want the caller", hungUp)
		}
	})

	t.Run("CalleeHangsUpMeanwhile", func(t *testing.T) {
		c := newDirectCall(t)
		g := newGate(c.fake, "UpdateCall")
		c.fake.Fail("UpdateCall", twiliofake.Failure{Status: 400, Code: 21220, Message: "Call is not in-progress. Cannot redirect."})
		res := c.duringHold(g, "hold", "caller", c.callee, "/twilio/hold-wait?call="+c.caller+"&party=callee", func() {
			// The callee hangs up as the hold is asked: its leg's end comes first, then the Dial's.
			c.fake.SetCallStatus(c.callee, "completed")
			c.legStatus("completed", "3")
			dialAction(c)
		})
		if res.code != http.StatusBadGateway {
			t.Fatalf("hold = %d %v, want 502", res.code, res.body)
		}
		if call := getCall(t, c.s, c.caller); call["status"] != "completed" {
			t.Errorf("status = %v, want completed", call["status"])
		}
		var hungUp bool
		for _, r := range c.fake.RequestsFor("UpdateCall") {
			hungUp = hungUp || r.PathParams["Sid"] == c.caller && r.Form.Get("Status") == "completed"
		}
		if !hungUp {
			t.Error("the caller was not hung up")
		}
	})
}
