package twiliosim_test

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One test per Twilio habit docs/simulator.md says the simulator has on purpose. Each plays a
// call through the simulator against fixed TwiML and checks what Twilio sends (the webhooks'
// parameters) or answers (the REST API).

// seqs returns the SequenceNumber → CallStatus of the callbacks of one call.
func seqs(t *testing.T, hooks []hook, callSid string) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, h := range hooks {
		if h.Form.Get("CallSid") != callSid {
			continue
		}
		n, err := strconv.Atoi(h.Form.Get("SequenceNumber"))
		if err != nil {
			t.Fatalf("callback without a SequenceNumber: %v", h.Form)
		}
		if prev, ok := out[n]; ok {
			t.Errorf("call %s: SequenceNumber %d twice (%s, %s)", callSid, n, prev, h.Form.Get("CallStatus"))
		}
		out[n] = h.Form.Get("CallStatus")
	}
	return out
}

const twoTargets = `targets:
  "+15550001111": {answer_after: 1, hangup_after: 2}
`

var dialTwo = map[string]string{
	"/voice": `<Response><Dial action="{base}/dial">` +
		`<Number statusCallback="{base}/leg" statusCallbackEvent="initiated ringing answered completed">+15550001111</Number>` +
		`<Number statusCallback="{base}/leg" statusCallbackEvent="initiated ringing answered completed">+15550002222</Number>` +
		`</Dial></Response>`,
	"/dial": `<Response><Hangup/></Response>`,
}

// legSid is the CallSid of the dialed leg to this number.
func legSid(t *testing.T, r *relay, to string) string {
	t.Helper()
	for _, h := range r.got("/leg") {
		if h.Form.Get("To") == to {
			return h.Form.Get("CallSid")
		}
	}
	t.Fatalf("no status callback for the leg to %s", to)
	return ""
}

// TestAnsweredCallbackCarriesInProgress: the "answered" event of a call's statusCallback says
// CallStatus=in-progress, not "answered" (Twilio's status callback parameters).
func TestAnsweredCallbackCarriesInProgress(t *testing.T) {
	s := newSim(t, 10, dialTwo)
	s.run(twoTargets)
	got := seqs(t, s.relay.got("/leg"), legSid(t, s.relay, "+15550001111"))
	want := map[int]string{0: "initiated", 1: "ringing", 2: "in-progress", 3: "completed"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the answered leg's callbacks by SequenceNumber: %v, want %v", got, want)
	}
}

// TestSequenceNumberCountsPerCall: each call numbers its own status callbacks from 0: the
// two legs of one <Dial>, and the caller's own status callback.
func TestSequenceNumberCountsPerCall(t *testing.T) {
	s := newSim(t, 10, dialTwo)
	s.run(twoTargets)
	answered := seqs(t, s.relay.got("/leg"), legSid(t, s.relay, "+15550001111"))
	canceled := seqs(t, s.relay.got("/leg"), legSid(t, s.relay, "+15550002222"))
	if want := map[int]string{0: "initiated", 1: "ringing", 2: "in-progress", 3: "completed"}; fmt.Sprint(answered) != fmt.Sprint(want) {
		t.Errorf("answered leg: %v, want %v", answered, want)
	}
	// The other leg rang until the first answered: Twilio cancels it.
	if want := map[int]string{0: "initiated", 1: "ringing", 2: "canceled"}; fmt.Sprint(canceled) != fmt.Sprint(want) {
		t.Errorf("the leg that lost: %v, want %v", canceled, want)
	}
	own := s.relay.got("/twilio/call-status")
	if len(own) != 1 || own[0].Form.Get("SequenceNumber") != "0" || own[0].Form.Get("CallStatus") != "completed" {
		t.Errorf("the caller's status callbacks: %v, want one, SequenceNumber 0, completed", own)
	}
}

// conferenceTwiML puts the caller in conference "room", then, when its <Dial> ends, in
// conference "room2"; each conference's events go to its own path.
var conferenceTwiML = map[string]string{
	"/voice": `<Response><Dial action="{base}/dial"><Conference statusCallback="{base}/conf" statusCallbackEvent="start end join leave">room</Conference></Dial></Response>`,
	"/dial":  `<Response><Dial><Conference statusCallback="{base}/conf2" statusCallbackEvent="start end join leave">room2</Conference></Dial></Response>`,
}

