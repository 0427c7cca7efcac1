package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// conferenceTargets is a conference-mode number with a phone and a SIP target.
const conferenceTargets = `{"owner_email":"dana@example.com","mode":"conference","timeout_seconds":15,"targets":[
	{"type":"phone","to":"+15550001111","screen":"off"},
	{"type":"sip","uri":"sip:dana@pbx.example.com","username":"dana","password":"s3cret","transport":"tls"}]}`

// confCall drives one conference-mode call as Twilio would: the caller's webhooks, the
// conference's events (SequenceNumber counted per conference) and the participants' progress
// (counted per call), against a spec-enforcing Twilio fake that plays the REST API.
type confCall struct {
	t      *testing.T
	s      *testServer
	fake   *twiliofake.Fake
	caller string // the caller's CallSid, the conference's name
	conf   string // ConferenceSid
	seq    int    // the conference's SequenceNumber
	legSeq map[string]int
	legs   map[string]string // participant label → CallSid
}

func newConfCall(t *testing.T, routing string, opts ...option) *confCall {
	t.Helper()
	var n atomic.Int64
	fake := twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken,
		NewSid: func(prefix string) string { return fmt.Sprintf("%s%032x", prefix, 0xca11ee00+n.Add(1)) }})
	s := newTestServer(t, append([]option{withTwilio(fake)}, opts...)...)
	s.putNumber(masked, routing)
	c := &confCall{t: t, s: s, fake: fake, legSeq: map[string]int{}, legs: map[string]string{},
		caller: "CA" + strings.Repeat("c", 32), conf: "CF" + strings.Repeat("f", 32)}
	return c
}

// voice places the call: the caller hears the conference's wait music.
func (c *confCall) voice() *twimltest.Node {
	c.t.Helper()
	f := inbound(c.caller)
	f.Set("CallToken", "calltoken-abc")
	return twiml(c.t, c.s.twilio("/twilio/voice", f), twimltest.GapConferenceParticipantLabel)
}

// joined has the caller join its conference, at Twilio and by the participant-join event.
func (c *confCall) joined() {
	c.t.Helper()
	c.fake.AddParticipant(c.conf, c.caller, "caller")
	c.event("participant-join", c.caller, "caller", nil)
}

// event posts a conference event and waits for the REST requests it causes.
func (c *confCall) event(event, participant, label string, extra url.Values) {
	c.t.Helper()
	c.seq++
	f := url.Values{
		"AccountSid": {accountSID}, "ConferenceSid": {c.conf}, "FriendlyName": {c.caller},
		"StatusCallbackEvent": {event}, "SequenceNumber": {strconv.Itoa(c.seq)},
		"Timestamp": {t0.Add(time.Duration(c.seq) * time.Second).Format(time.RFC1123Z)},
		"Muted":     {"false"}, "Hold": {"false"}, "Coaching": {"false"},
		"EndConferenceOnExit": {"true"}, "StartConferenceOnEnter": {"true"},
	}
	if participant != "" {
		f.Set("CallSid", participant)
		f.Set("ParticipantLabel", label)
	}
	for k, v := range extra {
		f[k] = v
	}
	if rec := c.s.twilio("/twilio/conference-status", f); rec.Code != http.StatusNoContent {
		c.t.Fatalf("conference-status %s: %d %s", event, rec.Code, rec.Body)
	}
	c.s.wait()
	c.learnLegs()
}

