package signature

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	twiliospec "github.com/callrelay/callrelay/third_party/twilio"
)

// Vectors from third_party/twilio/signature-vectors.md (TestVectorsAreVendored ties them to it).
const (
	token = "12345"
	path  = "/myapp.php?foo=1&bar=2"

	sigA         = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	sigA443      = "EpDEmp1PyjDYp77YxYU3GILBWzE="
	sigB         = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
	sigB443      = "kvajT1Ptam85bY51eRf/AJRuM3w="
	sigBHTTP80   = "0ZXoZLH/DfblKGATFgpif+LLRf4="
	sigBHTTP     = "OyGYPqTF6ztdbRNCvuQO/oPvqQ4="
	sigBHTTP1234 = "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
	sigReason    = "vOEb5UThFn24KEfnOFLQY2AE5FY="
	sigReasonBad = "95+Bu0JVPi0r/SsESZCVf0dWAjw="
	sigRepeated  = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
	sigJSON      = "a9nBmqA0ju/hNViExpshrM61xv4="

	jsonBody = `{"property": "value", "boolean": true}`
	jsonHash = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
)

var (
	paramsA = url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+12349013030"},
		"Digits":  {"1234"},
		"From":    {"+12349013030"},
		"To":      {"+18005551212"},
	}
	paramsB = url.Values{
		"CallSid": {"CA1234567890ABCDE"},
		"Caller":  {"+14158675309"},
		"Digits":  {"1234"},
		"From":    {"+14158675309"},
		"To":      {"+18005551212"},
	}
	bodyA        = paramsA.Encode()
	bodyB        = paramsB.Encode()
	bodyReason   = bodyB + "&ReasonConferenceEnded=test&Reason=Participant"
	bodyRepeated = "Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234&Digits=1234"
)

// TestVectorsAreVendored: the constants above are exactly the signatures of the vendored vectors
// file, so neither can change without the other.
func TestVectorsAreVendored(t *testing.T) {
	doc := twiliospec.SignatureVectors
	ours := []string{sigA, sigA443, sigB, sigB443, sigBHTTP80, sigBHTTP, sigBHTTP1234, sigReason, sigReasonBad, sigRepeated, sigJSON}
	for _, s := range append(slices.Clone(ours), token, path, jsonBody, jsonHash) {
		if !strings.Contains(doc, s) {
			t.Errorf("%q is not in third_party/twilio/signature-vectors.md", s)
		}
	}
	// A signature is HMAC-SHA1 in standard Base64: 28 characters ending in "=".
	theirs := regexp.MustCompile("`([A-Za-z0-9+/]{27}=)`").FindAllStringSubmatch(doc, -1)
	if len(theirs) == 0 {
		t.Fatal("no signatures found in the vectors file")
	}
	for _, m := range theirs {
		if !slices.Contains(ours, m[1]) {
			t.Errorf("signature %s of the vectors file is not tested", m[1])
		}
	}
}

// with returns bodyB with one parameter set to a new value.
func with(name, value string) string {
	p := url.Values{}
	for k, v := range paramsB {
		p[k] = v
	}
	p.Set(name, value)
	return p.Encode()
}

type reqCase struct {
	name   string
	public string // public URL given to NewValidator
	token  string // defaults to token
	method string // defaults to POST
	target string // request path and query, or an absolute URL whose host must be ignored
	host   string // Host header override
	body   string
	sig    string
}

func (c reqCase) run(t *testing.T) (*http.Request, *Validator, url.Values, error) {
	t.Helper()
	pub, err := url.Parse(c.public)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", c.public, err)
	}
	tok := c.token
	if tok == "" {
		tok = token
	}
	method := c.method
	if method == "" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, c.target, strings.NewReader(c.body))
	if strings.HasPrefix(c.body, "{") {
		r.Header.Set("Content-Type", "application/json")
	} else if c.body != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if c.host != "" {
		r.Host = c.host
	}
	if c.sig != "" {
		r.Header.Set(Header, c.sig)
	}
	v := NewValidator(tok, pub)
	form, err := v.Verify(r, []byte(c.body))
	return r, v, form, err
}

