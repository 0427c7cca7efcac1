package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// Bad input against the real router and a real database: every request here is refused
// clearly, and nothing it carries is written.

// stateTables are every table a request can write to.
var stateTables = []string{"numbers", "calls", "legs", "call_events", "voicemails", "early_transcriptions",
	"participants", "river_job"}

// tableState is a table's row count and a digest of its rows: an update shows as well as an
// insert.
type tableState struct {
	Rows   int
	Digest string
}

func dbState(t testing.TB, s *testServer) map[string]tableState {
	t.Helper()
	out := make(map[string]tableState, len(stateTables))
	for _, table := range stateTables {
		var st tableState
		q := fmt.Sprintf(`SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM %s t`, table)
		if err := s.db.Pool().QueryRow(context.Background(), q).Scan(&st.Rows, &st.Digest); err != nil {
			t.Fatalf("state of %s: %v", table, err)
		}
		out[table] = st
	}
	return out
}

// assertUnchanged fails when any table differs from before.
func assertUnchanged(t testing.TB, s *testServer, before map[string]tableState, what string) {
	t.Helper()
	for table, now := range dbState(t, s) {
		if was := before[table]; now != was {
			t.Errorf("%s wrote to %s: %d rows (digest %s), was %d (%s)", what, table, now.Rows, now.Digest, was.Rows, was.Digest)
		}
	}
}

// refused checks a refusal: the wanted status and a body that says something.
func refused(t testing.TB, rec *httptest.ResponseRecorder, want int, what string) {
	t.Helper()
	if rec.Code != want {
		t.Errorf("%s: status %d, want %d; body %q", what, rec.Code, want, rec.Body)
	}
	if strings.TrimSpace(rec.Body.String()) == "" {
		t.Errorf("%s: empty body, want one that says why", what)
	}
}