// leg posts a participant's call progress to the StatusCallback callrelay gave it, and waits
// for the REST requests it causes. Twilio's answered event carries CallStatus=in-progress.
func (c *confCall) leg(label, status string) {
	c.t.Helper()
	p := c.participant(label)
	cb, err := url.Parse(p.Form.Get("StatusCallback"))
	if err != nil || !strings.HasPrefix(cb.String(), publicURL) {
		c.t.Fatalf("StatusCallback %q is not on the public URL", p.Form.Get("StatusCallback"))
	}
	sid := c.legSid(label)
	f := url.Values{
		"AccountSid": {accountSID}, "CallSid": {sid}, "CallStatus": {status}, "Direction": {"outbound-api"},
		"From": {p.Form.Get("From")}, "To": {p.Form.Get("To")}, "SequenceNumber": {strconv.Itoa(c.legSeq[sid])},
		"CallbackSource": {"call-progress-events"}, "Timestamp": {t0.Format(time.RFC1123Z)},
	}
	c.legSeq[sid]++
	if status != "initiated" {
		c.fake.SetCallStatus(sid, status)
	}
	if rec := c.s.twilio(strings.TrimPrefix(cb.String(), publicURL), f); rec.Code != http.StatusNoContent {
		c.t.Fatalf("call-status %s %s: %d %s", label, status, rec.Code, rec.Body)
	}
	c.s.wait()
	c.learnLegs()
}

// participant is callrelay's CreateParticipant request for a label.
func (c *confCall) participant(label string) twiliofake.Request {
	c.t.Helper()
	for _, r := range c.fake.RequestsFor("CreateParticipant") {
		if r.Form.Get("Label") == label && r.Status == http.StatusCreated {
			return r
		}
	}
	c.t.Fatalf("no participant %s was created; requests: %v", label, c.fake.Requests())
	return twiliofake.Request{}
}

// legSid is the CallSid Twilio gave the participant with label.
func (c *confCall) legSid(label string) string {
	c.t.Helper()
	sid, ok := c.legs[label]
	if !ok {
		c.t.Fatalf("no participant labelled %s was created", label)
	}
	return sid
}

// learnLegs remembers the CallSid of each participant callrelay created, while the fake still
// has it in the conference.
func (c *confCall) learnLegs() {
	for _, r := range c.fake.RequestsFor("CreateParticipant") {
		label := r.Form.Get("Label")
		if _, ok := c.legs[label]; ok || r.Status != http.StatusCreated {
			continue
		}
		if p, ok := c.fake.Participant(c.conf, label); ok {
			c.legs[label] = p.CallSID
		}
	}
}

// hold asks for a hold or unhold through the ops API.
func (c *confCall) hold(action, party string) (int, map[string]any) {
	c.t.Helper()
	rec := c.s.api(http.MethodPost, "/api/calls/"+c.caller+"/"+action, `{"party":"`+party+`"}`)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		c.t.Fatalf("%s %s: %d, body %q is not JSON", action, party, rec.Code, rec.Body)
	}
	return rec.Code, body
}

func wantHold(t *testing.T, call map[string]any, caller, callee bool) {
	t.Helper()
	h, _ := call["hold"].(map[string]any)
	if h["caller"] != caller || h["callee"] != callee {
		t.Errorf("hold = %v, want caller %v callee %v", h, caller, callee)
	}
}