func TestSign(t *testing.T) {
	u := "https://mycompany.com" + path
	reason := paramsB.Encode() + "&ReasonConferenceEnded=test&Reason=Participant"
	tests := []struct {
		name   string
		url    string
		params string
		want   string
	}{
		{"A", u, bodyA, sigA},
		{"A :443", "https://mycompany.com:443" + path, bodyA, sigA443},
		{"B", u, bodyB, sigB},
		{"B :443", "https://mycompany.com:443" + path, bodyB, sigB443},
		{"B http :80", "http://mycompany.com:80" + path, bodyB, sigBHTTP80},
		{"B http", "http://mycompany.com" + path, bodyB, sigBHTTP},
		{"B http :1234", "http://mycompany.com:1234" + path, bodyB, sigBHTTP1234},
		{"Reason sorted by name", u, reason, sigReason},
		{"repeated Digits", u, bodyRepeated, sigRepeated},
		{"JSON bodySHA256", u + "&bodySHA256=" + jsonHash, "", sigJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, err := url.ParseQuery(tt.params)
			if err != nil {
				t.Fatal(err)
			}
			if got := Sign(token, tt.url, params); got != tt.want {
				t.Errorf("Sign() = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("name+value sort differs", func(t *testing.T) {
		params, _ := url.ParseQuery(reason)
		if got := Sign(token, u, params); got == sigReasonBad {
			t.Errorf("Sign() = %q, the wrongly sorted signature", got)
		}
	})
	t.Run("JSON body hash", func(t *testing.T) {
		sum := sha256.Sum256([]byte(jsonBody))
		if got := hex.EncodeToString(sum[:]); got != jsonHash {
			t.Errorf("sha256(body) = %s, want %s", got, jsonHash)
		}
	})
}

func TestValidator_OK(t *testing.T) {
	prefixed := Sign(token, "https://example.com/relay/voice?x=1", paramsB)
	get := Sign(token, "https://mycompany.com"+path, nil)
	tests := []reqCase{
		{name: "A", public: "https://mycompany.com", target: path, body: bodyA, sig: sigA},
		{name: "A signed with :443", public: "https://mycompany.com", target: path, body: bodyA, sig: sigA443},
		{name: "A public URL with :443, signed without", public: "https://mycompany.com:443", target: path, body: bodyA, sig: sigA},
		{name: "A public URL with :443, signed with", public: "https://mycompany.com:443", target: path, body: bodyA, sig: sigA443},
		{name: "B", public: "https://mycompany.com", target: path, body: bodyB, sig: sigB},
		{name: "B signed with :443", public: "https://mycompany.com", target: path, body: bodyB, sig: sigB443},
		{name: "B http signed with :80", public: "http://mycompany.com", target: path, body: bodyB, sig: sigBHTTP80},
		{name: "B http without port", public: "http://mycompany.com", target: path, body: bodyB, sig: sigBHTTP},
		{name: "B http public URL with :80", public: "http://mycompany.com:80", target: path, body: bodyB, sig: sigBHTTP},
		{name: "B http :1234", public: "http://mycompany.com:1234", target: path, body: bodyB, sig: sigBHTTP1234},
		{name: "Reason sorted by name", public: "https://mycompany.com", target: path, body: bodyReason, sig: sigReason},
		{name: "repeated Digits sorted by value", public: "https://mycompany.com", target: path, body: bodyRepeated, sig: sigRepeated},
		// Twilio signs each distinct value once, so the duplicate is invisible.
		{name: "repeated Digits, duplicate collapsed", public: "https://mycompany.com", target: path, body: "Digits=1234&Sid=CA123&Digits=5678&SidAccount=AC123", sig: sigRepeated},
		{name: "JSON bodySHA256", public: "https://mycompany.com", target: path + "&bodySHA256=" + jsonHash, body: jsonBody, sig: sigJSON},
		{name: "GET signs URL only", public: "https://mycompany.com", method: http.MethodGet, target: path, sig: get},
		{name: "public URL path prefix", public: "https://example.com/relay", target: "/voice?x=1", body: bodyB, sig: prefixed},
		{name: "public URL path prefix, trailing slash", public: "https://example.com/relay/", target: "/voice?x=1", body: bodyB, sig: prefixed},
		{name: "Host header ignored", public: "https://mycompany.com", target: "http://evil.example:8080" + path, host: "evil.example", body: bodyB, sig: sigB},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, v, form, err := tt.run(t)
			if err != nil {
				t.Fatalf("Verify() error = %v, want nil", err)
			}
			if strings.HasPrefix(tt.body, "{") {
				if form != nil {
					t.Errorf("Verify() form = %v, want nil for JSON", form)
				}
				return
			}
			want, _ := url.ParseQuery(tt.body)
			if got, w := form.Encode(), want.Encode(); got != w {
				t.Errorf("Verify() form = %q, want %q", got, w)
			}
			if !v.ValidRequest(r, want) {
				t.Errorf("ValidRequest() = false, want true")
			}
		})
	}
}

