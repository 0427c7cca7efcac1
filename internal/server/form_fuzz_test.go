package server

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callrelay/callrelay/internal/signature"
)

// FuzzWebhookForm sends any body, signed as Twilio signs it, through the webhook middleware
// that reads and parses Twilio's forms (twilioSignature), as the router mounts it. A body is
// either handed on whole, r.PostForm equal to its parameters in body order, or refused with a
// 4xx that says why, the handler never reached: 413 over the size limit, 403 when it does not
// parse (it cannot have been signed), 400 when a parameter is not UTF-8 text without NUL or a
// SID parameter (or the query's call=) is not shaped like a Twilio SID.
func FuzzWebhookForm(f *testing.F) {
	voice := url.Values{"AccountSid": {"AC0123456789abcdef0123456789abcdef"}, "CallSid": {"CA00000000000000000000000000000001"}, "CallStatus": {"ringing"},
		"From": {"+15559870000"}, "To": {"+15551230000"}, "Direction": {"inbound"}}
	f.Add(voice.Encode(), "/twilio/voice", false)
	f.Add("CallSid=CA00000000000000000000000000000001&DialSipHeader_X-A=1&DialSipHeader_X-A=2&DialSipHeader_=x&DialCallDuration=-0", "/twilio/dial-outcome?attempt=0", false)
	f.Add("From=%FF&To=%00", "/twilio/voice", true)
	f.Add("a=%zz;b", "/twilio/call-status", false)
	f.Add("CallerName="+strings.Repeat("x", maxWebhookBody), "/twilio/voice", false)
	f.Add("", "/twilio/hold-music?call=CA00000000000000000000000000000001", false)
	// A signed form replayed with its boundaries shifted: the same signature, a made-up CallSid.
	f.Add("CallSid=CA00000000000000000000000000008001CallStatusringing", "/twilio/call-status", false)
	f.Add("RecordingSid=RE0000000000000000000000000000000", "/twilio/recording-status", false)
	f.Add("", "/twilio/hold-wait?call=CA1&party=caller", false)

	const token, public = "fuzztoken", "https://relay.example.com"
	pub, _ := url.Parse(public)
	v := signature.NewValidator(token, pub)
	m := newMetrics(prometheus.NewRegistry())
	f.Fuzz(func(t *testing.T, body, target string, skip bool) {
		req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
		if err != nil || !strings.HasPrefix(req.URL.Path, "/") || req.URL.Host != "" || req.URL.Query().Has("bodySHA256") {
			return // not a request Twilio could send; JSON bodies are signature's to fuzz
		}
		want, parseErr := url.ParseQuery(body)
		var reached url.Values
		h := twilioSignature(v, skip, m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached = r.PostForm
			w.WriteHeader(http.StatusNoContent)
		}))
		req.Header.Set(signature.Header, signature.Sign(token, public+req.URL.RequestURI(), want))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		status := http.StatusNoContent
		switch {
		case len(body) > maxWebhookBody:
			status = http.StatusRequestEntityTooLarge
		case parseErr != nil && skip:
			status = http.StatusBadRequest
		case parseErr != nil:
			status = http.StatusForbidden
		case !allText(want):
			status = http.StatusBadRequest
		case !allSIDs(want, req.URL.Query()):
			status = http.StatusBadRequest
		}
		if rec.Code != status {
			t.Fatalf("body %q to %s (skip %v): status %d %q, want %d", body, target, skip, rec.Code, rec.Body, status)
		}
		if status != http.StatusNoContent {
			if reached != nil {
				t.Fatalf("body %q: refused with %d, yet the handler ran", body, status)
			}
			if len(bytes.TrimSpace(rec.Body.Bytes())) == 0 {
				t.Fatalf("body %q: refused with %d and an empty body", body, status)
			}
			return
		}
		if len(want) == 0 {
			want = url.Values{}
		}
		if !reflect.DeepEqual(reached, want) {
			t.Fatalf("body %q: handler got %v, want %v", body, reached, want)
		}

		// What the dial-outcome handler reads from a form: every DialSipHeader_<name>.
		n := 0
		for k := range reached {
			if name, ok := strings.CutPrefix(k, "DialSipHeader_"); ok && name != "" && len(reached[k]) > 0 {
				n++
			}
		}
		hs := sipHeaders(reached)
		if len(hs) != n {
			t.Fatalf("sipHeaders: %d headers, want %d", len(hs), n)
		}
		for name, val := range hs {
			if vs := reached["DialSipHeader_"+name]; vs[0] != val {
				t.Fatalf("sipHeaders: %q = %q, not the form's first DialSipHeader_%s", name, val, name)
			}
		}
	})
}

func allText(form url.Values) bool {
	for k, vs := range form {
		for _, s := range append(vs, k) {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				return false
			}
		}
	}
	return true
}

// fuzzSIDs are the webhook parameters holding a SID, by the prefix Twilio's API spec gives it.
var fuzzSIDs = map[string]*regexp.Regexp{
	"AccountSid": regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`), "CallSid": regexp.MustCompile(`^CA[0-9a-fA-F]{32}$`),
	"ParentCallSid": regexp.MustCompile(`^CA[0-9a-fA-F]{32}$`), "DialCallSid": regexp.MustCompile(`^CA[0-9a-fA-F]{32}$`),
	"CallSidEndingConference": regexp.MustCompile(`^CA[0-9a-fA-F]{32}$`), "ConferenceSid": regexp.MustCompile(`^CF[0-9a-fA-F]{32}$`),
	"RecordingSid": regexp.MustCompile(`^RE[0-9a-fA-F]{32}$`), "TranscriptionSid": regexp.MustCompile(`^TR[0-9a-fA-F]{32}$`),
	"QueueSid": regexp.MustCompile(`^QU[0-9a-fA-F]{32}$`),
}

// allSIDs reports whether every non-empty SID of form, and the query's call=, is well shaped.
func allSIDs(form, query url.Values) bool {
	for name, re := range fuzzSIDs {
		for _, v := range form[name] {
			if v != "" && !re.MatchString(v) {
				return false
			}
		}
	}
	for _, v := range query["call"] {
		if v != "" && !fuzzSIDs["CallSid"].MatchString(v) {
			return false
		}
	}
	return true
}
