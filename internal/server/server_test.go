package server_test

import (
	"cmp"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/config"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/server"
	"github.com/callrelay/callrelay/internal/signature"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
	twimlpkg "github.com/callrelay/callrelay/internal/twiml"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
	"github.com/callrelay/callrelay/internal/voicemail"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "testtoken123"
	opsToken   = "opstoken456"
	publicURL  = "https://relay.example.com"
	masked     = "+15551230000"
	caller     = "+15559870000"
)

var t0 = clocktest.Start()

type testServer struct {
	t       testing.TB
	handler http.Handler
	db      *postgres.DB
	cfg     config.Config
	queue   *river.Client[pgx.Tx]
	media   *mediaStandIn
	links   *recording.Links
	conf    *conference.Service // Wait() awaits the REST requests webhooks started
	hold    *hold.Service
}

// wait awaits the REST requests that webhooks started in the background.
func (s *testServer) wait() {
	s.conf.Wait()
	s.hold.Wait()
}

// setup is what options change before a test server is built.
type setup struct {
	cfg         config.Config
	pool        *pgxpool.Pool // shared by two servers in replica tests
	media       *mediaStandIn
	startQueue  bool // work voicemail jobs (send email) in this server
	queueOpts   voicemail.QueueOptions
	rest        string        // the Twilio REST API's base URL (a twiliofake); "": the media stand-in
	restTimeout time.Duration // the REST client's timeout; 0: 5 s
	logs        io.Writer     // where the server logs (JSON, debug level); nil: discarded
	linkKeys    []string      // the audio links' secrets, as recording.ParseSecrets returns them
	streamBeat  time.Duration // the console streams' beat; 0: server.StreamBeat
}

type option func(*setup)

func withConfig(f func(*config.Config)) option { return func(s *setup) { f(&s.cfg) } }

// withMail starts the job queue, delivering email to smtpURL.
func withMail(smtpURL string) option {
	return func(s *setup) { s.cfg.SMTPURL, s.startQueue = config.Secret(smtpURL), true }
}

func withPool(p *pgxpool.Pool) option { return func(s *setup) { s.pool = p } }

func withMedia(m *mediaStandIn) option { return func(s *setup) { s.media = m } }

// withTwilio sends the REST requests (participants, calls) to a Twilio fake.
func withTwilio(f *twiliofake.Fake) option { return func(s *setup) { s.rest = f.URL } }

// withRESTTimeout sets the REST client's timeout (5 s otherwise).
func withRESTTimeout(d time.Duration) option { return func(s *setup) { s.restTimeout = d } }