func TestValidator_ErrBadSignature(t *testing.T) {
	evil := Sign(token, "https://evil.example"+path, paramsB)
	prefixed := Sign(token, "https://example.com/relay/voice?x=1", paramsB)
	get := Sign(token, "https://mycompany.com"+path, nil)
	tests := []reqCase{
		{name: "wrongly sorted by name+value", public: "https://mycompany.com", target: path, body: bodyReason, sig: sigReasonBad},
		{name: "wrong token", public: "https://mycompany.com", token: "54321", target: path, body: bodyB, sig: sigB},
		{name: "parameter added", public: "https://mycompany.com", target: path, body: bodyB + "&Extra=1", sig: sigB},
		{name: "parameter changed", public: "https://mycompany.com", target: path, body: with("To", "+18005550000"), sig: sigB},
		{name: "parameter removed", public: "https://mycompany.com", target: path, body: bodyA[:strings.LastIndex(bodyA, "&")], sig: sigA},
		{name: "distinct repeated value dropped", public: "https://mycompany.com", target: path, body: "Sid=CA123&SidAccount=AC123&Digits=1234&Digits=1234", sig: sigRepeated},
		{name: "distinct repeated value added", public: "https://mycompany.com", target: path, body: bodyRepeated + "&Digits=9", sig: sigRepeated},
		{name: "A signature on B params", public: "https://mycompany.com", target: path, body: bodyB, sig: sigA},
		{name: "query changed", public: "https://mycompany.com", target: "/myapp.php?foo=1&bar=3", body: bodyB, sig: sigB},
		{name: "query reordered", public: "https://mycompany.com", target: "/myapp.php?bar=2&foo=1", body: bodyB, sig: sigB},
		{name: "query dropped", public: "https://mycompany.com", target: "/myapp.php", body: bodyB, sig: sigB},
		{name: "path changed", public: "https://mycompany.com", target: "/other.php?foo=1&bar=2", body: bodyB, sig: sigB},
		{name: "scheme differs", public: "http://mycompany.com", target: path, body: bodyB, sig: sigB},
		{name: ":1234 signature, public URL without port", public: "http://mycompany.com", target: path, body: bodyB, sig: sigBHTTP1234},
		{name: "no-port signature, public URL with :1234", public: "http://mycompany.com:1234", target: path, body: bodyB, sig: sigBHTTP},
		{name: ":80 signature, public URL with :1234", public: "http://mycompany.com:1234", target: path, body: bodyB, sig: sigBHTTP80},
		{name: "path prefix missing from public URL", public: "https://example.com", target: "/voice?x=1", body: bodyB, sig: prefixed},
		{name: "signed for the Host header", public: "https://mycompany.com", target: "https://evil.example" + path, host: "evil.example", body: bodyB, sig: evil},
		{name: "body injected into signed GET", public: "https://mycompany.com", method: http.MethodGet, target: path, body: "Digits=1", sig: get},
		{name: "JSON signature on other URL", public: "https://mycompany.com", target: "/myapp.php?foo=1&bodySHA256=" + jsonHash, body: jsonBody, sig: sigJSON},
		{name: "not Base64", public: "https://mycompany.com", target: path, body: bodyB, sig: "RSOYDt4T1cUTdK1PDd93/VVr8B8"},
		{name: "lowercased", public: "https://mycompany.com", target: path, body: bodyB, sig: strings.ToLower(sigB)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, v, form, err := tt.run(t)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("Verify() error = %v, want %v", err, ErrBadSignature)
			}
			if form != nil {
				t.Errorf("Verify() form = %v, want nil on error", form)
			}
			params, _ := url.ParseQuery(tt.body)
			if v.ValidRequest(r, params) {
				t.Errorf("ValidRequest() = true, want false")
			}
		})
	}
}

