package server_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// screenedTargets is a conference-mode number whose two phone targets ring at once, each
// screened by a key press (a phone's default).
const screenedTargets = `{"owner_email":"dana@example.com","mode":"conference","timeout_seconds":15,"targets":[
	{"type":"phone","to":"+15550001111"},{"type":"phone","to":"+15550002222"}]}`

// placed is callrelay's CreateCall request for target i (its StatusCallback names the target).
func (c *confCall) placed(i int) twiliofake.Request {
	c.t.Helper()
	for _, r := range c.fake.RequestsFor("CreateCall") {
		cb, err := url.Parse(r.Form.Get("StatusCallback"))
		if err == nil && cb.Query().Get("target") == string(rune('0'+i)) && r.Status == http.StatusCreated {
			return r
		}
	}
	c.t.Fatalf("no call placed to target %d; requests: %v", i, c.fake.Requests())
	return twiliofake.Request{}
}

// placedSid is the CallSid Twilio gave the call placed to target i.
func (c *confCall) placedSid(i int) string {
	c.t.Helper()
	for _, e := range getCall(c.t, c.s, c.caller)["events"].([]any) {
		ev := e.(map[string]any)
		d, _ := ev["detail"].(map[string]any)
		if ev["type"] == "participant" && d["label"] == "callee-"+string(rune('1'+i)) {
			if sid, ok := d["leg"].(string); ok {
				return sid
			}
		}
	}
	c.t.Fatalf("no leg recorded for target %d", i)
	return ""
}

// placedForm is what Twilio posts for a call callrelay placed: a call of its own, no
// ParentCallSid.
func (c *confCall) placedForm(i int, status string, kv ...string) url.Values {
	r := c.placed(i)
	f := url.Values{"AccountSid": {accountSID}, "CallSid": {c.placedSid(i)}, "CallStatus": {status},
		"Direction": {"outbound-api"}, "From": {r.Form.Get("From")}, "To": {r.Form.Get("To")}}
	for j := 0; j+1 < len(kv); j += 2 {
		f.Set(kv[j], kv[j+1])
	}
	return f
}

// placedProgress posts the placed call's progress to its StatusCallback.
func (c *confCall) placedProgress(i int, status string) {
	c.t.Helper()
	cb := c.placed(i).Form.Get("StatusCallback")
	sid := c.placedSid(i)
	f := c.placedForm(i, status, "SequenceNumber", itoa(c.legSeq[sid]), "CallbackSource", "call-progress-events",
		"Timestamp", t0.Format(time.RFC1123Z))
	c.legSeq[sid]++
	c.fake.SetCallStatus(sid, status)
	if rec := c.s.twilio(strings.TrimPrefix(cb, publicURL), f); rec.Code != http.StatusNoContent {
		c.t.Fatalf("call-status %d %s: %d %s", i, status, rec.Code, rec.Body)
	}
	c.s.wait()
}

// screen fetches target i's screen (the placed call's Url), then, when a key is asked and
// digits is not "-", posts the key (or silence: "") to the Gather's action.
func (c *confCall) screen(i int, digits string, kv ...string) (first, result *twimltest.Node) {
	c.t.Helper()
	u := c.placed(i).Form.Get("Url")
	first = joinTwiML(c.t, c.s.twilio(strings.TrimPrefix(u, publicURL), c.placedForm(i, "in-progress", kv...)))
	g := first.Find("Gather")
	if g == nil || digits == "-" {
		c.s.wait()
		return first, nil
	}
	f := c.placedForm(i, "in-progress")
	if digits != "" {
		f.Set("Digits", digits)
	}
	result = joinTwiML(c.t, c.s.twilio(strings.TrimPrefix(g.Attr("action"), publicURL), f))
	c.s.wait()
	return first, result
}

// joinTwiML parses a screen's answer, which may join a conference (Twilio's XSD lacks
// <Conference participantLabel>).
func joinTwiML(t *testing.T, rec *httptest.ResponseRecorder) *twimltest.Node {
	t.Helper()
	if strings.Contains(rec.Body.String(), "participantLabel") {
		return twiml(t, rec, twimltest.GapConferenceParticipantLabel)
	}
	return twiml(t, rec)
}

func itoa(n int) string { return string(rune('0' + n%10)) }

// wantJoin checks a screen's answer joins the caller's conference as target i's callee.
func (c *confCall) wantJoin(doc *twimltest.Node, i int) {
	c.t.Helper()
	conf := doc.Find("Dial")
	if conf != nil {
		conf = conf.Find("Conference")
	}
	if conf == nil || conf.Text != c.caller || conf.Attr("participantLabel") != "callee-"+string(rune('1'+i)) ||
		conf.Attr("startConferenceOnEnter") != "true" || conf.Attr("endConferenceOnExit") != "true" ||
		conf.Attr("statusCallback") != publicURL+"/twilio/conference-status" {
		c.t.Fatalf("accepted: %s, want <Dial><Conference> %s as callee-%d", doc, c.caller, i+1)
	}
}