// conferenceCall plays a call into conference "room" that a callee joins (CreateParticipant,
// as callrelay adds one, with EndConferenceOnExit); end ends the conference once the callee
// has joined, or nil for the callee to end it by hanging up after 2 s. The caller then moves
// to "room2" and hangs up at 15 s.
func conferenceCall(t *testing.T, end func(s *sim, conferenceSid string)) *sim {
	s := newSim(t, 10, conferenceTwiML)
	callee := "{answer_after: 1, hangup_after: 2}"
	if end != nil {
		callee = "{answer_after: 1}"
	}
	wait := s.play("caller: {hangup_at: 15}\ntargets: {\"+15550001111\": " + callee + "}\n")
	joined := s.relay.await(t, "/conf", "StatusCallbackEvent", "participant-join")
	conf := joined.Form.Get("ConferenceSid")
	status, body := s.rest(http.MethodPost, "/Conferences/"+conf+"/Participants.json", form(
		"From", number, "To", "+15550001111", "Label", "callee", "EndConferenceOnExit", "true",
		"StatusCallback", s.relay.srv.URL+"/callee", "StatusCallbackEvent", "initiated", "StatusCallbackEvent", "ringing",
		"StatusCallbackEvent", "answered", "StatusCallbackEvent", "completed"))
	if status != http.StatusCreated {
		t.Fatalf("CreateParticipant: %d %v", status, body)
	}
	if end != nil {
		s.relay.await(t, "/conf", "StatusCallbackEvent", "conference-start")
		end(s, conf)
	}
	wait()
	return s
}

// events returns a conference's events by SequenceNumber.
func events(t *testing.T, hooks []hook) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, h := range hooks {
		n, err := strconv.Atoi(h.Form.Get("SequenceNumber"))
		if err != nil {
			t.Fatalf("conference event without a SequenceNumber: %v", h.Form)
		}
		e := h.Form.Get("StatusCallbackEvent")
		if l := h.Form.Get("ParticipantLabel"); l != "" {
			e += " " + l
		}
		out[n] = e
	}
	return out
}

// TestSequenceNumberCountsPerConference: a conference numbers its events from 0, apart from
// its participants' call progress events and from another conference.
func TestSequenceNumberCountsPerConference(t *testing.T) {
	s := conferenceCall(t, nil)
	room := events(t, s.relay.got("/conf"))
	want := map[int]string{0: "participant-join", 1: "participant-join callee", 2: "conference-start",
		3: "participant-leave callee", 4: "participant-leave", 5: "conference-end"}
	if fmt.Sprint(room) != fmt.Sprint(want) {
		t.Errorf("room's events: %v, want %v", room, want)
	}
	if room2, want := events(t, s.relay.got("/conf2")), map[int]string{0: "participant-join", 1: "participant-leave", 2: "conference-end"}; fmt.Sprint(room2) != fmt.Sprint(want) {
		t.Errorf("room2's events: %v, want %v", room2, want)
	}
	callee := s.relay.got("/callee")
	if len(callee) == 0 {
		t.Fatal("no status callback for the callee")
	}
	if got, want := seqs(t, callee, callee[0].Form.Get("CallSid")), map[int]string{0: "initiated", 1: "ringing", 2: "in-progress", 3: "completed"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("the callee's own callbacks: %v, want %v", got, want)
	}
}

// TestConferenceEndEndsCallersDialWithAnswered: when the conference ends, the caller's
// <Dial><Conference> ends and its action says DialCallStatus=answered (with the conference),
// whatever ended it; its TwiML runs.
func TestConferenceEndEndsCallersDialWithAnswered(t *testing.T) {
	for _, tc := range []struct {
		name   string
		end    func(s *sim, conferenceSid string)
		reason string
	}{
		{"a participant with EndConferenceOnExit hangs up", nil, "participant-with-end-conference-on-exit-left"},
		{"UpdateConference Status=completed", func(s *sim, conf string) {
			if status, body := s.rest(http.MethodPost, "/Conferences/"+conf+".json", form("Status", "completed")); status != http.StatusOK || body["status"] != "completed" {
				s.t.Errorf("UpdateConference: %d %v", status, body)
			}
		}, "conference-ended-via-api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := conferenceCall(t, tc.end)
			dial := s.relay.got("/dial")
			if len(dial) != 1 || dial[0].Form.Get("DialCallStatus") != "answered" || !strings.HasPrefix(dial[0].Form.Get("ConferenceSid"), "CF") {
				t.Fatalf("Dial action: %v, want one with DialCallStatus=answered and the ConferenceSid", dial)
			}
			end := s.relay.await(t, "/conf", "StatusCallbackEvent", "conference-end")
			if got := end.Form.Get("ReasonConferenceEnded"); got != tc.reason {
				t.Errorf("ReasonConferenceEnded %q, want %q", got, tc.reason)
			}
			if len(s.relay.got("/conf2")) == 0 {
				t.Error("the Dial action's TwiML did not run (no room2)")
			}
		})
	}
}

