// Package twiliosim simulates Twilio Programmable Voice against a running callrelay, with no
// Twilio account: it places inbound calls to a masked number, signs every webhook with the
// auth token exactly as Twilio does, follows the TwiML it gets back (Say, Play, Pause, Gather,
// Dial with Number, Sip, Client, Conference and Queue, Record, Enqueue, Redirect, Hangup,
// Reject), sends the status callbacks and conference events each verb asks for, and is the
// REST API callrelay talks to (participants, calls, queues, recordings and their media).
//
// It is a call engine on top of internal/twiliofake, not a second model of Twilio. The REST
// state (calls and their statuses, conferences and participants, queues and members,
// recordings) and Twilio's rules about it live in one place, the twiliofake.Model of the
// Sim's Fake, which also checks every REST request against Twilio's OpenAPI spec. The Sim
// shares the Fake's lock (Sim.mu is Options.Mu) and keeps only what a running call needs: the
// TwiML it is executing, what its person does (Behavior), where its webhooks go, the bridges
// of <Dial>. It changes the model as the calls go (a leg rings, answers, joins, hangs up) and
// reacts to every change of it in one place, onEvent (events.go): a status callback per call
// status, conference events per join, leave and hold, a call placed by CreateParticipant
// starting to ring, a redirected call running its new TwiML. So a change callrelay makes by
// REST and one a simulated person makes go through the same code.
//
// What the simulated people do comes from a Scenario; what happened is a Timeline, checked
// against the scenario's expectations. Twilio's habits are simulated on purpose (each has a
// test in habits_test.go; docs/simulator.md lists them): the answered event carries
// CallStatus=in-progress, SequenceNumber counts per call (conference events per conference), a
// modified parent still posts its Dial action (whose TwiML is ignored), a conference ends its
// Dial with DialCallStatus=answered, no transcribeCallback comes outside 2–120 s, a Dial whose
// child was redirected reports no DialCallDuration, participants are created at about one per
// second (faster ones get 429), and callbacks can be delivered twice or out of order.
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

	// mu guards the model (the Fake's lock: Options.Mu) and everything below.
	mu          sync.Mutex
	model       *twiliofake.Model
	rnd         *mrand.Rand
	calls       map[string]*call       // the calls the engine runs, by SID
	conferences map[string]*conference // the engine's side of the model's conferences, by SID
	queues      map[string]*queue      // the engine's side of the model's queues, by SID
	run         *run                   // the scenario being played
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
		calls: map[string]*call{}, conferences: map[string]*conference{}, queues: map[string]*queue{},
	}
	fake, err := twiliofake.New(twiliofake.Options{
		AccountSID: cfg.AccountSID, AuthToken: cfg.AuthToken, Spec: cfg.Spec,
		Now: s.clock.Now, NewSid: s.sidLocked, Mu: &s.mu, OnEvent: s.onEvent,
		Rules: twiliofake.Rules{CreateInterval: createInterval, CheckFrom: true},
	})
	if err != nil {
		return nil, err
	}
	s.fake, s.model = fake, fake.Model()
	fake.OnAnswer(s.logREST)
	return s, nil
}

// createInterval is how often Twilio lets an account place a call (about one per second by
// default: CreateCall and CreateParticipant alike); faster requests are refused with 429, in
// simulated time, with a little tolerance for jitter.
const createInterval = 800 * time.Millisecond

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
