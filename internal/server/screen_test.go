package server_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// screenForm is what Twilio posts to a leg's screen: the leg is a child of the caller's call.
func screenForm(caller, leg, to string, kv ...string) url.Values {
	f := url.Values{"CallSid": {leg}, "ParentCallSid": {caller}, "CallStatus": {"in-progress"},
		"Direction": {"outbound-dial"}, "From": {caller}, "To": {to}}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Set(kv[i], kv[i+1])
	}
	return f
}

// acceptScreen has leg (target i of the call) hear its screen and press 1.
func acceptScreen(t testing.TB, s *testServer, caller, leg string, i int) {
	t.Helper()
	q := "?target=" + string(rune('0'+i))
	if doc := twiml(t, s.twilio("/twilio/screen"+q, screenForm(caller, leg, "+15550001111"))); doc.Find("Gather") == nil {
		t.Fatalf("screen: %s, want the question", doc)
	}
	if doc := twiml(t, s.twilio("/twilio/screen-result"+q, screenForm(caller, leg, "+15550001111", "Digits", "1"))); len(doc.Children) != 0 {
		t.Fatalf("screen-result 1: %s, want an empty document (bridge)", doc)
	}
}

func verbs(n *twimltest.Node) string { return strings.Join(n.ChildNames(), " ") }

// screenEvents lists the call's "screen" entries as "outcome:leg".
func screenEvents(t *testing.T, s *testServer, sid string) []string {
	t.Helper()
	var out []string
	for _, e := range getCall(t, s, sid)["events"].([]any) {
		ev := e.(map[string]any)
		if ev["type"] == "screen" {
			d, _ := ev["detail"].(map[string]any)
			out = append(out, ev["outcome"].(string)+":"+d["leg"].(string))
		}
	}
	return out
}

const (
	screenCaller = "CA" + "5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c5c"
	legA         = "CA" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	legB         = "CA" + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	legC         = "CA" + "cccccccccccccccccccccccccccccccd"
)

func dialOutcome(t *testing.T, s *testServer, attempt, status, dialSid string) *twimltest.Node {
	t.Helper()
	f := inbound(screenCaller)
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", status)
	if dialSid != "" {
		f.Set("DialCallSid", dialSid)
	}
	return twiml(t, s.twilio("/twilio/dial-outcome?attempt="+attempt, f))
}

// startScreened places a call to a number with routing; the voice answer must dial.
func startScreened(t *testing.T, routing string) *testServer {
	t.Helper()
	s := newTestServer(t)
	s.putNumber(masked, routing)
	var gaps []twimltest.Gap
	if strings.Contains(routing, `"machine_detection":true`) {
		gaps = append(gaps, twimltest.GapNumberMachineDetection)
	}
	doc := twiml(t, s.twilio("/twilio/voice", inbound(screenCaller)), gaps...)
	if doc.Find("Dial") == nil {
		t.Fatalf("voice: %s, want a Dial", doc)
	}
	return s
}