func newTestServer(t testing.TB, opts ...option) *testServer {
	t.Helper()
	u, _ := url.Parse(publicURL)
	st := setup{cfg: config.Config{
		PublicURL:        config.URL{URL: u},
		TwilioAccountSID: accountSID,
		TwilioAuthToken:  authToken,
		OpsToken:         opsToken,
		MailFrom:         "callrelay@relay.example.com",
		MailDir:          t.TempDir(),
		TranscriptWait:   time.Hour,
	}, queueOpts: voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: clocktest.Now}, linkKeys: []string{"linksecret"}}
	for _, o := range opts {
		o(&st)
	}
	if st.pool == nil {
		st.pool = pgtest.NewPool(t)
	}
	if st.media == nil {
		st.media = newMediaStandIn(t)
	}
	apiURL, _ := url.Parse(st.media.srv.URL)
	st.cfg.TwilioAPIURL = config.URL{URL: apiURL}

	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if st.logs != nil {
		logger = slog.New(slog.NewJSONHandler(st.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		st.queueOpts.Logger = logger // River's own lines too
	}
	// The store and the handler are frozen at t0; the queue, the notifier and the links run on
	// the test clock (River's timers need a running one), and so do the store's job inserts.
	inserts, err := postgres.NewJobs(st.pool, st.queueOpts.Now)
	if err != nil {
		t.Fatal(err)
	}
	db := postgres.New(st.pool, postgres.Options{Now: clocktest.Fixed(t0), Jobs: inserts})
	media := recording.NewFetcher(apiURL, accountSID, authToken, nil)
	links := recording.NewLinks(u, st.linkKeys, recording.DefaultTTL, clocktest.Now)
	sender, err := mail.New(st.cfg.SMTPURL.Value(), st.cfg.MailDir, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	restURL := apiURL
	if st.rest != "" {
		restURL, _ = url.Parse(st.rest)
	}
	rest := twilioapi.New(twilioapi.Config{AccountSID: accountSID, AuthToken: authToken, BaseURL: restURL,
		Timeout: cmp.Or(st.restTimeout, 5*time.Second), ParticipantInterval: -1})
	conf := conference.New(db, rest, twimlpkg.NewBuilder(u), logger)
	conf.RedirectBackoff = 0
	holds := hold.New(db, rest, twimlpkg.NewBuilder(u), st.cfg.HoldMusicURL.String(), logger)
	// The queue works the conference jobs too (dialling the owner when the caller joins): a
	// server that talks to a Twilio fake runs it.
	st.queueOpts.Register = conf.Register
	queue, err := voicemail.NewQueue(st.pool, voicemail.NewNotifier(db, sender, media, links, st.cfg.MailFrom, clocktest.Now, logger),
		st.queueOpts)
	if err != nil {
		t.Fatal(err)
	}
	if st.startQueue || st.rest != "" {
		if err := queue.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := queue.Stop(ctx); err != nil {
				t.Errorf("stop queue: %v", err)
			}
		})
	}
	t.Cleanup(conf.Wait)
	t.Cleanup(holds.Wait)
	h := server.NewServer(server.Deps{
		Logger:     logger,
		Config:     st.cfg,
		DB:         db,
		Registry:   prometheus.NewRegistry(),
		Media:      media,
		Links:      links,
		Conference: conf,
		Hold:       holds,
		Now:        clocktest.Fixed(t0),
		StreamBeat: st.streamBeat,
	})
	return &testServer{t: t, handler: h, db: db, cfg: st.cfg, queue: queue, media: st.media, links: links, conf: conf, hold: holds}
}

// twilio posts a webhook signed exactly as Twilio signs it: the public URL, path and query.
func (s *testServer) twilio(pathAndQuery string, form url.Values) *httptest.ResponseRecorder {
	s.t.Helper()
	return s.twilioSigned(pathAndQuery, form, signature.Sign(authToken, publicURL+pathAndQuery, form))
}

