// Package recording downloads voicemail recordings from Twilio and signs the expiring audio
// links that callrelay puts in the owner's email.
//
// Two rules shape it. The account's credentials (TWILIO_ACCOUNT_SID:TWILIO_AUTH_TOKEN, HTTP
// basic auth) are sent to TWILIO_API_URL's origin only — same scheme, host and port — for a
// recording's media only (every redirect hop on that origin is checked too), and never follow a
// redirect elsewhere: Twilio may answer a media request with a redirect to a pre-signed URL on
// its media host, which needs no credentials. Only MP3 or WAV comes out. And the public link
// /voicemails/{id}/audio?expires=…&sig=… is an HMAC-SHA256 of the voicemail id and its expiry,
// keyed by CALLRELAY_LINK_SECRET, so that owners can listen without credentials.
package recording

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultTimeout bounds a whole fetch, body included, when NewFetcher is given no client.
const DefaultTimeout = 30 * time.Second

// maxRedirects is how many redirects a fetch follows (net/http's own default).
const maxRedirects = 10

var (
	// ErrForeignHost: the RecordingUrl is not on TWILIO_API_URL's origin (scheme, host and port),
	// so it is not fetched at all: the credentials would go to someone else.
	ErrForeignHost = errors.New("recording: URL is not on the Twilio API host")
	// ErrInvalidURL: the RecordingUrl is on the API host but is not a recording's media
	// (/2010-04-01/Accounts/AC…/Recordings/RE…[.mp3|.wav]), or is not a URL at all. The fetcher
	// is not a credentialed proxy to the rest of the REST API.
	ErrInvalidURL = errors.New("recording: not a Twilio recording URL")
	// ErrTooLarge: the recording is larger than the caller's limit.
	ErrTooLarge = errors.New("recording: recording too large")
	// ErrNotFound: Twilio (or its media host) answered 404. The error is a *TwilioError too,
	// carrying Twilio's code (20404) when Twilio sent one.
	ErrNotFound = errors.New("recording: recording not found")
	// ErrBadRedirect: a redirect was refused before it was followed: to a path on the API origin
	// that is not a recording's media, or from https to http.
	ErrBadRedirect = errors.New("recording: redirect refused")
	// ErrNotAudio: the answer was not MP3 or WAV audio (a JSON document, an HTML page).
	ErrNotAudio = errors.New("recording: not audio")
)

// TwilioError is a non-2xx answer to a media request. Code and Message come from Twilio's JSON
// error body ({"code":20404,"message":"…","more_info":"…","status":404}) and are zero when the
// body was something else (a media host's XML, a proxy's HTML page).
type TwilioError struct {
	Status   int    // HTTP status
	Code     int    // Twilio error code, e.g. 20404, 20003
	Message  string // Twilio's message
	MoreInfo string // link to Twilio's error page
}

func (e *TwilioError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "recording: twilio answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != 0 {
		fmt.Fprintf(&b, ": code %d", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	return b.String()
}

// Is makes a 404 match ErrNotFound.
func (e *TwilioError) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Media is an open recording download. The caller copies Body to its response and closes it.
type Media struct {
	Body        io.ReadCloser
	ContentType string // an MP3 or WAV type, as Twilio sent it (no parameters), else from the extension
	Size        int64  // Content-Length, or -1 when unknown
}

// Fetcher downloads recordings from Twilio with the account's credentials. It is safe for
// concurrent use.
type Fetcher struct {
	api        origin
	apiPrefix  string // TWILIO_API_URL's path without its trailing slash ("" for Twilio itself)
	accountSID string
	authToken  string
	client     *http.Client
}

// NewFetcher returns a Fetcher for TWILIO_API_URL (apiURL) and the account's credentials. A nil
// client means one with DefaultTimeout. A given client is copied, not modified: the copy's
// redirect policy strips the credentials from every hop that leaves the API origin, then runs
// the client's own CheckRedirect, if any. It panics when apiURL is not an absolute http(s) URL
// (config.Load checks TWILIO_API_URL).
func NewFetcher(apiURL *url.URL, accountSID, authToken string, client *http.Client) *Fetcher {
	if apiURL == nil {
		panic("recording: NewFetcher: nil API URL")
	}
	api, ok := originOf(apiURL)
	if !ok {
		panic(fmt.Sprintf("recording: NewFetcher: API URL %q is not an absolute http(s) URL", apiURL.Redacted()))
	}
	var c http.Client
	if client != nil {
		c = *client
	} else {
		// No overall Timeout: it would cut off a long recording streamed to a slow owner. Twilio
		// must answer within DefaultTimeout; the body is bounded by the caller's context.
		c.Transport = &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: DefaultTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          10,
		}
	}
	f := &Fetcher{
		api:        api,
		apiPrefix:  strings.TrimSuffix(apiURL.EscapedPath(), "/"),
		accountSID: accountSID,
		authToken:  authToken,
	}
	c.CheckRedirect = f.checkRedirect(c.CheckRedirect)
	f.client = &c
	return f
}