// TestScreenedOutLegDoesNotEndDial: a leg whose screen hangs up does not end the <Dial>: the
// other legs keep ringing; if none is bridged, the Dial action says completed with that leg's
// DialCallSid (docs/simulator.md: Twilio does not document this case).
func TestScreenedOutLegDoesNotEndDial(t *testing.T) {
	twiml := map[string]string{
		"/voice": `<Response><Dial action="{base}/dial" timeout="10">` +
			`<Number url="{base}/screen-no">+15550001111</Number><Number url="{base}/screen-yes">+15550002222</Number>` +
			`</Dial></Response>`,
		"/dial":       `<Response><Hangup/></Response>`,
		"/screen-no":  `<Response><Hangup/></Response>`,
		"/screen-yes": `<Response><Say>Connecting.</Say></Response>`,
	}
	for _, tc := range []struct {
		name, second string // what the second target does
		bridged      bool
	}{
		{"another leg answers later and is bridged", "{answer_after: 3, hangup_after: 1}", true},
		{"nobody else answers", "{}", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10, twiml)
			res := s.run("targets:\n  \"+15550001111\": {answer_after: 1}\n  \"+15550002222\": " + tc.second + "\n")
			screenedOut := s.relay.await(t, "/screen-no").Form.Get("CallSid")
			want := screenedOut
			if tc.bridged {
				want = s.relay.await(t, "/screen-yes").Form.Get("CallSid")
			}
			dial := s.relay.got("/dial")
			if len(dial) != 1 || dial[0].Form.Get("DialCallStatus") != "completed" || dial[0].Form.Get("DialCallSid") != want {
				t.Fatalf("Dial action %v, want DialCallStatus=completed, DialCallSid=%s", dial, want)
			}
			if got := heard(res, "caller", "talking with +15550002222"); got != tc.bridged {
				t.Errorf("caller talked with the second target: %v, want %v", got, tc.bridged)
			}
		})
	}
}

// TestDialTimeoutEndsRingingLegsNotScreening: the <Dial> timeout ends the legs still ringing
// (no-answer); a leg that answered and is in its screen finishes it, and is bridged.
func TestDialTimeoutEndsRingingLegsNotScreening(t *testing.T) {
	// Half the usual speed: the screened leg answers well before the timeout even on a busy
	// machine.
	s := newSim(t, 5, map[string]string{
		"/voice": `<Response><Dial action="{base}/dial" timeout="4">` +
			`<Number url="{base}/screen" statusCallback="{base}/leg" statusCallbackEvent="answered completed">+15550001111</Number>` +
			`<Number statusCallback="{base}/leg" statusCallbackEvent="answered completed">+15550002222</Number>` +
			`</Dial></Response>`,
		"/dial":   `<Response><Hangup/></Response>`,
		"/screen": `<Response><Pause length="5"/></Response>`,
	})
	res := s.run("targets:\n  \"+15550001111\": {answer_after: 1, hangup_after: 1}\n  \"+15550002222\": {}\n")
	ringing := legSid(t, s.relay, "+15550002222")
	if end := s.relay.await(t, "/leg", "CallSid", ringing, "CallbackSource", "call-progress-events"); end.Form.Get("CallStatus") != "no-answer" {
		t.Errorf("the ringing leg ended %s, want no-answer", end.Form.Get("CallStatus"))
	}
	screened := legSid(t, s.relay, "+15550001111")
	dial := s.relay.got("/dial")
	if len(dial) != 1 || dial[0].Form.Get("DialCallStatus") != "completed" || dial[0].Form.Get("DialCallSid") != screened {
		t.Fatalf("Dial action %v, want completed with the screened leg %s", dial, screened)
	}
	if timeout, bridged := entryAt(t, res, "+15550002222", "no-answer"), entryAt(t, res, "caller", "talking with +15550001111"); bridged < timeout {
		t.Errorf("bridged at %v, before the timeout ended the other leg (%v): the screen should outlast the timeout", bridged, timeout)
	}
}

// TestAnsweringMachineDetectionTimings: detection on a <Number url> answers human after 2 s,
// machine_start (Enable) after 3 s or machine_end_beep (DetectMessageEnd) after 8 s for a
// carrier voicemail, to the noun's amdStatusCallback only: the url's request has no
// AnsweredBy.
func TestAnsweringMachineDetectionTimings(t *testing.T) {
	for _, tc := range []struct {
		name, target, mode, answeredBy string
		after                          time.Duration
	}{
		{"a person", "{answer_after: 1}", "Enable", "human", 2 * time.Second},
		{"carrier voicemail, Enable", "{carrier_voicemail: true, answer_after: 1}", "Enable", "machine_start", 3 * time.Second},
		{"carrier voicemail, DetectMessageEnd", "{carrier_voicemail: true, answer_after: 1}", "DetectMessageEnd", "machine_end_beep", 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10, map[string]string{
				"/voice": `<Response><Dial action="{base}/dial"><Number url="{base}/screen" machineDetection="` + tc.mode +
					`" amdStatusCallback="{base}/amd">+15550001111</Number></Dial></Response>`,
				"/dial":   `<Response><Hangup/></Response>`,
				"/screen": `<Response><Hangup/></Response>`,
			})
			res := s.run("targets:\n  \"+15550001111\": " + tc.target + "\n")
			amd := s.relay.got("/amd")
			ms := strconv.Itoa(int(tc.after / time.Millisecond))
			if len(amd) != 1 || amd[0].Form.Get("AnsweredBy") != tc.answeredBy || amd[0].Form.Get("MachineDetectionDuration") != ms {
				t.Fatalf("amdStatusCallback requests %v, want one with AnsweredBy=%s MachineDetectionDuration=%s", amd, tc.answeredBy, ms)
			}
			screen := s.relay.got("/screen")
			if len(screen) != 1 || screen[0].Form.Has("AnsweredBy") {
				t.Errorf("the screen's request %v, want one without AnsweredBy", screen)
			}
			answered := entryAt(t, res, "+15550001111", "answered")
			if detected := entryAt(t, res, "+15550001111", "AnsweredBy="+tc.answeredBy); detected-answered < tc.after {
				t.Errorf("detected %v after answering, want at least %v", detected-answered, tc.after)
			}
		})
	}
}