func (s *testServer) twilioSigned(pathAndQuery string, form url.Values, sig string) *httptest.ResponseRecorder {
	s.t.Helper()
	req := httptest.NewRequest(http.MethodPost, pathAndQuery, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

func (s *testServer) api(method, path, body string) *httptest.ResponseRecorder {
	s.t.Helper()
	return s.apiAs(method, path, body, "Bearer "+opsToken)
}

func (s *testServer) apiAs(method, path, body, auth string) *httptest.ResponseRecorder {
	s.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	return rec
}

func (s *testServer) putNumber(number, body string) {
	s.t.Helper()
	if rec := s.api(http.MethodPut, "/api/numbers/"+url.PathEscape(number), body); rec.Code != http.StatusCreated && rec.Code != http.StatusOK {
		s.t.Fatalf("PUT number: %d %s", rec.Code, rec.Body)
	}
}

// twiml checks a webhook answer: 200, text/xml, valid against Twilio's XSD, and parses it.
func twiml(t testing.TB, rec *httptest.ResponseRecorder, gaps ...twimltest.Gap) *twimltest.Node {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200 with TwiML; body %q", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Errorf("Content-Type = %q, want text/xml", ct)
	}
	twimltest.Validate(t, rec.Body.Bytes(), gaps...)
	return twimltest.Parse(t, rec.Body.Bytes())
}

func inbound(sid string) url.Values {
	return url.Values{
		"AccountSid": {"AC00000000000000000000000000000000"}, "ApiVersion": {"2010-04-01"},
		"CallSid": {sid}, "CallStatus": {"ringing"}, "Direction": {"inbound"},
		"From": {caller}, "To": {masked}, "Caller": {caller}, "Called": {masked},
	}
}

func getCall(t testing.TB, s *testServer, sid string) map[string]any {
	t.Helper()
	rec := s.api(http.MethodGet, "/api/calls/"+sid, "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET call %s: %d %s", sid, rec.Code, rec.Body)
	}
	var c map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

const threeTargets = `{"owner_email":"dana@example.com","timeout_seconds":15,"targets":[
	{"type":"phone","to":"+15550001111"},
	{"type":"sip","uri":"sip:dana@pbx.example.com","username":"dana","password":"s3cret","headers":{"x-team":"sales"},"transport":"tls","region":"ie1"},
	{"type":"client","identity":"dana"}]}`

func TestVoice_ForwardSimultaneous(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000100")))

	if got := doc.ChildNames(); len(got) != 1 || got[0] != "Dial" {
		t.Fatalf("verbs = %v, want Dial first and alone (answerOnBridge only works then)", got)
	}
	dial := doc.Child(0)
	for attr, want := range map[string]string{
		"action": publicURL + "/twilio/dial-outcome?attempt=0", "timeout": "15", "callerId": caller, "answerOnBridge": "true",
	} {
		if got := dial.Attr(attr); got != want {
			t.Errorf("Dial %s = %q, want %q", attr, got, want)
		}
	}
	if got := dial.ChildNames(); strings.Join(got, " ") != "Number Sip Client" {
		t.Errorf("nouns = %v, want Number Sip Client", got)
	}
	for i, noun := range dial.Children {
		if got, want := noun.Attr("statusCallback"), publicURL+"/twilio/call-status?target="+string(rune('0'+i)); got != want {
			t.Errorf("%s statusCallback = %q, want %q", noun.Name, got, want)
		}
		if got := noun.Attr("statusCallbackEvent"); got != "initiated ringing answered completed" {
			t.Errorf("%s statusCallbackEvent = %q", noun.Name, got)
		}
	}
	if got := dial.Child(1).Text; got != "sip:dana@pbx.example.com;transport=tls;region=ie1?x-team=sales" {
		t.Errorf("Sip URI = %q", got)
	}

	c := getCall(t, s, "CA00000000000000000000000000000100")
	if c["status"] != "ringing" || c["number"] != masked || c["from"] != caller {
		t.Errorf("stored call = %v", c)
	}
}

func TestVoice_Greeting(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, `{"owner_email":"dana@example.com","greeting":"Please hold & wait.","voice":"Polly.Joanna","targets":[{"type":"phone","to":"+15550001111"}]}`)
	doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000101")))
	if got := strings.Join(doc.ChildNames(), " "); got != "Say Dial" {
		t.Fatalf("verbs = %q, want Say Dial", got)
	}
	if say := doc.Child(0); say.Text != "Please hold & wait." || say.Attr("voice") != "Polly.Joanna" || say.Attr("language") != "en-US" {
		t.Errorf("Say = %+v", say)
	}
}

func TestVoice_ForwardSequential(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, strings.Replace(threeTargets, `"timeout_seconds":15`, `"timeout_seconds":15,"ring":"sequential","caller_id":"number"`, 1))
	dial := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000102"))).Find("Dial")
	if got := dial.ChildNames(); len(got) != 1 || got[0] != "Number" {
		t.Errorf("nouns = %v, want the first target only", got)
	}
	if got := dial.Attr("callerId"); got != masked {
		t.Errorf("callerId = %q, want the masked number", got)
	}

	// Each unanswered attempt dials the next target, then voicemail.
	outcome := func(attempt, dialStatus string) *twimltest.Node {
		f := inbound("CA00000000000000000000000000000102")
		f.Set("CallStatus", "in-progress")
		f.Set("DialCallStatus", dialStatus)
		return twiml(t, s.twilio("/twilio/dial-outcome?attempt="+attempt, f))
	}
	next := outcome("0", "no-answer").Find("Dial")
	if next == nil || strings.Join(next.ChildNames(), " ") != "Sip" || next.Attr("action") != publicURL+"/twilio/dial-outcome?attempt=1" {
		t.Fatalf("after attempt 0: Dial = %v, want the SIP target with attempt=1", next)
	}
	if next = outcome("1", "busy").Find("Dial"); next == nil || strings.Join(next.ChildNames(), " ") != "Client" {
		t.Fatalf("after attempt 1: Dial = %v, want the client target", next)
	}
	vm := outcome("2", "failed")
	rec := vm.Find("Record")
	if rec == nil {
		t.Fatalf("after the last target: %v, want voicemail", vm.ChildNames())
	}
	if c := getCall(t, s, "CA00000000000000000000000000000102"); c["status"] != "voicemail" {
		t.Errorf("call status = %v, want voicemail", c["status"])
	}
}