// TestConference_Flow plays a whole conference-mode call: the caller joins, the owner's two
// targets are added, the first to answer wins and the other is cancelled, ops hold and resume
// each party (Twilio failing twice on the way), and the callee hangs up.
func TestConference_Flow(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	dial := c.voice().Find("Dial")
	if conf := dial.Find("Conference"); conf == nil || conf.Text != c.caller {
		t.Fatalf("voice: Dial = %v, want a conference named after the CallSid", dial)
	}
	if got := c.fake.Requests(); len(got) != 0 {
		t.Fatalf("REST requests before the caller joined: %v", got)
	}

	c.joined()
	created := c.fake.RequestsFor("CreateParticipant")
	if len(created) != 2 {
		t.Fatalf("CreateParticipant requests = %d, want one per target (simultaneous)", len(created))
	}
	for i, want := range []map[string]string{
		{"To": "+15550001111", "Label": "callee-1"},
		{"To": "sip:dana@pbx.example.com;transport=tls", "Label": "callee-2", "SipAuthUsername": "dana", "SipAuthPassword": "s3cret"},
	} {
		r := created[i]
		if r.PathParams["ConferenceSid"] != c.conf {
			t.Errorf("participant %d added to %q, want the ConferenceSid %s (a friendly name would create a new conference)", i, r.PathParams["ConferenceSid"], c.conf)
		}
		want["From"], want["CallToken"], want["Beep"], want["Timeout"] = caller, "calltoken-abc", "false", "15"
		want["EndConferenceOnExit"], want["StatusCallbackMethod"] = "true", "POST"
		want["StatusCallback"] = publicURL + "/twilio/call-status?call=" + c.caller + "&target=" + strconv.Itoa(i)
		for k, v := range want {
			if got := r.Form.Get(k); got != v {
				t.Errorf("participant %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if got := strings.Join(r.Form["StatusCallbackEvent"], " "); got != "initiated ringing answered completed" {
			t.Errorf("participant %d: StatusCallbackEvent = %q", i, got)
		}
	}

	// Both ring; the phone answers first: the SIP leg is cancelled.
	c.leg("callee-1", "ringing")
	c.leg("callee-2", "ringing")
	c.leg("callee-1", "in-progress")
	sip := c.legSid("callee-2")
	updates := c.fake.RequestsFor("UpdateCall")
	if len(updates) != 1 || updates[0].PathParams["Sid"] != sip || updates[0].Form.Get("Status") != "canceled" {
		t.Fatalf("UpdateCall requests = %+v, want the SIP leg canceled", updates)
	}
	callee := c.legSid("callee-1")
	c.event("participant-join", callee, "callee-1", nil)
	call := getCall(t, c.s, c.caller)
	if call["status"] != "in-progress" || call["conference_sid"] != c.conf {
		t.Fatalf("call = %v, want in-progress in %s", call, c.conf)
	}
	wantHold(t, call, false, false)

	holdURL := publicURL + "/twilio/hold-music"
	steps := []struct {
		action, party  string
		fail           *twiliofake.Failure
		wantStatus     int
		wantHold       [2]bool
		wantTwilio     url.Values // the UpdateParticipant form; nil: no request
		wantTwilioCode float64
	}{
		{"hold", "caller", nil, 200, [2]bool{true, false}, url.Values{"Hold": {"true"}, "HoldUrl": {holdURL}, "HoldMethod": {"GET"}}, 0},
		{"hold", "caller", nil, 200, [2]bool{true, false}, nil, 0}, // already held: no request
		{"hold", "callee", nil, 200, [2]bool{true, true}, url.Values{"Hold": {"true"}, "HoldUrl": {holdURL}, "HoldMethod": {"GET"}}, 0},
		{"unhold", "caller", nil, 200, [2]bool{false, true}, url.Values{"Hold": {"false"}}, 0},
		{"unhold", "callee", &twiliofake.Failure{Status: 404, Code: 20404, Message: "The requested resource was not found"}, 502, [2]bool{false, true}, url.Values{"Hold": {"false"}}, 20404},
		{"unhold", "callee", &twiliofake.Failure{Status: 500, Code: 20500, Message: "Internal Server Error"}, 502, [2]bool{false, true}, url.Values{"Hold": {"false"}}, 20500},
		{"unhold", "callee", nil, 200, [2]bool{false, false}, url.Values{"Hold": {"false"}}, 0},
		{"unhold", "callee", nil, 200, [2]bool{false, false}, nil, 0},
	}
	for i, st := range steps {
		before := len(c.fake.RequestsFor("UpdateParticipant"))
		if st.fail != nil {
			c.fake.Fail("UpdateParticipant", *st.fail)
		}
		code, body := c.hold(st.action, st.party)
		if code != st.wantStatus {
			t.Fatalf("step %d %s %s: %d %v, want %d", i, st.action, st.party, code, body, st.wantStatus)
		}
		reqs := c.fake.RequestsFor("UpdateParticipant")[before:]
		switch {
		case st.wantTwilio == nil && len(reqs) != 0:
			t.Errorf("step %d %s %s: %d Twilio requests, want none", i, st.action, st.party, len(reqs))
		case st.wantTwilio != nil && len(reqs) != 1:
			t.Fatalf("step %d %s %s: %d Twilio requests, want 1", i, st.action, st.party, len(reqs))
		case st.wantTwilio != nil:
			wantSid := c.caller
			if st.party == "callee" {
				wantSid = callee
			}
			if r := reqs[0]; r.PathParams["ConferenceSid"] != c.conf || r.PathParams["CallSid"] != wantSid || r.Form.Encode() != st.wantTwilio.Encode() {
				t.Errorf("step %d: UpdateParticipant %v %s, want %s/%s %s", i, r.PathParams, r.Form.Encode(), c.conf, wantSid, st.wantTwilio.Encode())
			}
		}
		if code == 200 {
			wantHold(t, body, st.wantHold[0], st.wantHold[1])
		} else {
			e := body["error"].(map[string]any)
			if e["code"] != "upstream" || e["twilio_code"] != st.wantTwilioCode || e["twilio_message"] == "" {
				t.Errorf("step %d: error = %v, want upstream with twilio_code %v", i, e, st.wantTwilioCode)
			}
			wantHold(t, getCall(t, c.s, c.caller), st.wantHold[0], st.wantHold[1])
		}
	}
	if p, _ := c.fake.Participant(c.conf, c.caller); p.Hold {
		t.Error("Twilio still holds the caller")
	}

	// Every attempt is on the timeline, with who asked and the outcome.
	var got []string
	for _, e := range getCall(t, c.s, c.caller)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "hold" || ev["type"] == "unhold" {
			got = append(got, fmt.Sprintf("%s %s by %s: %s", ev["type"], ev["party"], ev["by"], ev["outcome"]))
		}
	}
	want := []string{
		"hold caller by ops: ok", "hold caller by ops: unchanged", "hold callee by ops: ok", "unhold caller by ops: ok",
		"unhold callee by ops: failed", "unhold callee by ops: failed", "unhold callee by ops: ok", "unhold callee by ops: unchanged",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hold timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// The callee hangs up: the call ends, and nobody can be held any more.
	c.event("participant-leave", callee, "callee-1", url.Values{"ReasonParticipantLeft": {"participant_hung_up"}})
	if call := getCall(t, c.s, c.caller); call["status"] != "completed" || call["ended_at"] == nil {
		t.Errorf("after the callee left: status %v ended %v, want completed", call["status"], call["ended_at"])
	}
	if code, body := c.hold("hold", "caller"); code != http.StatusConflict {
		t.Errorf("hold after the end: %d %v, want 409", code, body)
	}
	// The conference ended: the caller's Dial ends with DialCallStatus=answered.
	f := inbound(c.caller)
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "answered")
	if doc := twiml(t, c.s.twilio("/twilio/dial-outcome?attempt=0", f)); strings.Join(doc.ChildNames(), " ") != "Hangup" {
		t.Errorf("dial-outcome after the conversation = %v, want Hangup", doc.ChildNames())
	}
}

// TestConference_NoAnswer rings two targets in turn; both fail to answer, so the caller is
// redirected to voicemail. The Dial action Twilio still posts and the caller's leaving the
// conference by that redirect change nothing.
func TestConference_NoAnswer(t *testing.T) {
	c := newConfCall(t, strings.Replace(conferenceTargets, `"mode":"conference"`, `"mode":"conference","ring":"sequential","caller_id":"number"`, 1))
	c.voice()
	c.joined()
	created := c.fake.RequestsFor("CreateParticipant")
	if len(created) != 1 || created[0].Form.Get("Label") != "callee-1" {
		t.Fatalf("after the join: %d participants, want callee-1 only (sequential)", len(created))
	}
	if r := created[0]; r.Form.Get("From") != masked || r.Form.Has("CallToken") {
		t.Errorf("caller_id number: From %q CallToken %q, want the masked number and no token", r.Form.Get("From"), r.Form.Get("CallToken"))
	}
	c.leg("callee-1", "ringing")
	c.leg("callee-1", "no-answer")
	if created = c.fake.RequestsFor("CreateParticipant"); len(created) != 2 || created[1].Form.Get("Label") != "callee-2" {
		t.Fatalf("after callee-1 no-answer: %d participants, want callee-2 next", len(created))
	}
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("%d UpdateCall before the last target ended, want 0", n)
	}
	c.leg("callee-2", "busy")
	c.leg("callee-2", "busy") // a duplicate callback
	updates := c.fake.RequestsFor("UpdateCall")
	if len(updates) != 1 {
		t.Fatalf("UpdateCall requests = %d, want one redirect of the caller", len(updates))
	}
	if r := updates[0]; r.PathParams["Sid"] != c.caller || r.Form.Get("Url") != publicURL+"/twilio/voicemail" || r.Form.Get("Method") != "POST" {
		t.Errorf("redirect = %s %s, want the caller to %s/twilio/voicemail", r.PathParams["Sid"], r.Form.Encode(), publicURL)
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "voicemail" {
		t.Fatalf("status = %v, want voicemail", call["status"])
	}

	// Twilio posts the Dial action of the redirected caller (and ignores the answer), and
	// reports the caller leaving the conference by API: neither acts.
	f := inbound(c.caller)
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "answered")
	if doc := twiml(t, c.s.twilio("/twilio/dial-outcome?attempt=0", f)); len(doc.ChildNames()) != 0 {
		t.Errorf("dial-outcome after the redirect = %v, want an empty answer", doc.ChildNames())
	}
	c.event("participant-leave", c.caller, "caller", url.Values{"ReasonParticipantLeft": {"participant_updated_via_api"}})
	c.event("conference-end", "", "", url.Values{"ReasonConferenceEnded": {"participant-with-end-conference-on-exit-left"}})
	if call := getCall(t, c.s, c.caller); call["status"] != "voicemail" || call["ended_at"] != nil {
		t.Errorf("after the Dial action and the leave: status %v ended_at %v, want voicemail, not ended", call["status"], call["ended_at"])
	}
	doc := twiml(t, c.s.twilio("/twilio/voicemail", inbound(c.caller)))
	if doc.Find("Record") == nil {
		t.Errorf("voicemail = %v, want a <Record>", doc.ChildNames())
	}
	if n := len(c.fake.Requests()); n != 3 {
		t.Errorf("%d REST requests in all, want 3 (two participants, one redirect)", n)
	}
}

