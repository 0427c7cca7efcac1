package twiliofake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/callrelay/callrelay/internal/clocktest"
)

// rewrite sends twilio-go's requests for https://api.twilio.com to the fake.
type rewrite struct{ target *url.URL }

func (rt rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != "api.twilio.com" {
		return nil, fmt.Errorf("request for %s, not api.twilio.com", r.URL.Host)
	}
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = rt.target.Scheme, rt.target.Host, ""
	return http.DefaultTransport.RoundTrip(r)
}

// twilioAPI returns twilio-go's API service talking to f with these credentials.
func twilioAPI(t *testing.T, f *Fake, sid, token string) *openapi.ApiService {
	t.Helper()
	t.Setenv("TWILIO_EDGE", "") // they would rewrite api.twilio.com
	t.Setenv("TWILIO_REGION", "")
	target, err := url.Parse(f.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &client.Client{Credentials: client.NewCredentials(sid, token), HTTPClient: &http.Client{Transport: rewrite{target}}}
	c.SetAccountSid(sid)
	return openapi.NewApiServiceWithClient(c)
}

// start returns a started fake with deterministic SIDs (CA00…01, CA00…02, …) and twilio-go
// talking to it.
func start(t *testing.T) (*Fake, *openapi.ApiService) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	f := Start(t, Options{NewSid: func(prefix string) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		return fmt.Sprintf("%s%032x", prefix, n)
	}})
	return f, twilioAPI(t, f, f.AccountSID, f.AuthToken)
}

// restError returns err as twilio-go's TwilioRestError, failing the test if it is not one.
func restError(t *testing.T, err error) *client.TwilioRestError {
	t.Helper()
	var te *client.TwilioRestError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v (%T), want a *client.TwilioRestError", err, err)
	}
	return te
}

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func boolp(p *bool) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// callrelayParticipant is what callrelay's CreateParticipant sends.
func callrelayParticipant(label string) *openapi.CreateParticipantParams {
	return (&openapi.CreateParticipantParams{}).
		SetFrom("+15005550006").SetTo("+15005550001").
		SetLabel(label).
		SetBeep("false").
		SetTimeout(20).
		SetStatusCallback("https://relay.example.com/twilio/status?leg=1").SetStatusCallbackMethod("POST").
		SetStatusCallbackEvent([]string{"initiated", "ringing", "answered", "completed"}).
		SetStartConferenceOnEnter(true).
		SetEndConferenceOnExit(true)
}