func TestVoice_UnknownNumber(t *testing.T) {
	s := newTestServer(t)
	doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000103")))
	if got := doc.ChildNames(); len(got) == 0 || got[0] != "Reject" {
		t.Fatalf("verbs = %v, want Reject first (not billed)", got)
	}
	if rec := s.api(http.MethodGet, "/api/calls/CA00000000000000000000000000000103", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET call = %d, want 404: nothing is stored for an unknown number", rec.Code)
	}
}

func TestVoice_DisabledNumber(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, `{"owner_email":"dana@example.com","enabled":false,"targets":[{"type":"phone","to":"+15550001111"}]}`)
	if doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000104"))); doc.Find("Record") == nil || doc.Find("Dial") != nil {
		t.Errorf("disabled with voicemail: verbs %v, want voicemail", doc.ChildNames())
	}
	s.putNumber(masked, `{"owner_email":"dana@example.com","enabled":false,"voicemail":{"enabled":false},"targets":[{"type":"phone","to":"+15550001111"}]}`)
	if doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000105"))); doc.ChildNames()[0] != "Reject" {
		t.Errorf("disabled without voicemail: verbs %v, want Reject", doc.ChildNames())
	}
}

func TestVoice_ErrBadSignature(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	form := inbound("CA00000000000000000000000000000106")
	for name, sig := range map[string]string{
		"missing":      "",
		"wrong token":  signature.Sign("othertoken", publicURL+"/twilio/voice", form),
		"other URL":    signature.Sign(authToken, "https://evil.example.com/twilio/voice", form),
		"other params": signature.Sign(authToken, publicURL+"/twilio/voice", inbound("CA00000000000000000000000000000999")),
		"garbage":      "bm90IGEgc2lnbmF0dXJl",
	} {
		t.Run(name, func(t *testing.T) {
			if rec := s.twilioSigned("/twilio/voice", form, sig); rec.Code != http.StatusForbidden {
				t.Errorf("status = %d, want 403", rec.Code)
			}
		})
	}
	if rec := s.api(http.MethodGet, "/api/calls/CA00000000000000000000000000000106", ""); rec.Code != http.StatusNotFound {
		t.Errorf("a forged webhook wrote a call: GET = %d", rec.Code)
	}
	// The Host header is not what is signed: a request to another host signed for the public
	// URL passes.
	req := httptest.NewRequest(http.MethodPost, "http://internal:8080/twilio/voice", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+"/twilio/voice", form))
	rec := httptest.NewRecorder()
	s.handler.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("signed for the public URL, sent to another Host: %d, want 200", rec.Code)
	}
}

func TestVoice_PortForms(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	form := inbound("CA00000000000000000000000000000107")
	rec := s.twilioSigned("/twilio/voice", form, signature.Sign(authToken, "https://relay.example.com:443/twilio/voice", form))
	if rec.Code != http.StatusOK {
		t.Errorf("signed with :443: status %d, want 200", rec.Code)
	}
}

