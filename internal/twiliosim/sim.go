// Package twiliosim simulates Twilio Programmable Voice against a running callrelay, with no
// Twilio account: it places inbound calls to a masked number, signs every webhook with the
// auth token exactly as Twilio does, follows the TwiML it gets back (Say, Play, Pause, Gather,
// Dial with Number, Sip, Client, Conference and Queue, Record, Enqueue, Redirect, Hangup,
// Reject), sends the status callbacks and conference events each verb asks for, and is the
// REST API callrelay talks to (participants, calls, queues, recordings' media), refusing what
// Twilio's OpenAPI spec says Twilio would refuse (internal/twiliofake validates every request).
//
// What the simulated people do comes from a Scenario; what happened is a Timeline, checked
// against the scenario's expectations. Twilio's habits are simulated on purpose: the answered
// event carries CallStatus=in-progress, SequenceNumber counts per call (conference events per
// conference), a modified parent still posts its Dial action (whose TwiML is ignored), a
// conference ends its Dial with DialCallStatus=answered, no transcribeCallback comes outside
// 2–120 s, a Dial whose child was redirected reports no DialCallDuration, participants are
// created at about one per second (faster ones get 429), and callbacks can be delivered twice
// or out of order.
package twiliosim

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiliofake"
)

// Config configures a Sim.
type Config struct {
	AccountSID string // TWILIO_ACCOUNT_SID callrelay uses
	AuthToken  string // TWILIO_AUTH_TOKEN: signs webhooks, authenticates REST requests
	// BaseURL is callrelay's public URL (CALLRELAY_PUBLIC_URL): the voice URL is on it, and
	// webhooks are sent to the URLs callrelay's TwiML gives, as they are.
	BaseURL string
	// APIURL is where callrelay reaches this simulator's REST API (its TWILIO_API_URL):
	// recording URLs are on it.
	APIURL string
	// OpsToken is callrelay's CALLRELAY_OPS_TOKEN, for routing, hold/unhold and expectations.
	OpsToken string
	Clock    *Clock      // simulated time; NewClock(time.Now(), 1) when nil
	Rand     *mrand.Rand // reordering and SIDs' randomness; randomly seeded when nil
	Client   *http.Client
	Spec     *twiliofake.Spec // Twilio's OpenAPI spec; twiliofake.DefaultSpec() when nil
	// CheckTwiML, when set, checks every TwiML document callrelay answers (against the XSD,
	// say); a failure fails the scenario, as Twilio would answer error 12200.
	CheckTwiML func([]byte) error
	// Log receives each timeline entry as it happens (nil: nothing).
	Log func(Entry)
}

// Sim is a simulated Twilio. Its ServeHTTP is the REST API; Run plays a scenario.
type Sim struct {
	cfg    Config
	clock  *Clock
	client *http.Client
	fake   *twiliofake.Fake
	work   tracker

	mu          sync.Mutex
	rnd         *mrand.Rand
	calls       map[string]*call
	conferences map[string]*conference // by SID
	confByName  map[string]*conference // active ones by friendly name
	queues      map[string]*queue      // by SID
	queueByName map[string]*queue
	recordings  map[string]*recording
	run         *run // the scenario being played
	lastCreate  time.Time
}

// New returns a Sim. It fails when Twilio's OpenAPI spec cannot be loaded.
func New(cfg Config) (*Sim, error) {
	if cfg.Clock == nil {
		cfg.Clock = NewClock(time.Now(), 1)
	}
	if cfg.Rand == nil {
		cfg.Rand = mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	}
	if cfg.Client == nil {
		// No redirects: Twilio does not follow them for webhooks either (and a redirect drops
		// the parameters).
		cfg.Client = &http.Client{Timeout: 15 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	cfg.APIURL = strings.TrimRight(cfg.APIURL, "/")
	s := &Sim{
		cfg: cfg, clock: cfg.Clock, client: cfg.Client, rnd: cfg.Rand,
		calls: map[string]*call{}, conferences: map[string]*conference{}, confByName: map[string]*conference{},
		queues: map[string]*queue{}, queueByName: map[string]*queue{}, recordings: map[string]*recording{},
	}
	fake, err := twiliofake.New(twiliofake.Options{
		AccountSID: cfg.AccountSID, AuthToken: cfg.AuthToken, Spec: cfg.Spec,
		Now: s.clock.Now, Handler: s.handleREST,
	})
	if err != nil {
		return nil, err
	}
	s.fake = fake
	return s, nil
}

// ServeHTTP is Twilio's REST API: recordings' media here, everything else validated against
// the spec by twiliofake and then handled by the simulation.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.serveMedia(w, r) {
		return
	}
	s.fake.ServeHTTP(w, r)
}

// Violations are the REST requests callrelay made that Twilio would have refused.
func (s *Sim) Violations() []twiliofake.Violation { return s.fake.Violations() }

// Requests are the valid REST requests callrelay made.
func (s *Sim) Requests() []twiliofake.Request { return s.fake.Requests() }

// sid returns a new SID with prefix.
func (s *Sim) sid(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sidLocked(prefix)
}

func (s *Sim) sidLocked(prefix string) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := s.rnd.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return prefix + hex.EncodeToString(b[:])
}

// twilioTime is the Timestamp format of Twilio's callbacks (RFC 2822 / RFC 1123Z).
func twilioTime(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

// webhook is one request Twilio makes to callrelay.
type webhook struct {
	method string // POST unless GET
	url    string
	params url.Values
	what   string // for the timeline: "voice", "status callback", …
	party  string
}

// send makes one webhook request, signed as Twilio signs it, and returns the answer's status
// and body (TwiML, for the requests that fetch it).
func (s *Sim) send(ctx context.Context, h webhook) (int, []byte, error) {
	if h.method == "" {
		h.method = http.MethodPost
	}
	target := h.url
	var body io.Reader
	var signed url.Values
	if h.method == http.MethodGet {
		u, err := url.Parse(h.url)
		if err != nil {
			return 0, nil, fmt.Errorf("%s %s: %w", h.method, h.url, err)
		}
		q := u.Query()
		for k, vs := range h.params {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
		target = u.String()
	} else {
		body = strings.NewReader(h.params.Encode())
		signed = h.params
	}
	req, err := http.NewRequestWithContext(ctx, h.method, target, body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", h.method, h.url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "TwilioProxy/1.1 (callsim)")
	req.Header.Set("X-Twilio-Signature", signature.Sign(s.cfg.AuthToken, target, signed))
	req.Header.Set("I-Twilio-Idempotency-Token", s.sid("ID"))
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", h.method, h.url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s %s: reading the answer: %w", h.method, h.url, err)
	}
	return resp.StatusCode, data, nil
}

// path is the path of a webhook URL, for the timeline.
func path(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Path
}