// waiting is TwiML that keeps the caller on the line until the test ends the call.
var waiting = map[string]string{
	"/voice":  `<Response><Pause length="600"/></Response>`,
	"/placed": `<Response><Pause length="600"/></Response>`,
}

// hangUp ends a call by REST, as callrelay does.
func (s *sim) hangUp(callSid string) {
	s.t.Helper()
	if status, body := s.rest(http.MethodPost, "/Calls/"+callSid+".json", form("Status", "completed")); status != http.StatusOK {
		s.t.Fatalf("UpdateCall Status=completed: %d %v", status, body)
	}
}

// TestAnsweringMachineDetectionOfPlacedCallComesWithItsUrl: a call placed with
// MachineDetection (CreateCall, without AsyncAmd) fetches its Url only once detection is done,
// with AnsweredBy.
func TestAnsweringMachineDetectionOfPlacedCallComesWithItsUrl(t *testing.T) {
	s := newSim(t, 10, waiting)
	wait := s.play("targets: {\"+15550001111\": {answer_after: 1}}\n")
	caller := s.relay.await(t, "/voice").Form.Get("CallSid")
	status, body := s.rest(http.MethodPost, "/Calls.json", form("From", number, "To", "+15550001111",
		"Url", s.relay.srv.URL+"/placed", "MachineDetection", "Enable"))
	if status != http.StatusCreated {
		t.Fatalf("CreateCall: %d %v", status, body)
	}
	placed := s.relay.await(t, "/placed")
	if placed.Form.Get("AnsweredBy") != "human" || placed.Form.Get("MachineDetectionDuration") != "2000" {
		t.Errorf("the Url's request %v, want AnsweredBy=human MachineDetectionDuration=2000", placed.Form)
	}
	s.hangUp(body["sid"].(string))
	s.hangUp(caller)
	wait()
}

// TestCreateParticipantFasterThanOnePerSecondIs20429: Twilio places about one call per second
// for an account; a CreateParticipant or CreateCall sooner after the last one is refused with
// 429 (20429) and places nothing.
func TestCreateParticipantFasterThanOnePerSecondIs20429(t *testing.T) {
	// A tenth of real speed: the requests below come well within a simulated second.
	s := newSim(t, 0.1, map[string]string{
		"/voice": `<Response><Dial><Conference statusCallback="{base}/conf" statusCallbackEvent="join">room</Conference></Dial></Response>`,
	})
	wait := s.play("")
	caller := s.relay.await(t, "/voice").Form.Get("CallSid")
	conf := s.relay.await(t, "/conf").Form.Get("ConferenceSid")
	participants := "/Conferences/" + conf + "/Participants.json"
	status, first := s.rest(http.MethodPost, participants, form("From", number, "To", "+15550001111", "Label", "a"))
	if status != http.StatusCreated {
		t.Fatalf("first CreateParticipant: %d %v", status, first)
	}
	for _, r := range []struct{ path, to string }{{participants, "+15550002222"}, {"/Calls.json", "+15550003333"}} {
		f := form("From", number, "To", r.to, "Label", "b")
		if r.path == "/Calls.json" {
			f = form("From", number, "To", r.to, "Url", s.relay.srv.URL+"/placed")
		}
		if status, body := s.rest(http.MethodPost, r.path, f); status != http.StatusTooManyRequests || code(body) != 20429 {
			t.Errorf("POST %s right after: %d %v, want 429 20429", r.path, status, body)
		}
	}
	var paced []string
	for _, r := range s.Requests() {
		if r.Status == http.StatusTooManyRequests && r.Code == 20429 {
			paced = append(paced, r.Operation)
		}
	}
	if fmt.Sprint(paced) != "[CreateParticipant CreateCall]" {
		t.Errorf("requests refused 20429 in the request log: %v", paced)
	}
	s.hangUp(first["call_sid"].(string))
	s.hangUp(caller)
	wait()
}