func TestCreateParticipant(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")

	p, err := api.CreateParticipant(confA, callrelayParticipant("callee-1"))
	if err != nil {
		t.Fatalf("CreateParticipant: %v", err)
	}
	wantCall := "CA00000000000000000000000000000001"
	for _, c := range []struct{ field, got, want string }{
		{"call_sid", str(p.CallSid), wantCall},
		{"conference_sid", str(p.ConferenceSid), confA},
		{"account_sid", str(p.AccountSid), f.AccountSID},
		{"label", str(p.Label), "callee-1"},
		{"status", fmt.Sprint(*p.Status), "queued"},
		{"hold", boolp(p.Hold), "false"},
		{"muted", boolp(p.Muted), "false"},
		{"end_conference_on_exit", boolp(p.EndConferenceOnExit), "true"},
		{"start_conference_on_enter", boolp(p.StartConferenceOnEnter), "true"},
	} {
		if c.got != c.want {
			t.Errorf("participant %s = %s, want %s", c.field, c.got, c.want)
		}
	}

	reqs := f.RequestsFor("CreateParticipant")
	if len(reqs) != 1 {
		t.Fatalf("RequestsFor(CreateParticipant) = %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Status != http.StatusCreated || r.Method != "POST" || r.PathParams["ConferenceSid"] != confA {
		t.Errorf("recorded %s %v status %d, want POST ConferenceSid=%s status 201", r.Method, r.PathParams, r.Status, confA)
	}
	if got := r.Form["StatusCallbackEvent"]; strings.Join(got, " ") != "initiated ringing answered completed" {
		t.Errorf("recorded StatusCallbackEvent = %q, want the four events in order", got)
	}
	if got := r.Form.Get("Beep"); got != "false" {
		t.Errorf("recorded Beep = %q, want false", got)
	}
	if c, ok := f.Call(wantCall); !ok || c.Status != "queued" || c.To != "+15005550001" || c.From != "+15005550006" {
		t.Errorf("Call(%s) = %+v, %v; want a queued call from +15005550006 to +15005550001", wantCall, c, ok)
	}
}

func TestCreateParticipantLabels(t *testing.T) {
	f, api := start(t)
	f.AddConference(confA, "room")
	if _, err := api.CreateParticipant(confA, callrelayParticipant("callee-1")); err != nil {
		t.Fatalf("first CreateParticipant: %v", err)
	}
	_, err := api.CreateParticipant(confA, callrelayParticipant("callee-1"))
	if te := restError(t, err); te.Status != 400 || te.Code != CodeLabelInUse {
		t.Errorf("second participant with the same label: status %d code %d, want 400 %d", te.Status, te.Code, CodeLabelInUse)
	}
	if _, err := api.CreateParticipant(confA, callrelayParticipant("callee-2")); err != nil {
		t.Errorf("CreateParticipant with another label: %v", err)
	}
	// A label is free again once its participant has left.
	f.SetCallStatus("CA00000000000000000000000000000001", "no-answer")
	if _, err := api.CreateParticipant(confA, callrelayParticipant("callee-1")); err != nil {
		t.Errorf("CreateParticipant reusing the label of a participant that left: %v", err)
	}
	if n := len(f.Violations()); n != 0 {
		t.Errorf("%d violations, want none: a label in use is Twilio's answer, not a malformed request", n)
	}
}

func TestCreateParticipantConferenceByName(t *testing.T) {
	f, api := start(t)
	p1, err := api.CreateParticipant("support room", callrelayParticipant("a"))
	if err != nil {
		t.Fatalf("CreateParticipant by friendly name: %v", err)
	}
	p2, err := api.CreateParticipant("support room", callrelayParticipant("b"))
	if err != nil {
		t.Fatalf("second CreateParticipant by friendly name: %v", err)
	}
	if str(p1.ConferenceSid) != str(p2.ConferenceSid) || !conferenceSID.MatchString(str(p1.ConferenceSid)) {
		t.Errorf("conference SIDs %s and %s, want one new CF SID", str(p1.ConferenceSid), str(p2.ConferenceSid))
	}
	if c, ok := f.Conference(str(p1.ConferenceSid)); !ok || c.FriendlyName != "support room" || len(c.Participants) != 2 {
		t.Errorf("Conference = %+v, %v; want %q with 2 participants", c, ok, "support room")
	}
	_, err = api.CreateParticipant(confA, callrelayParticipant("c"))
	if te := restError(t, err); te.Status != 404 || te.Code != CodeNotFound {
		t.Errorf("CreateParticipant in an unknown conference SID: status %d code %d, want 404 20404", te.Status, te.Code)
	}
}

func TestUpdateParticipantHold(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")

	// By label, as Twilio allows; then by call SID.
	p, err := api.UpdateParticipant(confA, "caller", (&openapi.UpdateParticipantParams{}).
		SetHold(true).SetHoldUrl("https://relay.example.com/hold").SetHoldMethod("GET"))
	if err != nil {
		t.Fatalf("hold: %v", err)
	}
	if !*p.Hold || str(p.CallSid) != callA {
		t.Errorf("after hold: hold %v call_sid %s, want true %s", *p.Hold, str(p.CallSid), callA)
	}
	if s, _ := f.Participant(confA, callA); !s.Hold || s.HoldURL != "https://relay.example.com/hold" || s.HoldMethod != "GET" {
		t.Errorf("Participant after hold = %+v", s)
	}
	p, err = api.UpdateParticipant(confA, callA, (&openapi.UpdateParticipantParams{}).SetHold(false))
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if *p.Hold {
		t.Error("after resume: hold true, want false")
	}
	if got := f.RequestsFor("UpdateParticipant")[1].Form.Get("Hold"); got != "false" {
		t.Errorf("resume sent Hold=%q, want false (explicitly)", got)
	}
}

func TestUpdateParticipantNotFound(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")
	for _, tc := range []struct{ name, conf, call string }{
		{"unknown call", confA, callB},
		{"unknown label", confA, "nobody"},
		{"unknown conference", "CFfedcba9876543210fedcba9876543210", callA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.UpdateParticipant(tc.conf, tc.call, (&openapi.UpdateParticipantParams{}).SetHold(true))
			te := restError(t, err)
			wantMsg := "The requested resource /2010-04-01/Accounts/" + f.AccountSID + "/Conferences/" + tc.conf + "/Participants/" + tc.call + ".json was not found"
			if te.Status != 404 || te.Code != 20404 || te.Message != wantMsg || te.MoreInfo != "https://www.twilio.com/docs/errors/20404" {
				t.Errorf("got %d %d %q %q, want 404 20404 %q", te.Status, te.Code, te.Message, te.MoreInfo, wantMsg)
			}
		})
	}
	if n := len(f.Violations()); n != 0 {
		t.Errorf("%d violations, want none: a participant that has left is not a malformed request", n)
	}
}