// TestConference_TwilioUnreachable: adding the owner fails with a Twilio error that is not a
// refusal of the target: the caller goes to voicemail at once instead of waiting in music.
func TestConference_TwilioUnreachable(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.fake.Fail("CreateParticipant", twiliofake.Failure{Status: 503, Code: 20503, Message: "Service Unavailable", Times: 3})
	c.voice()
	c.joined()
	if n := len(c.fake.RequestsFor("CreateParticipant")); n != 3 {
		t.Errorf("CreateParticipant requests = %d, want 3: three tries of the first target, none of the second", n)
	}
	updates := c.fake.RequestsFor("UpdateCall")
	if len(updates) != 1 || updates[0].PathParams["Sid"] != c.caller || updates[0].Form.Get("Url") != publicURL+"/twilio/voicemail" {
		t.Fatalf("UpdateCall = %+v, want the caller redirected to voicemail", updates)
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "voicemail" {
		t.Errorf("status = %v, want voicemail", call["status"])
	}
}

// TestConference_TooManyRequests: Twilio's 429 (participants created too fast, e.g. by several
// replicas) is tried again, not taken for Twilio being down.
func TestConference_TooManyRequests(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.fake.Fail("CreateParticipant", twiliofake.Failure{Status: 429, Code: 20429, Message: "Too Many Requests"})
	c.voice()
	c.joined()
	if n := len(c.fake.RequestsFor("CreateParticipant")); n != 3 {
		t.Errorf("CreateParticipant requests = %d, want 3 (one refused with 429, tried again, then the second target)", n)
	}
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Errorf("UpdateCall = %d, want none: both targets ring", n)
	}
	c.legSid("callee-1")
	c.legSid("callee-2")
}