func TestValidator_ErrMissingSignature(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header []string // nil: no header at all
	}{
		{"missing", nil},
		{"empty", []string{""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := NewValidator(token, &url.URL{Scheme: "https", Host: "mycompany.com"})
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(bodyB))
			if tt.header != nil {
				r.Header[Header] = tt.header
			}
			if _, err := v.Verify(r, []byte(bodyB)); !errors.Is(err, ErrMissingSignature) {
				t.Errorf("Verify() error = %v, want %v", err, ErrMissingSignature)
			}
			if v.ValidRequest(r, paramsB) {
				t.Errorf("ValidRequest() = true, want false")
			}
		})
	}
}

func TestValidator_ErrBodyHash(t *testing.T) {
	badHash := path + "&bodySHA256=zz"
	tests := []reqCase{
		{name: "tampered JSON body", public: "https://mycompany.com", target: path + "&bodySHA256=" + jsonHash, body: `{"property": "value", "boolean": false}`, sig: sigJSON},
		{name: "empty body", public: "https://mycompany.com", target: path + "&bodySHA256=" + jsonHash, sig: sigJSON},
		{name: "malformed bodySHA256", public: "https://mycompany.com", target: badHash, body: jsonBody, sig: Sign(token, "https://mycompany.com"+badHash, nil)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := tt.run(t); !errors.Is(err, ErrBodyHash) {
				t.Errorf("Verify() error = %v, want %v", err, ErrBodyHash)
			}
		})
	}
}

func TestValidator_ErrMalformedBody(t *testing.T) {
	c := reqCase{public: "https://mycompany.com", target: path, body: "Digits=%zz", sig: sigB}
	if _, _, _, err := c.run(t); !errors.Is(err, ErrMalformedBody) {
		t.Errorf("Verify() error = %v, want %v", err, ErrMalformedBody)
	}
}

func TestValidator_ErrMisconfigured(t *testing.T) {
	tests := []struct {
		name   string
		token  string
		public *url.URL
	}{
		{"empty token", "", &url.URL{Scheme: "https", Host: "mycompany.com"}},
		{"nil public URL", token, nil},
		{"public URL without scheme", token, &url.URL{Path: "mycompany.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewValidator(tt.token, tt.public)
			r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(bodyB))
			// Even a signature made with the same (empty) token must fail.
			r.Header.Set(Header, Sign(tt.token, "https://mycompany.com"+path, paramsB))
			if _, err := v.Verify(r, []byte(bodyB)); !errors.Is(err, ErrMisconfigured) {
				t.Errorf("Verify() error = %v, want %v", err, ErrMisconfigured)
			}
			if v.ValidRequest(r, paramsB) {
				t.Errorf("ValidRequest() = true, want false")
			}
		})
	}
}

// ValidRequest has no raw body, so it must not accept a URL-only signature
// that promises a body hash it cannot check.
func TestValidator_ValidRequestNeedsBodyForJSON(t *testing.T) {
	v := NewValidator(token, &url.URL{Scheme: "https", Host: "mycompany.com"})
	r := httptest.NewRequest(http.MethodPost, path+"&bodySHA256="+jsonHash, strings.NewReader(jsonBody))
	r.Header.Set(Header, sigJSON)
	if v.ValidRequest(r, nil) {
		t.Errorf("ValidRequest() = true, want false")
	}
}

// Verify must not reorder the caller's repeated values while sorting them.
func TestValidator_FormOrderKept(t *testing.T) {
	c := reqCase{public: "https://mycompany.com", target: path, body: bodyRepeated, sig: sigRepeated}
	_, _, form, err := c.run(t)
	if err != nil {
		t.Fatalf("Verify() error = %v, want nil", err)
	}
	if got, want := strings.Join(form["Digits"], ","), "5678,1234,1234"; got != want {
		t.Errorf("Digits = %q, want %q", got, want)
	}
}

func TestValidator_Concurrent(t *testing.T) {
	v := NewValidator(token, &url.URL{Scheme: "https", Host: "mycompany.com"})
	done := make(chan bool)
	for i := range 8 {
		go func() {
			body, sig := bodyA, sigA
			if i%2 == 1 {
				body, sig = bodyRepeated, sigRepeated
			}
			ok := true
			for range 200 {
				r := httptest.NewRequest(http.MethodPost, path, nil)
				r.Header.Set(Header, sig)
				if _, err := v.Verify(r, []byte(body)); err != nil {
					ok = false
				}
			}
			done <- ok
		}()
	}
	for range 8 {
		if !<-done {
			t.Error("concurrent Verify() failed")
		}
	}
}