// TestFromMustBeAccountNumberOrCallerWithToken21210: a placed call's From is one of the
// account's numbers, or the caller's own number with its call's CallToken; else 400 21210.
func TestFromMustBeAccountNumberOrCallerWithToken21210(t *testing.T) {
	for _, tc := range []struct {
		name, from, token string // token "caller": the caller's CallToken
		want              int
	}{
		{"the account's number", number, "", http.StatusCreated},
		{"the caller's number with its CallToken", from, "caller", http.StatusCreated},
		{"the caller's number without a token", from, "", http.StatusBadRequest},
		{"the caller's number with another token", from, "TK0123456789abcdef0123456789abcdef", http.StatusBadRequest},
		{"a number of nobody's", "+15550009999", "", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10, waiting)
			wait := s.play("targets: {\"+15550001111\": {busy: true}}\n")
			voice := s.relay.await(t, "/voice")
			f := form("From", tc.from, "To", "+15550001111", "Url", s.relay.srv.URL+"/placed")
			switch tc.token {
			case "caller":
				f.Set("CallToken", voice.Form.Get("CallToken"))
			case "":
			default:
				f.Set("CallToken", tc.token)
			}
			status, body := s.rest(http.MethodPost, "/Calls.json", f)
			if status != tc.want || (tc.want == http.StatusBadRequest && code(body) != 21210) {
				t.Errorf("CreateCall From %s: %d %v, want %d (21210 when refused)", tc.from, status, body, tc.want)
			}
			s.hangUp(voice.Form.Get("CallSid"))
			wait()
		})
	}
}

// TestEndedCallRefusesUpdate21220: a call that has ended cannot be hung up, canceled or
// redirected (400 21220), nor can one that has not been answered be redirected.
func TestEndedCallRefusesUpdate21220(t *testing.T) {
	s := newSim(t, 10, map[string]string{"/voice": `<Response><Say>Hello.</Say></Response>`})
	s.run("")
	caller := s.relay.await(t, "/twilio/call-status").Form.Get("CallSid")
	for _, f := range []string{"Status=completed", "Status=canceled", "Url=https://relay.example.com/next"} {
		k, v, _ := strings.Cut(f, "=")
		if status, body := s.rest(http.MethodPost, "/Calls/"+caller+".json", form(k, v)); status != http.StatusBadRequest || code(body) != 21220 {
			t.Errorf("UpdateCall %s of an ended call: %d %v, want 400 21220", f, status, body)
		}
	}

	// A call still ringing cannot be redirected either.
	s = newSim(t, 10, waiting)
	wait := s.play("targets: {\"+15550001111\": {}}\n")
	caller = s.relay.await(t, "/voice").Form.Get("CallSid")
	status, placed := s.rest(http.MethodPost, "/Calls.json", form("From", number, "To", "+15550001111", "Url", s.relay.srv.URL+"/placed"))
	if status != http.StatusCreated {
		t.Fatalf("CreateCall: %d %v", status, placed)
	}
	sid := placed["sid"].(string)
	if status, body := s.rest(http.MethodPost, "/Calls/"+sid+".json", form("Url", s.relay.srv.URL+"/placed")); status != http.StatusBadRequest || code(body) != 21220 {
		t.Errorf("redirect of a call not answered: %d %v, want 400 21220", status, body)
	}
	s.hangUp(sid)
	s.hangUp(caller)
	wait()
}

// TestCancelInProgressCallDoesNothing: Status=canceled "will not affect calls already in
// progress": 200, and the call goes on until it is completed.
func TestCancelInProgressCallDoesNothing(t *testing.T) {
	s := newSim(t, 10, waiting)
	wait := s.play("")
	caller := s.relay.await(t, "/voice").Form.Get("CallSid")
	s.awaitEntry("caller", "answered")
	if status, body := s.rest(http.MethodPost, "/Calls/"+caller+".json", form("Status", "canceled")); status != http.StatusOK || body["status"] != "in-progress" {
		t.Errorf("cancel of a call in progress: %d %v, want 200 and still in-progress", status, body)
	}
	if status, body := s.rest(http.MethodGet, "/Calls/"+caller+".json", nil); status != http.StatusOK || body["status"] != "in-progress" {
		t.Errorf("FetchCall after the cancel: %d %v, want in-progress", status, body)
	}
	if got := s.relay.got("/twilio/call-status"); len(got) != 0 {
		t.Errorf("the call ended after a cancel: %v", got)
	}
	s.hangUp(caller)
	wait()
	if end := s.relay.got("/twilio/call-status"); len(end) != 1 || end[0].Form.Get("CallStatus") != "completed" {
		t.Errorf("the call's end %v, want one completed", end)
	}
}

