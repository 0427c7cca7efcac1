package app_test

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiliosim"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// speed is how much faster than real time the scenarios run: a 20-second ring takes one
// second. callrelay's own timers are scaled to match (participant pacing, transcript wait).
const speed = 20

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "e2etoken123"
	opsToken   = "e2eopstoken"
)

var verbose = flag.Bool("timeline", false, "print every scenario's timeline")

// relay is callrelay and the simulator, wired to each other, on a database of its own.
type relay struct {
	app  *app.App
	url  string // callrelay's base URL
	sim  *twiliosim.Sim
	smtp *mailtest.Server
	logs *logBuffer
}

// startRelay starts callrelay and the simulator; tune, when given, changes callrelay's
// configuration and options first.
func startRelay(t *testing.T, tune ...func(*config.Config, *app.Options)) *relay {
	t.Helper()
	return startRelayAt(t, time.Time{}, tune...)
}

// startRelayAt starts callrelay and the simulator with their clocks at start (a scenario's
// "at"): callrelay's runs in real time from there, the simulator's at its speed. Zero: the
// test clock (clocktest.Now). tune, when given, changes callrelay's configuration and options
// first.
func startRelayAt(t *testing.T, start time.Time, tune ...func(*config.Config, *app.Options)) *relay {
	t.Helper()
	now := clocktest.Now
	if !start.IsZero() {
		real0 := time.Now()
		now = func() time.Time { return start.Add(time.Since(real0)) }
	} else {
		start = clocktest.Now()
	}
	pool := pgtest.NewPool(t)
	smtp := mailtest.Start(t)
	simSrv := httptest.NewUnstartedServer(nil)
	relaySrv := httptest.NewUnstartedServer(nil)
	relayURL, _ := url.Parse("http://" + relaySrv.Listener.Addr().String())
	apiURL, _ := url.Parse("http://" + simSrv.Listener.Addr().String())
	cfg := relayConfig(t, relayURL, apiURL, smtp.URL())
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	opts := relayOptions()
	opts.Now = now
	for _, f := range tune {
		f(&cfg, &opts)
	}
	a, err := app.New(cfg, pool, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	sim := newSimAt(t, relayURL.String(), apiURL.String(), start)
	simSrv.Config.Handler, relaySrv.Config.Handler = sim, a.Handler
	simSrv.Start()
	relaySrv.Start()
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		relaySrv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		simSrv.Close()
	})
	return &relay{app: a, url: relayURL.String(), sim: sim, smtp: smtp, logs: logs}
}

// newSim returns a Twilio simulator that calls callrelay at baseURL (its public URL) and is
// reached by callrelay at apiURL (its TWILIO_API_URL).
func newSim(t *testing.T, baseURL, apiURL string) *twiliosim.Sim {
	t.Helper()
	return newSimAt(t, baseURL, apiURL, clocktest.Now())
}

// newSimAt is newSim with the simulator's clock starting at start.
func newSimAt(t *testing.T, baseURL, apiURL string, start time.Time) *twiliosim.Sim {
	t.Helper()
	spec, err := twiliofake.DefaultSpec()
	if err != nil {
		t.Fatal(err) // the spec is embedded (third_party/twilio); $TWILIO_OPENAPI overrides it
	}
	sim, err := twiliosim.New(twiliosim.Config{
		AccountSID: accountSID, AuthToken: authToken, OpsToken: opsToken,
		BaseURL: baseURL, APIURL: apiURL,
		Clock: twiliosim.NewClock(start, speed), Spec: spec, CheckTwiML: checkTwiML,
	})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

// relayConfig is callrelay's configuration in the end-to-end tests: publicURL is where Twilio
// (the simulator) reaches it and signs against, apiURL the simulator's REST API, smtpURL the
// mail server.
func relayConfig(t *testing.T, publicURL, apiURL *url.URL, smtpURL string) config.Config {
	t.Helper()
	return config.Config{
		PublicURL:        config.URL{URL: publicURL},
		TwilioAccountSID: accountSID,
		TwilioAuthToken:  authToken,
		TwilioAPIURL:     config.URL{URL: apiURL},
		OpsToken:         opsToken,
		SMTPURL:          config.Secret(smtpURL),
		MailFrom:         "callrelay@relay.example.com",
		MailDir:          t.TempDir(),
		TranscriptWait:   90 * time.Second / speed,
	}
}

// relayOptions scale callrelay's own timers to the simulator's speed, and poll for due jobs
// often so that an email is not held back by the queue's default poll.
func relayOptions() app.Options {
	return app.Options{ParticipantInterval: time.Second / speed, JobPollInterval: 100 * time.Millisecond, Now: clocktest.Now,
		MissedCallDelay: 2 * time.Minute / speed}
}

// checkTwiML validates a document against Twilio's XSD, with the gaps callrelay's TwiML needs
// (participantLabel on <Conference>, machineDetection on <Number>, which the XSD lacks).
func checkTwiML(doc []byte) error {
	var gaps []twimltest.Gap
	if bytes.Contains(doc, []byte("participantLabel=")) {
		gaps = append(gaps, twimltest.GapConferenceParticipantLabel)
	}
	if bytes.Contains(doc, []byte("machineDetection=")) {
		gaps = append(gaps, twimltest.GapNumberMachineDetection)
	}
	return twimltest.Check(doc, gaps...)
}

// TestScenarios plays every scenario in testdata/scenarios through the simulator against a
// whole callrelay (real Postgres, real SMTP, the REST API checked against Twilio's spec).
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../../testdata/scenarios/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios found: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			t.Parallel()
			sc, err := twiliosim.LoadScenario(f)
			if err != nil {
				t.Fatal(err)
			}
			var start time.Time
			if sc.At != "" {
				if start, err = sc.Start(clocktest.Now()); err != nil {
					t.Fatal(err)
				}
			}
			r := startRelayAt(t, start)
			res := playScenario(t, r, sc, 15*time.Second)
			if !res.OK() || *verbose {
				var b strings.Builder
				res.Print(&b)
				t.Log("\n" + b.String())
			}
			if !res.OK() {
				t.Errorf("scenario failed (callrelay's log:)\n%s", r.logs.String())
			}
			checkEmailCounts(t, r, sc)
		})
	}
}