// TestConference_RefusedTarget: Twilio refusing one target (an invalid number, say) does not
// stop the others; when the rest ends unanswered, voicemail.
func TestConference_RefusedTarget(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.fake.Fail("CreateParticipant", twiliofake.Failure{Status: 400, Code: 21217, Message: "Phone number does not appear to be valid"})
	c.voice()
	c.joined()
	if n := len(c.fake.RequestsFor("CreateParticipant")); n != 2 {
		t.Fatalf("CreateParticipant requests = %d, want 2", n)
	}
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("UpdateCall = %d while callee-2 rings, want 0", n)
	}
	c.leg("callee-2", "no-answer")
	if updates := c.fake.RequestsFor("UpdateCall"); len(updates) != 1 || updates[0].Form.Get("Url") != publicURL+"/twilio/voicemail" {
		t.Fatalf("UpdateCall = %+v, want the caller redirected to voicemail", updates)
	}
	var failed bool
	for _, e := range getCall(t, c.s, c.caller)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "participant" && ev["outcome"] == "failed" {
			d := ev["detail"].(map[string]any)
			failed = d["twilio_code"] == float64(21217) && d["label"] == "callee-1"
		}
	}
	if !failed {
		t.Error("the refused participant is not on the timeline with Twilio's code")
	}
}

