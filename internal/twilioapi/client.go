// Package twilioapi is callrelay's client of Twilio's REST API (2010-04-01), on twilio-go: the
// few requests the conference and hold flows make, each with a deadline, sent only to
// TWILIO_API_URL, with Twilio's error code kept for the ops API.
//
// twilio-go has no base-URL option and sends every request with context.Background(). So each
// request gets its own http.Client whose Transport carries the request's context and rewrites
// https://api.twilio.com to TWILIO_API_URL; a request for any other host is refused before it
// leaves, so the account's credentials go to that host only.
package twilioapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"

	"github.com/callrelay/callrelay/internal/callrelay"
)

// twilioHost is the host twilio-go addresses the 2010-04-01 API on.
const twilioHost = "api.twilio.com"

// Defaults for Config.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultParticipantInterval = time.Second // Twilio's default: about one participant per second per account
)

// Config configures a Client.
type Config struct {
	AccountSID string
	AuthToken  string
	// BaseURL is TWILIO_API_URL: scheme, host and an optional path prefix replace
	// https://api.twilio.com.
	BaseURL *url.URL
	// Timeout bounds each request, answer included (DefaultTimeout when zero).
	Timeout time.Duration
	// ParticipantInterval spaces CreateParticipant requests (DefaultParticipantInterval when
	// zero; negative: no pacing, for tests).
	ParticipantInterval time.Duration
	// Transport sends the requests (http.DefaultTransport when nil).
	Transport http.RoundTripper
	// Now and After are the clock of the pacing; tests replace them.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
}

// Client sends callrelay's requests to Twilio. It is safe for concurrent use.
type Client struct {
	creds     *client.Credentials
	sid       string
	base      *url.URL
	timeout   time.Duration
	transport http.RoundTripper
	pace      *pacer
}