func FuzzValidate(f *testing.F) {
	f.Add(bodyB, sigB, []byte(bodyB))
	f.Add(bodyRepeated, "", []byte("Digits=%zz"))
	f.Add("a=1&a=&=b&c=%E2%9C%93+x", "not a signature", []byte(jsonBody))
	f.Add("", sigJSON, []byte{0xff, '&', '=', ';'})

	pub := &url.URL{Scheme: "https", Host: "mycompany.com"}
	v := NewValidator(token, pub)
	f.Fuzz(func(t *testing.T, rawParams, header string, body []byte) {
		// Arbitrary header and body: any result, no panic.
		for _, target := range []string{path, path + "&bodySHA256=" + jsonHash} {
			r := httptest.NewRequest(http.MethodPost, target, nil)
			r.Header.Set(Header, header)
			_, _ = v.Verify(r, body)
			_ = v.ValidRequest(r, url.Values{header: {string(body)}})
		}

		// Sign then Verify round-trips for arbitrary parameters.
		params, _ := url.ParseQuery(rawParams) // partial result on error is fine
		enc := params.Encode()
		r := httptest.NewRequest(http.MethodPost, path, nil)
		r.Header.Set(Header, Sign(token, "https://mycompany.com"+path, params))
		form, err := v.Verify(r, []byte(enc))
		if err != nil {
			t.Fatalf("Verify(Sign(%q)) error = %v, want nil", enc, err)
		}
		if got := form.Encode(); got != enc {
			t.Errorf("Verify() form = %q, want %q", got, enc)
		}
		if !v.ValidRequest(r, params) {
			t.Errorf("ValidRequest(Sign(%q)) = false, want true", enc)
		}

		// JSON round trip over the arbitrary body, and tampering detected.
		sum := sha256.Sum256(body)
		target := path + "&bodySHA256=" + hex.EncodeToString(sum[:])
		r = httptest.NewRequest(http.MethodPost, target, nil)
		r.Header.Set(Header, Sign(token, "https://mycompany.com"+target, nil))
		if _, err := v.Verify(r, body); err != nil {
			t.Fatalf("Verify(JSON) error = %v, want nil", err)
		}
		if _, err := v.Verify(r, append(body, 'x')); !errors.Is(err, ErrBodyHash) {
			t.Errorf("Verify(tampered JSON) error = %v, want %v", err, ErrBodyHash)
		}
	})
}