// origin is a URL's scheme, host and port, normalised: lower case, default port made explicit.
type origin struct{ scheme, host, port string }

func originOf(u *url.URL) (origin, bool) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" || u.Host == "" || u.Opaque != "" {
		return origin{}, false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if host == "" {
		return origin{}, false
	}
	return origin{scheme, host, port}, true
}

func (o origin) String() string { return o.scheme + "://" + net.JoinHostPort(o.host, o.port) }

// checkRedirect is the copied client's redirect policy, run before each hop is requested.
// net/http itself keeps Authorization on a redirect to the same host name on another port, to a
// subdomain, and from https to http on the same host: all of which would hand the credentials to
// something that is not TWILIO_API_URL. So: credentials only while every hop so far is on the API
// origin (once the chain has left it, a hop back does not get them again); no https → http
// downgrade (the audio is private too); and a hop on the API origin must be a recording's media,
// like the first URL (MediaURL), or the chain stops there: a redirect must not make the fetcher a
// credentialed proxy to the rest of the REST API. Hops elsewhere (Twilio's signed storage URL)
// may have any path: they get no credentials.
func (f *Fetcher) checkRedirect(next func(*http.Request, []*http.Request) error) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("recording: stopped after %d redirects", maxRedirects)
		}
		prev := via[len(via)-1].URL
		if strings.EqualFold(prev.Scheme, "https") && !strings.EqualFold(req.URL.Scheme, "https") {
			return fmt.Errorf("%w: from https to %s://%s", ErrBadRedirect, req.URL.Scheme, req.URL.Host)
		}
		if o, ok := originOf(req.URL); ok && o == f.api && !f.isRecordingPath(req.URL) {
			return fmt.Errorf("%w: to %s, not a recording's media", ErrBadRedirect, redactedURL(req.URL.String()))
		}
		onAPI := f.onAPI(req.URL)
		for _, r := range via {
			onAPI = onAPI && f.onAPI(r.URL)
		}
		if !onAPI {
			req.Header.Del("Authorization")
		}
		if next != nil {
			return next(req, via)
		}
		return nil
	}
}

func (f *Fetcher) onAPI(u *url.URL) bool {
	o, ok := originOf(u)
	return ok && o == f.api && u.User == nil
}

// recordingPath is the path of a recording's media under the API prefix: Twilio's RecordingUrl
// (no extension: WAV), or with .mp3 (audio/mpeg) or .wav (audio/x-wav) appended.
var recordingPath = regexp.MustCompile(`^/2010-04-01/Accounts/AC[0-9A-Za-z]+/Recordings/RE[0-9A-Za-z]+(\.mp3|\.wav)?$`)

// isRecordingPath reports whether u's path, under the API prefix, is a recording's media.
func (f *Fetcher) isRecordingPath(u *url.URL) bool {
	rest, ok := strings.CutPrefix(u.EscapedPath(), f.apiPrefix)
	return ok && recordingPath.MatchString(rest)
}

// MediaURL checks that recordingURL (Twilio's RecordingUrl) is a recording on the API origin and
// returns the URL to GET: with ".mp3" appended unless it already ends in .mp3 or .wav (Twilio
// serves audio/x-wav without an extension, audio/mpeg with .mp3: compressed, for the email).
// ErrForeignHost when it is on another scheme, host or port; ErrInvalidURL when it is not a
// URL, carries user info, or is not a recording's media path.
func (f *Fetcher) MediaURL(recordingURL string) (string, error) {
	u, err := url.Parse(recordingURL)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	o, ok := originOf(u)
	if !ok {
		return "", fmt.Errorf("%w: %q is not an absolute http(s) URL", ErrInvalidURL, u.Redacted())
	}
	if o != f.api {
		return "", fmt.Errorf("%w: %s is not %s", ErrForeignHost, o, f.api)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: user info in the URL", ErrInvalidURL)
	}
	if !f.isRecordingPath(u) {
		return "", fmt.Errorf("%w: path %q", ErrInvalidURL, u.EscapedPath())
	}
	if path.Ext(u.Path) == "" {
		u.Path += ".mp3"
		u.RawPath = ""
	}
	u.Fragment, u.RawFragment = "", ""
	return u.String(), nil
}