const onePhone = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`

// TestScreen_carrierVoicemail is issue 15's field failure: the owner's carrier voicemail
// answers, never presses a key, and Twilio reports the Dial completed. The caller must get
// callrelay's voicemail, not a hang-up.
func TestScreen_carrierVoicemail(t *testing.T) {
	s := startScreened(t, onePhone)
	doc := twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
	if got := verbs(doc); got != "Gather Gather Redirect" {
		t.Fatalf("screen = %s, want Gather Gather Redirect", got)
	}
	// Both rounds pass in silence: the Redirect reports it, without Digits.
	if got := verbs(twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111")))); got != "Hangup" {
		t.Errorf("silence = %s, want Hangup", got)
	}
	if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Say Record Say Hangup" {
		t.Errorf("dial-outcome completed without an acceptance = %s, want voicemail (Say Record Say Hangup)", got)
	}
	if got, want := screenEvents(t, s, screenCaller), []string{"offered:" + legA, "unanswered:" + legA}; !slices.Equal(got, want) {
		t.Errorf("screen events = %v, want %v", got, want)
	}
	if st := getCall(t, s, screenCaller)["status"]; st != "voicemail" {
		t.Errorf("call status = %v, want voicemail", st)
	}
}

// TestScreen_answeredLegWithoutScreen is the same failure seen only through Twilio's
// callbacks: a leg answered (its status callback) and the Dial completed, but the leg never
// accepted its screen (it never even fetched it). Before screening, this hung up the caller.
func TestScreen_answeredLegWithoutScreen(t *testing.T) {
	s := startScreened(t, onePhone)
	f := url.Values{"CallSid": {legA}, "ParentCallSid": {screenCaller}, "CallStatus": {"in-progress"}, "SequenceNumber": {"2"},
		"To": {"+15550001111"}, "From": {caller}, "Direction": {"outbound-dial"}}
	if rec := s.twilio("/twilio/call-status?target=0", f); rec.Code != http.StatusNoContent {
		t.Fatalf("call-status: %d", rec.Code)
	}
	if st := getCall(t, s, screenCaller)["status"]; st != "ringing" {
		t.Errorf("call status after a screened leg answered = %v, want ringing until it accepts", st)
	}
	if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Say Record Say Hangup" {
		t.Errorf("dial-outcome = %s, want voicemail", got)
	}
}

func TestScreen_accepted(t *testing.T) {
	s := startScreened(t, onePhone)
	acceptScreen(t, s, screenCaller, legA, 0)
	c := getCall(t, s, screenCaller)
	if c["status"] != "in-progress" {
		t.Errorf("call status after accepting = %v, want in-progress", c["status"])
	}
	// A repeated acceptance answers the same; a late decline does not undo it.
	if doc := twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "1"))); len(doc.Children) != 0 {
		t.Errorf("repeated 1 = %s, want empty", doc)
	}
	if doc := twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "2"))); len(doc.Children) != 0 {
		t.Errorf("2 after 1 = %s, want empty (the acceptance stands)", doc)
	}
	if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Hangup" {
		t.Errorf("dial-outcome completed after an acceptance = %s, want Hangup", got)
	}
	if got, want := screenEvents(t, s, screenCaller), []string{"offered:" + legA, "accepted:" + legA}; !slices.Equal(got, want) {
		t.Errorf("screen events = %v, want %v", got, want)
	}
}

func TestScreen_declined(t *testing.T) {
	for _, digits := range []string{"2", "*", "#", "123456789012"} {
		t.Run(digits, func(t *testing.T) {
			s := startScreened(t, onePhone)
			twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
			if got := verbs(twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", digits)))); got != "Hangup" {
				t.Errorf("Digits=%s: %s, want Hangup", digits, got)
			}
			// A 1 after the decline does not bridge.
			if got := verbs(twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "1")))); got != "Hangup" {
				t.Errorf("1 after a decline: %s, want Hangup", got)
			}
			if got, want := screenEvents(t, s, screenCaller), []string{"offered:" + legA, "declined:" + legA}; !slices.Equal(got, want) {
				t.Errorf("screen events = %v, want %v", got, want)
			}
		})
	}
}

// TestScreen_simultaneous: one leg declines, one is a carrier voicemail, one accepts; Twilio
// may name any of them in the Dial action: the acceptance decides.
func TestScreen_simultaneous(t *testing.T) {
	routing := `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"},
		{"type":"phone","to":"+15550002222"},{"type":"phone","to":"+15550003333"}]}`
	for _, dialSid := range []string{legC, legA, ""} {
		t.Run("DialCallSid="+dialSid, func(t *testing.T) {
			s := startScreened(t, routing)
			twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
			twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "9")))
			twiml(t, s.twilio("/twilio/screen?target=1", screenForm(screenCaller, legB, "+15550002222")))
			twiml(t, s.twilio("/twilio/screen-result?target=1", screenForm(screenCaller, legB, "+15550002222")))
			acceptScreen(t, s, screenCaller, legC, 2)
			if got := verbs(dialOutcome(t, s, "0", "completed", dialSid)); got != "Hangup" {
				t.Errorf("dial-outcome = %s, want Hangup: someone accepted", got)
			}
		})
	}
}

func TestScreen_sequentialNextTarget(t *testing.T) {
	s := startScreened(t, `{"owner_email":"dana@example.com","ring":"sequential","targets":[
		{"type":"phone","to":"+15550001111"},{"type":"phone","to":"+15550002222"}]}`)
	twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
	twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111")))
	doc := dialOutcome(t, s, "0", "completed", legA)
	dial := doc.Find("Dial")
	if dial == nil || len(dial.Children) != 1 || dial.Children[0].Text != "+15550002222" {
		t.Fatalf("dial-outcome = %s, want the second target", doc)
	}
	acceptScreen(t, s, screenCaller, legB, 1)
	if got := verbs(dialOutcome(t, s, "1", "completed", legB)); got != "Hangup" {
		t.Errorf("second dial-outcome = %s, want Hangup", got)
	}
}

func TestScreen_machine(t *testing.T) {
	for _, by := range []string{"machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax"} {
		t.Run(by, func(t *testing.T) {
			s := startScreened(t, `{"owner_email":"dana@example.com","machine_detection":true,"targets":[{"type":"phone","to":"+15550001111"}]}`)
			doc := twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111", "AnsweredBy", by)))
			if got := verbs(doc); got != "Hangup" {
				t.Errorf("AnsweredBy=%s: %s, want Hangup", by, got)
			}
			var found bool
			for _, e := range getCall(t, s, screenCaller)["events"].([]any) {
				ev := e.(map[string]any)
				if ev["type"] == "screen" && ev["outcome"] == "machine" && ev["detail"].(map[string]any)["answered_by"] == by {
					found = true
				}
			}
			if !found {
				t.Errorf("no screen entry machine with answered_by %s", by)
			}
			if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Say Record Say Hangup" {
				t.Errorf("dial-outcome = %s, want voicemail", got)
			}
		})
	}
	// A person, with machine detection on and no key asked: bridged at once.
	s := startScreened(t, `{"owner_email":"dana@example.com","machine_detection":true,"targets":[{"type":"phone","to":"+15550001111","screen":"off"}]}`)
	if doc := twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111", "AnsweredBy", "human"))); len(doc.Children) != 0 {
		t.Errorf("human without a screen: %s, want empty (bridge)", doc)
	}
	if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Hangup" {
		t.Errorf("dial-outcome = %s, want Hangup", got)
	}
}

func TestScreen_announce(t *testing.T) {
	s := startScreened(t, `{"owner_email":"dana@example.com","label":"Sales line","targets":[{"type":"phone","to":"+15550001111","screen":"announce"}]}`)
	doc := twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
	if got := verbs(doc); got != "Say" || !strings.Contains(doc.Child(0).Text, "Sales line") {
		t.Fatalf("announce = %s, want one Say naming the line", doc)
	}
	if got, want := screenEvents(t, s, screenCaller), []string{"accepted:" + legA}; !slices.Equal(got, want) {
		t.Errorf("screen events = %v, want %v", got, want)
	}
	if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Hangup" {
		t.Errorf("dial-outcome = %s, want Hangup", got)
	}
}

// TestScreen_badInput: whatever is wrong, the leg gets valid TwiML that hangs it up (never a
// 500), and nothing is recorded.
func TestScreen_badInput(t *testing.T) {
	s := startScreened(t, onePhone)
	tests := []struct {
		name, path string
		form       url.Values
	}{
		{"no ParentCallSid", "/twilio/screen?target=0", url.Values{"CallSid": {legA}}},
		{"no CallSid", "/twilio/screen?target=0", url.Values{"ParentCallSid": {screenCaller}}},
		{"leg is the caller", "/twilio/screen?target=0", screenForm(screenCaller, screenCaller, "+15550001111")},
		{"no target", "/twilio/screen", screenForm(screenCaller, legA, "+15550001111")},
		{"target not a number", "/twilio/screen?target=x", screenForm(screenCaller, legA, "+15550001111")},
		{"target out of range", "/twilio/screen?target=3", screenForm(screenCaller, legA, "+15550001111")},
		{"target negative", "/twilio/screen?target=-1", screenForm(screenCaller, legA, "+15550001111")},
		{"unknown call", "/twilio/screen?target=0", screenForm("CA"+strings.Repeat("9", 32), legA, "+15550001111")},
		{"result: unknown call", "/twilio/screen-result?target=0", screenForm("CA"+strings.Repeat("9", 32), legA, "+15550001111", "Digits", "1")},
		{"result: no ParentCallSid", "/twilio/screen-result?target=0", url.Values{"CallSid": {legA}, "Digits": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := verbs(twiml(t, s.twilio(tt.path, tt.form))); got != "Hangup" {
				t.Errorf("%s = %s, want Hangup", tt.path, got)
			}
		})
	}
	if ev := screenEvents(t, s, screenCaller); len(ev) != 0 {
		t.Errorf("screen events = %v, want none", ev)
	}
	// Unsigned: refused like every Twilio route.
	if rec := s.twilioSigned("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "1"), ""); rec.Code != http.StatusForbidden {
		t.Errorf("unsigned screen-result: %d, want 403", rec.Code)
	}
}

// amdForm is Twilio's amdStatusCallback for a leg.
func amdForm(leg, answeredBy string) url.Values {
	return url.Values{"CallSid": {leg}, "AnsweredBy": {answeredBy}, "MachineDetectionDuration": {"2400"},
		"AccountSid": {"AC00000000000000000000000000000000"}}
}

// TestScreen_amdCallback: the detection result comes to the amdStatusCallback, not with the
// screen's request: the screen waits for it (a second at a time, three at most).
func TestScreen_amdCallback(t *testing.T) {
	const amdRouting = `{"owner_email":"dana@example.com","machine_detection":true,"targets":[{"type":"phone","to":"+15550001111"}]}`
	amdPath := "/twilio/screen-amd?call=" + screenCaller + "&target=0"

	t.Run("machine", func(t *testing.T) {
		s := startScreened(t, amdRouting)
		doc := twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))
		if got := verbs(doc); got != "Pause Redirect" || doc.Child(1).Text != publicURL+"/twilio/screen?target=0&wait=1" {
			t.Fatalf("screen before the detection result = %s, want a 1 s Pause and a Redirect to wait=1", doc)
		}
		if rec := s.twilio(amdPath, amdForm(legA, "machine_start")); rec.Code != http.StatusNoContent {
			t.Fatalf("screen-amd: %d %s", rec.Code, rec.Body)
		}
		if got := verbs(twiml(t, s.twilio("/twilio/screen?target=0&wait=1", screenForm(screenCaller, legA, "+15550001111")))); got != "Hangup" {
			t.Errorf("screen after a machine = %s, want Hangup", got)
		}
		if got, want := screenEvents(t, s, screenCaller), []string{"machine:" + legA}; !slices.Equal(got, want) {
			t.Errorf("screen events = %v, want %v", got, want)
		}
		if got := verbs(dialOutcome(t, s, "0", "completed", legA)); got != "Say Record Say Hangup" {
			t.Errorf("dial-outcome = %s, want voicemail", got)
		}
	})
	t.Run("machine during the question", func(t *testing.T) {
		s := startScreened(t, amdRouting)
		twiml(t, s.twilio("/twilio/screen?target=0&wait=3", screenForm(screenCaller, legA, "+15550001111"))) // waited enough: the question
		if rec := s.twilio(amdPath, amdForm(legA, "fax")); rec.Code != http.StatusNoContent {
			t.Fatalf("screen-amd: %d", rec.Code)
		}
		if got := verbs(twiml(t, s.twilio("/twilio/screen-result?target=0", screenForm(screenCaller, legA, "+15550001111", "Digits", "1")))); got != "Hangup" {
			t.Errorf("a key after the machine result = %s, want Hangup", got)
		}
	})
	t.Run("human", func(t *testing.T) {
		s := startScreened(t, amdRouting)
		if rec := s.twilio(amdPath, amdForm(legA, "human")); rec.Code != http.StatusNoContent {
			t.Fatalf("screen-amd: %d", rec.Code)
		}
		if got := verbs(twiml(t, s.twilio("/twilio/screen?target=0", screenForm(screenCaller, legA, "+15550001111")))); got != "Gather Gather Redirect" {
			t.Errorf("screen after human = %s, want the question", got)
		}
	})
	t.Run("no result in time", func(t *testing.T) {
		s := startScreened(t, amdRouting)
		for wait := range 3 {
			path := "/twilio/screen?target=0"
			if wait > 0 {
				path += "&wait=" + string(rune('0'+wait))
			}
			if got := verbs(twiml(t, s.twilio(path, screenForm(screenCaller, legA, "+15550001111")))); got != "Pause Redirect" {
				t.Fatalf("%s = %s, want to wait", path, got)
			}
		}
		if got := verbs(twiml(t, s.twilio("/twilio/screen?target=0&wait=3", screenForm(screenCaller, legA, "+15550001111")))); got != "Gather Gather Redirect" {
			t.Errorf("after 3 s = %s, want the question", got)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		s := startScreened(t, amdRouting)
		for name, tc := range map[string]struct {
			path string
			form url.Values
			code int
		}{
			"no call":        {"/twilio/screen-amd?target=0", amdForm(legA, "human"), http.StatusBadRequest},
			"no target":      {"/twilio/screen-amd?call=" + screenCaller, amdForm(legA, "human"), http.StatusBadRequest},
			"no AnsweredBy":  {amdPath, amdForm(legA, ""), http.StatusBadRequest},
			"no CallSid":     {amdPath, amdForm("", "human"), http.StatusBadRequest},
			"unknown call":   {"/twilio/screen-amd?call=CA" + strings.Repeat("9", 32) + "&target=0", amdForm(legA, "machine_start"), http.StatusNoContent},
			"target too far": {"/twilio/screen-amd?call=" + screenCaller + "&target=5", amdForm(legA, "machine_start"), http.StatusNoContent},
		} {
			if rec := s.twilio(tc.path, tc.form); rec.Code != tc.code {
				t.Errorf("%s: %d, want %d", name, rec.Code, tc.code)
			}
		}
		if ev := screenEvents(t, s, screenCaller); len(ev) != 0 {
			t.Errorf("screen events = %v, want none", ev)
		}
	})
}

// TestVoice_amdStatusCallback: with machine detection, a phone's noun names the call in its
// amdStatusCallback.
func TestVoice_amdStatusCallback(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, `{"owner_email":"dana@example.com","machine_detection":true,"targets":[{"type":"phone","to":"+15550001111"},{"type":"client","identity":"dana"}]}`)
	dial := twiml(t, s.twilio("/twilio/voice", inbound(screenCaller)), twimltest.GapNumberMachineDetection).Find("Dial")
	n := dial.Child(0)
	if n.Attr("machineDetection") != "Enable" || n.Attr("amdStatusCallback") != publicURL+"/twilio/screen-amd?call="+screenCaller+"&target=0" {
		t.Errorf("<Number> = %s, want machineDetection Enable and the amdStatusCallback of the call", n)
	}
	if c := dial.Child(1); c.HasAttr("url") || c.HasAttr("amdStatusCallback") {
		t.Errorf("<Client> = %s, want no screen (off) and no detection", c)
	}
}