// rawRequest is a request twilio-go would not send.
type rawRequest struct {
	method, path string // path under /2010-04-01/Accounts/{AccountSid} unless it starts with "//"
	body         string
	contentType  string // form-encoded when empty and there is a body
	user, pass   string // the fake's credentials when both are empty; "-" for none
}

func (rr rawRequest) do(t *testing.T, f *Fake) (int, twilioError) {
	t.Helper()
	path := "/2010-04-01/Accounts/" + f.AccountSID + rr.path
	if p, ok := strings.CutPrefix(rr.path, "//"); ok {
		path = "/" + p
	}
	req, err := http.NewRequest(rr.method, f.URL+path, strings.NewReader(rr.body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case rr.contentType != "":
		req.Header.Set("Content-Type", rr.contentType)
	case rr.body != "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	switch {
	case rr.user == "-":
	case rr.user == "" && rr.pass == "":
		req.SetBasicAuth(f.AccountSID, f.AuthToken)
	default:
		req.SetBasicAuth(rr.user, rr.pass)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var e twilioError
	if res.StatusCode >= 400 {
		if err := json.Unmarshal(data, &e); err != nil {
			t.Fatalf("%s %s answered %d %q: not Twilio's error JSON: %v", rr.method, path, res.StatusCode, data, err)
		}
		if e.Status != res.StatusCode || e.MoreInfo != fmt.Sprintf("https://www.twilio.com/docs/errors/%d", e.Code) {
			t.Errorf("error body %+v does not match status %d", e, res.StatusCode)
		}
	}
	return res.StatusCode, e
}

// TestRejections covers what Prism's strict mock refuses, and what the fake refuses besides.
func TestRejections(t *testing.T) {
	participant := "/Conferences/" + confA + "/Participants/" + callA + ".json"
	for _, tc := range []struct {
		name       string
		req        rawRequest
		wantStatus int
		wantCode   int
		wantMsg    string // substring
		want       want   // the violation recorded
	}{
		{"bad enum", rawRequest{method: "POST", path: participant, body: "Hold=true&HoldMethod=PUT"}, 400, 20001, `HoldMethod: must be one of "GET", "POST"`, want{"body", "HoldMethod", KeywordEnum}},
		{"non-boolean", rawRequest{method: "POST", path: participant, body: "Hold=yes"}, 400, 20001, "Hold: must be", want{"body", "Hold", KeywordType}},
		{"HoldUrl not a URI", rawRequest{method: "POST", path: participant, body: "Hold=true&HoldUrl=hold.xml"}, 400, 21205, "HoldUrl: must be an absolute URI", want{"body", "HoldUrl", KeywordFormat}},
		{"malformed call SID", rawRequest{method: "POST", path: "/Calls/XX123.json", body: "Status=completed"}, 400, 20001, "Sid: must match ^CA[0-9a-fA-F]{32}$", want{"path", "Sid", KeywordPattern}},
		{"malformed account SID", rawRequest{method: "POST", path: "//2010-04-01/Accounts/ACxyz/Calls/" + callA + ".json", body: "Status=completed"}, 400, 20001, "AccountSid: must match", want{"path", "AccountSid", KeywordPattern}},
		{"missing From and To", rawRequest{method: "POST", path: "/Conferences/" + confA + "/Participants.json", body: "Label=x"}, 400, 20001, "From: is required; To: is required", want{"body", "From", KeywordRequired}},
		{"unknown field", rawRequest{method: "POST", path: participant, body: "Hold=true&HoldURL=https%3A%2F%2Fx.example%2F"}, 400, 20001, "HoldURL: is not a parameter of UpdateParticipant", want{"body", "HoldURL", KeywordUnknown}},
		{"field twice", rawRequest{method: "POST", path: participant, body: "Hold=true&Hold=false"}, 400, 20001, "Hold: given 2 times", want{"body", "Hold", KeywordDuplicate}},
		{"JSON body", rawRequest{method: "POST", path: participant, body: `{"Hold":true}`, contentType: "application/json"}, 400, 20001, "Content-Type: must be application/x-www-form-urlencoded", want{"header", "Content-Type", KeywordContentType}},
		{"parameters in the query", rawRequest{method: "POST", path: participant + "?Hold=true"}, 400, 20001, "form body, not the query", want{"query", "", KeywordUnknown}},
		{"label with a slash", rawRequest{method: "POST", path: "/Conferences/" + confA + "/Participants.json", body: "From=a&To=b&Label=a%2Fb"}, 400, CodeLabelInvalid, "Label: must not", want{"body", "Label", KeywordTwilio}},
		{"label like a call SID", rawRequest{method: "POST", path: "/Conferences/" + confA + "/Participants.json", body: "From=a&To=b&Label=" + callB}, 400, CodeLabelInvalid, "Label: must not", want{"body", "Label", KeywordTwilio}},
		{"Twiml and Url", rawRequest{method: "POST", path: "/Calls/" + callA + ".json", body: "Twiml=%3CResponse%2F%3E&Url=https%3A%2F%2Fx.example%2F"}, 400, 20001, "mutually exclusive", want{"body", "Twiml", KeywordTwilio}},
		{"no basic auth", rawRequest{method: "POST", path: participant, body: "Hold=true", user: "-"}, 401, 20003, "Authenticate", want{"header", "Authorization", KeywordAuth}},
		{"wrong token", rawRequest{method: "POST", path: participant, body: "Hold=true", user: DefaultAccountSID, pass: "wrongtoken"}, 401, 20003, "Authenticate", want{"header", "Authorization", KeywordAuth}},
		{"another account", rawRequest{method: "POST", path: "//2010-04-01/Accounts/AC0123456789abcdef0123456789abcdef" + "/Calls/" + callA + ".json", body: "Status=completed"}, 401, 20003, "Authenticate", want{"path", "AccountSid", KeywordAuth}},
		{"no such path", rawRequest{method: "POST", path: "/Conferences/" + confA + "/Kick.json"}, 404, 20404, "was not found", want{"path", "", KeywordPath}},
		{"no such method", rawRequest{method: "PUT", path: participant, body: "Hold=true"}, 405, 20004, "Method not allowed", want{"request", "PUT", KeywordMethod}},
		{"array item off the enum", rawRequest{method: "POST", path: "/ConnectApps/CN0123456789abcdef0123456789abcdef.json", body: "Permissions=get-all&Permissions=delete-all"}, 400, 20001, "Permissions: each item must be one of", want{"body", "Permissions", KeywordEnum}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Start(t, Options{})
			f.ExpectViolations()
			f.AddParticipant(confA, callA, "caller")
			status, e := tc.req.do(t, f)
			if status != tc.wantStatus || e.Code != tc.wantCode || !strings.Contains(e.Message, tc.wantMsg) {
				t.Errorf("answer %d code %d %q, want %d code %d containing %q", status, e.Code, e.Message, tc.wantStatus, tc.wantCode, tc.wantMsg)
			}
			vs := f.Violations()
			if len(vs) == 0 {
				t.Fatal("no violation recorded")
			}
			if v := vs[0]; v.In != tc.want.in || v.Field != tc.want.field || v.Keyword != tc.want.keyword || v.Code != tc.wantCode {
				t.Errorf("violation %+v, want %s %q %s code %d", v, tc.want.in, tc.want.field, tc.want.keyword, tc.wantCode)
			}
			reqs := f.Requests()
			if len(reqs) != 1 || reqs[0].Status != tc.wantStatus {
				t.Errorf("recorded %+v, want one request answered %d", reqs, tc.wantStatus)
			}
			if s, _ := f.Participant(confA, callA); s.Hold {
				t.Error("a refused request changed the participant")
			}
		})
	}
}

// TestRejectionsThroughTwilioGo: what twilio-go lets through and the fake refuses, decoded by
// twilio-go as Twilio's errors are.
func TestRejectionsThroughTwilioGo(t *testing.T) {
	f, api := start(t)
	f.ExpectViolations()
	f.AddParticipant(confA, callA, "caller")

	_, err := api.UpdateParticipant(confA, callA, (&openapi.UpdateParticipantParams{}).SetHold(true).SetHoldMethod("PUT"))
	if te := restError(t, err); te.Status != 400 || te.Code != 20001 {
		t.Errorf("HoldMethod PUT: %d %d, want 400 20001", te.Status, te.Code)
	}
	_, err = api.UpdateCall("XX123", (&openapi.UpdateCallParams{}).SetStatus("completed"))
	if te := restError(t, err); te.Status != 400 || te.Code != 20001 {
		t.Errorf("UpdateCall XX123: %d %d, want 400 20001", te.Status, te.Code)
	}
	_, err = api.CreateParticipant(confA, &openapi.CreateParticipantParams{})
	if te := restError(t, err); te.Status != 400 || !strings.Contains(te.Message, "From: is required") {
		t.Errorf("CreateParticipant without From/To: %d %q", te.Status, te.Message)
	}
	_, err = twilioAPI(t, f, f.AccountSID, "wrongtoken").UpdateParticipant(confA, callA, (&openapi.UpdateParticipantParams{}).SetHold(true))
	if te := restError(t, err); te.Status != 401 || te.Code != 20003 || te.Message != "Authenticate" {
		t.Errorf("wrong token: %d %d %q, want 401 20003 Authenticate", te.Status, te.Code, te.Message)
	}
	if n := len(f.Violations()); n != 5 {
		t.Errorf("%d violations, want 5 (From and To count apart): %v", n, f.Violations())
	}
}

// fakeTB records what Start's cleanup reports.
type fakeTB struct {
	testing.TB
	mu       sync.Mutex
	errs     []string
	cleanups []func()
}

func (tb *fakeTB) Helper()           {}
func (tb *fakeTB) Cleanup(fn func()) { tb.cleanups = append(tb.cleanups, fn) }
func (tb *fakeTB) Errorf(format string, args ...any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.errs = append(tb.errs, fmt.Sprintf(format, args...))
}

func (tb *fakeTB) cleanup() {
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}

func TestStartFailsTestOnViolations(t *testing.T) {
	testSpec(t)
	for _, expect := range []bool{false, true} {
		tb := &fakeTB{TB: t}
		f := Start(tb, Options{})
		if expect {
			f.ExpectViolations()
		}
		f.AddParticipant(confA, callA, "")
		rawRequest{method: "POST", path: "/Conferences/" + confA + "/Participants/" + callA + ".json", body: "Hold=yes"}.do(t, f)
		rawRequest{method: "POST", path: "/Conferences/" + confA + "/Participants/" + callA + ".json", body: "Hold=true"}.do(t, f)
		tb.cleanup()
		switch {
		case expect && len(tb.errs) != 0:
			t.Errorf("with ExpectViolations, cleanup reported %q", tb.errs)
		case !expect && (len(tb.errs) != 1 || !strings.Contains(tb.errs[0], `body field Hold="yes"`)):
			t.Errorf("cleanup reported %q, want one error about Hold=yes", tb.errs)
		}
	}
}

func TestFail(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")
	f.Fail("UpdateParticipant", Failure{Status: 429, Code: 20429, Message: "Too Many Requests", Times: 2})
	hold := (&openapi.UpdateParticipantParams{}).SetHold(true)
	for i := range 2 {
		_, err := api.UpdateParticipant(confA, callA, hold)
		if te := restError(t, err); te.Status != 429 || te.Code != 20429 || te.Message != "Too Many Requests" {
			t.Errorf("request %d: %d %d %q, want the injected 429 20429", i+1, te.Status, te.Code, te.Message)
		}
		if s, _ := f.Participant(confA, callA); s.Hold {
			t.Fatalf("request %d: an injected failure changed the participant", i+1)
		}
	}
	if p, err := api.UpdateParticipant(confA, callA, hold); err != nil || !*p.Hold {
		t.Errorf("third request: %v, want success", err)
	}
	// Defaults: once, 400.
	f.Fail("UpdateCall", Failure{Code: 21220})
	_, err := api.UpdateCall(callA, (&openapi.UpdateCallParams{}).SetStatus("completed"))
	if te := restError(t, err); te.Status != 400 || te.Code != 21220 {
		t.Errorf("injected default failure: %d %d, want 400 21220", te.Status, te.Code)
	}
	if _, err := api.UpdateCall(callA, (&openapi.UpdateCallParams{}).SetStatus("completed")); err != nil {
		t.Errorf("after the injected failure: %v", err)
	}
	var statuses []int
	for _, r := range f.Requests() {
		statuses = append(statuses, r.Status)
	}
	if fmt.Sprint(statuses) != "[429 429 200 400 200]" {
		t.Errorf("recorded statuses %v, want [429 429 200 400 200]", statuses)
	}
	if n := len(f.Violations()); n != 0 {
		t.Errorf("injected failures recorded %d violations", n)
	}
	defer func() {
		if recover() == nil {
			t.Error("Fail of an operation the spec does not have did not panic")
		}
	}()
	f.Fail("UpdateParticpant", Failure{})
}

func TestUpdateCall(t *testing.T) {
	redirect := (&openapi.UpdateCallParams{}).SetUrl("https://relay.example.com/next").SetMethod("POST")
	cancel := (&openapi.UpdateCallParams{}).SetStatus("canceled")
	complete := (&openapi.UpdateCallParams{}).SetStatus("completed")
	for _, tc := range []struct {
		name       string
		status     string // the call's, "" for an unknown call
		params     *openapi.UpdateCallParams
		wantCode   int    // 0: success
		wantStatus string // the call's afterwards
	}{
		{"cancel queued", "queued", cancel, 0, "canceled"},
		{"cancel ringing", "ringing", cancel, 0, "canceled"},
		{"cancel in progress has no effect", "in-progress", cancel, 0, "in-progress"},
		{"cancel completed", "completed", cancel, CodeInvalidCallState, "completed"},
		{"complete ringing", "ringing", complete, 0, "completed"},
		{"complete in progress", "in-progress", complete, 0, "completed"},
		{"complete completed", "completed", complete, CodeInvalidCallState, "completed"},
		{"complete canceled", "canceled", complete, CodeInvalidCallState, "canceled"},
		{"redirect in progress", "in-progress", redirect, 0, "in-progress"},
		{"redirect ringing", "ringing", redirect, CodeInvalidCallState, "ringing"},
		{"redirect completed", "completed", redirect, CodeInvalidCallState, "completed"},
		{"unknown call", "", complete, CodeNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, api := start(t)
			if tc.status != "" {
				f.AddCall(callA, tc.status)
			}
			c, err := api.UpdateCall(callA, tc.params)
			if tc.wantCode != 0 {
				if te := restError(t, err); te.Code != tc.wantCode {
					t.Errorf("code %d %q, want %d", te.Code, te.Message, tc.wantCode)
				}
			} else if err != nil {
				t.Fatalf("UpdateCall: %v", err)
			} else if str(c.Sid) != callA || fmt.Sprint(*c.Status) != tc.wantStatus {
				t.Errorf("answered sid %s status %v, want %s %s", str(c.Sid), *c.Status, callA, tc.wantStatus)
			}
			if got, _ := f.Call(callA); got.Status != tc.wantStatus {
				t.Errorf("call status %q afterwards, want %q", got.Status, tc.wantStatus)
			}
		})
	}
}