func TestVoice_DatabaseDown(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	const confNumber = "+15551230001"
	s.putNumber(confNumber, strings.Replace(threeTargets, `{"owner_email"`, `{"mode":"conference","owner_email"`, 1))
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000108"))) // fills the routing cache
	s.db.Pool().Close()

	// A conference needs the store: with it down, a conference-mode number forwards plainly.
	cf := inbound("CA00000000000000000000000000000111")
	cf.Set("To", confNumber)
	if dial := twiml(t, s.twilio("/twilio/voice", cf)).Find("Dial"); dial == nil || dial.Find("Conference") != nil || len(dial.Children) != 3 {
		t.Errorf("database down, conference-mode number cached: Dial %v, want a plain forward to the 3 targets", dial)
	}

	doc := twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000109")))
	if dial := doc.Find("Dial"); dial == nil || len(dial.Children) != 3 {
		t.Errorf("database down, number cached: verbs %v, want the cached forward", doc.ChildNames())
	}
	f := inbound("CA00000000000000000000000000000110")
	f.Set("To", "+15551239999")
	doc = twiml(t, s.twilio("/twilio/voice", f))
	if doc.Find("Say") == nil || doc.Find("Hangup") == nil {
		t.Errorf("database down, number not cached: verbs %v, want an apology and hang-up", doc.ChildNames())
	}
	for _, path := range []string{"/twilio/dial-outcome?attempt=0", "/twilio/voicemail", "/twilio/recording"} {
		f := inbound("CA00000000000000000000000000000109")
		f.Set("DialCallStatus", "no-answer")
		twiml(t, s.twilio(path, f)) // valid TwiML, never a 500
	}
	if rec := s.twilio("/twilio/call-status", url.Values{"CallSid": {"CA00000000000000000000000000000001"}, "CallStatus": {"ringing"}, "ParentCallSid": {"CA00000000000000000000000000000109"}}); rec.Code < 500 {
		t.Errorf("call-status with the database down: %d, want 5xx so that a retry can deliver it", rec.Code)
	}
}

func TestDialOutcome(t *testing.T) {
	for _, tc := range []struct {
		name, dialStatus, callStatus string
		wantVerb                     string
	}{
		{"answered and done", "completed", "in-progress", "Hangup"},
		{"answered (conference style)", "answered", "in-progress", "Hangup"},
		{"no answer", "no-answer", "in-progress", "Record"},
		{"busy", "busy", "in-progress", "Record"},
		{"failed", "failed", "in-progress", "Record"},
		{"caller hung up", "canceled", "completed", "Hangup"},
		{"caller hung up during no-answer", "no-answer", "canceled", "Hangup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t)
			s.putNumber(masked, threeTargets)
			twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000200")))
			f := inbound("CA00000000000000000000000000000200")
			f.Set("CallStatus", tc.callStatus)
			f.Set("DialCallStatus", tc.dialStatus)
			doc := twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f))
			if doc.Find(tc.wantVerb) == nil {
				t.Errorf("verbs = %v, want %s", doc.ChildNames(), tc.wantVerb)
			}
		})
	}
}

func TestDialOutcome_SIPDetails(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, strings.Replace(threeTargets, `"timeout_seconds":15`, `"ring":"sequential"`, 1))
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000201")))
	f := inbound("CA00000000000000000000000000000201")
	f.Set("CallStatus", "in-progress")
	f.Set("DialCallStatus", "failed")
	f.Set("DialCallSid", "CA00000000000000003230316368696c64")
	f.Set("DialSipResponseCode", "486")
	f.Set("DialSipCallId", "abc123@pbx")
	f.Set("DialSipHeader_X-Reason", "busy here")
	twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f))
	// A duplicate must not skip a target.
	doc := twiml(t, s.twilio("/twilio/dial-outcome?attempt=0", f))
	if n := doc.Find("Dial"); n == nil || n.ChildNames()[0] != "Sip" {
		t.Errorf("duplicate outcome: %v, want the second target again", doc.ChildNames())
	}
	c := getCall(t, s, "CA00000000000000000000000000000201")
	legs := c["legs"].([]any)
	if len(legs) != 1 {
		t.Fatalf("legs = %v, want 1", legs)
	}
	leg := legs[0].(map[string]any)
	if leg["call_sid"] != "CA00000000000000003230316368696c64" || leg["sip_response_code"] != float64(486) || leg["sip_call_id"] != "abc123@pbx" {
		t.Errorf("leg = %v, want SIP 486 and its call ID", leg)
	}
	var outcome map[string]any
	for _, e := range c["events"].([]any) {
		if e := e.(map[string]any); e["type"] == "dial-outcome" {
			outcome = e
		}
	}
	if hdr, _ := outcome["detail"].(map[string]any)["sip_headers"].(map[string]any); hdr["X-Reason"] != "busy here" {
		t.Errorf("dial-outcome event = %v, want the SIP headers", outcome)
	}
}