// TestConference_CallerHangsUpWhileRinging ends the ringing legs, whichever of Twilio's
// hang-up callbacks arrives first.
func TestConference_CallerHangsUpWhileRinging(t *testing.T) {
	for _, first := range []string{"participant-leave", "call-status", "dial-outcome"} {
		t.Run(first, func(t *testing.T) { callerHangsUpWhileRinging(t, first) })
	}
}

func callerHangsUpWhileRinging(t *testing.T, first string) {
	c := newConfCall(t, conferenceTargets)
	c.voice()
	c.joined()
	c.leg("callee-1", "ringing")
	gone := inbound(c.caller)
	gone.Set("CallStatus", "completed")
	switch first {
	case "call-status": // the number's status callback
		if rec := c.s.twilio("/twilio/call-status", gone); rec.Code != http.StatusNoContent {
			t.Fatalf("call-status: %d", rec.Code)
		}
		c.s.wait()
	case "dial-outcome":
		gone.Set("DialCallStatus", "completed")
		twiml(t, c.s.twilio("/twilio/dial-outcome?attempt=0", gone))
	}
	c.event("participant-leave", c.caller, "caller", url.Values{"ReasonParticipantLeft": {"participant_hung_up"}})
	canceled := map[string]bool{}
	for _, r := range c.fake.RequestsFor("UpdateCall") {
		if r.Form.Get("Status") == "canceled" {
			canceled[r.PathParams["Sid"]] = true
		}
	}
	if !canceled[c.legSid("callee-1")] || !canceled[c.legSid("callee-2")] {
		t.Errorf("canceled legs = %v, want both", canceled)
	}
	if call := getCall(t, c.s, c.caller); call["status"] != "completed" {
		t.Errorf("status = %v, want completed", call["status"])
	}
}