func TestConferenceLifecycle(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")
	keep := callrelayParticipant("callee-1")
	p1, err := api.CreateParticipant(confA, keep)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := api.CreateParticipant(confA, callrelayParticipant("callee-2"))
	if err != nil {
		t.Fatal(err)
	}
	// Callee 1 never answers: it never joined, so its EndConferenceOnExit does not matter.
	f.SetCallStatus(*p1.CallSid, "no-answer")
	if c, _ := f.Conference(confA); c.Status != "in-progress" || len(c.Participants) != 2 {
		t.Fatalf("after an unanswered callee left: %+v, want in progress with 2 participants", c)
	}
	// Callee 2 answers, then is made to keep the conference, then hangs up.
	f.SetCallStatus(*p2.CallSid, "in-progress")
	if s, _ := f.Participant(confA, "callee-2"); s.Status != "connected" {
		t.Errorf("answered participant status %q, want connected", s.Status)
	}
	if _, err := api.UpdateParticipant(confA, *p2.CallSid, (&openapi.UpdateParticipantParams{}).SetEndConferenceOnExit(false)); err != nil {
		t.Fatal(err)
	}
	if _, err := api.UpdateCall(*p2.CallSid, (&openapi.UpdateCallParams{}).SetStatus("completed")); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.Conference(confA); c.Status != "in-progress" || len(c.Participants) != 1 {
		t.Fatalf("after a kept callee hung up: %+v, want in progress with the caller", c)
	}
	// Ending the conference by the API.
	conf, err := api.UpdateConference(confA, (&openapi.UpdateConferenceParams{}).SetStatus("completed"))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*conf.Status) != "completed" || str(conf.Sid) != confA {
		t.Errorf("UpdateConference answered %s %v, want %s completed", str(conf.Sid), *conf.Status, confA)
	}
	if c, _ := f.Conference(confA); c.ReasonEnded != "conference-ended-via-api" || len(c.Participants) != 0 {
		t.Errorf("after UpdateConference: %+v", c)
	}
	_, err = api.UpdateParticipant(confA, callA, (&openapi.UpdateParticipantParams{}).SetHold(true))
	if te := restError(t, err); te.Code != 20404 {
		t.Errorf("participant of an ended conference: code %d, want 20404", te.Code)
	}
	_, err = api.UpdateConference("CFfedcba9876543210fedcba9876543210", (&openapi.UpdateConferenceParams{}).SetStatus("completed"))
	if te := restError(t, err); te.Code != 20404 {
		t.Errorf("unknown conference: code %d, want 20404", te.Code)
	}
}

