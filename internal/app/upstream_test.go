package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// The upstream tests run a whole callrelay (app.New, production's timeouts) while its
// upstreams fail: the SMTP server refusing connections, saying nothing, or stalling in the
// middle of a message; Twilio's REST API refusing connections or accepting them and never
// answering. Webhooks must still be answered at once, and the work must resume when the
// upstream comes back. The timeouts themselves (SMTP 30 s, Twilio 10 s) are too long for these
// tests; their bounds are tested where they can be set short: internal/voicemail (SMTP, the
// recording's download) and internal/conference (Twilio).

// notBlocked is the "answered at once" bound on a webhook's handling while an upstream fails:
// generous, a check that nothing waits on the upstream, not a performance figure (a webhook
// takes a few milliseconds).
const notBlocked = 2 * time.Second

// upRelay is callrelay with the Twilio simulator as its REST API behind a proxy that can
// refuse or stall connections, a mail server whose faults the test sets, and the handling time
// of every request inside callrelay recorded.
type upRelay struct {
	url     string // callrelay's public URL
	sim     *twiliosim.Sim
	rest    *upProxy
	smtp    *mailtest.Server
	pool    *pgxpool.Pool
	jobs    *river.Client[pgx.Tx] // inserts nothing, works nothing: retries a job now
	times   *upTimes
	logs    *logBuffer
	entries chan twiliosim.Entry // the simulator's timeline, as it happens
}