func TestCallStatus(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000300")))
	leg := func(status, seq string) *httptest.ResponseRecorder {
		return s.twilio("/twilio/call-status?target=1", url.Values{
			"CallSid": {"CA000000000000000000003330306c6567"}, "ParentCallSid": {"CA00000000000000000000000000000300"}, "CallStatus": {status},
			"SequenceNumber": {seq}, "Timestamp": {t0.Add(time.Duration(seq[0]-'0') * time.Second).Format(time.RFC1123Z)},
			"To": {"sip:dana@pbx.example.com"}, "CallbackSource": {"call-progress-events"},
		})
	}
	for _, st := range [][2]string{{"initiated", "0"}, {"ringing", "1"}, {"completed", "3"}, {"in-progress", "2"}, {"completed", "3"}} {
		if rec := leg(st[0], st[1]); rec.Code != http.StatusNoContent {
			t.Fatalf("%s: status %d, want 204", st[0], rec.Code)
		}
	}
	c := getCall(t, s, "CA00000000000000000000000000000300")
	l := c["legs"].([]any)[0].(map[string]any)
	if l["status"] != "completed" || l["answered_at"] != t0.Add(2*time.Second).Format(time.RFC3339) || l["target"] != "sip:dana@pbx.example.com" {
		t.Errorf("leg = %v, want completed, answered at t0+2s", l)
	}
	if rec := s.twilio("/twilio/call-status", url.Values{"CallStatus": {"ringing"}}); rec.Code != http.StatusBadRequest {
		t.Errorf("without CallSid: %d, want 400", rec.Code)
	}
	// The caller's own status callback ends the call.
	if rec := s.twilio("/twilio/call-status", url.Values{"CallSid": {"CA00000000000000000000000000000300"}, "CallStatus": {"completed"}}); rec.Code != http.StatusNoContent {
		t.Fatalf("parent status: %d", rec.Code)
	}
	if c := getCall(t, s, "CA00000000000000000000000000000300"); c["status"] != "completed" || c["ended_at"] == nil {
		t.Errorf("call = %v %v, want completed with ended_at", c["status"], c["ended_at"])
	}
}

func TestVoicemailAndRecording(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, `{"owner_email":"dana@example.com","language":"fr-FR","voicemail":{"prompt":"Laissez un message.","max_length_seconds":60},"targets":[{"type":"phone","to":"+15550001111"}]}`)
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000400")))
	doc := twiml(t, s.twilio("/twilio/voicemail", inbound("CA00000000000000000000000000000400")))
	rec := doc.Find("Record")
	if rec == nil || doc.Child(0).Text != "Laissez un message." {
		t.Fatalf("voicemail = %v", doc.ChildNames())
	}
	if rec.Attr("maxLength") != "60" || rec.Attr("action") != publicURL+"/twilio/recording" || rec.HasAttr("transcribe") {
		t.Errorf("Record = %v: want maxLength 60, absolute action, no transcription for fr-FR", rec.Attrs)
	}
	doc = twiml(t, s.twilio("/twilio/recording", inbound("CA00000000000000000000000000000400")))
	if doc.Find("Say") == nil || doc.Find("Hangup") == nil {
		t.Errorf("recording answer = %v, want thanks and Hangup", doc.ChildNames())
	}
}

func TestNumbersAPI(t *testing.T) {
	s := newTestServer(t)
	path := "/api/numbers/" + url.PathEscape(masked)
	if rec := s.api(http.MethodPut, path, threeTargets); rec.Code != http.StatusCreated {
		t.Fatalf("first PUT = %d %s, want 201", rec.Code, rec.Body)
	}
	rec := s.api(http.MethodPut, path, threeTargets)
	if rec.Code != http.StatusOK {
		t.Fatalf("second PUT = %d, want 200", rec.Code)
	}
	if strings.Contains(rec.Body.String(), "s3cret") {
		t.Errorf("PUT answer shows the SIP password: %s", rec.Body)
	}
	rec = s.api(http.MethodGet, path, "")
	var n map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &n); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET = %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "s3cret") || strings.Contains(rec.Body.String(), "password") {
		t.Errorf("GET shows the SIP password: %s", rec.Body)
	}
	if n["number"] != masked || n["mode"] != "direct" || n["ring"] != "simultaneous" || n["caller_id"] != "caller" {
		t.Errorf("GET = %v, want the number with defaults", n)
	}
	// curl users write + as %2B, or not at all.
	for _, p := range []string{"/api/numbers/%2B15551230000", "/api/numbers/+15551230000"} {
		if rec := s.api(http.MethodGet, p, ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", p, rec.Code)
		}
	}
	if rec := s.api(http.MethodGet, "/api/numbers", ""); !strings.Contains(rec.Body.String(), masked) {
		t.Errorf("list = %s", rec.Body)
	}
	if rec := s.api(http.MethodDelete, path, ""); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE = %d, want 204", rec.Code)
	}
	if rec := s.api(http.MethodDelete, path, ""); rec.Code != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404", rec.Code)
	}
}

