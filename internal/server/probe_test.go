package server_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/callrelay/callrelay/internal/signature"
)

// The findings of the security probe of issue 14, replayed against the real router.

// TestProbe_UniqueMethods: a client sending requests with made-up methods, long paths and
// headers grows neither the metrics nor the log lines: a method outside the standard set is
// counted as "other", a route by its pattern, and every logged string is clipped.
func TestProbe_UniqueMethods(t *testing.T) {
	var logs lockedBuffer
	s := newTestServer(t, func(st *setup) { st.logs = &logs })
	s.putNumber(masked, threeTargets)

	const n = 300
	long := strings.Repeat("9", 4000)
	for i := range n {
		method := fmt.Sprintf("M%06d%s", i, long)
		paths := []string{"/healthz", "/api/calls/CA" + long + fmt.Sprint(i), "/nowhere/" + long + fmt.Sprint(i), "/twilio/voice"}
		req := httptest.NewRequest(method, paths[i%len(paths)], nil)
		req.Header.Set("User-Agent", "probe/"+long)
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		if rec.Code < 400 {
			t.Fatalf("method %.10s… %s: %d, want a refusal", method, paths[i%len(paths)], rec.Code)
		}
	}
	// A signed webhook whose CallSid is as large as a body may be: refused, and logged clipped.
	bigSid := url.Values{"CallSid": {"CA" + strings.Repeat("a", 60<<10)}, "To": {masked}}
	if rec := s.twilio("/twilio/voice", bigSid); rec.Code != http.StatusBadRequest {
		t.Errorf("60 KiB CallSid: %d, want 400", rec.Code)
	}
	// GET /api/calls/{callSid} with a long SID is one series, under its pattern.
	s.api(http.MethodGet, "/api/calls/CA"+long, "")

	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	if len(body) > 64<<10 {
		t.Errorf("/metrics is %d bytes after %d requests with made-up methods, want under 64 KiB", len(body), n)
	}
	standard := map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true,
		"OPTIONS": true, "CONNECT": true, "TRACE": true, "other": true}
	series := 0
	sawOther := false
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "callrelay_http_requests_total{") {
			continue
		}
		series++
		m := regexp.MustCompile(`method="([^"]*)"`).FindStringSubmatch(line)
		if m == nil || !standard[m[1]] {
			t.Errorf("series with a method label outside the standard set: %.200s", line)
			break
		}
		sawOther = sawOther || m[1] == "other"
		if r := regexp.MustCompile(`route="([^"]*)"`).FindStringSubmatch(line); r == nil || len(r[1]) > 64 {
			t.Errorf("series with a route label that is not a pattern: %.200s", line)
		}
	}
	if !sawOther {
		t.Errorf("no series with method=\"other\": the made-up methods were not counted")
	}
	if series > 20 {
		t.Errorf("%d request series, want a few (routes × standard methods × codes)", series)
	}

	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) < n {
		t.Fatalf("%d log lines, want one per request at least", len(lines))
	}
	for _, line := range lines {
		if len(line) > 4<<10 {
			t.Errorf("log line of %d bytes, want at most 4 KiB: %.200s…", len(line), line)
			break
		}
	}
}

// TestProbe_ShiftedSIDBoundary: Twilio signs the URL and its parameters concatenated without
// separators, so a captured voice webhook replayed with CallSid and CallStatus run together
// keeps its signature. Its CallSid is not a SID: refused, and no second call is created.
func TestProbe_ShiftedSIDBoundary(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	const sid = "CA0000000000000000000000000000800a"
	captured := inbound(sid)
	sig := signature.Sign(authToken, publicURL+"/twilio/voice", captured)
	twiml(t, s.twilioSigned("/twilio/voice", captured, sig))

	shifted := inbound(sid + "CallStatusringing")
	shifted.Del("CallStatus")
	if got := signature.Sign(authToken, publicURL+"/twilio/voice", shifted); got != sig {
		t.Fatalf("the shifted form signs as %s, not as the captured one (%s): the premise fails", got, sig)
	}
	before := dbState(t, s)
	rec := s.twilioSigned("/twilio/voice", shifted, sig)
	refused(t, rec, http.StatusBadRequest, "shifted boundaries")
	if !strings.Contains(rec.Body.String(), "CallSid") {
		t.Errorf("refusal %q does not name CallSid", rec.Body)
	}
	assertUnchanged(t, s, before, "shifted boundaries")
	var calls int
	if err := s.db.Pool().QueryRow(context.Background(), `SELECT count(*) FROM calls`).Scan(&calls); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("%d calls, want the captured one only", calls)
	}
}

// TestProbe_MalformedSIDs: every SID a webhook carries, on every route, is checked before
// anything is written: a malformed one is a 400 naming the parameter.
func TestProbe_MalformedSIDs(t *testing.T) {
	s := withStoredCall(t)
	bad := map[string]string{ // by prefix: what Twilio never sends
		"AC": "AC0123456789abcdef0123456789abcdeg", "CA": "CA00000000000000000000000000000900x",
		"CF": "CF900", "RE": "re00000000000000000000000000000900", "TR": "TR" + strings.Repeat("0", 31),
		"QU": "QU0000000000000000000000000000090 ",
	}
	params := map[string]string{"AccountSid": "AC", "CallSid": "CA", "ParentCallSid": "CA", "DialCallSid": "CA",
		"CallSidEndingConference": "CA", "ConferenceSid": "CF", "RecordingSid": "RE", "TranscriptionSid": "TR", "QueueSid": "QU"}
	before := dbState(t, s)
	tried := 0
	for target, form := range webhookForms() {
		for name, prefix := range params {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			f.Set(name, bad[prefix])
			rec := s.twilio(target, f)
			what := fmt.Sprintf("%s with %s=%q", target, name, bad[prefix])
			refused(t, rec, http.StatusBadRequest, what)
			if !strings.Contains(rec.Body.String(), name) {
				t.Errorf("%s: refusal %q does not name %s", what, rec.Body, name)
			}
			tried++
		}
	}
	for _, target := range []string{"/twilio/call-status?call=CA900", "/twilio/hold-wait?call=CA1&party=caller",
		"/twilio/bridge-outcome?call=CA00000000000000000000000000000900%00&party=caller"} {
		rec := s.twilio(target, url.Values{"CallSid": {"CA00000000000000000000000000000900"}, "CallStatus": {"completed"}})
		refused(t, rec, http.StatusBadRequest, target)
	}
	// The conference is named after the caller's CallSid.
	rec := s.twilio("/twilio/conference-status", url.Values{"ConferenceSid": {"CF00000000000000000000000000000900"},
		"FriendlyName": {"CA900"}, "StatusCallbackEvent": {"conference-start"}})
	refused(t, rec, http.StatusBadRequest, "conference named CA900")
	assertUnchanged(t, s, before, "malformed SIDs")
	if tried < 100 {
		t.Errorf("only %d forms tried", tried)
	}

	// Uppercase hex is a SID by Twilio's API spec: accepted.
	upper := url.Values{"CallSid": {"CA00000000000000000000000000000900"}, "CallStatus": {"in-progress"},
		"AccountSid": {"AC0123456789ABCDEF0123456789ABCDEF"}}
	if rec := s.twilio("/twilio/call-status", upper); rec.Code != http.StatusNoContent {
		t.Errorf("uppercase-hex AccountSid: %d %s, want 204", rec.Code, rec.Body)
	}
}
