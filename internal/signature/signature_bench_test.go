package signature

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// benchVoiceForm is an incoming-call webhook as Twilio sends it to a masked number: the call
// parameters, the caller's and callee's geography and the CallToken (a long URL-encoded JSON
// value), about 1.3 KB encoded.
func benchVoiceForm() url.Values {
	return url.Values{
		"AccountSid":    {"AC0123456789abcdef0123456789abcdef"},
		"ApiVersion":    {"2010-04-01"},
		"CallSid":       {"CA5f0c9d3e8a7b6c5d4e3f2a1b0c9d8e7f"},
		"CallStatus":    {"ringing"},
		"CallToken":     {`{"parentCallInfoToken":"` + strings.Repeat("eyJhbGciOiJFUzI1NiJ9", 24) + `","identityHeaderTokens":[]}`},
		"Called":        {"+15551230000"},
		"CalledCity":    {"SAN FRANCISCO"},
		"CalledCountry": {"US"},
		"CalledState":   {"CA"},
		"CalledZip":     {"94105"},
		"Caller":        {"+15559870000"},
		"CallerCity":    {"OAKLAND"},
		"CallerCountry": {"US"},
		"CallerState":   {"CA"},
		"CallerZip":     {"94612"},
		"Direction":     {"inbound"},
		"From":          {"+15559870000"},
		"FromCity":      {"OAKLAND"},
		"FromCountry":   {"US"},
		"FromState":     {"CA"},
		"FromZip":       {"94612"},
		"StirVerstat":   {"TN-Validation-Passed-A"},
		"To":            {"+15551230000"},
		"ToCity":        {"SAN FRANCISCO"},
		"ToCountry":     {"US"},
		"ToState":       {"CA"},
		"ToZip":         {"94105"},
	}
}

// benchDialOutcomeForm is the <Dial> action after nobody answered.
func benchDialOutcomeForm() url.Values {
	f := benchVoiceForm()
	delete(f, "CallToken")
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "no-answer")
	f.Set("DialCallSid", "CA0f1e2d3c4b5a69788796a5b4c3d2e1f0")
	return f
}

// benchCallStatusForm is the "ringing" status callback of a forwarded leg.
func benchCallStatusForm() url.Values {
	return url.Values{
		"AccountSid":     {"AC0123456789abcdef0123456789abcdef"},
		"ApiVersion":     {"2010-04-01"},
		"CallSid":        {"CA0f1e2d3c4b5a69788796a5b4c3d2e1f0"},
		"CallStatus":     {"ringing"},
		"CallbackSource": {"call-progress-events"},
		"Called":         {"+15550001111"},
		"Caller":         {"+15559870000"},
		"Direction":      {"outbound-dial"},
		"From":           {"+15559870000"},
		"ParentCallSid":  {"CA5f0c9d3e8a7b6c5d4e3f2a1b0c9d8e7f"},
		"SequenceNumber": {"1"},
		"Timestamp":      {"Sat, 21 Nov 2026 10:00:01 +0000"},
		"To":             {"+15550001111"},
	}
}

// BenchmarkVerifyWebhook is the signature check of the middleware: Verify on the raw body of
// a webhook as Twilio signs it (public URL without port), which also parses the form.
func BenchmarkVerifyWebhook(b *testing.B) {
	public := &url.URL{Scheme: "https", Host: "relay.example.com"}
	v := NewValidator("0123456789abcdef0123456789abcdef", public)
	for _, c := range []struct {
		name, target string
		form         url.Values
	}{
		{"voice", "/twilio/voice", benchVoiceForm()},
		{"dial-outcome", "/twilio/dial-outcome?attempt=0", benchDialOutcomeForm()},
		{"call-status", "/twilio/call-status?target=0", benchCallStatusForm()},
	} {
		b.Run(c.name, func(b *testing.B) {
			body := []byte(c.form.Encode())
			r := httptest.NewRequest(http.MethodPost, c.target, nil)
			r.Header.Set(Header, Sign("0123456789abcdef0123456789abcdef", public.String()+c.target, c.form))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(r, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("voice/bad-signature", func(b *testing.B) {
		form := benchVoiceForm()
		body := []byte(form.Encode())
		r := httptest.NewRequest(http.MethodPost, "/twilio/voice", nil)
		r.Header.Set(Header, Sign("wrong-token", public.String()+"/twilio/voice", form))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(r, body); err != ErrBadSignature {
				b.Fatal(err)
			}
		}
	})
}