func TestNumbersAPI_ErrInvalid(t *testing.T) {
	s := newTestServer(t)
	for _, tc := range []struct {
		number, body, field string
	}{
		{"5551230000", threeTargets, "number"},
		{masked, `{"owner_email":"dana@example.com","targets":[]}`, "targets"},
		{masked, `{"owner_email":"dana@example.com","targets":[{"type":"sip","uri":"sip:a@b.example.com","headers":{"X-Twilio-Evil":"1"}}]}`, "targets[0].headers.X-Twilio-Evil"},
		{masked, `{"owner_email":"dana@example.com","timeout_seconds":3,"targets":[{"type":"phone","to":"+15550001111"}]}`, "timeout_seconds"},
		{masked, `{"owner_email":"dana@example.com","colour":"red","targets":[{"type":"phone","to":"+15550001111"}]}`, "colour"},
		{masked, `{"owner_email":"dana@example.com","time_zone":"Europe/Atlantis","targets":[{"type":"phone","to":"+15550001111"}]}`, "time_zone"},
		{masked, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]`, ""},
	} {
		rec := s.api(http.MethodPut, "/api/numbers/"+url.PathEscape(tc.number), tc.body)
		var e struct {
			Error struct{ Code, Message, Field string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v: %s", tc.field, err, rec.Body)
		}
		if rec.Code != http.StatusBadRequest || e.Error.Code != "invalid" || e.Error.Field != tc.field || e.Error.Message == "" {
			t.Errorf("got %d %+v, want 400 invalid naming %q", rec.Code, e.Error, tc.field)
		}
	}
	if rec := s.api(http.MethodGet, "/api/numbers", ""); strings.Contains(rec.Body.String(), masked) {
		t.Errorf("an invalid PUT wrote a number: %s", rec.Body)
	}
}

func TestOpsAuth(t *testing.T) {
	s := newTestServer(t)
	for name, auth := range map[string]string{"missing": "", "wrong": "Bearer nope", "basic": "Basic b3BzOm9wcw=="} {
		if rec := s.apiAs(http.MethodGet, "/api/numbers", "", auth); rec.Code != http.StatusUnauthorized {
			t.Errorf("%s token: %d, want 401", name, rec.Code)
		}
	}
	closed := newTestServer(t, withConfig(func(c *config.Config) { c.OpsToken = "" }))
	if rec := closed.apiAs(http.MethodGet, "/api/numbers", "", "Bearer "); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("no token configured: %d, want 503", rec.Code)
	}
}

func TestGetCall_Shape(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	twiml(t, s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000500")))
	s.twilio("/twilio/call-status?target=0", url.Values{"CallSid": {"CA0000000000000000000000000000500a"}, "ParentCallSid": {"CA00000000000000000000000000000500"}, "CallStatus": {"no-answer"}, "SequenceNumber": {"2"}, "To": {"+15550001111"}})
	c := getCall(t, s, "CA00000000000000000000000000000500")
	for _, k := range []string{"call_sid", "number", "from", "mode", "status", "started_at", "ended_at", "legs", "conference_sid", "hold", "events"} {
		if _, ok := c[k]; !ok {
			t.Errorf("call JSON lacks %q: %v", k, c)
		}
	}
	if h, _ := c["hold"].(map[string]any); h["caller"] != false || h["callee"] != false {
		t.Errorf("hold = %v, want both false", c["hold"])
	}
	leg := c["legs"].([]any)[0].(map[string]any)
	for _, k := range []string{"call_sid", "target", "status", "sip_response_code", "answered_at"} {
		if _, ok := leg[k]; !ok {
			t.Errorf("leg JSON lacks %q: %v", k, leg)
		}
	}
	ev := c["events"].([]any)[0].(map[string]any)
	if _, ok := ev["at"]; !ok || ev["type"] != "inbound" {
		t.Errorf("first event = %v, want inbound with at", ev)
	}
	if rec := s.api(http.MethodGet, "/api/calls?limit=0", ""); rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"limit"`) {
		t.Errorf("limit=0: %d %s, want 400 naming limit", rec.Code, rec.Body)
	}
	if rec := s.api(http.MethodGet, "/api/calls?status=ringing&limit=5", ""); !strings.Contains(rec.Body.String(), "CA00000000000000000000000000000500") {
		t.Errorf("list ringing calls: %s", rec.Body)
	}
}

