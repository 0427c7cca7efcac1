package app_test

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/signature"
)

// The shutdown tests run callrelay the way `callrelay serve` does: app.Serve on a real TCP
// listener with internal/server's HTTP server, and end it by cancelling Serve's context as
// SIGTERM does.

// serving is callrelay running under app.Serve.
type serving struct {
	app  *app.App
	base string // its public URL: http://127.0.0.1:port
	logs *logBuffer
	// began is closed when the HTTP server's shutdown begins, after the drain: its listener
	// is closed then.
	began chan struct{}

	cancel   context.CancelFunc
	stopOnce sync.Once
	done     chan error
	result   error
}

// startServing runs callrelay under app.Serve on a new loopback listener. edit adjusts the
// configuration; wrap, when set, wraps the handler (the tests watch requests arrive).
func startServing(t *testing.T, pool *pgxpool.Pool, smtpURL, apiURL string, opts app.ServeOptions,
	edit func(*config.Config), wrap func(http.Handler) http.Handler) *serving {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	publicURL, _ := url.Parse("http://" + ln.Addr().String())
	api, _ := url.Parse(apiURL)
	cfg := relayConfig(t, publicURL, api, smtpURL)
	if edit != nil {
		edit(&cfg)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	a, err := app.New(cfg, pool, log, relayOptions())
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	h := a.Handler
	if wrap != nil {
		h = wrap(h)
	}
	srv := server.NewHTTPServer(ln.Addr().String(), h, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	s := &serving{app: a, base: publicURL.String(), logs: logs, began: make(chan struct{}), done: make(chan error, 1)}
	var once sync.Once
	srv.RegisterOnShutdown(func() { once.Do(func() { close(s.began) }) })
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- a.Serve(ctx, srv, ln, opts) }()
	t.Cleanup(func() { s.stop(t, opts.DrainMax+opts.ShutdownTimeout+10*time.Second) })
	return s
}

// stop ends Serve as SIGTERM does and returns what it returned, failing t if it does not
// return within limit.
func (s *serving) stop(t *testing.T, limit time.Duration) error {
	t.Helper()
	s.stopOnce.Do(func() {
		s.cancel()
		select {
		case s.result = <-s.done:
		case <-time.After(limit):
			s.result = fmt.Errorf("Serve did not return within %s of the end of its context", limit)
			t.Error(s.result)
		}
	})
	return s.result
}

// signedPost sends a webhook as Twilio does, signed over base+path.
func signedPost(ctx context.Context, client *http.Client, base, path string, form url.Values, header http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, base+path, form))
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// mustPost sends a signed webhook and fails t unless it answers want.
func mustPost(t *testing.T, base, path string, form url.Values, want int) []byte {
	t.Helper()
	resp, body, err := signedPost(context.Background(), http.DefaultClient, base, path, form, nil)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	if resp.StatusCode != want {
		t.Fatalf("POST %s: got %d %s, want %d", path, resp.StatusCode, body, want)
	}
	return body
}

// putNumber configures a masked number through the ops API.
func putNumber(t *testing.T, base, number, routing string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, base+"/api/numbers/"+url.PathEscape(number), strings.NewReader(routing))
	req.Header.Set("Authorization", "Bearer "+opsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PUT number: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT number: got %d %s, want 201", resp.StatusCode, body)
	}
}

func sid(prefix string, n int64) string { return fmt.Sprintf("%s%032x", prefix, n) }

func voiceForm(callSid, to string) url.Values {
	return url.Values{"AccountSid": {accountSID}, "CallSid": {callSid}, "To": {to}, "From": {"+15559870000"},
		"CallStatus": {"ringing"}, "Direction": {"inbound"}}
}