// TestConference_LateAnswer: a second target answering after the first has won is hung up —
// without ending the conference it may already be in.
func TestConference_LateAnswer(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.voice()
	c.joined()
	sip := c.legSid("callee-2")
	// Twilio cannot cancel a call that answered meanwhile: the cancel fails.
	c.fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation == "UpdateCall" && r.PathParams["Sid"] == sip && r.Form.Get("Status") == "canceled" {
			c.fake.SetCallStatus(sip, "in-progress")
		}
	})
	c.leg("callee-1", "in-progress")
	c.leg("callee-2", "in-progress")
	var keep, completed bool
	for _, r := range c.fake.Requests() {
		if r.Operation == "UpdateParticipant" && r.PathParams["CallSid"] == sip && r.Form.Get("EndConferenceOnExit") == "false" {
			keep = true
		}
		if r.Operation == "UpdateCall" && r.PathParams["Sid"] == sip && r.Form.Get("Status") == "completed" {
			completed = keep // in that order
		}
	}
	if !keep || !completed {
		t.Errorf("late answerer: EndConferenceOnExit=false sent %v, then completed %v; requests %+v", keep, completed, c.fake.Requests())
	}
	call := getCall(t, c.s, c.caller)
	if call["status"] != "in-progress" {
		t.Errorf("status = %v, want in-progress", call["status"])
	}
}

// TestHold_errors checks the refusals of the hold API: each a clear error, nothing sent.
func TestHold_errors(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.voice()
	tests := []struct {
		name, path, body string
		want             int
		wantField        string
	}{
		{"unknown call", "/api/calls/CA00000000000000000000000000000404/hold", `{"party":"caller"}`, 404, ""},
		{"bad party", "/api/calls/" + c.caller + "/hold", `{"party":"owner"}`, 400, "party"},
		{"party not a string", "/api/calls/" + c.caller + "/hold", `{"party":1}`, 400, "party"},
		{"unknown field", "/api/calls/" + c.caller + "/hold", `{"party":"caller","music":"x"}`, 400, "music"},
		{"not JSON", "/api/calls/" + c.caller + "/hold", `party=caller`, 400, ""},
		{"caller not joined yet", "/api/calls/" + c.caller + "/hold", `{}`, 409, "party"},
		{"no callee yet", "/api/calls/" + c.caller + "/unhold", `{"party":"callee"}`, 409, "party"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := c.s.api(http.MethodPost, tt.path, tt.body)
			var body struct {
				Error struct{ Code, Field, Message string }
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &body)
			if rec.Code != tt.want || body.Error.Field != tt.wantField || body.Error.Message == "" {
				t.Errorf("%d %s, want %d naming field %q", rec.Code, rec.Body, tt.want, tt.wantField)
			}
		})
	}
	if n := len(c.fake.Requests()); n != 0 {
		t.Errorf("%d Twilio requests, want none", n)
	}
	if rec := c.s.apiAs(http.MethodPost, "/api/calls/"+c.caller+"/hold", `{}`, ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("without the token: %d, want 401", rec.Code)
	}

	t.Run("DirectMode", func(t *testing.T) {
		s := newTestServer(t)
		s.putNumber(masked, threeTargets)
		twiml(t, s.twilio("/twilio/voice", inbound("CA0000000000000000005f646972656374")))
		if rec := s.api(http.MethodPost, "/api/calls/CA0000000000000000005f646972656374/hold", ""); rec.Code != http.StatusConflict {
			t.Errorf("hold of a direct-mode call: %d %s, want 409", rec.Code, rec.Body)
		}
	})
}