// Fetch downloads the recording whole: at most maxBytes of it (ErrTooLarge past that), with its
// content type (audio/mpeg unless Twilio says otherwise).
func (f *Fetcher) Fetch(ctx context.Context, recordingURL string, maxBytes int64) (data []byte, contentType string, err error) {
	if maxBytes < 0 {
		return nil, "", fmt.Errorf("recording: negative maxBytes %d", maxBytes)
	}
	m, err := f.Open(ctx, recordingURL)
	if err != nil {
		return nil, "", err
	}
	defer m.Body.Close()
	if m.Size > maxBytes {
		return nil, "", fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, m.Size, maxBytes)
	}
	// One byte more than allowed tells "exactly maxBytes" from "more".
	data, err = io.ReadAll(io.LimitReader(m.Body, maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("recording: reading %s: %w", redactedURL(recordingURL), err)
	}
	if int64(len(data)) > maxBytes {
		return nil, "", fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBytes)
	}
	return data, m.ContentType, nil
}

// Open starts the download and returns the body to stream. The caller closes Media.Body.
func (f *Fetcher) Open(ctx context.Context, recordingURL string) (*Media, error) {
	mediaURL, err := f.MediaURL(recordingURL)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidURL, err)
	}
	if f.accountSID != "" || f.authToken != "" {
		req.SetBasicAuth(f.accountSID, f.authToken)
	}
	req.Header.Set("Accept", "audio/mpeg, audio/*;q=0.9, */*;q=0.1")
	resp, err := f.client.Do(req)
	if err != nil {
		// *url.Error would print the last hop's URL, a pre-signed media URL's signature included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("recording: fetching %s: %w", redactedURL(mediaURL), err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, twilioError(resp)
	}
	ct, ok := audioType(resp.Header.Get("Content-Type"), mediaURL)
	if !ok {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s answered Content-Type %q", ErrNotAudio,
			redactedURL(resp.Request.URL.String()), resp.Header.Get("Content-Type"))
	}
	return &Media{Body: resp.Body, ContentType: ct, Size: resp.ContentLength}, nil
}

// audioTypes are the types Twilio serves a recording as (audio/mpeg for .mp3, audio/x-wav
// otherwise) and their common spellings.
var audioTypes = map[string]bool{
	"audio/mpeg": true, "audio/mpeg3": true, "audio/mp3": true,
	"audio/x-wav": true, "audio/wav": true, "audio/wave": true, "audio/vnd.wave": true,
}

// audioType is the media type to serve an answer as, without parameters: one of audioTypes, or
// the extension's type when the answer names none or a generic binary one (a storage host's
// application/octet-stream). false for anything else: whatever it is, it is neither served nor
// attached.
func audioType(ct, mediaURL string) (string, bool) {
	if ct == "" {
		return contentTypeFor(mediaURL), true
	}
	mt, _, err := mime.ParseMediaType(ct)
	switch {
	case err != nil:
		return "", false
	case mt == "application/octet-stream" || mt == "binary/octet-stream":
		return contentTypeFor(mediaURL), true
	}
	return mt, audioTypes[mt]
}

func contentTypeFor(mediaURL string) string {
	if u, err := url.Parse(mediaURL); err == nil && strings.EqualFold(path.Ext(u.Path), ".wav") {
		return "audio/x-wav"
	}
	return "audio/mpeg"
}

// twilioError reads a failed answer: Twilio's JSON error when that is what it is.
func twilioError(resp *http.Response) error {
	e := &TwilioError{Status: resp.StatusCode}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var j struct {
		Code     int    `json:"code"`
		Message  string `json:"message"`
		MoreInfo string `json:"more_info"`
	}
	if json.Unmarshal(body, &j) == nil {
		e.Code, e.Message, e.MoreInfo = j.Code, j.Message, j.MoreInfo
	}
	return e
}

// redactedURL drops a URL's query (a pre-signed media URL's signature lives there) and password
// for error messages and logs.
func redactedURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return strconv.Quote(s)
	}
	u.RawQuery, u.Fragment, u.RawFragment = "", "", ""
	return u.Redacted()
}