func startUpRelay(t *testing.T) *upRelay {
	t.Helper()
	r := &upRelay{pool: pgtest.NewPool(t), smtp: mailtest.Start(t), times: &upTimes{}, logs: &logBuffer{},
		entries: make(chan twiliosim.Entry, 10000)}
	simSrv := httptest.NewUnstartedServer(nil)
	relaySrv := httptest.NewUnstartedServer(nil)
	r.rest = newUpProxy(t, simSrv.Listener.Addr().String())
	r.url = "http://" + relaySrv.Listener.Addr().String()
	relayURL, _ := url.Parse(r.url)
	apiURL, _ := url.Parse("http://" + r.rest.addr)
	cfg := config.Config{
		PublicURL:        config.URL{URL: relayURL},
		TwilioAccountSID: accountSID,
		TwilioAuthToken:  authToken,
		TwilioAPIURL:     config.URL{URL: apiURL},
		OpsToken:         opsToken,
		SMTPURL:          config.Secret(r.smtp.URL()),
		MailFrom:         "callrelay@relay.example.com",
		MailDir:          t.TempDir(),
		TranscriptWait:   90 * time.Second / speed,
	}
	a, err := app.New(cfg, r.pool, slog.New(slog.NewTextHandler(r.logs, nil)),
		app.Options{ParticipantInterval: time.Second / speed, JobPollInterval: 100 * time.Millisecond, Now: clocktest.Now})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := twiliofake.DefaultSpec()
	if err != nil {
		t.Fatal(err) // the spec is embedded (third_party/twilio); $TWILIO_OPENAPI overrides it
	}
	r.sim, err = twiliosim.New(twiliosim.Config{
		AccountSID: accountSID, AuthToken: authToken, OpsToken: opsToken,
		BaseURL: r.url, APIURL: apiURL.String(),
		Clock: twiliosim.NewClock(clocktest.Now(), speed), Spec: spec, CheckTwiML: checkTwiML,
		Log: func(e twiliosim.Entry) {
			select { // called under the simulator's lock: never block it
			case r.entries <- e:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.jobs, err = river.NewClient(riverpgxv5.New(r.pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	simSrv.Config.Handler, relaySrv.Config.Handler = r.sim, r.times.wrap(a.Handler)
	simSrv.Start()
	relaySrv.Start()
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		relaySrv.Close()
		r.rest.close() // Twilio gone for good: background work still trying ends at once
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		simSrv.Close()
		if t.Failed() {
			t.Logf("callrelay's log:\n%s", r.logs.String())
		}
	})
	return r
}

// play runs a scenario to its end.
func (r *upRelay) play(t *testing.T, yaml string) {
	t.Helper()
	r.finish(t, r.start(t, yaml))
}

// start plays a scenario in the background; finish awaits its end.
func (r *upRelay) start(t *testing.T, yaml string) <-chan upResult {
	t.Helper()
	sc, err := twiliosim.ParseScenario([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan upResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := r.sim.Run(ctx, sc, 5*time.Second)
		done <- upResult{res, err}
	}()
	return done
}

// finish fails the test unless the scenario went as it expects.
func (r *upRelay) finish(t *testing.T, done <-chan upResult) {
	t.Helper()
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	if !res.OK() {
		var b strings.Builder
		res.Print(&b)
		t.Errorf("scenario %q did not go as expected:\n%s", res.Name, b.String())
	}
}

type upResult struct {
	*twiliosim.Result
	err error
}

// await returns the simulator's next timeline entry of party whose text contains text,
// skipping the others.
func (r *upRelay) await(t *testing.T, party, text string) twiliosim.Entry {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		select {
		case e := <-r.entries:
			if e.Party == party && strings.Contains(e.Text, text) {
				return e
			}
		case <-deadline:
			t.Fatalf("the simulator's timeline has no %q from %s within 15s", text, party)
		}
	}
}

// ops sends an ops API request and returns the status, the body and how long it took.
func (r *upRelay) ops(t *testing.T, method, path, body string) (int, []byte, time.Duration) {
	t.Helper()
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+opsToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, data, time.Since(start)
}

// voice sends a signed /twilio/voice webhook for a new call, as Twilio does, and returns the
// status and how long the answer took.
func (r *upRelay) voice(t *testing.T, callSid, to string) (int, time.Duration) {
	t.Helper()
	form := url.Values{
		"AccountSid": {accountSID}, "ApiVersion": {"2010-04-01"}, "CallSid": {callSid}, "CallStatus": {"ringing"},
		"Direction": {"inbound"}, "From": {"+15559870001"}, "To": {to}, "CallToken": {"calltoken"},
	}
	req, err := http.NewRequest(http.MethodPost, r.url+"/twilio/voice", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, r.url+"/twilio/voice", form))
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /twilio/voice: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, time.Since(start)
}

// checkWebhooks fails the test if any webhook took notBlocked or longer to handle, or if one
// of routes was never called; it logs the slowest of each route.
func (r *upRelay) checkWebhooks(t *testing.T, routes ...string) {
	t.Helper()
	r.times.mu.Lock()
	defer r.times.mu.Unlock()
	for _, route := range routes {
		if r.times.count[route] == 0 {
			t.Errorf("no %s webhook was handled", route)
		}
	}
	paths := make([]string, 0, len(r.times.slowest))
	for p := range r.times.slowest {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		if !strings.HasPrefix(p, "/twilio/") {
			continue
		}
		d := r.times.slowest[p]
		t.Logf("%-28s %2d webhooks, slowest %v", p, r.times.count[p], d.Round(100*time.Microsecond))
		if d >= notBlocked {
			t.Errorf("%s took %v to answer: webhooks must not wait on an upstream", p, d)
		}
	}
}

// upTimes records how long callrelay takes to handle each request, by path.
type upTimes struct {
	mu      sync.Mutex
	slowest map[string]time.Duration
	count   map[string]int
}

func (u *upTimes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		took := time.Since(start)
		u.mu.Lock()
		defer u.mu.Unlock()
		if u.slowest == nil {
			u.slowest, u.count = map[string]time.Duration{}, map[string]int{}
		}
		u.slowest[r.URL.Path] = max(u.slowest[r.URL.Path], took)
		u.count[r.URL.Path]++
	})
}

// upProxy is Twilio's REST API as callrelay reaches it: a TCP proxy in front of the simulator
// that can refuse connections (its port held, bound and not listening: see mailtest.PortHold)
// or accept them and never answer. Switching mode closes the connections open until then, so
// that a connection kept alive from before cannot slip past the new mode.
type upProxy struct {
	t       *testing.T
	addr    string
	backend string

	mu       sync.Mutex
	ln       net.Listener       // nil while refusing
	accepted chan struct{}      // closed when ln's accept loop has returned
	hold     *mailtest.PortHold // while refusing
	stall    bool
	closed   bool
	conns    map[net.Conn]bool // open connections, both sides of each
	stalls   chan struct{}     // one per connection stalled
	wg       sync.WaitGroup
}

func newUpProxy(t *testing.T, backend string) *upProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &upProxy{t: t, addr: ln.Addr().String(), backend: backend, conns: map[net.Conn]bool{}, stalls: make(chan struct{}, 100)}
	p.serveLocked(ln)
	t.Cleanup(p.close)
	return p
}

// refuse makes Twilio unreachable: connections are refused.
func (p *upProxy) refuse() {
	p.mu.Lock()
	ln, accepted := p.ln, p.accepted
	p.ln = nil
	p.stall = false
	p.dropAllLocked()
	p.mu.Unlock()
	if ln == nil {
		return
	}
	_ = ln.Close()
	// The listening socket is closed for good only once its Accept has returned: until then
	// the port cannot be held.
	<-accepted
	hold, err := mailtest.HoldPort(p.addr)
	if err != nil {
		p.t.Errorf("proxy: %v", err)
	}
	p.mu.Lock()
	p.hold = hold
	p.mu.Unlock()
}