// TestConferenceScreen_acceptedThenHold: the screened targets are called (CreateCall, the
// screen as Url), not added as participants; a leg that answers is not the callee (nor ended
// as a late answer) until its person presses 1, which joins it to the caller's conference and
// ends the other leg; a second acceptance is hung up; hold and resume work as ever.
func TestConferenceScreen_acceptedThenHold(t *testing.T) {
	c := newConfCall(t, screenedTargets)
	c.voice()
	c.joined()
	if n := len(c.fake.RequestsFor("CreateParticipant")); n != 0 {
		t.Fatalf("%d CreateParticipant for screened targets, want none (a participant joins before any TwiML)", n)
	}
	for i, to := range []string{"+15550001111", "+15550002222"} {
		r := c.placed(i)
		want := map[string]string{"To": to, "From": caller, "CallToken": "calltoken-abc", "Timeout": "15", "Method": "POST",
			"Url":            publicURL + "/twilio/screen?call=" + c.caller + "&target=" + itoa(i),
			"StatusCallback": publicURL + "/twilio/call-status?call=" + c.caller + "&target=" + itoa(i)}
		for k, v := range want {
			if got := r.Form.Get(k); got != v {
				t.Errorf("CreateCall %d: %s = %q, want %q", i, k, got, v)
			}
		}
		if r.Form.Has("MachineDetection") {
			t.Errorf("CreateCall %d: MachineDetection without machine_detection", i)
		}
	}

	// Both answer; their screens run. Nobody is the callee yet: nothing is ended.
	c.placedProgress(0, "ringing")
	c.placedProgress(1, "ringing")
	c.placedProgress(0, "in-progress")
	c.placedProgress(1, "in-progress")
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("%d UpdateCall after the legs answered, want none (their screens run)", n)
	}
	if code, _ := c.hold("hold", "callee"); code != http.StatusConflict {
		t.Errorf("hold callee while screening: %d, want 409", code)
	}
	first, _ := c.screen(1, "-")
	if g := first.Find("Gather"); g == nil || !strings.Contains(g.Attr("action"), "call="+c.caller) {
		t.Fatalf("screen: %s, want the question, its action naming the call", first)
	}
	_, result := c.screen(0, "1")
	c.wantJoin(result, 0)
	a, b := c.placedSid(0), c.placedSid(1)
	if sc, err := c.s.db.ScreenCall(context.Background(), c.caller); err != nil || sc.Status != "in-progress" || sc.Callee != a {
		t.Errorf("after the acceptance: %+v, %v; want in-progress, callee %s", sc, err, a)
	}
	ended := false
	for _, u := range c.fake.RequestsFor("UpdateCall") {
		if u.PathParams["Sid"] == b && u.Form.Get("Status") == "completed" {
			ended = true
		}
		if u.PathParams["Sid"] == a || u.PathParams["Sid"] == c.caller {
			t.Errorf("UpdateCall of %s %v, want only the other leg ended", u.PathParams["Sid"], u.Form)
		}
	}
	if !ended {
		t.Errorf("the other leg (in its screen) was not ended: %v", c.fake.RequestsFor("UpdateCall"))
	}
	// Its key comes too late: hung up, never joined.
	f := c.placedForm(1, "in-progress", "Digits", "1")
	if doc := twiml(t, c.s.twilio("/twilio/screen-result?call="+c.caller+"&target=1", f)); verbs(doc) != "Hangup" {
		t.Errorf("second acceptance: %s, want <Hangup/>", doc)
	}
	c.placedProgress(1, "completed")

	// The accepted leg joins; hold and resume as for any callee.
	c.fake.AddParticipant(c.conf, a, "callee-1")
	c.event("participant-join", a, "callee-1", nil)
	for _, step := range []struct{ action, party string }{{"hold", "caller"}, {"hold", "callee"}, {"unhold", "caller"}, {"unhold", "callee"}} {
		if code, body := c.hold(step.action, step.party); code != http.StatusOK {
			t.Fatalf("%s %s: %d %v", step.action, step.party, code, body)
		}
	}
	var holds []twiliofake.Request
	for _, r := range c.fake.RequestsFor("UpdateParticipant") {
		if r.Form.Has("Hold") {
			holds = append(holds, r)
		}
	}
	if len(holds) != 4 || holds[1].PathParams["CallSid"] != a || holds[1].Form.Get("Hold") != "true" || holds[3].Form.Get("Hold") != "false" {
		t.Errorf("UpdateParticipant = %v, want hold/resume of the caller and of %s", holds, a)
	}
	got := screenEvents(t, c.s, c.caller)
	for _, want := range []string{"offered:" + a, "accepted:" + a, "offered:" + b} {
		if !slices.Contains(got, want) {
			t.Errorf("screen entries %v, want %s", got, want)
		}
	}
	if sc, err := c.s.db.ScreenCall(context.Background(), c.caller); err != nil || sc.Callee != a {
		t.Errorf("after the late acceptance: %+v, %v; want callee %s", sc, err, a)
	}
}