func TestEndConferenceOnExit(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "caller")
	p, err := api.CreateParticipant(confA, callrelayParticipant("callee")) // EndConferenceOnExit true
	if err != nil {
		t.Fatal(err)
	}
	f.SetCallStatus(*p.CallSid, "in-progress")
	f.SetCallStatus(*p.CallSid, "completed")
	if c, _ := f.Conference(confA); c.Status != "completed" || c.ReasonEnded != "participant-with-end-conference-on-exit-left" {
		t.Errorf("after the callee left: %+v, want completed by participant-with-end-conference-on-exit-left", c)
	}
	// A redirect takes a call out of its conference too.
	f.AddParticipant(confB, callB, "")
	if _, err := api.UpdateCall(callB, (&openapi.UpdateCallParams{}).SetUrl("https://relay.example.com/next")); err != nil {
		t.Fatal(err)
	}
	if c, _ := f.Conference(confB); c.Status != "completed" || c.ReasonEnded != "last-participant-left" {
		t.Errorf("after the only participant was redirected: %+v", c)
	}
	if c, _ := f.Call(callB); c.URL != "https://relay.example.com/next" || c.Method != "POST" {
		t.Errorf("redirected call %+v, want Url and Method POST", c)
	}
}

const confB = "CFfedcba9876543210fedcba9876543210"