// stallAll makes Twilio slow: connections are accepted and never answered.
func (p *upProxy) stallAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listenLocked()
	p.stall = true
	p.dropAllLocked()
}

// up brings Twilio back. Stalled requests fail at once (their connections are closed).
func (p *upProxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listenLocked()
	if p.stall {
		p.stall = false
		p.dropAllLocked()
	}
}

// stalled waits until a connection is being stalled.
func (p *upProxy) stalled(t *testing.T) {
	t.Helper()
	select {
	case <-p.stalls:
	case <-time.After(15 * time.Second):
		t.Fatal("no request to Twilio was stalled within 15s")
	}
}

func (p *upProxy) close() {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	p.hold.Close()
	p.hold = nil
	p.dropAllLocked()
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *upProxy) listenLocked() {
	if p.ln != nil || p.closed {
		return
	}
	p.hold.Close()
	p.hold = nil
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Errorf("proxy: listen again on %s: %v", p.addr, err)
		return
	}
	p.serveLocked(ln)
}

func (p *upProxy) serveLocked(ln net.Listener) {
	accepted := make(chan struct{})
	p.ln, p.accepted = ln, accepted
	p.wg.Go(func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(c)
		}
	})
}

func (p *upProxy) dropAllLocked() {
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

// track registers an open connection; false (and closed) when the proxy has closed.
func (p *upProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		_ = c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *upProxy) drop(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_ = c.Close()
	delete(p.conns, c)
}

func (p *upProxy) handle(c net.Conn) {
	p.mu.Lock()
	stall := p.stall
	p.mu.Unlock()
	if !p.track(c) {
		return
	}
	if stall {
		select {
		case p.stalls <- struct{}{}:
		default:
		}
		return // kept open, unanswered, until the mode changes
	}
	p.wg.Go(func() {
		b, err := net.Dial("tcp", p.backend)
		if err != nil {
			p.drop(c)
			return
		}
		if !p.track(b) {
			p.drop(c)
			return
		}
		var pipes sync.WaitGroup
		pipes.Go(func() { _, _ = io.Copy(b, c); _ = b.(*net.TCPConn).CloseWrite() })
		pipes.Go(func() { _, _ = io.Copy(c, b); _ = c.(*net.TCPConn).CloseWrite() })
		pipes.Wait()
		p.drop(c)
		p.drop(b)
	})
}

// upConference is a conference-mode call whose caller hangs up at 80 s (4 s at 20x): time
// enough for Twilio to fail and come back, and for the holds the test makes.
const upConference = `
name: conference mode while Twilio's REST API fails
number: "+15551230040"
routing:
  owner_email: dana@example.com
  mode: conference
  timeout_seconds: 30
  targets: [{type: phone, to: "+15550001111", screen: off}]
targets:
  "+15550001111": {answer_after: 2}
caller:
  hangup_at: 80
expect:
  call_status: completed
  hold: {caller: false, callee: false}
  legs: {"+15550001111": completed}
  twilio_requests: {CreateParticipant: 1, UpdateParticipant: 2}
  heard:
    caller: ["hold music", "talking (conference)", "hold music (holdUrl", "talking (conference)"]
    callee: ["talking (conference)", "silence (caller on hold)", "talking (conference)"]
`

// TestUpstream_TwilioUnavailable_OK: Twilio's REST API refusing connections, or accepting them
// and never answering, when a conference-mode call arrives. The voice and conference-status
// webhooks are answered at once; the owner is added in the background, where the failed
// request is retried after the backoff (1 s) and succeeds once Twilio is back, so the call goes
// on. Then, with Twilio refusing again, an ops hold answers 502 upstream at once and changes no
// state; with Twilio back, hold and resume work and the call ends normally.
func TestUpstream_TwilioUnavailable_OK(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault func(*upProxy)
	}{
		{"Refused", (*upProxy).refuse},
		{"Stalled", (*upProxy).stallAll},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startUpRelay(t)
			tc.fault(r.rest)
			scenario := r.start(t, upConference)

			// The caller has joined; callrelay claims the owner's target and asks Twilio.
			var claimed time.Time
			if tc.name == "Stalled" {
				r.rest.stalled(t)
				claimed = time.Now()
			} else {
				claimed = awaitClaim(t, r.pool)
				// A refused connection leaves no trace to await: the request follows the claim
				// within microseconds; leave it well inside the 1-second backoff.
				time.Sleep(200 * time.Millisecond)
			}
			// Meanwhile another call arrives: answered at once, with its TwiML.
			if status, took := r.voice(t, "CA"+strings.Repeat("e", 32), "+15551230040"); status != http.StatusOK || took > notBlocked {
				t.Errorf("another call's voice webhook = %d after %v while Twilio fails, want 200 at once", status, took)
			}
			r.rest.up()
			created := r.await(t, "twilio", "← CreateParticipant")
			if !strings.Contains(created.Text, "→ 201") {
				t.Fatalf("CreateParticipant after Twilio came back: %s", created.Text)
			}
			if after := time.Since(claimed); after < 700*time.Millisecond {
				t.Errorf("participant created %v after the first try, want after the 1 s backoff: the first try did not fail", after)
			}
			r.await(t, "caller", "talking (conference)")
			callSid := callSidOf(t, r)

			// Twilio unreachable: the hold fails at once with Twilio's side of the story.
			r.rest.refuse()
			status, body, took := r.ops(t, http.MethodPost, "/api/calls/"+callSid+"/hold", `{"party":"caller"}`)
			var failed struct {
				Error struct{ Code, Message string }
			}
			_ = json.Unmarshal(body, &failed)
			t.Logf("hold with Twilio refusing: %d in %v: %s", status, took.Round(time.Millisecond), bytes.TrimSpace(body))
			if status != http.StatusBadGateway || failed.Error.Code != "upstream" ||
				!strings.Contains(failed.Error.Message, "Cannot reach Twilio to hold the participant") {
				t.Errorf("hold = %d %s, want 502 upstream saying Twilio cannot be reached", status, body)
			}
			if took > notBlocked {
				t.Errorf("hold answered after %v, want at once", took)
			}
			call := getUpCall(t, r, callSid)
			if call.Hold.Caller || call.Hold.Callee {
				t.Errorf("hold state %+v after the failed hold, want nobody held", call.Hold)
			}
			if !slices.ContainsFunc(call.Events, func(e upEvent) bool { return e.Type == "hold" && e.Outcome == "failed" }) {
				t.Errorf("timeline %+v has no failed hold", call.Events)
			}

			// Twilio back: hold and resume.
			r.rest.up()
			for _, op := range []string{"hold", "unhold"} {
				if status, body, _ := r.ops(t, http.MethodPost, "/api/calls/"+callSid+"/"+op, `{"party":"caller"}`); status != http.StatusOK {
					t.Errorf("%s after Twilio came back = %d %s, want 200", op, status, body)
				}
			}
			r.finish(t, scenario) // the scenario's expectations: the call went on and ended normally
			r.checkWebhooks(t, "/twilio/voice", "/twilio/conference-status")
		})
	}
}

