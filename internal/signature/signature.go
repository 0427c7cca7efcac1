// Package signature validates the X-Twilio-Signature header on Twilio webhooks.
//
// Twilio signs the URL it requested, so the URL is rebuilt from the configured
// public URL, never from the Host header, which proxies rewrite and callers
// control. Twilio has signed the same URL both with and without the default
// port (:443, :80), so both forms are accepted. Form parameters are signed
// sorted by name and, for repeated names, by value; a map[string]string based
// validator (twilio-go's) cannot check repeated names. Duplicate values of
// one name are signed once, as Twilio does, so dropping or repeating an
// identical duplicate cannot be detected. JSON bodies are instead
// covered by a bodySHA256 query parameter that the signed URL carries.
package signature

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Header is the request header carrying Twilio's signature.
const Header = "X-Twilio-Signature"

// bodyHashParam is the query parameter Twilio adds for non-form (JSON) bodies.
const bodyHashParam = "bodySHA256"

// Errors returned by Verify.
var (
	ErrMissingSignature = errors.New("signature: missing X-Twilio-Signature header")
	ErrBadSignature     = errors.New("signature: X-Twilio-Signature does not match")
	ErrBodyHash         = errors.New("signature: body does not match bodySHA256")
	ErrMalformedBody    = errors.New("signature: malformed form body")
	ErrMisconfigured    = errors.New("signature: validator has no auth token or public URL")
)

// sigLen is the length of a Base64 HMAC-SHA1 (20 bytes, padded); other
// lengths can never match.
const sigLen = (sha1.Size + 2) / 3 * 4

// maxPooledBuf keeps one oversized request from pinning memory in the pool.
const maxPooledBuf = 64 << 10

// Validator checks Twilio webhook signatures for one auth token and public
// URL. It is safe for concurrent use and must not be copied.
type Validator struct {
	// bases holds scheme://host[:port][/prefix], one entry per port form
	// Twilio may have signed; nil when misconfigured, which rejects everything.
	bases [][]byte
	pool  sync.Pool // *scratch, so the hot path reuses HMAC state and buffers
}

type scratch struct {
	mac  hash.Hash
	buf  []byte
	keys []string
	vals []string
	sum  [sha1.Size]byte
}

// NewValidator returns a Validator for authToken and publicURL, the base URL
// Twilio uses to reach us (scheme, host, optional port and path prefix; its
// user info, query and fragment are ignored). Both the with- and without-port
// forms are precomputed for a default port; a non-default port is the only
// form. An empty token or a URL without scheme or host yields a Validator that
// rejects every request with ErrMisconfigured, failing closed: an empty HMAC
// key would let anyone sign.
func NewValidator(authToken string, publicURL *url.URL) *Validator {
	v := &Validator{}
	if authToken == "" || publicURL == nil || publicURL.Scheme == "" || publicURL.Host == "" {
		return v
	}
	key := []byte(authToken)
	v.pool.New = func() any { return &scratch{mac: hmac.New(sha1.New, key)} }

	scheme := strings.ToLower(publicURL.Scheme)
	prefix := strings.TrimRight(publicURL.EscapedPath(), "/")
	host := publicURL.Hostname()
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal
	}
	port := publicURL.Port()
	def := ""
	switch scheme {
	case "https":
		def = "443"
	case "http":
		def = "80"
	}
	base := func(hostport string) []byte { return []byte(scheme + "://" + hostport + prefix) }
	switch {
	case port != "" && port != def:
		v.bases = [][]byte{base(host + ":" + port)}
	case def == "":
		v.bases = [][]byte{base(host)}
	default:
		// Without the port first: it is what Twilio usually signs.
		v.bases = [][]byte{base(host), base(host + ":" + def)}
	}
	return v
}

// Verify checks r's signature given its raw body, already read (and size
// limited) by the caller; r.Body is not touched. It returns the parsed form
// body so a middleware reads and parses the body once.
//
// Every byte of the body is covered: if the query has bodySHA256, the
// signature covers the URL alone and the body's SHA-256 must match it (JSON
// webhooks; the returned form is nil). Otherwise a non-empty body is parsed as
// application/x-www-form-urlencoded and its parameters are signed with the
// URL, whatever the method or Content-Type; an empty body (GET) means the URL
// alone.
func (v *Validator) Verify(r *http.Request, body []byte) (url.Values, error) {
	sig := r.Header.Get(Header)
	if sig == "" {
		return nil, ErrMissingSignature
	}
	if v.bases == nil {
		return nil, ErrMisconfigured
	}
	if want, ok := queryValue(r.URL.RawQuery, bodyHashParam); ok {
		if !v.check(r, sig, nil) {
			return nil, ErrBadSignature
		}
		if !bodyHashMatches(want, body) {
			return nil, ErrBodyHash
		}
		return nil, nil
	}
	var form url.Values
	if len(body) > 0 {
		var err error
		if form, err = url.ParseQuery(string(body)); err != nil {
			return nil, ErrMalformedBody
		}
	}
	if !v.check(r, sig, form) {
		return nil, ErrBadSignature
	}
	return form, nil
}