// FuzzVerifyTampered signs a request as Twilio does, then checks that it verifies (in both port
// forms) and that any one change to what Twilio signed fails: the URL's path or query, the
// host, a parameter added, removed or changed, or the signature itself.
func FuzzVerifyTampered(f *testing.F) {
	f.Add("/twilio/voice", "", voiceForm.Encode(), "Digits", "9", uint8(0))
	f.Add("/twilio/dial-outcome", "attempt=0", bodyReason, "DialSipHeader_X-Note", "a b&c", uint8(1))
	f.Add("/myapp.php", "foo=1&bar=2", bodyRepeated, "Digits", "5678", uint8(2))
	f.Add("/twilio/call-status", "target=1&call=CA1", "CallSid=CA1&CallSid=CA1&CallStatus=ringing", "", "", uint8(3))
	f.Add("/twilio/hold-music", "", "", "x", "", uint8(4))
	f.Add("/twilio/voice", "", "From=%FF%FE&To=%00&CallerName=caf%C3%A9", "CallerName", "\xff", uint8(5))
	f.Add("/relay/%2Btwilio/voice", "a=%2B1&a=+1", "=&=x&k=", "k", "v", uint8(6))
	pub := &url.URL{Scheme: "https", Host: "mycompany.com"}
	v := NewValidator(token, pub)
	f.Fuzz(func(t *testing.T, path, rawQuery, rawParams, name, value string, which uint8) {
		u, err := url.Parse("/" + strings.TrimLeft(path, "/"))
		if err != nil || u.Path == "" || u.RawQuery != "" || u.Fragment != "" {
			return
		}
		u.RawQuery = rawQuery
		if strings.ContainsAny(rawQuery, "#") || u.Query().Has(bodyHashParam) {
			return // a fragment is not sent; bodySHA256 is FuzzValidate's
		}
		params, _ := url.ParseQuery(rawParams)
		verify := func(u *url.URL, sig string, p url.Values) error {
			r := &http.Request{Method: http.MethodPost, URL: u, Header: http.Header{Header: {sig}}}
			_, err := v.Verify(r, []byte(p.Encode()))
			return err
		}
		signed := u.String()
		sig := Sign(token, "https://mycompany.com"+signed, params)
		if err := verify(u, sig, params); err != nil {
			t.Fatalf("Verify(%s, %q) = %v, want nil", signed, params.Encode(), err)
		}
		if err := verify(u, Sign(token, "https://mycompany.com:443"+signed, params), params); err != nil {
			t.Fatalf("Verify(:443 %s) = %v, want nil", signed, err)
		}

		// One change to what was signed. Twilio's scheme concatenates names and values, so a
		// change must alter that string: an empty name with an empty value is invisible.
		changed := url.Values{}
		for k, vs := range params {
			changed[k] = slices.Clone(vs)
		}
		tu := *u
		tsig := sig
		switch which % 8 {
		case 0: // parameter added, or a new distinct value for an existing name
			if name == "" && value == "" || slices.Contains(changed[name], value) {
				return
			}
			changed.Add(name, value)
		case 1: // parameter removed
			keys := slices.Sorted(maps.Keys(changed))
			if len(keys) == 0 {
				return
			}
			k := keys[int(which/8)%len(keys)]
			if k == "" && strings.Join(changed[k], "") == "" {
				return
			}
			delete(changed, k)
		case 2: // a single value changed
			keys := slices.Sorted(maps.Keys(changed))
			if len(keys) == 0 {
				return
			}
			k := keys[int(which/8)%len(keys)]
			if len(changed[k]) != 1 || changed[k][0] == value {
				return
			}
			changed[k] = []string{value}
		case 3: // path changed
			tu.Path += "x"
			tu.RawPath = ""
		case 4: // query changed
			tu.RawQuery += "&x=1"
		case 5: // query dropped
			if tu.RawQuery == "" {
				return
			}
			tu.RawQuery = ""
		case 6: // signed for another host
			tsig = Sign(token, "https://evil.example.com"+signed, params)
		case 7: // one character of the signature changed
			b := []byte(sig)
			i := int(which/8) % len(b)
			b[i] = map[bool]byte{true: 'B', false: 'A'}[b[i] == 'A']
			tsig = string(b)
		}
		if err := verify(&tu, tsig, changed); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("change %d: Verify(%s, %q, %q) = %v, want %v (signed %s, %q)", which%8, tu.String(), changed.Encode(), tsig, err,
				ErrBadSignature, signed, params.Encode())
		}
	})
}

// voiceForm is a typical 15-parameter Twilio voice webhook.
var voiceForm = url.Values{
	"AccountSid":    {"AC0123456789abcdef0123456789abcdef"},
	"ApiVersion":    {"2010-04-01"},
	"CallSid":       {"CA0123456789abcdef0123456789abcdef"},
	"CallStatus":    {"ringing"},
	"Called":        {"+18005551212"},
	"CalledCountry": {"US"},
	"CalledState":   {"CA"},
	"Caller":        {"+14158675309"},
	"CallerCity":    {"SAN FRANCISCO"},
	"CallerCountry": {"US"},
	"CallerState":   {"CA"},
	"Direction":     {"inbound"},
	"From":          {"+14158675309"},
	"FromCountry":   {"US"},
	"To":            {"+18005551212"},
}

func BenchmarkValidate(b *testing.B) {
	const target = "/twilio/voice?tenant=acme"
	body := []byte(voiceForm.Encode())
	v := NewValidator(token, &url.URL{Scheme: "https", Host: "relay.example.com"})
	bench := func(name, sig string, f func(*http.Request) bool) {
		b.Run(name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodPost, target, nil)
			r.Header.Set(Header, sig)
			b.ReportAllocs()
			for b.Loop() {
				if !f(r) {
					b.Fatal("rejected")
				}
			}
		})
	}
	sig := Sign(token, "https://relay.example.com"+target, voiceForm)
	sig443 := Sign(token, "https://relay.example.com:443"+target, voiceForm)
	parsed := func(r *http.Request) bool { return v.ValidRequest(r, voiceForm) }
	raw := func(r *http.Request) bool { _, err := v.Verify(r, body); return err == nil }
	bench("ValidRequest", sig, parsed)
	bench("ValidRequest/:443", sig443, parsed) // worst case: two HMACs
	bench("Verify/rawBody", sig, raw)          // includes url.ParseQuery for the handler
}