// TestRedirectedParentPostsDialActionTwiMLIgnored: a caller redirected (UpdateCall Url) while
// its <Dial> is bridged still posts the Dial action; Twilio ignores its TwiML and runs the
// redirect's.
func TestRedirectedParentPostsDialActionTwiMLIgnored(t *testing.T) {
	s := newSim(t, 10, map[string]string{
		"/voice": `<Response><Dial action="{base}/dial"><Number statusCallback="{base}/leg" statusCallbackEvent="answered">+15550001111</Number></Dial></Response>`,
		"/dial":  `<Response><Say>From the ignored action.</Say></Response>`,
		"/next":  `<Response><Say>Redirected.</Say></Response>`,
	})
	wait := s.play("targets: {\"+15550001111\": {answer_after: 1}}\n")
	leg := s.relay.await(t, "/leg").Form.Get("CallSid")
	s.awaitEntry("caller", "talking with")
	caller := s.relay.await(t, "/voice").Form.Get("CallSid")
	if status, body := s.rest(http.MethodPost, "/Calls/"+caller+".json", form("Url", s.relay.srv.URL+"/next")); status != http.StatusOK {
		t.Fatalf("redirect: %d %v", status, body)
	}
	res := wait()
	dial := s.relay.await(t, "/dial")
	if dial.Form.Get("DialCallStatus") != "completed" || dial.Form.Get("DialCallSid") != leg {
		t.Errorf("Dial action %v, want completed with DialCallSid %s", dial.Form, leg)
	}
	if heard(res, "caller", "From the ignored action") || !heard(res, "caller", "Redirected") {
		t.Errorf("the caller heard %q: want the redirect's TwiML, not the Dial action's", res.Heard["caller"])
	}
}

// TestRedirectedChildLeavesNoDialCallDuration: the Dial action reports DialCallDuration when
// the dialed party hung up, and none when it was redirected away.
func TestRedirectedChildLeavesNoDialCallDuration(t *testing.T) {
	for _, tc := range []struct {
		name, target string
		redirect     bool
	}{
		{"the child hangs up", "{answer_after: 1, hangup_after: 3}", false},
		{"the child is redirected", "{answer_after: 1}", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10, map[string]string{
				"/voice":      `<Response><Dial action="{base}/dial"><Number statusCallback="{base}/leg" statusCallbackEvent="answered">+15550001111</Number></Dial></Response>`,
				"/dial":       `<Response><Hangup/></Response>`,
				"/child-next": `<Response><Say>Bye.</Say></Response>`,
			})
			wait := s.play("targets: {\"+15550001111\": " + tc.target + "}\n")
			leg := s.relay.await(t, "/leg").Form.Get("CallSid")
			if tc.redirect {
				s.awaitEntry("caller", "talking with")
				if status, body := s.rest(http.MethodPost, "/Calls/"+leg+".json", form("Url", s.relay.srv.URL+"/child-next")); status != http.StatusOK {
					t.Fatalf("redirect of the child: %d %v", status, body)
				}
			}
			wait()
			dial := s.relay.await(t, "/dial").Form
			if dial.Get("DialCallStatus") != "completed" || dial.Get("DialCallSid") != leg || dial.Has("DialCallDuration") == tc.redirect {
				t.Errorf("Dial action %v: want completed, DialCallSid %s, DialCallDuration only when not redirected", dial, leg)
			}
			if tc.redirect && len(s.relay.got("/child-next")) != 1 {
				t.Error("the redirected child did not run its new TwiML")
			}
		})
	}
}

// TestEnqueueLeftByRedirectPostsQueueResult: a caller redirected out of <Enqueue> still posts
// the Enqueue action, QueueResult redirected (waiting) or redirected-from-bridged (talking
// with whoever dequeued it); Twilio ignores its TwiML.
func TestEnqueueLeftByRedirectPostsQueueResult(t *testing.T) {
	for _, tc := range []struct {
		name    string
		bridged bool
		want    string
	}{
		{"waiting", false, "redirected"},
		{"bridged", true, "redirected-from-bridged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, 10, map[string]string{
				"/voice":   `<Response><Enqueue action="{base}/enqueue" waitUrl="{base}/wait">support</Enqueue></Response>`,
				"/wait":    `<Response><Play>https://relay.example.com/music.mp3</Play></Response>`,
				"/enqueue": `<Response><Say>From the ignored action.</Say></Response>`,
				"/next":    `<Response><Say>Redirected.</Say></Response>`,
				"/agent":   `<Response><Dial><Queue>support</Queue></Dial></Response>`,
			})
			wait := s.play("targets: {\"+15550002222\": {answer_after: 1}}\n")
			caller := s.relay.await(t, "/voice").Form.Get("CallSid")
			s.relay.await(t, "/wait")
			if tc.bridged {
				// An agent's call dequeues the caller (<Dial><Queue>).
				if status, body := s.rest(http.MethodPost, "/Calls.json", form("From", number, "To", "+15550002222", "Url", s.relay.srv.URL+"/agent")); status != http.StatusCreated {
					t.Fatalf("CreateCall: %d %v", status, body)
				}
				s.awaitEntry("+15550002222", "dequeues caller")
			}
			if status, body := s.rest(http.MethodPost, "/Calls/"+caller+".json", form("Url", s.relay.srv.URL+"/next")); status != http.StatusOK {
				t.Fatalf("redirect: %d %v", status, body)
			}
			res := wait()
			enq := s.relay.await(t, "/enqueue").Form
			if enq.Get("QueueResult") != tc.want || !strings.HasPrefix(enq.Get("QueueSid"), "QU") {
				t.Errorf("Enqueue action %v, want QueueResult=%s", enq, tc.want)
			}
			if heard(res, "caller", "From the ignored action") || !heard(res, "caller", "Redirected") {
				t.Errorf("the caller heard %q: want the redirect's TwiML, not the Enqueue action's", res.Heard["caller"])
			}
		})
	}
}