// playScenario runs a scenario, waiting up to expectWait for callrelay's state to match.
func playScenario(t *testing.T, r *relay, sc *twiliosim.Scenario, expectWait time.Duration) *twiliosim.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.sim.Run(ctx, sc, expectWait)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// logBuffer collects callrelay's log, written from many goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestScenarioExpectations checks the checker: a call that does not go as the scenario says
// fails it, naming what differed.
func TestScenarioExpectations(t *testing.T) {
	sc, err := twiliosim.ParseScenario([]byte(`
name: wrong expectations
number: "+15551230099"
routing:
  owner_email: dana@example.com
  timeout_seconds: 5
  targets: [{type: phone, to: "+15550001111"}]
targets:
  "+15550001111": {busy: true}
caller:
  voicemail: {seconds: 4, words: "Hello there."}
ops:
  - {at: 1, hold: caller}
expect:
  call_status: in-progress
  legs: {"+15550001111": completed}
  voicemail: {email: sent, transcript: "Goodbye"}
  heard:
    caller: ["beep", "talking with"]
  twilio_requests: {UpdateCall: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	res := playScenario(t, startRelay(t), sc, 2*time.Second)
	want := []string{
		`ops hold caller answered 409, want 200`,
		`caller heard`, `missing "talking with"`,
		`callrelay made 0 UpdateCall requests, want 1`,
		`call status "completed", want "in-progress"`,
		`leg +15550001111 status "busy", want "completed"`,
		`transcript "Hello there.", want one containing "Goodbye"`,
	}
	all := strings.Join(res.Failures, "\n")
	for _, w := range want {
		if !strings.Contains(all, w) {
			t.Errorf("failures do not mention %q:\n%s", w, all)
		}
	}
	if len(res.Failures) != 6 {
		t.Errorf("got %d failures, want 6:\n%s", len(res.Failures), all)
	}
}

func TestParseScenario_Errors(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"UnknownKey":    {"number: \"+15551230000\"\ncalller: {}\n", "field calller not found"},
		"BadNumber":     {"number: \"555\"\n", "number:"},
		"TwoOutcomes":   {"number: \"+15551230000\"\ntargets: {\"+1555\": {busy: true, failed: true}}\n", "exclude each other"},
		"SIPStatus":     {"number: \"+15551230000\"\ntargets: {\"sip:a@b\": {sip_status: 200}}\n", "not a SIP failure"},
		"OpParty":       {"number: \"+15551230000\"\nops: [{at: 1, hold: owner}]\n", "ops[0].hold"},
		"OpBoth":        {"number: \"+15551230000\"\nops: [{at: 1, hold: caller, unhold: caller}]\n", "exactly one"},
		"Transcription": {"number: \"+15551230000\"\ntranscription: maybe\n", "transcription:"},
		"Empty":         {"", "empty scenario"},
		"MissedEmail":   {"number: \"+15551230000\"\nexpect: {missed_call: {email: maybe}}\n", "expect.missed_call.email"},
		"MissedStage":   {"number: \"+15551230000\"\nexpect: {missed_call: {email: none, stage: prompt}}\n", "expect.missed_call.stage"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := twiliosim.ParseScenario([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseScenario error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