// twilioRaw posts a raw form body, signed over its parsed parameters as Twilio signs them
// (sig "" sends none).
func (s *testServer) twilioRaw(pathAndQuery, body, sig string) *httptest.ResponseRecorder {
	s.t.Helper()
	req := httptest.NewRequest(http.MethodPost, pathAndQuery, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

// signRaw signs a raw body as Twilio would have: over the parameters it encodes.
func signRaw(t testing.TB, pathAndQuery, body string) string {
	t.Helper()
	form, err := url.ParseQuery(body)
	if err != nil {
		t.Fatalf("signRaw: %v", err)
	}
	return signature.Sign(authToken, publicURL+pathAndQuery, form)
}

// webhookForms are realistic forms for each signed Twilio route, about call CA00000000000000000000000000000900 (stored).
func webhookForms() map[string]url.Values {
	leg := url.Values{"CallSid": {"CA000000000000000000003930306c6567"}, "ParentCallSid": {"CA00000000000000000000000000000900"}, "CallStatus": {"ringing"},
		"SequenceNumber": {"1"}, "To": {"+15550001111"}}
	dial := inbound("CA00000000000000000000000000000900")
	dial.Set("CallStatus", "in-progress")
	dial.Set("DialCallStatus", "no-answer")
	return map[string]url.Values{
		"/twilio/voice":                  inbound("CA00000000000000000000000000000901"),
		"/twilio/dial-outcome?attempt=0": dial,
		"/twilio/call-status?target=0":   leg,
		"/twilio/call-status":            {"CallSid": {"CA00000000000000000000000000000900"}, "CallStatus": {"completed"}},
		"/twilio/conference-status":      {"ConferenceSid": {"CF00000000000000000000000000000900"}, "FriendlyName": {"CA00000000000000000000000000000900"}, "StatusCallbackEvent": {"conference-start"}},
		"/twilio/voicemail":              inbound("CA00000000000000000000000000000900"),
		"/twilio/recording":              inbound("CA00000000000000000000000000000900"),
		"/twilio/recording-status":       {"CallSid": {"CA00000000000000000000000000000900"}, "RecordingSid": {recSid(900)}, "RecordingStatus": {"completed"}, "RecordingDuration": {"30"}, "RecordingUrl": {"https://api.twilio.com/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid(900)}},
		"/twilio/transcription":          {"CallSid": {"CA00000000000000000000000000000900"}, "RecordingSid": {recSid(900)}, "TranscriptionStatus": {"completed"}, "TranscriptionText": {"Hello."}},
		"/twilio/hold-music":             {"CallSid": {"CA00000000000000000000000000000900"}},
		"/twilio/hold-wait?call=CA00000000000000000000000000000900&party=caller":                {"CallSid": {"CA00000000000000000000000000000900"}},
		"/twilio/hold-enqueue?call=CA00000000000000000000000000000900&party=caller":             {"CallSid": {"CA00000000000000000000000000000900"}},
		"/twilio/hold-resume?call=CA00000000000000000000000000000900&party=caller&queue=callee": {"CallSid": {"CA00000000000000000000000000000900"}},
		"/twilio/enqueue-outcome?call=CA00000000000000000000000000000900&party=caller":          {"CallSid": {"CA00000000000000000000000000000900"}, "QueueSid": {"QU00000000000000000000000000000900"}, "QueueResult": {"hangup"}},
		"/twilio/bridge-outcome?call=CA00000000000000000000000000000900&party=caller":           {"CallSid": {"CA00000000000000000000000000000900"}, "DialCallStatus": {"completed"}},
	}
}

// withStoredCall is a server with a number and a ringing call CA00000000000000000000000000000900 on it.
func withStoredCall(t *testing.T) *testServer {
	t.Helper()
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000900")))
	return s
}

func TestForgedWebhooks(t *testing.T) {
	s := withStoredCall(t)
	before := dbState(t, s)
	for target, form := range webhookForms() {
		path, query, _ := strings.Cut(target, "?")
		other := url.Values{}
		for k, v := range form {
			other[k] = v
		}
		other.Set("CallSid", "CA00000000000000000000000000000999")
		removed := url.Values{}
		for k, v := range form {
			removed[k] = v
		}
		delete(removed, slices.Sorted(maps.Keys(form))[0])
		added := url.Values{"Digits": {"1"}}
		for k, v := range form {
			added[k] = v
		}
		body := form.Encode()
		sign := func(u string, f url.Values) string { return signature.Sign(authToken, u, f) }
		for name, c := range map[string]struct{ target, body, sig string }{
			"missing":            {target, body, ""},
			"empty":              {target, body, " "},
			"garbage":            {target, body, "bm90IGEgc2lnbmF0dXJl"},
			"wrong token":        {target, body, signature.Sign("othertoken", publicURL+target, form)},
			"other host":         {target, body, sign("https://evil.example.com"+target, form)},
			"other scheme":       {target, body, sign("http://relay.example.com"+target, form)},
			"other path":         {target, body, sign(publicURL+"/twilio/other"+strings.TrimPrefix(target, path), form)},
			"query added":        {target + sep(target) + "attempt=7", body, sign(publicURL+target, form)},
			"param changed":      {target, other.Encode(), sign(publicURL+target, form)},
			"param removed":      {target, removed.Encode(), sign(publicURL+target, form)},
			"param added":        {target, added.Encode(), sign(publicURL+target, form)},
			"value repeated":     {target, body + "&CallSid=CA00000000000000000000000000000999", sign(publicURL+target, form)},
			"signed as GET":      {target, body, sign(publicURL+target, nil)},
			"body hash no match": {target + sep(target) + "bodySHA256=00", body, sign(publicURL+target+sep(target)+"bodySHA256=00", nil)},
		} {
			rec := s.twilioRaw(c.target, c.body, strings.TrimSpace(c.sig))
			refused(t, rec, http.StatusForbidden, target+": "+name)
		}
		if query != "" {
			rec := s.twilioRaw(target, body, sign(publicURL+path, form))
			refused(t, rec, http.StatusForbidden, target+": query dropped")
		}
	}
	assertUnchanged(t, s, before, "forged webhooks")
	// The call is as the genuine webhook left it.
	if c := getCall(t, s, "CA00000000000000000000000000000900"); c["status"] != "ringing" || len(c["legs"].([]any)) != 0 {
		t.Errorf("call after forgeries = %v %v, want ringing without legs", c["status"], c["legs"])
	}
}

func sep(target string) string {
	if strings.Contains(target, "?") {
		return "&"
	}
	return "?"
}

// Twilio retries a webhook it got no answer to, and a replayed capture is the same bytes: the
// second delivery answers alike and changes nothing.
func TestReplayedWebhooks(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, strings.Replace(threeTargets, `"timeout_seconds":15`, `"ring":"sequential"`, 1))
	dial := inbound("CA00000000000000000000000000000910")
	dial.Set("CallStatus", "in-progress")
	dial.Set("DialCallStatus", "no-answer")
	dial.Set("DialCallSid", "CA0000000000000000000000000000910a")
	steps := []struct {
		target string
		form   url.Values
	}{
		{"/twilio/voice", inbound("CA00000000000000000000000000000910")},
		{"/twilio/call-status?target=0", url.Values{"CallSid": {"CA0000000000000000000000000000910a"}, "ParentCallSid": {"CA00000000000000000000000000000910"}, "CallStatus": {"ringing"}, "SequenceNumber": {"1"}, "To": {"+15550001111"}}},
		{"/twilio/call-status?target=0", url.Values{"CallSid": {"CA0000000000000000000000000000910a"}, "ParentCallSid": {"CA00000000000000000000000000000910"}, "CallStatus": {"no-answer"}, "SequenceNumber": {"2"}, "To": {"+15550001111"}}},
		{"/twilio/dial-outcome?attempt=0", dial},
		{"/twilio/voicemail", inbound("CA00000000000000000000000000000910")},
		{"/twilio/recording", inbound("CA00000000000000000000000000000910")},
		{"/twilio/recording-status", url.Values{"AccountSid": {accountSID}, "CallSid": {"CA00000000000000000000000000000910"}, "RecordingSid": {recSid(910)},
			"RecordingUrl": {s.media.recordingURL(recSid(910))}, "RecordingStatus": {"completed"}, "RecordingDuration": {"30"}}},
		{"/twilio/transcription", url.Values{"AccountSid": {accountSID}, "CallSid": {"CA00000000000000000000000000000910"}, "RecordingSid": {recSid(910)},
			"TranscriptionSid": {"TR00000000000000000000000000000910"}, "TranscriptionStatus": {"completed"}, "TranscriptionText": {"Call me."}}},
		{"/twilio/call-status", url.Values{"CallSid": {"CA00000000000000000000000000000910"}, "CallStatus": {"completed"}}},
	}
	for _, st := range steps {
		first := s.twilio(st.target, st.form)
		if first.Code >= 300 {
			t.Fatalf("%s: %d %s", st.target, first.Code, first.Body)
		}
		after := dbState(t, s)
		again := s.twilio(st.target, st.form)
		if again.Code != first.Code || !bytes.Equal(canonical(again), canonical(first)) {
			t.Errorf("%s replayed: %d %q, first %d %q", st.target, again.Code, again.Body, first.Code, first.Body)
		}
		assertUnchanged(t, s, after, st.target+" replayed")
	}
	if got := jobCount(t, s); got != 1 {
		t.Errorf("email jobs = %d, want 1", got)
	}
}

// canonical is an answer's body, its TwiML in canonical form (attributes sorted).
func canonical(rec *httptest.ResponseRecorder) []byte {
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "text/xml") {
		return twimltest.Canonical(rec.Body.Bytes())
	}
	return rec.Body.Bytes()
}

func TestOversizedBodies(t *testing.T) {
	s := withStoredCall(t)
	before := dbState(t, s)
	const webhookLimit, apiLimit = 64 << 10, 256 << 10

	// A body over the limit is refused before its signature is even looked at: the request
	// signed over the very same body gets 413 too.
	for _, target := range []string{"/twilio/voice", "/twilio/call-status", "/twilio/recording-status"} {
		form := inbound("CA00000000000000000000000000000920")
		form.Set("CallerName", strings.Repeat("x", webhookLimit))
		body := form.Encode()
		refused(t, s.twilioRaw(target, body, signRaw(t, target, body)), http.StatusRequestEntityTooLarge, target+" oversized, signed")
		refused(t, s.twilioRaw(target, body, ""), http.StatusRequestEntityTooLarge, target+" oversized, unsigned")
	}
	// One byte over, and at the limit: the limit is exact.
	pad := func(n int) string {
		base := inbound("CA00000000000000000000000000000921").Encode() + "&Pad="
		return base + strings.Repeat("p", n-len(base))
	}
	over := pad(webhookLimit + 1)
	refused(t, s.twilioRaw("/twilio/voice", over, signRaw(t, "/twilio/voice", over)), http.StatusRequestEntityTooLarge, "one byte over")
	assertUnchanged(t, s, before, "oversized webhooks")
	at := pad(webhookLimit)
	if doc := twiml(t, s.twilioRaw("/twilio/voice", at, signRaw(t, "/twilio/voice", at))); doc.Find("Dial") == nil {
		t.Errorf("a body at the limit: %v, want the forward", doc.ChildNames())
	}

	// The ops API: JSON bodies over 256 KiB are refused, saying so.
	before = dbState(t, s)
	huge := `{"owner_email":"dana@example.com","greeting":"` + strings.Repeat("a", apiLimit) + `","targets":[{"type":"phone","to":"+15550001111"}]}`
	for _, c := range []struct{ method, path string }{
		{http.MethodPut, "/api/numbers/%2B15551230009"},
		{http.MethodPost, "/api/calls/CA00000000000000000000000000000900/hold"},
	} {
		rec := s.api(c.method, c.path, huge)
		refused(t, rec, http.StatusBadRequest, c.path+" oversized")
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code != "invalid" || !strings.Contains(e.Error.Message, "larger than") {
			t.Errorf("%s oversized: %s, want an invalid error saying the body is too large", c.path, rec.Body)
		}
	}
	// Without the token the body is not read at all.
	refused(t, s.apiAs(http.MethodPut, "/api/numbers/%2B15551230009", huge, ""), http.StatusUnauthorized, "oversized without token")
	assertUnchanged(t, s, before, "oversized API requests")
}

// Postgres stores neither invalid UTF-8 nor NUL in text: such input is refused as bad input
// with a 400, never met later as a database error (a 500, or a webhook answered as if the
// database were down).
func TestInvalidUTF8(t *testing.T) {
	s := withStoredCall(t)
	before := dbState(t, s)
	for target, form := range webhookForms() {
		for name, bad := range map[string]string{"invalid UTF-8": "\xff\xfe", "truncated rune": "caf\xc3", "NUL": "a\x00b"} {
			for _, field := range []string{"CallSid", "From", "DialSipHeader_X-Note", "TranscriptionText"} {
				f := url.Values{}
				for k, v := range form {
					f[k] = v
				}
				f.Set(field, f.Get(field)+bad)
				body := f.Encode()
				rec := s.twilioRaw(target, body, signRaw(t, target, body))
				refused(t, rec, http.StatusBadRequest, fmt.Sprintf("%s: %s in %s", target, name, field))
			}
			// In a parameter's name too.
			body := form.Encode() + "&" + url.QueryEscape("SipHeader_X-"+bad) + "=1"
			refused(t, s.twilioRaw(target, body, signRaw(t, target, body)), http.StatusBadRequest, target+": "+name+" in a name")
		}
	}
	assertUnchanged(t, s, before, "webhooks with invalid UTF-8")

	routing := func(greeting, password, header string) string {
		return `{"owner_email":"dana@example.com","greeting":"` + greeting + `","targets":[{"type":"sip","uri":"sip:dana@pbx.example.com",` +
			`"username":"dana","password":"` + password + `","headers":{"x-note":"` + header + `"}}]}`
	}
	for _, c := range []struct{ name, body, field string }{
		{"raw invalid UTF-8 in a value", routing("caf\xe9", "p", "h"), ""},
		{"raw invalid UTF-8 in a name", `{"owner_email":"dana@example.com","\xff":1,"targets":[{"type":"phone","to":"+15550001111"}]}`, ""},
		{"NUL in the greeting", routing(`a\u0000b`, "p", "h"), "greeting"},
		{"NUL in a SIP password", routing("hi", `p\u0000`, "h"), "targets[0].password"},
		{"NUL in a SIP header", routing("hi", "p", `h\u0000`), "targets[0].headers.x-note"},
	} {
		rec := s.api(http.MethodPut, "/api/numbers/%2B15551230009", c.body)
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != http.StatusBadRequest || e.Error.Code != "invalid" {
			t.Errorf("PUT with %s: %d %s, want 400 invalid", c.name, rec.Code, rec.Body)
			continue
		}
		if c.field != "" && e.Error.Field != c.field {
			t.Errorf("PUT with %s: field %q, want %q", c.name, e.Error.Field, c.field)
		}
	}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/calls/CA%FF", ""},
		{http.MethodGet, "/api/calls/CA%00", ""},
		{http.MethodPost, "/api/calls/CA%FF/hold", ""},
		{http.MethodPost, "/api/calls/CA00000000000000000000000000000900/hold", "{\"party\":\"caller\xff\"}"},
		{http.MethodGet, "/api/voicemails?number=%FF", ""},
		{http.MethodGet, "/api/calls?status=%FF", ""},
		{http.MethodGet, "/api/numbers/%FF", ""},
		{http.MethodDelete, "/api/numbers/%2B1555%00", ""},
	} {
		rec := s.api(c.method, c.path, c.body)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusNotFound {
			t.Errorf("%s %s: %d %s, want 400 or 404", c.method, c.path, rec.Code, rec.Body)
		}
	}
	assertUnchanged(t, s, before, "API requests with invalid UTF-8")
}