func TestQueues(t *testing.T) {
	f, api := start(t)
	q, err := api.CreateQueue((&openapi.CreateQueueParams{}).SetFriendlyName("support"))
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	sid := str(q.Sid)
	if sid != "QU00000000000000000000000000000001" || str(q.FriendlyName) != "support" || q.CurrentSize != 0 || q.MaxSize != 100 {
		t.Errorf("CreateQueue answered %s %q size %d max %d", sid, str(q.FriendlyName), q.CurrentSize, q.MaxSize)
	}
	f.AddQueueMember(sid, callA)
	f.AddQueueMember(sid, callB)
	if q, err := api.FetchQueue(sid, nil); err != nil || q.CurrentSize != 2 {
		t.Errorf("FetchQueue: %v, size %d, want 2", err, q.CurrentSize)
	}
	if qs, err := api.ListQueue(nil); err != nil || len(qs) != 1 || str(qs[0].Sid) != sid {
		t.Errorf("ListQueue: %v, %d queues", err, len(qs))
	}

	err = api.DeleteQueue(sid, nil)
	if te := restError(t, err); te.Status != 400 || te.Code != CodeQueueNotEmpty {
		t.Errorf("DeleteQueue of a non-empty queue: %d %d, want 400 %d", te.Status, te.Code, CodeQueueNotEmpty)
	}

	dequeue := (&openapi.UpdateMemberParams{}).SetUrl("https://relay.example.com/agent").SetMethod("POST")
	m, err := api.UpdateMember(sid, "Front", dequeue)
	if err != nil {
		t.Fatalf("UpdateMember Front: %v", err)
	}
	if str(m.CallSid) != callA || m.Position != 1 || str(m.QueueSid) != sid {
		t.Errorf("dequeued %s position %d queue %s, want %s 1 %s", str(m.CallSid), m.Position, str(m.QueueSid), callA, sid)
	}
	if c, _ := f.Call(callA); c.URL != "https://relay.example.com/agent" {
		t.Errorf("dequeued call's URL %q", c.URL)
	}
	if _, err := api.UpdateMember(sid, callB, dequeue); err != nil {
		t.Fatalf("UpdateMember by call SID: %v", err)
	}
	_, err = api.UpdateMember(sid, "Front", dequeue)
	if te := restError(t, err); te.Code != 20404 {
		t.Errorf("UpdateMember Front of an empty queue: code %d, want 20404", te.Code)
	}
	if err := api.DeleteQueue(sid, nil); err != nil {
		t.Errorf("DeleteQueue of an empty queue: %v", err)
	}
	if got := f.RequestsFor("DeleteQueue"); got[len(got)-1].Status != http.StatusNoContent {
		t.Errorf("DeleteQueue answered %d, want 204", got[len(got)-1].Status)
	}
	err = api.DeleteQueue(sid, nil)
	if te := restError(t, err); te.Code != 20404 {
		t.Errorf("DeleteQueue again: code %d, want 20404", te.Code)
	}
}