// New returns a Client.
func New(cfg Config) *Client {
	c := &Client{
		creds:     client.NewCredentials(cfg.AccountSID, cfg.AuthToken),
		sid:       cfg.AccountSID,
		base:      cfg.BaseURL,
		timeout:   cfg.Timeout,
		transport: cfg.Transport,
	}
	if c.base == nil {
		c.base = &url.URL{Scheme: "https", Host: twilioHost}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.transport == nil {
		c.transport = http.DefaultTransport
	}
	interval := cfg.ParticipantInterval
	if interval == 0 {
		interval = DefaultParticipantInterval
	}
	c.pace = newPacer(max(interval, 0), cfg.Now, cfg.After)
	return c
}

// api returns twilio-go's API service bound to ctx (with the client's timeout).
func (c *Client) api(ctx context.Context) (*openapi.ApiService, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	tc := &client.Client{
		Credentials: c.creds,
		HTTPClient: &http.Client{
			Transport: &rewrite{ctx: ctx, base: c.base, next: c.transport},
			// A redirect would carry the credentials along; Twilio's API does not redirect.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	tc.SetAccountSid(c.sid)
	// A RequestHandler without the TWILIO_EDGE/TWILIO_REGION environment, which would rewrite
	// the host behind our back.
	return openapi.NewApiService(&client.RequestHandler{Client: tc}), cancel
}

// rewrite sends twilio-go's requests for api.twilio.com to the base URL, under ctx.
type rewrite struct {
	ctx  context.Context
	base *url.URL
	next http.RoundTripper
}

func (t *rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != twilioHost || r.URL.Scheme != "https" {
		// Never send the account's credentials anywhere else.
		return nil, fmt.Errorf("twilioapi: refusing a request for %s://%s: not the Twilio API", r.URL.Scheme, r.URL.Host)
	}
	r = r.Clone(t.ctx)
	r.URL.Scheme, r.URL.Host = t.base.Scheme, t.base.Host
	r.URL.Path = strings.TrimRight(t.base.Path, "/") + r.URL.Path
	r.URL.RawPath = ""
	r.Host = t.base.Host
	return t.next.RoundTrip(r)
}

// upstream turns a failed request into the ops API's upstream error, keeping Twilio's code and
// message when Twilio answered.
func upstream(what string, err error) error {
	var te *client.TwilioRestError
	if errors.As(err, &te) {
		return &callrelay.Error{Code: callrelay.EUPSTREAM, TwilioCode: te.Code, TwilioMessage: te.Message, TwilioStatus: te.Status,
			Message: fmt.Sprintf("Twilio refused to %s: %s (code %d).", what, te.Message, te.Code)}
	}
	var ve *client.RestErrorV1
	if errors.As(err, &ve) {
		return &callrelay.Error{Code: callrelay.EUPSTREAM, TwilioCode: ve.Code, TwilioMessage: ve.Message, TwilioStatus: ve.HttpStatusCode,
			Message: fmt.Sprintf("Twilio refused to %s: %s (code %d).", what, ve.Message, ve.Code)}
	}
	// A *url.Error names twilio-go's URL, on api.twilio.com whatever TWILIO_API_URL is: the
	// cause alone (connection refused, deadline exceeded…) says what went wrong, without
	// pointing ops at the wrong host.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &callrelay.Error{Code: callrelay.EUPSTREAM, Message: fmt.Sprintf("Cannot reach Twilio to %s: %v.", what, err)}
}

// IsNotFound reports whether Twilio answered that the resource does not exist (a call that has
// ended, a participant that has left).
func IsNotFound(err error) bool {
	var e *callrelay.Error
	return errors.As(err, &e) && e.Code == callrelay.EUPSTREAM && (e.TwilioStatus == http.StatusNotFound || e.TwilioCode == 20404)
}

// IsRefused reports whether Twilio answered and refused the request (a 4xx other than 429):
// retrying it the same way would fail the same way. Timeouts, connection errors, 429 and 5xx
// are not refusals.
func IsRefused(err error) bool {
	var e *callrelay.Error
	return errors.As(err, &e) && e.Code == callrelay.EUPSTREAM && e.TwilioStatus >= 400 && e.TwilioStatus < 500 && e.TwilioStatus != http.StatusTooManyRequests
}

// Participant is a callee to add to a conference.
type Participant struct {
	From            string // a number of the account, or the caller's number with CallToken
	CallToken       string
	To              string // +E.164, sip:… or client:identity
	SipAuthUsername string
	SipAuthPassword string
	Label           string
	TimeoutSeconds  int
	StatusCallback  string
}

// ParticipantEvents are the call progress events a participant reports to its StatusCallback.
var ParticipantEvents = []string{"initiated", "ringing", "answered", "completed"}

// CreateParticipant dials p into the conference conferenceSid (a CF… SID: a friendly name
// would create a new conference if the caller has gone) and returns the new call's SID. The
// requests are paced (Config.ParticipantInterval); waiting counts against ctx, not against the
// request's timeout.
func (c *Client) CreateParticipant(ctx context.Context, conferenceSid string, p Participant) (string, error) {
	if err := c.pace.wait(ctx); err != nil {
		return "", upstream("add a participant", err)
	}
	params := (&openapi.CreateParticipantParams{}).
		SetFrom(p.From).SetTo(p.To).
		SetLabel(p.Label).
		SetBeep("false").
		SetTimeout(p.TimeoutSeconds).
		SetStatusCallback(p.StatusCallback).SetStatusCallbackMethod(http.MethodPost).
		SetStatusCallbackEvent(ParticipantEvents).
		SetStartConferenceOnEnter(true).
		SetEndConferenceOnExit(true)
	if p.CallToken != "" {
		params.SetCallToken(p.CallToken)
	}
	if p.SipAuthUsername != "" {
		params.SetSipAuthUsername(p.SipAuthUsername).SetSipAuthPassword(p.SipAuthPassword)
	}
	api, cancel := c.api(ctx)
	defer cancel()
	res, err := api.CreateParticipant(conferenceSid, params)
	if err != nil {
		return "", upstream("add a participant", err)
	}
	if res.CallSid == nil || *res.CallSid == "" {
		return "", &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Twilio created a participant without a call SID."}
	}
	return *res.CallSid, nil
}

// Call is a CreateCall request: an outbound call to one of the owner's targets whose Url
// (callrelay's screen) runs when it answers, before it may join the caller's conference.
type Call struct {
	From            string
	CallToken       string
	To              string
	SipAuthUsername string
	SipAuthPassword string
	URL             string
	TimeoutSeconds  int
	StatusCallback  string
	// MachineDetection, when set ("Enable"), is synchronous: Twilio fetches URL only once it has
	// a result, and sends it there as AnsweredBy.
	MachineDetection string
}

// CreateCall places an outbound call and returns its SID. It is paced with CreateParticipant
// (Twilio's calls-per-second limit counts both).
func (c *Client) CreateCall(ctx context.Context, p Call) (string, error) {
	if err := c.pace.wait(ctx); err != nil {
		return "", upstream("place a call", err)
	}
	params := (&openapi.CreateCallParams{}).
		SetFrom(p.From).SetTo(p.To).
		SetUrl(p.URL).SetMethod(http.MethodPost).
		SetTimeout(p.TimeoutSeconds).
		SetStatusCallback(p.StatusCallback).SetStatusCallbackMethod(http.MethodPost).
		SetStatusCallbackEvent(ParticipantEvents)
	if p.CallToken != "" {
		params.SetCallToken(p.CallToken)
	}
	if p.SipAuthUsername != "" {
		params.SetSipAuthUsername(p.SipAuthUsername).SetSipAuthPassword(p.SipAuthPassword)
	}
	if p.MachineDetection != "" {
		params.SetMachineDetection(p.MachineDetection)
	}
	api, cancel := c.api(ctx)
	defer cancel()
	res, err := api.CreateCall(params)
	if err != nil {
		return "", upstream("place a call", err)
	}
	if res.Sid == nil || *res.Sid == "" {
		return "", &callrelay.Error{Code: callrelay.EUPSTREAM, Message: "Twilio created a call without a SID."}
	}
	return *res.Sid, nil
}

// Hold puts a conference participant on hold (holdURL plays to it, fetched with holdMethod) or
// resumes it. Resuming sends Hold=false explicitly.
func (c *Client) Hold(ctx context.Context, conferenceSid, callSid string, hold bool, holdURL, holdMethod string) error {
	params := (&openapi.UpdateParticipantParams{}).SetHold(hold)
	if hold {
		params.SetHoldUrl(holdURL).SetHoldMethod(holdMethod)
	}
	api, cancel := c.api(ctx)
	defer cancel()
	if _, err := api.UpdateParticipant(conferenceSid, callSid, params); err != nil {
		what := "resume the participant"
		if hold {
			what = "hold the participant"
		}
		return upstream(what, err)
	}
	return nil
}

// KeepConference makes a participant's leaving not end the conference (EndConferenceOnExit
// false), so that a callee who lost the race to answer can be hung up safely.
func (c *Client) KeepConference(ctx context.Context, conferenceSid, callSid string) error {
	api, cancel := c.api(ctx)
	defer cancel()
	if _, err := api.UpdateParticipant(conferenceSid, callSid, (&openapi.UpdateParticipantParams{}).SetEndConferenceOnExit(false)); err != nil {
		return upstream("update the participant", err)
	}
	return nil
}

// Redirect makes a live call fetch new TwiML from url (POST). A statusCallback, when given,
// is told when the call ends (a redirected call keeps no other way to say so).
func (c *Client) Redirect(ctx context.Context, callSid, url, statusCallback string) error {
	params := (&openapi.UpdateCallParams{}).SetUrl(url).SetMethod(http.MethodPost)
	if statusCallback != "" {
		params.SetStatusCallback(statusCallback).SetStatusCallbackMethod(http.MethodPost)
	}
	api, cancel := c.api(ctx)
	defer cancel()
	if _, err := api.UpdateCall(callSid, params); err != nil {
		return upstream("redirect the call", err)
	}
	return nil
}

// DeleteQueue removes a queue; Twilio deletes only empty ones.
func (c *Client) DeleteQueue(ctx context.Context, queueSid string) error {
	api, cancel := c.api(ctx)
	defer cancel()
	if err := api.DeleteQueue(queueSid, nil); err != nil {
		return upstream("delete the queue", err)
	}
	return nil
}

// Call statuses EndCall takes.
const (
	Canceled  = "canceled"  // a call that has not been answered
	Completed = "completed" // a call in progress
)

// EndCall hangs up a call: status Canceled while it is queued or ringing, Completed once it has
// been answered.
func (c *Client) EndCall(ctx context.Context, callSid, status string) error {
	api, cancel := c.api(ctx)
	defer cancel()
	if _, err := api.UpdateCall(callSid, (&openapi.UpdateCallParams{}).SetStatus(status)); err != nil {
		return upstream("end the call", err)
	}
	return nil
}

// pacer spaces events at least interval apart: each wait takes the next free slot.
type pacer struct {
	interval time.Duration
	now      func() time.Time
	after    func(time.Duration) <-chan time.Time

	mu   sync.Mutex
	next time.Time
}

func newPacer(interval time.Duration, now func() time.Time, after func(time.Duration) <-chan time.Time) *pacer {
	if now == nil {
		now = callrelay.SystemClock
	}
	if after == nil {
		after = time.After
	}
	return &pacer{interval: interval, now: now, after: after}
}

// wait blocks until the caller's slot; a cancelled wait gives its slot up only if it was the
// last one taken.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval <= 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := p.now()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.interval)
	p.mu.Unlock()
	d := slot.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-p.after(d):
		return nil
	case <-ctx.Done():
		p.mu.Lock()
		if p.next.Equal(slot.Add(p.interval)) {
			p.next = slot
		}
		p.mu.Unlock()
		return ctx.Err()
	}
}