// awaitClaim waits for callrelay to claim a call's first target (it asks Twilio next) and
// returns when it saw it. It polls the database: nothing else tells.
func awaitClaim(t *testing.T, pool *pgxpool.Pool) time.Time {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM calls WHERE next_target > 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatal("no target claimed within 15s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// callSidOf is the CallSid of the call whose target was claimed: the simulator's.
func callSidOf(t *testing.T, r *upRelay) string {
	t.Helper()
	var sid string
	if err := r.pool.QueryRow(context.Background(), `SELECT call_sid FROM calls WHERE next_target > 0`).Scan(&sid); err != nil {
		t.Fatal(err)
	}
	return sid
}

// upCall is the part of GET /api/calls/{sid} the tests read.
type upCall struct {
	Status string
	Hold   struct{ Caller, Callee bool }
	Events []upEvent
}

type upEvent struct{ Type, Outcome string }

func getUpCall(t *testing.T, r *upRelay, sid string) upCall {
	t.Helper()
	status, body, _ := r.ops(t, http.MethodGet, "/api/calls/"+sid, "")
	var c upCall
	if err := json.Unmarshal(body, &c); status != http.StatusOK || err != nil {
		t.Fatalf("GET /api/calls/%s = %d %s (%v)", sid, status, body, err)
	}
	return c
}

// Two voicemails: the first emailed at once (too short to transcribe), the second when its
// transcript arrives, its webhooks coming while the first email's send is failing.
const (
	upVoicemailShort = `
name: a short voicemail
number: "+15551230041"
routing:
  owner_email: dana@example.com
  timeout_seconds: 5
  targets: [{type: phone, to: "+15550001111"}]
targets:
  "+15550001111": {busy: true}
caller:
  voicemail: {seconds: 2, words: "Hi."}
`
	upVoicemailTranscribed = `
name: a voicemail with a transcript
number: "+15551230042"
routing:
  owner_email: dana@example.com
  timeout_seconds: 5
  targets: [{type: phone, to: "+15550001111"}]
targets:
  "+15550001111": {busy: true}
caller:
  voicemail: {seconds: 9, words: "Call me back about the lease."}
transcription: completed
`
)

// TestUpstream_SMTPUnavailable_OK: the SMTP server refusing connections, saying nothing, or
// stalling in the middle of a message. While the first voicemail's email is failing (or stuck
// in its send), a second voicemail's recording-status and transcription webhooks are answered
// at once. When SMTP comes back and the retries run, each voicemail is emailed exactly once,
// and running the jobs again sends nothing more.
func TestUpstream_SMTPUnavailable_OK(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		fault  func(*mailtest.Server)
		stalls bool
	}{
		{"Refused", (*mailtest.Server).Stop, false},
		{"Silent", func(s *mailtest.Server) { s.SetFault(mailtest.Silent) }, true},
		{"StallData", func(s *mailtest.Server) { s.SetFault(mailtest.StallData) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := startUpRelay(t)
			tc.fault(r.smtp)
			r.play(t, upVoicemailShort)
			if tc.stalls {
				r.smtp.Stalled(15 * time.Second) // the first email's send is stuck in SMTP now
			}
			r.play(t, upVoicemailTranscribed)
			r.checkWebhooks(t, "/twilio/recording-status", "/twilio/transcription")
			// The second email's attempt (due with the transcript) fails or sticks too.
			if tc.stalls {
				r.smtp.Stalled(15 * time.Second)
			} else {
				awaitJobs(t, r, rivertype.JobStateRetryable, 2)
			}

			// SMTP comes back: stalled sends fail at once, and every job waits for its retry.
			r.smtp.Up()
			jobs := awaitJobs(t, r, rivertype.JobStateRetryable, 2)
			for _, j := range jobs {
				if wait := j.ScheduledAt.Sub(clocktest.Now()); wait < 20*time.Second {
					t.Errorf("job %d retries in %v, want the 30 s backoff", j.ID, wait)
				}
			}
			// Run the retries now rather than wait out the backoff.
			for _, j := range jobs {
				if _, err := r.jobs.JobRetry(context.Background(), j.ID); err != nil {
					t.Fatal(err)
				}
			}
			byVoicemail := map[string]mailtest.Email{}
			for range 2 {
				e := mailtest.Parse(t, r.smtp.Next(15*time.Second).Data)
				byVoicemail[e.Header.Get("X-Callrelay-Voicemail")] = e
			}
			if len(byVoicemail) != 2 {
				t.Errorf("emails for voicemails %v, want one for each of 2", keys(byVoicemail))
			}
			var transcribed bool
			for _, e := range byVoicemail {
				transcribed = transcribed || strings.Contains(e.Text, "Call me back about the lease.")
			}
			if !transcribed {
				t.Error("no email carries the second voicemail's transcript")
			}
			awaitJobs(t, r, rivertype.JobStateCompleted, 2)

			// The jobs run once more (a duplicate, another replica): nothing more is sent.
			retried := time.Now()
			for _, j := range jobs {
				if _, err := r.jobs.JobRetry(context.Background(), j.ID); err != nil {
					t.Fatal(err)
				}
			}
			for _, j := range awaitJobs(t, r, rivertype.JobStateCompleted, 2) {
				if j.FinalizedAt == nil || j.FinalizedAt.Before(retried) {
					t.Errorf("job %d not run again: finalized %v", j.ID, j.FinalizedAt)
				}
			}
			if n := len(r.smtp.Received()); n != 2 {
				t.Errorf("emails = %d, want exactly 2 (one per voicemail)", n)
			}
		})
	}
}

// awaitJobs waits until the voicemail email jobs are n, all in state (and, for completed, all
// finalized after the last retry asked), and returns them. It polls the database: the jobs are
// worked by callrelay's own queue, whose events the test cannot subscribe to.
func awaitJobs(t *testing.T, r *upRelay, state rivertype.JobState, n int) []*rivertype.JobRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := r.jobs.JobList(context.Background(), river.NewJobListParams().Kinds("notify_voicemail").First(100))
		if err != nil {
			t.Fatal(err)
		}
		ok := len(res.Jobs) == n
		for _, j := range res.Jobs {
			ok = ok && j.State == state
		}
		if ok {
			return res.Jobs
		}
		if time.Now().After(deadline) {
			var got []string
			for _, j := range res.Jobs {
				got = append(got, string(j.State))
			}
			t.Fatalf("voicemail jobs %v, want %d %s", got, n, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