// TestRecordActionAfterHangupTwiMLIgnored: a caller who hangs up while recording still gets
// its <Record> action posted (Digits=hangup, the recording); Twilio ignores its TwiML.
func TestRecordActionAfterHangupTwiMLIgnored(t *testing.T) {
	s := newSim(t, 10, map[string]string{
		"/voice":  `<Response><Record action="{base}/record" maxLength="60"/></Response>`,
		"/record": `<Response><Say>From the ignored action.</Say></Response>`,
	})
	res := s.run("caller: {voicemail: {seconds: 4, words: Call me back., end: hangup}}\n")
	rec := s.relay.got("/record")
	if len(rec) != 1 || rec[0].Form.Get("Digits") != "hangup" || rec[0].Form.Get("RecordingDuration") != "4" || !strings.HasPrefix(rec[0].Form.Get("RecordingSid"), "RE") {
		t.Fatalf("Record action %v, want one with Digits=hangup RecordingDuration=4 and the recording", rec)
	}
	if heard(res, "caller", "From the ignored action") {
		t.Errorf("the caller heard the ignored action's TwiML: %q", res.Heard["caller"])
	}
}

// TestTranscriptionOnlyBetween2And120Seconds: Twilio transcribes recordings longer than 2 s
// and shorter than 120 s; for the others no transcribeCallback comes at all.
func TestTranscriptionOnlyBetween2And120Seconds(t *testing.T) {
	for _, tc := range []struct {
		seconds     int
		transcribed bool
	}{{2, false}, {3, true}, {119, true}, {120, false}} {
		t.Run(strconv.Itoa(tc.seconds)+"s", func(t *testing.T) {
			s := newSim(t, 50, map[string]string{
				"/voice":  `<Response><Record action="{base}/record" maxLength="3600" transcribe="true" transcribeCallback="{base}/transcription" recordingStatusCallback="{base}/recording-status"/></Response>`,
				"/record": `<Response><Hangup/></Response>`,
			})
			s.run(fmt.Sprintf("caller: {voicemail: {seconds: %d, words: Call me back., end: key}}\n", tc.seconds))
			status := s.relay.got("/recording-status")
			if len(status) != 1 || status[0].Form.Get("RecordingDuration") != strconv.Itoa(tc.seconds) {
				t.Fatalf("recording status callbacks %v, want one for %d s", status, tc.seconds)
			}
			tr := s.relay.got("/transcription")
			switch {
			case !tc.transcribed && len(tr) != 0:
				t.Errorf("transcribeCallback for %d s: %v, want none", tc.seconds, tr)
			case tc.transcribed && (len(tr) != 1 || tr[0].Form.Get("TranscriptionStatus") != "completed" || tr[0].Form.Get("TranscriptionText") != "Call me back."):
				t.Errorf("transcribeCallback for %d s: %v, want one, completed, with the words", tc.seconds, tr)
			}
		})
	}
}

// TestSilentCallerRecordsNothing: a caller who says nothing leaves no recording: the
// recording status callback says absent, the <Record> action is not requested, and the next
// verb runs.
func TestSilentCallerRecordsNothing(t *testing.T) {
	s := newSim(t, 10, map[string]string{
		"/voice": `<Response><Record action="{base}/record" timeout="5" recordingStatusCallback="{base}/recording-status" ` +
			`recordingStatusCallbackEvent="completed absent"/><Say>We did not get a message.</Say></Response>`,
		"/record": `<Response><Hangup/></Response>`,
	})
	res := s.run("")
	if st := s.relay.got("/recording-status"); len(st) != 1 || st[0].Form.Get("RecordingStatus") != "absent" {
		t.Errorf("recording status callbacks %v, want one absent", st)
	}
	if rec := s.relay.got("/record"); len(rec) != 0 {
		t.Errorf("Record action requested for silence: %v", rec)
	}
	if !heard(res, "caller", "We did not get a message") {
		t.Errorf("the caller heard %q, want the verb after <Record>", res.Heard["caller"])
	}
}

// TestCallbacksDuplicated: with callbacks: {duplicate: true} every callback comes twice, the
// same both times.
func TestCallbacksDuplicated(t *testing.T) {
	s := newSim(t, 10, dialTwo)
	s.run(twoTargets + "callbacks: {duplicate: true}\n")
	got := map[string][]string{}
	for _, h := range append(s.relay.got("/leg"), s.relay.got("/twilio/call-status")...) {
		key := h.Form.Get("CallSid") + "#" + h.Form.Get("SequenceNumber")
		got[key] = append(got[key], h.Form.Encode())
	}
	if len(got) != 4+3+1 {
		t.Errorf("%d distinct callbacks, want 8 (4 + 3 for the legs, 1 for the caller)", len(got))
	}
	for key, sent := range got {
		if len(sent) != 2 || sent[0] != sent[1] {
			t.Errorf("callback %s delivered %d times (%q), want twice the same", key, len(sent), sent)
		}
	}
}