func TestNoRedirects(t *testing.T) {
	s := newTestServer(t)
	for _, path := range []string{"/twilio/voice/", "/api/numbers/", "/healthz/"} {
		req := httptest.NewRequest(http.MethodPost, path, nil)
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, req)
		if rec.Code >= 300 && rec.Code < 400 {
			t.Errorf("%s: %d redirect; Twilio drops parameters on redirects", path, rec.Code)
		}
	}
}

func TestHealthAndMetrics(t *testing.T) {
	s := newTestServer(t)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Errorf("healthz = %d", rec.Code)
	}
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Errorf("readyz = %d %s", rec.Code, rec.Body)
	}
	s.twilioSigned("/twilio/voice", inbound("CA00000000000000000000000000000600"), "forged")
	s.twilio("/twilio/voice", inbound("CA00000000000000000000000000000601"))
	body := get("/metrics").Body.String()
	for _, want := range []string{
		`callrelay_http_requests_total{code="200",method="POST",route="/twilio/voice"} 1`,
		`callrelay_http_requests_total{code="403",method="POST",route="/twilio/voice"} 1`,
		`callrelay_twilio_signature_failures_total{path="/twilio/voice"} 1`,
		`callrelay_http_request_duration_seconds_bucket{route="/twilio/voice"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if rec := get("/readyz"); rec.Header().Get("X-Request-Id") == "" {
		t.Errorf("no X-Request-Id on the answer")
	}
	s.db.Pool().Close()
	if rec := get("/readyz"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("readyz with the database gone = %d, want 503", rec.Code)
	}
}

// Twilio may drop the connection before we answer (a hang-up, its own timeout): the call is
// still recorded, and that is not mistaken for a database failure.
func TestVoice_ClientGone(t *testing.T) {
	s := newTestServer(t)
	s.putNumber(masked, threeTargets)
	form := inbound("CA00000000000000000000000000000111")
	req := httptest.NewRequest(http.MethodPost, "/twilio/voice", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", signature.Sign(authToken, publicURL+"/twilio/voice", form))
	ctx, cancel := context.WithCancel(req.Context())
	cancel()
	s.handler.ServeHTTP(httptest.NewRecorder(), req.WithContext(ctx))
	if c := getCall(t, s, "CA00000000000000000000000000000111"); c["status"] != "ringing" {
		t.Errorf("call = %v, want it recorded although the client left", c)
	}
}

// Local development only: with the insecure flag, unsigned webhooks are served.
func TestVoice_InsecureSkipSignature(t *testing.T) {
	s := newTestServer(t, withConfig(func(c *config.Config) { c.InsecureSkipSignature = true }))
	s.putNumber(masked, threeTargets)
	if doc := twiml(t, s.twilioSigned("/twilio/voice", inbound("CA00000000000000000000000000000112"), "")); doc.Find("Dial") == nil {
		t.Errorf("unsigned webhook with the insecure flag: %v, want the forward", doc.ChildNames())
	}
	if c := getCall(t, s, "CA00000000000000000000000000000112"); c["from"] != caller {
		t.Errorf("call = %v, want it recorded from the form", c)
	}
}