// TestHold_serialised sends two holds of the caller at once: the second waits for the first
// (its intent, pending while Twilio is asked; no lock is held) and then finds the caller held,
// so Twilio gets one request.
func TestHold_serialised(t *testing.T) {
	c := newConfCall(t, conferenceTargets)
	c.voice()
	c.joined()
	inTwilio, release := make(chan struct{}), make(chan struct{})
	var once atomic.Bool
	c.fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation == "UpdateParticipant" && once.CompareAndSwap(false, true) {
			close(inTwilio)
			<-release
		}
	})
	codes := make(chan int, 2)
	go func() { code, _ := c.hold("hold", "caller"); codes <- code }()
	<-inTwilio
	go func() { code, _ := c.hold("hold", "caller"); codes <- code }()
	// Await the second request waiting for the first's outcome (LISTENing, idle, its last
	// statement the one that found the intent pending), then let Twilio answer the first.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := c.s.db.Pool().QueryRow(t.Context(),
			`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle'
				AND query LIKE '-- awaiting a hold outcome%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second hold never waited for the first")
		}
		time.Sleep(5 * time.Millisecond) // polling the database for the lock wait, not waiting for work
	}
	close(release)
	for range 2 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("hold = %d, want 200", code)
		}
	}
	if n := len(c.fake.RequestsFor("UpdateParticipant")); n != 1 {
		t.Errorf("UpdateParticipant requests = %d, want 1", n)
	}
	wantHold(t, getCall(t, c.s, c.caller), true, false)
}

// TestHoldMusic checks /twilio/hold-music: signed GET (query included) and POST, TwiML that
// loops, without a database.
func TestHoldMusic(t *testing.T) {
	for _, music := range []string{"", "https://cdn.example.com/hold.mp3"} {
		t.Run("music="+music, func(t *testing.T) {
			s := newTestServer(t, withConfig(func(c *config.Config) {
				if music != "" {
					u, _ := url.Parse(music)
					c.HoldMusicURL = config.URL{URL: u}
				}
			}))
			s.db.Pool().Close() // never touches the database
			post := twiml(t, s.twilio("/twilio/hold-music", url.Values{"CallSid": {"CA00000000000000000000000000000001"}, "QueueSid": {"QU00000000000000000000000000000001"}}))
			pathAndQuery := "/twilio/hold-music?attempt=1&x=a%20b"
			req := httptest.NewRequest(http.MethodGet, pathAndQuery, nil)
			req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+pathAndQuery, nil))
			rec := httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			get := twiml(t, rec)
			if post.String() != get.String() {
				t.Errorf("GET and POST differ:\n%s\n%s", get, post)
			}
			want := "Say Pause Redirect"
			if music != "" {
				want = "Play"
			}
			if got := strings.Join(get.ChildNames(), " "); got != want {
				t.Errorf("verbs = %s, want %s", got, want)
			}

			req = httptest.NewRequest(http.MethodGet, pathAndQuery, nil)
			req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+"/twilio/hold-music", nil))
			rec = httptest.NewRecorder()
			s.handler.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden {
				t.Errorf("GET signed without its query: %d, want 403", rec.Code)
			}
		})
	}
}

// BenchmarkHold measures a hold or resume through the ops API: the lock on the call, Twilio's
// UpdateParticipant (the spec-enforcing fake over loopback HTTP), the state and the timeline
// written, and the call read back for the answer.
func BenchmarkHold(b *testing.B) {
	fake := twiliofake.Start(b, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	s := newTestServer(b, withTwilio(fake))
	s.putNumber(masked, conferenceTargets)
	caller, conf := "CA"+strings.Repeat("c", 32), "CF"+strings.Repeat("f", 32)
	fake.AddParticipant(conf, caller, "caller")
	twiml(b, s.twilio("/twilio/voice", inbound(caller)), twimltest.GapConferenceParticipantLabel)
	join := url.Values{"ConferenceSid": {conf}, "FriendlyName": {caller}, "StatusCallbackEvent": {"participant-join"},
		"CallSid": {caller}, "ParticipantLabel": {"caller"}, "SequenceNumber": {"1"}}
	if rec := s.twilio("/twilio/conference-status", join); rec.Code != http.StatusNoContent {
		b.Fatalf("join: %d", rec.Code)
	}
	s.wait()
	actions := [2]string{"/hold", "/unhold"}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if rec := s.api(http.MethodPost, "/api/calls/"+caller+actions[i%2], `{"party":"caller"}`); rec.Code != http.StatusOK {
			b.Fatalf("%s: %d %s", actions[i%2], rec.Code, rec.Body)
		}
	}
}