// validTwiML reports why body is not a whole TwiML document that forwards the call ("" when
// it is): a truncated answer does not parse.
func validTwiML(body []byte) string {
	var doc struct {
		XMLName xml.Name
		Dial    *struct{} `xml:"Dial"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return fmt.Sprintf("not XML (%v): %q", err, body)
	}
	if doc.XMLName.Local != "Response" || doc.Dial == nil {
		return fmt.Sprintf("not a <Response> with a <Dial>: %q", body)
	}
	return ""
}

// exchange is one webhook of the load, as the client saw it.
type exchange struct {
	seq      int64
	path     string
	status   int
	problem  string // "" when the answer was whole and right
	err      error
	draining bool // sent after the shutdown began
}

// TestServe_ShutdownUnderLoad_OK ends callrelay while webhooks keep coming, with requests in
// flight across the whole shutdown (their bodies still arriving when the listener closes).
//
// Balanced: a load balancer in front polls /readyz, as production's does, and sends nothing
// more once it answers 503: every webhook sent gets a whole answer, those that came during
// the drain included, and none fails.
//
// Unbalanced: the webhooks never stop (one replica, Twilio straight at it): every request the
// server took in is answered whole; those still coming once the listener has closed are
// refused, or reset unread, and reach no handler (Twilio then uses its fallback URL).
//
// Both: Serve returns nil, and afterwards connections are refused.
func TestServe_ShutdownUnderLoad_OK(t *testing.T) {
	t.Run("Balanced", func(t *testing.T) { t.Parallel(); shutdownUnderLoad(t, true) })
	t.Run("Unbalanced", func(t *testing.T) { t.Parallel(); shutdownUnderLoad(t, false) })
}

func shutdownUnderLoad(t *testing.T, balanced bool) {
	const (
		number  = "+15551239000"
		workers = 8
		warmup  = 150 // requests answered before shutting down
		slow    = 3   // requests whose bodies are still arriving when the listener closes
	)
	pool := pgtest.NewPool(t)
	smtp := mailtest.Start(t)

	// seen records the requests that reached the handler: only those can have been cut.
	var seenMu sync.Mutex
	seen := map[int64]bool{}
	slowIn := make(chan int64, slow)
	track := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if seq, err := strconv.ParseInt(r.Header.Get("X-Test-Seq"), 10, 64); err == nil {
				seenMu.Lock()
				seen[seq] = true
				seenMu.Unlock()
				if seq < 0 {
					slowIn <- seq
				}
			}
			h.ServeHTTP(w, r)
		})
	}
	// The drain ends 300 ms after the last request (the balancer polls every 100 ms), or after
	// 800 ms when they keep coming.
	opts := app.ServeOptions{ShutdownTimeout: 10 * time.Second, DrainMax: 800 * time.Millisecond, DrainQuiet: 300 * time.Millisecond}
	s := startServing(t, pool, smtp.URL(), "http://127.0.0.1:1", opts, nil, track)
	putNumber(t, s.base, number, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// routable is the load balancer's view: it polls /readyz, and routes nothing more here
	// once it answers anything but 200.
	var routable atomic.Bool
	routable.Store(true)
	lbSaw := make(chan string, 1)
	polled := make(chan struct{}, 1) // a health check just answered 200
	if balanced {
		go func() {
			probe := &http.Client{Timeout: time.Second}
			for ctx.Err() == nil {
				resp, err := probe.Get(s.base + "/readyz")
				if err != nil {
					routable.Store(false)
					lbSaw <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					routable.Store(false)
					lbSaw <- resp.Status
					return
				}
				select {
				case polled <- struct{}{}:
				default:
				}
				time.Sleep(100 * time.Millisecond) // the balancer's health-check interval
			}
		}()
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers, DisableCompression: true}}
	defer client.CloseIdleConnections()
	var shuttingDown atomic.Bool
	var answered atomic.Int64
	warm := make(chan struct{})
	var warmOnce sync.Once

	var mu sync.Mutex
	var log []exchange
	var seq atomic.Int64
	var wg sync.WaitGroup
	// Each worker is one caller after another: the voice webhook, then the call's end.
	for w := range workers {
		wg.Go(func() {
			for call := int64(0); ; call++ {
				callSid := sid("CA", int64(w)<<32|call)
				for _, step := range []struct {
					path string
					form url.Values
				}{
					{"/twilio/voice", voiceForm(callSid, number)},
					{"/twilio/call-status", url.Values{"AccountSid": {accountSID}, "CallSid": {callSid}, "CallStatus": {"completed"}}},
				} {
					if !routable.Load() {
						return // the load balancer sends it to another replica
					}
					x := exchange{seq: seq.Add(1), path: step.path, draining: shuttingDown.Load()}
					resp, body, err := signedPost(ctx, client, s.base, step.path, step.form, http.Header{"X-Test-Seq": {strconv.FormatInt(x.seq, 10)}})
					x.err = err
					if err == nil {
						x.status = resp.StatusCode
						x.problem = checkAnswer(step.path, resp, body)
						if answered.Add(1) == warmup {
							warmOnce.Do(func() { close(warm) })
						}
					}
					mu.Lock()
					log = append(log, x)
					mu.Unlock()
					if err != nil {
						return // refused: this replica is gone (checked below)
					}
				}
			}
		})
	}

	select {
	case <-warm:
	case <-ctx.Done():
		t.Fatalf("only %d requests answered before the shutdown, want %d", answered.Load(), warmup)
	}
	// Requests in flight across the shutdown: headers and half the body now, the rest once
	// the listener is closed.
	type slowResult struct {
		problem string
		err     error
	}
	slowDone := make(chan slowResult, slow)
	type slowBody struct {
		w    *io.PipeWriter
		rest string
	}
	var bodies []slowBody
	for i := range slow {
		form := voiceForm(sid("CA", int64(1<<40+i)), number)
		enc := form.Encode()
		pr, pw := io.Pipe()
		defer pw.CloseWithError(errors.New("test over")) //nolint:errcheck // unblocks a stuck request
		bodies = append(bodies, slowBody{w: pw, rest: enc[len(enc)/2:]})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.base+"/twilio/voice", pr)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, s.base+"/twilio/voice", form))
		req.Header.Set("X-Test-Seq", strconv.Itoa(-1-i))
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				slowDone <- slowResult{err: err}
				return
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			slowDone <- slowResult{problem: checkAnswer("/twilio/voice", resp, body), err: err}
		}()
		go func() { _, _ = io.WriteString(pw, enc[:len(enc)/2]) }()
	}
	for range slow {
		select {
		case <-slowIn:
		case <-ctx.Done():
			t.Fatal("the slow requests did not reach the handler")
		}
	}

	if balanced {
		// SIGTERM just after a health check, as it may come: the balancer routes here for
		// one more interval, and those requests must be served. (Sent just before a check,
		// none might be, and the test would prove nothing.)
		select {
		case <-polled:
		default:
		}
		select {
		case <-polled:
		case <-ctx.Done():
			t.Fatal("the balancer stopped polling")
		}
	}
	shutdownAt := time.Now()
	shuttingDown.Store(true)
	s.cancel() // SIGTERM
	select {
	case <-s.began: // the drain is over; the listener is closed
	case <-ctx.Done():
		t.Fatal("the HTTP server's shutdown did not begin")
	}
	drained := time.Since(shutdownAt)
	for _, b := range bodies {
		go func() {
			_, _ = io.WriteString(b.w, b.rest)
			b.w.Close()
		}()
	}
	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("Serve = %v, want nil after a clean shutdown", err)
	}
	stopped := time.Since(shutdownAt)
	wg.Wait()

	for range slow {
		r := <-slowDone
		if r.err != nil || r.problem != "" {
			t.Errorf("request in flight across the shutdown: err %v, %s; want a whole answer", r.err, r.problem)
		}
	}
	var ok, okDraining, refused, unread int
	seenMu.Lock()
	defer seenMu.Unlock()
	for _, x := range log {
		switch {
		case x.err == nil && x.problem == "":
			ok++
			if x.draining {
				okDraining++
			}
		case x.err == nil:
			t.Errorf("request %d %s answered %d: %s", x.seq, x.path, x.status, x.problem)
		case seen[x.seq]:
			t.Errorf("request %d %s reached the handler but was cut: %v", x.seq, x.path, x.err)
		case !x.draining:
			t.Errorf("request %d %s failed before any shutdown: %v", x.seq, x.path, x.err)
		case balanced:
			t.Errorf("request %d %s failed although the load balancer still routed here: %v", x.seq, x.path, x.err)
		case errors.Is(x.err, syscall.ECONNREFUSED):
			refused++
		default:
			// Sent on a connection the server closed before reading from it (one still in
			// the listener's queue when it closed): the server never saw it, which Twilio
			// treats like a refused connection.
			unread++
			t.Logf("request %d %s not read by the server: %v", x.seq, x.path, x.err)
		}
	}
	t.Logf("%d webhooks answered (%d after SIGTERM), %d refused at connect, %d reset unread; drain %s, shutdown %s",
		ok, okDraining, refused, unread, drained.Round(time.Millisecond), stopped.Round(time.Millisecond))
	if okDraining == 0 {
		t.Errorf("no webhook sent after SIGTERM was answered: want the drain to serve on")
	}
	if balanced {
		select {
		case got := <-lbSaw:
			if got != "503 Service Unavailable" {
				t.Errorf("the load balancer saw %q from /readyz, want 503 while draining", got)
			}
		default:
			t.Errorf("the load balancer never saw /readyz fail")
		}
	} else if refused+unread == 0 {
		t.Errorf("no request was refused: the load did not run into the closed listener")
	}
	if !strings.Contains(s.logs.String(), "msg=stopped") {
		t.Errorf("log lacks the clean stop:\n%s", s.logs.String())
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(s.base, "http://"), time.Second); err == nil {
		c.Close()
		t.Errorf("after the shutdown a connection to %s was accepted, want it refused", s.base)
	}
}

// checkAnswer reports what is wrong with a webhook's answer ("" when it is whole and right).
func checkAnswer(path string, resp *http.Response, body []byte) string {
	switch path {
	case "/twilio/voice":
		if resp.StatusCode != http.StatusOK {
			return fmt.Sprintf("status %d, want 200: %q", resp.StatusCode, body)
		}
		return validTwiML(body)
	default:
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			return fmt.Sprintf("status %d %q, want 204 and no body", resp.StatusCode, body)
		}
		return ""
	}
}

// smtpGate stands between callrelay and the mail server. It accepts connections but holds
// each one silent (a mail server that hangs) until Open; from then on it passes them
// through, each after delay (a slow one).
type smtpGate struct {
	ln       net.Listener
	upstream string
	delay    time.Duration
	accepted chan struct{} // one value per connection accepted
	opened   chan struct{}
	openOnce sync.Once
	done     chan struct{}

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startSMTPGate(t *testing.T, upstream *mailtest.Server, delay time.Duration) *smtpGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &smtpGate{ln: ln, upstream: strings.TrimPrefix(upstream.URL(), "smtp://"), delay: delay,
		accepted: make(chan struct{}, 16), opened: make(chan struct{}), done: make(chan struct{})}
	g.wg.Go(g.serve)
	t.Cleanup(g.close)
	return g
}

// URL is the SMTP_URL that reaches the mail server through the gate.
func (g *smtpGate) URL() string { return "smtp://" + g.ln.Addr().String() }

// Open lets connections through, those held so far included.
func (g *smtpGate) Open() { g.openOnce.Do(func() { close(g.opened) }) }

// awaitConnection waits until a sender has connected: an email is being sent.
func (g *smtpGate) awaitConnection(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-g.accepted:
	case <-time.After(timeout):
		t.Fatalf("no connection to the mail server within %s: no email is being sent", timeout)
	}
}

func (g *smtpGate) serve() {
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		g.conns = append(g.conns, c)
		g.mu.Unlock()
		select {
		case g.accepted <- struct{}{}:
		default:
		}
		g.wg.Go(func() { g.pass(c) })
	}
}

func (g *smtpGate) pass(c net.Conn) {
	defer c.Close()
	select {
	case <-g.opened:
	case <-g.done:
		return
	}
	select {
	case <-time.After(g.delay): // the slow server's latency
	case <-g.done:
		return
	}
	up, err := net.Dial("tcp", g.upstream)
	if err != nil {
		return
	}
	g.mu.Lock()
	g.conns = append(g.conns, up)
	g.mu.Unlock()
	go func() {
		_, _ = io.Copy(up, c)
		up.Close()
	}()
	_, _ = io.Copy(c, up)
}

func (g *smtpGate) close() {
	close(g.done)
	g.ln.Close()
	g.mu.Lock()
	for _, c := range g.conns {
		c.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
}

// mediaServer is Twilio's REST API as far as a voicemail email needs it: any recording's
// audio.
func mediaServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/x-wav")
		_, _ = w.Write([]byte("RIFF\x24\x00\x00\x00WAVEfmt "))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Routings of the voicemail tests: the email goes at once (no transcript asked), or waits for
// Twilio's transcript.
const (
	routingEmailNow   = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],"voicemail":{"transcribe":false}}`
	routingTranscript = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`
)

// leaveVoicemail places call n to number and leaves a message of seconds, with Twilio's
// webhooks: the voicemail is stored and its email job queued. It returns the call's SID.
func leaveVoicemail(t *testing.T, base, apiURL, number string, n int64, seconds int) string {
	t.Helper()
	callSid := sid("CA", n)
	mustPost(t, base, "/twilio/voice", voiceForm(callSid, number), http.StatusOK)
	mustPost(t, base, "/twilio/recording-status", url.Values{
		"AccountSid": {accountSID}, "CallSid": {callSid}, "RecordingSid": {sid("RE", n)},
		"RecordingUrl":    {apiURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + sid("RE", n)},
		"RecordingStatus": {"completed"}, "RecordingDuration": {strconv.Itoa(seconds)},
		"RecordingChannels": {"1"}, "RecordingSource": {"RecordVerb"},
	}, http.StatusNoContent)
	return callSid
}

// voicemailOf returns the voicemail left on number (one per number in these tests).
func voicemailOf(t *testing.T, a *app.App, number string) *callrelay.Voicemail {
	t.Helper()
	vms, err := a.DB.ListVoicemails(context.Background(), callrelay.VoicemailFilter{Number: number})
	if err != nil || len(vms) != 1 {
		t.Fatalf("voicemails of %s: %d, %v; want 1", number, len(vms), err)
	}
	return vms[0]
}

// TestServe_ShutdownRunningJob_Finished: an email being sent when the shutdown begins (the
// mail server is slow) is finished before Serve returns, not cut: delivered once, its job
// completed, nothing left for another replica.
func TestServe_ShutdownRunningJob_Finished(t *testing.T) {
	const number = "+15551239100"
	pool := pgtest.NewPool(t)
	smtp := mailtest.Start(t)
	gate := startSMTPGate(t, smtp, 300*time.Millisecond)
	media := mediaServer(t)
	opts := app.ServeOptions{ShutdownTimeout: 10 * time.Second, DrainMax: time.Second, DrainQuiet: 50 * time.Millisecond}
	s := startServing(t, pool, gate.URL(), media.URL, opts, nil, nil)
	putNumber(t, s.base, number, routingEmailNow)
	callSid := leaveVoicemail(t, s.base, media.URL, number, 1, 5)
	gate.awaitConnection(t, 10*time.Second)

	start := time.Now()
	s.cancel() // SIGTERM, with the email half sent
	<-s.began
	gate.Open() // the mail server answers, slowly: the job is still running as the queue stops
	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	t.Logf("shutdown took %s", time.Since(start).Round(time.Millisecond))

	// Read at once: Serve returned only once the job was done.
	if got := emailsByCall(t, smtp); got[callSid] != 1 || len(got) != 1 {
		t.Errorf("emails when Serve returned: %v, want exactly one, about %s", got, callSid)
	}
	if vm := voicemailOf(t, s.app, number); vm.Notification.Status != callrelay.NotifySent {
		t.Errorf("voicemail email status %q, want %q", vm.Notification.Status, callrelay.NotifySent)
	}
	for _, j := range unfinishedJobs(t, pool) {
		t.Errorf("job %d %s left %s, want it completed before Serve returned", j.ID, j.EncodedArgs, j.State)
	}
	if strings.Contains(s.logs.String(), "handing them back") {
		t.Errorf("the running job was cancelled, want it finished:\n%s", s.logs.String())
	}
}

// TestServe_ShutdownStuckJob_HandedBack: an email whose mail server hangs past the shutdown's
// time is cancelled and handed back (its job available again at once, the voicemail pending),
// and an email still waiting for its transcript stays queued; a replica started afterwards
// on the same database sends each exactly once.
func TestServe_ShutdownStuckJob_HandedBack(t *testing.T) {
	const numberNow, numberLater = "+15551239200", "+15551239201"
	dbURL := pgtest.NewURL(t)
	smtp := mailtest.Start(t)
	gate := startSMTPGate(t, smtp, 0)
	media := mediaServer(t)
	opts := app.ServeOptions{ShutdownTimeout: 3 * time.Second, DrainMax: time.Second, DrainQuiet: 50 * time.Millisecond}
	// The transcript wait is long: the second email goes when its transcript comes, not before.
	waitLong := func(c *config.Config) { c.TranscriptWait = time.Minute }
	s := startServing(t, openPool(t, dbURL), gate.URL(), media.URL, opts, waitLong, nil)
	putNumber(t, s.base, numberNow, routingEmailNow)
	putNumber(t, s.base, numberLater, routingTranscript)
	stuckCall := leaveVoicemail(t, s.base, media.URL, numberNow, 1, 5)
	waitingCall := leaveVoicemail(t, s.base, media.URL, numberLater, 2, 9)
	gate.awaitConnection(t, 10*time.Second) // the first email is being sent, and hangs

	start := time.Now()
	if err := s.stop(t, 15*time.Second); err != nil {
		t.Errorf("Serve = %v, want nil: the stuck job was handed back", err)
	}
	took := time.Since(start)
	t.Logf("shutdown took %s", took.Round(time.Millisecond))
	if limit := opts.DrainMax + opts.ShutdownTimeout + time.Second; took > limit {
		t.Errorf("shutdown took %s, want under %s", took, limit)
	}
	if !strings.Contains(s.logs.String(), "handing them back") {
		t.Errorf("log does not say the running job was handed back:\n%s", s.logs.String())
	}
	// The voicemail emails' jobs: the call's outcome check and the recordings' expiry have
	// jobs of their own.
	states := map[rivertype.JobState]int{}
	for _, j := range unfinishedJobs(t, s.app.DB.Pool()) {
		if j.Kind == (callrelay.NotifyVoicemail{}).Kind() {
			states[j.State]++
		}
	}
	if want := map[rivertype.JobState]int{rivertype.JobStateAvailable: 1, rivertype.JobStateScheduled: 1}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("jobs after the shutdown: %v, want %v (the cancelled one available again, the other still waiting)", states, want)
	}
	if vm := voicemailOf(t, s.app, numberNow); vm.Notification.Status != callrelay.NotifyPending {
		t.Errorf("cancelled email: status %q, want %q so that another replica may claim it", vm.Notification.Status, callrelay.NotifyPending)
	}
	if n := len(smtp.Received()); n != 0 {
		t.Fatalf("%d emails delivered before the gate opened, want 0", n)
	}

	// Another replica, on the same database, with the mail server answering again.
	gate.Open()
	srv2 := httptest.NewUnstartedServer(nil)
	base2, _ := url.Parse("http://" + srv2.Listener.Addr().String())
	api, _ := url.Parse(media.URL)
	cfg := relayConfig(t, base2, api, gate.URL())
	waitLong(&cfg)
	logs2 := &logBuffer{}
	a2, err := app.New(cfg, openPool(t, dbURL), slog.New(slog.NewTextHandler(logs2, nil)), relayOptions())
	if err != nil {
		t.Fatal(err)
	}
	srv2.Config.Handler = a2.Handler
	srv2.Start()
	if err := a2.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv2.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a2.Shutdown(ctx); err != nil {
			t.Errorf("second replica: shutdown: %v", err)
		}
	})

	if got := mailtest.Parse(t, smtp.Next(10*time.Second).Data).Header.Get("X-Callrelay-Call"); got != stuckCall {
		t.Errorf("first email after the takeover is about %s, want %s (the handed-back one)", got, stuckCall)
	}
	mustPost(t, base2.String(), "/twilio/transcription", url.Values{
		"AccountSid": {accountSID}, "CallSid": {waitingCall}, "RecordingSid": {sid("RE", 2)},
		"TranscriptionSid": {sid("TR", 2)}, "TranscriptionStatus": {"completed"}, "TranscriptionText": {"Call me back about the lease."},
	}, http.StatusNoContent)
	email := mailtest.Parse(t, smtp.Next(10*time.Second).Data)
	if got := email.Header.Get("X-Callrelay-Call"); got != waitingCall || !strings.Contains(email.Text, "Call me back about the lease.") {
		t.Errorf("second email: about %s with text %q; want about %s, with the transcript", got, email.Text, waitingCall)
	}

	awaitJobsFinished(t, a2.DB.Pool(), 5*time.Second)
	if got := emailsByCall(t, smtp); got[stuckCall] != 1 || got[waitingCall] != 1 || len(got) != 2 {
		t.Errorf("emails by call: %v, want exactly one about each of %s and %s", got, stuckCall, waitingCall)
	}
	if t.Failed() {
		t.Logf("second replica's log:\n%s", logs2.String())
	}
}