// TestConferenceScreen_everyTargetDeclines: one target declines, the other is a machine
// (machine detection, synchronous on CreateCall: AnsweredBy comes with the screen's request);
// neither joins, and once both legs ended the caller goes to voicemail, not before.
func TestConferenceScreen_everyTargetDeclines(t *testing.T) {
	c := newConfCall(t, strings.Replace(screenedTargets, `"timeout_seconds":15`, `"timeout_seconds":15,"machine_detection":true`, 1))
	c.voice()
	c.joined()
	for i := range 2 {
		if got := c.placed(i).Form.Get("MachineDetection"); got != "Enable" {
			t.Errorf("CreateCall %d: MachineDetection %q, want Enable", i, got)
		}
	}
	c.placedProgress(0, "in-progress")
	c.placedProgress(1, "in-progress")
	if _, result := c.screen(0, "2", "AnsweredBy", "human"); verbs(result) != "Hangup" {
		t.Fatalf("key 2: %s, want <Hangup/>", result)
	}
	c.placedProgress(0, "completed")
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("%d UpdateCall while the other leg screens, want none", n)
	}
	if first, _ := c.screen(1, "1", "AnsweredBy", "machine_start"); verbs(first) != "Hangup" {
		t.Fatalf("a machine: %s, want <Hangup/>", first)
	}
	c.placedProgress(1, "completed")
	updates := c.fake.RequestsFor("UpdateCall")
	if len(updates) != 1 || updates[0].PathParams["Sid"] != c.caller || updates[0].Form.Get("Url") != publicURL+"/twilio/voicemail" {
		t.Fatalf("UpdateCall = %v, want the caller redirected to voicemail", updates)
	}
	if sc, err := c.s.db.ScreenCall(context.Background(), c.caller); err != nil || sc.Status != "voicemail" || sc.Callee != "" {
		t.Errorf("%+v, %v; want voicemail and no callee", sc, err)
	}
	got := screenEvents(t, c.s, c.caller)
	for _, want := range []string{"declined:" + c.placedSid(0), "machine:" + c.placedSid(1)} {
		if !slices.Contains(got, want) {
			t.Errorf("screen entries %v, want %s", got, want)
		}
	}
	if doc := twiml(t, c.s.twilio("/twilio/voicemail", inbound(c.caller))); doc.Find("Record") == nil {
		t.Errorf("voicemail = %v, want a <Record>", doc.ChildNames())
	}
}

// TestConferenceScreen_announceAndOff: an announced target joins after its whisper, without a
// key; a target with screen off is still added as a participant.
func TestConferenceScreen_announceAndOff(t *testing.T) {
	c := newConfCall(t, strings.Replace(screenedTargets, `"to":"+15550001111"}`, `"to":"+15550001111","screen":"announce"}`, 1))
	c.s.putNumber(masked, strings.Replace(strings.Replace(screenedTargets, `"to":"+15550001111"}`, `"to":"+15550001111","screen":"announce"}`, 1),
		`"to":"+15550002222"}`, `"to":"+15550002222","screen":"off"}`, 1))
	c.voice()
	c.joined()
	if n, p := len(c.fake.RequestsFor("CreateCall")), c.fake.RequestsFor("CreateParticipant"); n != 1 || len(p) != 1 || p[0].Form.Get("Label") != "callee-2" {
		t.Fatalf("%d CreateCall, participants %v; want the announced target called, the other added as callee-2", n, p)
	}
	c.placedProgress(0, "in-progress")
	first, _ := c.screen(0, "-")
	if names := first.ChildNames(); len(names) != 2 || names[0] != "Say" || !strings.HasPrefix(first.Find("Say").Text, "Call for") {
		t.Fatalf("announce: %s, want the whisper then the conference", first)
	}
	c.wantJoin(first, 0)
}

// TestConferenceScreen_refusedCall: Twilio refusing a screened target's call is that target's
// failure only; the caller goes to voicemail once the other target ends without accepting (its
// screen silent: no key in either round).
func TestConferenceScreen_refusedCall(t *testing.T) {
	c := newConfCall(t, screenedTargets)
	c.fake.Fail("CreateCall", twiliofake.Failure{Status: 400, Code: 21217, Message: "Phone number does not appear to be valid"})
	c.voice()
	c.joined()
	if n := len(c.fake.RequestsFor("CreateCall")); n != 2 {
		t.Fatalf("CreateCall requests = %d, want 2 (the refused one is not tried again)", n)
	}
	c.placedProgress(1, "in-progress")
	if _, result := c.screen(1, ""); verbs(result) != "Hangup" {
		t.Fatalf("silence: %s, want <Hangup/>", result)
	}
	if n := len(c.fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("%d UpdateCall before the leg ended, want none", n)
	}
	c.placedProgress(1, "completed")
	if updates := c.fake.RequestsFor("UpdateCall"); len(updates) != 1 || updates[0].Form.Get("Url") != publicURL+"/twilio/voicemail" {
		t.Fatalf("UpdateCall = %+v, want the caller redirected to voicemail", updates)
	}
	if got := screenEvents(t, c.s, c.caller); !slices.Contains(got, "unanswered:"+c.placedSid(1)) {
		t.Errorf("screen entries %v, want unanswered for the silent leg", got)
	}
}