// TestCreateCall: a call placed with a Url is created queued; one without Url, Twiml or
// ApplicationSid is refused as Twilio does (21205).
func TestCreateCall(t *testing.T) {
	f, api := start(t)
	c, err := api.CreateCall((&openapi.CreateCallParams{}).SetTo("+15005550001").SetFrom("+15005550006").
		SetUrl("https://relay.example.com/twiml").SetTimeout(15).SetMachineDetection("Enable"))
	if err != nil || c.Sid == nil || c.Status == nil || *c.Status != "queued" {
		t.Fatalf("CreateCall: %+v, %v; want a queued call", c, err)
	}
	if st, ok := f.Call(*c.Sid); !ok || st.Status != "queued" {
		t.Errorf("the fake's call %+v, %v; want it queued", st, ok)
	}
	f.ExpectViolations()
	_, err = api.CreateCall((&openapi.CreateCallParams{}).SetTo("+15005550001").SetFrom("+15005550006"))
	if te := restError(t, err); te.Status != 400 {
		t.Errorf("CreateCall without Url: %d %d %q, want 400", te.Status, te.Code, te.Message)
	}
}

func TestNotImplemented(t *testing.T) {
	f, api := start(t)
	_, err := api.UpdateAccount(f.AccountSID, (&openapi.UpdateAccountParams{}).SetFriendlyName("callrelay"))
	if te := restError(t, err); te.Status != 501 || te.Code != CodeNotImplemented || !strings.Contains(te.Message, "UpdateAccount") {
		t.Errorf("UpdateAccount: %d %d %q, want 501 naming UpdateAccount", te.Status, te.Code, te.Message)
	}
	if r := f.Requests(); len(r) != 1 || r[0].Operation != "UpdateAccount" || r[0].Status != 501 {
		t.Errorf("recorded %+v", r)
	}
	if n := len(f.Violations()); n != 0 {
		t.Errorf("a valid request for an unimplemented operation recorded %d violations", n)
	}
}