// ValidRequest reports whether r's signature covers its URL and form, the
// already-parsed body parameters (r.PostForm, not r.Form, which mixes in the
// query; nil for GET). It returns false when the query has bodySHA256, since
// that needs the raw body: use Verify.
func (v *Validator) ValidRequest(r *http.Request, form url.Values) bool {
	sig := r.Header.Get(Header)
	if sig == "" || v.bases == nil {
		return false
	}
	if _, ok := queryValue(r.URL.RawQuery, bodyHashParam); ok {
		return false
	}
	return v.check(r, sig, form)
}

// check computes at most one HMAC per port form, reusing pooled state.
func (v *Validator) check(r *http.Request, sig string, form url.Values) bool {
	if len(sig) != sigLen {
		return false
	}
	s := v.pool.Get().(*scratch)
	defer v.put(s)

	// The part after the public base: request path (as sent, so a proxy
	// stripping the public prefix still works), query, then parameters.
	buf := append(s.buf[:0], r.URL.EscapedPath()...)
	if r.URL.RawQuery != "" || r.URL.ForceQuery {
		buf = append(buf, '?')
		buf = append(buf, r.URL.RawQuery...)
	}
	buf, s.keys, s.vals = appendParams(buf, form, s.keys, s.vals)
	s.buf = buf

	var enc [sigLen]byte
	for _, base := range v.bases {
		s.mac.Reset()
		s.mac.Write(base)
		s.mac.Write(buf)
		base64.StdEncoding.Encode(enc[:], s.mac.Sum(s.sum[:0]))
		if subtle.ConstantTimeCompare(enc[:], []byte(sig)) == 1 {
			return true
		}
	}
	return false
}

func (v *Validator) put(s *scratch) {
	if cap(s.buf) > maxPooledBuf {
		s.buf = nil
	}
	v.pool.Put(s)
}

// Sign returns the signature Twilio sends for fullURL (exactly as requested,
// including any port and query) and the form params (nil for GET or JSON).
// It is the reference for tests and for simulating Twilio.
func Sign(authToken, fullURL string, params url.Values) string {
	buf, _, _ := appendParams([]byte(fullURL), params, nil, nil)
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write(buf)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// appendParams appends name+value for every parameter, sorted by name and,
// within a repeated name, by value with duplicates dropped: twilio-node's
// toFormUrlEncodedParam does Array.from(new Set(values)).sort(). keys and
// vals are scratch slices, returned for reuse; params is not modified since
// handlers see the values in body order.
func appendParams(buf []byte, params url.Values, keys, vals []string) ([]byte, []string, []string) {
	keys = keys[:0]
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := params[k]
		if len(vs) > 1 {
			vals = append(vals[:0], vs...)
			slices.Sort(vals)
			vs = vals
		}
		for i, val := range vs {
			if i > 0 && val == vs[i-1] {
				continue // Twilio signs each distinct value once
			}
			buf = append(buf, k...)
			buf = append(buf, val...)
		}
	}
	// Drop references so pooled slices do not keep request bodies alive.
	clear(keys)
	clear(vals[:cap(vals)])
	return buf, keys, vals
}

// queryValue returns the first raw value of key in rawQuery without
// allocating a url.Values on every request.
func queryValue(rawQuery, key string) (string, bool) {
	for rawQuery != "" {
		var pair string
		pair, rawQuery, _ = strings.Cut(rawQuery, "&")
		if k, val, _ := strings.Cut(pair, "="); k == key {
			return val, true
		}
	}
	return "", false
}

// bodyHashMatches reports whether want is the hex SHA-256 of body.
func bodyHashMatches(want string, body []byte) bool {
	var w [sha256.Size]byte
	if len(want) != hex.EncodedLen(len(w)) {
		return false
	}
	if _, err := hex.Decode(w[:], []byte(want)); err != nil {
		return false
	}
	got := sha256.Sum256(body)
	return subtle.ConstantTimeCompare(got[:], w[:]) == 1
}