// TestCallbacksReordered: with callbacks: {reorder: true} each callback comes up to 3 s late,
// so a call's callbacks arrive out of order. Thirty legs ring and are given up on; each has an
// initiated and a ringing callback 0.2 s apart, which a random delay swaps with probability
// about 0.44: the chance that no leg's arrive swapped is below 1e-7.
func TestCallbacksReordered(t *testing.T) {
	var nouns strings.Builder
	for i := range 10 {
		fmt.Fprintf(&nouns, `<Number statusCallback="{base}/leg" statusCallbackEvent="initiated ringing completed">+155500010%02d</Number>`, i)
	}
	dial := `<Dial timeout="2">` + nouns.String() + `</Dial>`
	s := newSim(t, 10, map[string]string{"/voice": `<Response>` + dial + dial + dial + `</Response>`})
	s.run("callbacks: {reorder: true}\n")
	byCall := map[string][]int{}
	for _, h := range s.relay.got("/leg") {
		n, _ := strconv.Atoi(h.Form.Get("SequenceNumber"))
		byCall[h.Form.Get("CallSid")] = append(byCall[h.Form.Get("CallSid")], n)
	}
	if len(byCall) != 30 {
		t.Fatalf("%d legs called back, want 30", len(byCall))
	}
	reordered := 0
	for sid, order := range byCall {
		if len(order) != 3 {
			t.Errorf("leg %s: callbacks %v, want 3, once each", sid, order)
		}
		if !slices.IsSorted(order) {
			reordered++
		}
	}
	if reordered == 0 {
		t.Error("every leg's callbacks arrived in order: want some out of order")
	}
}

// TestHoldPlaysHoldUrlToHeldParticipant: holding a participant (UpdateParticipant Hold=true
// with a HoldUrl) sends participant-hold, fetches the HoldUrl for the held one, whom the
// others no longer hear; resuming sends participant-unhold and they talk again.
func TestHoldPlaysHoldUrlToHeldParticipant(t *testing.T) {
	s := newSim(t, 10, map[string]string{
		"/voice": `<Response><Dial><Conference statusCallback="{base}/conf" statusCallbackEvent="start join hold">room</Conference></Dial></Response>`,
		"/hold":  `<Response><Play loop="0">https://relay.example.com/music.mp3</Play></Response>`,
	})
	wait := s.play("targets: {\"+15550001111\": {answer_after: 1}}\n")
	caller := s.relay.await(t, "/voice").Form.Get("CallSid")
	conf := s.relay.await(t, "/conf", "StatusCallbackEvent", "participant-join").Form.Get("ConferenceSid")
	if status, body := s.rest(http.MethodPost, "/Conferences/"+conf+"/Participants.json",
		form("From", number, "To", "+15550001111", "Label", "callee", "EndConferenceOnExit", "true")); status != http.StatusCreated {
		t.Fatalf("CreateParticipant: %d %v", status, body)
	}
	s.relay.await(t, "/conf", "StatusCallbackEvent", "conference-start")
	participant := "/Conferences/" + conf + "/Participants/" + caller + ".json"
	if status, body := s.rest(http.MethodPost, participant, form("Hold", "true", "HoldUrl", s.relay.srv.URL+"/hold", "HoldMethod", "POST")); status != http.StatusOK || body["hold"] != true {
		t.Fatalf("hold: %d %v", status, body)
	}
	if held := s.relay.await(t, "/hold"); held.Form.Get("CallSid") != caller {
		t.Errorf("HoldUrl fetched for %s, want the held caller %s", held.Form.Get("CallSid"), caller)
	}
	if ev := s.relay.await(t, "/conf", "StatusCallbackEvent", "participant-hold"); ev.Form.Get("CallSid") != caller || ev.Form.Get("Hold") != "true" {
		t.Errorf("participant-hold %v, want the caller, Hold=true", ev.Form)
	}
	if status, body := s.rest(http.MethodPost, participant, form("Hold", "false")); status != http.StatusOK || body["hold"] != false {
		t.Fatalf("resume: %d %v", status, body)
	}
	if ev := s.relay.await(t, "/conf", "StatusCallbackEvent", "participant-unhold"); ev.Form.Get("Hold") != "false" {
		t.Errorf("participant-unhold %v, want Hold=false", ev.Form)
	}
	s.hangUp(caller)
	res := wait()
	for party, want := range map[string][]string{
		"caller":       {"talking (conference)", "hold music (holdUrl /hold)", "talking (conference)"},
		"+15550001111": {"talking (conference)", "silence (caller on hold)", "talking (conference)"},
	} {
		if got := res.Heard[party]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s heard %q, want %q", party, got, want)
		}
	}
}