func TestOnRequestConcurrency(t *testing.T) {
	f, api := start(t)
	f.AddParticipant(confA, callA, "a")
	f.AddParticipant(confA, callB, "b")
	arrived := make(chan Request)
	release := make(chan struct{})
	f.OnRequest(func(r Request) {
		arrived <- r
		<-release
	})
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, label := range []string{"a", "b"} {
		wg.Go(func() {
			_, err := api.UpdateParticipant(confA, label, (&openapi.UpdateParticipantParams{}).SetHold(true))
			errs <- err
		})
	}
	seen := map[string]bool{}
	for range 2 {
		r := <-arrived
		if r.Status != 0 {
			t.Errorf("hook saw status %d, want 0 (not answered yet)", r.Status)
		}
		seen[r.PathParams["CallSid"]] = true
	}
	// Both are in flight at once: recorded, unanswered, and the state untouched.
	for _, r := range f.Requests() {
		if r.Status != 0 {
			t.Errorf("request %s answered %d while its hook blocks", r.PathParams["CallSid"], r.Status)
		}
	}
	if s, _ := f.Participant(confA, "a"); s.Hold {
		t.Error("participant held before its request was released")
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if !seen["a"] || !seen["b"] {
		t.Errorf("hook saw %v, want a and b", seen)
	}
	for _, r := range f.Requests() {
		if r.Status != 200 {
			t.Errorf("request %s answered %d after release, want 200", r.PathParams["CallSid"], r.Status)
		}
	}
}

func TestClockAndDates(t *testing.T) {
	testSpec(t)
	now := clocktest.Start().In(time.FixedZone("CEST", 2*3600))
	f := Start(t, Options{Now: func() time.Time { return now }})
	api := twilioAPI(t, f, f.AccountSID, f.AuthToken)
	f.AddCall(callA, "in-progress")
	c, err := api.FetchCall(callA, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := str(c.DateCreated), now.UTC().Format("Mon, 02 Jan 2006 15:04:05 -0700"); got != want || !strings.HasSuffix(got, " +0000") {
		t.Errorf("date_created %q, want Twilio's RFC 2822 in UTC, %q", got, want)
	}
	if r := f.Requests(); len(r) != 1 || !r[0].At.Equal(now) {
		t.Errorf("recorded At %v, want %v", r[0].At, now)
	}
}

func TestNewOptions(t *testing.T) {
	s := testSpec(t)
	if !accountSIDPattern.MatchString(DefaultAccountSID) {
		t.Errorf("DefaultAccountSID %q is not an account SID", DefaultAccountSID)
	}
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr bool
	}{
		{"defaults", Options{Spec: s}, false},
		{"own credentials", Options{Spec: s, AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: "abc123"}, false},
		{"malformed account SID", Options{Spec: s, AccountSID: "AC123"}, true},
		{"token twilio-go refuses", Options{Spec: s, AuthToken: "with-dash"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New: %v, want error %v", err, tc.wantErr)
			}
			if err == nil && (f.AccountSID == "" || f.AuthToken == "" || f.URL != "") {
				t.Errorf("New = %+v", f)
			}
		})
	}
}
