package twilioapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "testtoken123"
	callSid   = "CAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	confSid   = "CFbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// seen is one request as the test server saw it.
type seen struct {
	method, path, host, user, pass string
	form                           url.Values
}

// newServer starts a server answering every request with handler, recording what it saw.
func newServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, chan seen) {
	t.Helper()
	t.Setenv("TWILIO_EDGE", "")
	t.Setenv("TWILIO_REGION", "")
	reqs := make(chan seen, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		_ = r.ParseForm()
		reqs <- seen{r.Method, r.URL.Path, r.Host, user, pass, r.PostForm}
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, reqs
}

func newClient(t *testing.T, base string, cfg Config) *Client {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	cfg.AccountSID, cfg.AuthToken, cfg.BaseURL = testSID, testToken, u
	if cfg.ParticipantInterval == 0 {
		cfg.ParticipantInterval = -1
	}
	return New(cfg)
}

func answerJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// TestClient_rewrite checks that requests go to TWILIO_API_URL (path prefix kept) with the
// account's basic auth, and carry the fields Twilio expects.
func TestClient_rewrite(t *testing.T) {
	srv, reqs := newServer(t, answerJSON(200, `{"sid":"`+callSid+`","call_sid":"`+callSid+`","hold":true}`))
	c := newClient(t, srv.URL+"/twilio-mock/", Config{})
	if err := c.Hold(context.Background(), confSid, callSid, true, "https://relay.example.com/twilio/hold-music", "GET"); err != nil {
		t.Fatalf("Hold: %v", err)
	}
	got := <-reqs
	wantPath := "/twilio-mock/2010-04-01/Accounts/" + testSID + "/Conferences/" + confSid + "/Participants/" + callSid + ".json"
	if got.method != http.MethodPost || got.path != wantPath {
		t.Errorf("request = %s %s, want POST %s", got.method, got.path, wantPath)
	}
	if got.user != testSID || got.pass != testToken {
		t.Errorf("basic auth = %q:%q, want the account's credentials", got.user, got.pass)
	}
	if got.host != srv.Listener.Addr().String() {
		t.Errorf("Host = %q, want %q", got.host, srv.Listener.Addr().String())
	}
	want := url.Values{"Hold": {"true"}, "HoldUrl": {"https://relay.example.com/twilio/hold-music"}, "HoldMethod": {"GET"}}
	if got.form.Encode() != want.Encode() {
		t.Errorf("form = %s, want %s", got.form.Encode(), want.Encode())
	}

	t.Run("ResumeSendsHoldFalse", func(t *testing.T) {
		if err := c.Hold(context.Background(), confSid, callSid, false, "https://ignored.example.com", "GET"); err != nil {
			t.Fatalf("Hold(false): %v", err)
		}
		if got := (<-reqs).form.Encode(); got != "Hold=false" {
			t.Errorf("resume form = %s, want Hold=false only", got)
		}
	})
}

// TestRewrite_refusesOtherHosts checks the guard that keeps the credentials on the API host.
func TestRewrite_refusesOtherHosts(t *testing.T) {
	var hits atomic.Int32
	next := roundTripFunc(func(*http.Request) (*http.Response, error) {
		hits.Add(1)
		return nil, errors.New("sent")
	})
	rt := &rewrite{ctx: context.Background(), base: &url.URL{Scheme: "http", Host: "127.0.0.1:1"}, next: next}
	for _, raw := range []string{"https://evil.example.com/2010-04-01/x", "http://api.twilio.com/2010-04-01/x", "https://api.twilio.com.evil.com/x"} {
		req, _ := http.NewRequest(http.MethodPost, raw, nil)
		req.SetBasicAuth(testSID, testToken)
		if _, err := rt.RoundTrip(req); err == nil {
			t.Errorf("RoundTrip(%s) succeeded, want a refusal", raw)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the transport, want 0", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestClient_noRedirects checks that a redirect is not followed: it would take the credentials
// to whatever host it names.
func TestClient_noRedirects(t *testing.T) {
	elsewhere, elsewhereReqs := newServer(t, answerJSON(200, `{}`))
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	})
	c := newClient(t, srv.URL, Config{})
	_ = c.Redirect(context.Background(), callSid, "https://relay.example.com/twilio/voicemail", "")
	select {
	case r := <-elsewhereReqs:
		t.Errorf("the redirect was followed: %s %s with user %q", r.method, r.path, r.user)
	default:
	}
}

// TestClient_errors checks that Twilio's code and message are kept, and how errors classify.
func TestClient_errors(t *testing.T) {
	tests := []struct {
		name                      string
		status                    int
		body                      string
		wantCode                  int
		wantNotFound, wantRefused bool
	}{
		{"NotFound", 404, `{"code":20404,"message":"The requested resource was not found","more_info":"https://www.twilio.com/docs/errors/20404","status":404}`, 20404, true, true},
		{"Invalid", 400, `{"code":21220,"message":"Call is not in-progress. Cannot redirect.","status":400}`, 21220, false, true},
		{"ServerError", 500, `{"code":20500,"message":"Internal Server Error","status":500}`, 20500, false, false},
		{"TooManyRequests", 429, `{"code":20429,"message":"Too Many Requests","status":429}`, 20429, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(t, answerJSON(tt.status, tt.body))
			c := newClient(t, srv.URL, Config{})
			err := c.EndCall(context.Background(), callSid, Completed)
			var e *callrelay.Error
			if !errors.As(err, &e) || e.Code != callrelay.EUPSTREAM {
				t.Fatalf("err = %v, want an upstream *callrelay.Error", err)
			}
			if e.TwilioCode != tt.wantCode || e.TwilioMessage == "" || e.TwilioStatus != tt.status {
				t.Errorf("twilio code/message/status = %d/%q/%d, want %d/…/%d", e.TwilioCode, e.TwilioMessage, e.TwilioStatus, tt.wantCode, tt.status)
			}
			if got := IsNotFound(err); got != tt.wantNotFound {
				t.Errorf("IsNotFound = %v, want %v", got, tt.wantNotFound)
			}
			if got := IsRefused(err); got != tt.wantRefused {
				t.Errorf("IsRefused = %v, want %v", got, tt.wantRefused)
			}
		})
	}
}

// TestClient_timeout checks that a Twilio that does not answer costs at most the timeout.
func TestClient_timeout(t *testing.T) {
	release := make(chan struct{})
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := newClient(t, srv.URL, Config{Timeout: 50 * time.Millisecond})
	err := c.Redirect(context.Background(), callSid, "https://relay.example.com/twilio/voicemail", "")
	if callrelay.ErrorCode(err) != callrelay.EUPSTREAM || IsRefused(err) {
		t.Fatalf("err = %v, want an upstream error that is not a refusal", err)
	}

	t.Run("Cancelled", func(t *testing.T) {
		c := newClient(t, srv.URL, Config{Timeout: time.Hour})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := c.Redirect(ctx, callSid, "https://relay.example.com/twilio/voicemail", ""); callrelay.ErrorCode(err) != callrelay.EUPSTREAM {
			t.Fatalf("err = %v, want an upstream error", err)
		}
	})
}

// TestClient_CreateParticipant checks the request and the SID read back.
func TestClient_CreateParticipant(t *testing.T) {
	srv, reqs := newServer(t, answerJSON(201, `{"call_sid":"`+callSid+`","conference_sid":"`+confSid+`","label":"callee-1"}`))
	c := newClient(t, srv.URL, Config{})
	sid, err := c.CreateParticipant(context.Background(), confSid, Participant{
		From: "+15559870000", CallToken: "tok", To: "sip:dana@pbx.example.com;transport=tls",
		SipAuthUsername: "dana", SipAuthPassword: "s3cret", Label: "callee-1", TimeoutSeconds: 15,
		StatusCallback: "https://relay.example.com/twilio/call-status?call=CA1&target=0",
	})
	if err != nil || sid != callSid {
		t.Fatalf("CreateParticipant = %q, %v; want %s", sid, err, callSid)
	}
	got := <-reqs
	want := map[string][]string{
		"From": {"+15559870000"}, "CallToken": {"tok"}, "To": {"sip:dana@pbx.example.com;transport=tls"},
		"SipAuthUsername": {"dana"}, "SipAuthPassword": {"s3cret"}, "Label": {"callee-1"}, "Beep": {"false"},
		"Timeout": {"15"}, "StatusCallback": {"https://relay.example.com/twilio/call-status?call=CA1&target=0"},
		"StatusCallbackMethod": {"POST"}, "StatusCallbackEvent": {"initiated", "ringing", "answered", "completed"},
		"StartConferenceOnEnter": {"true"}, "EndConferenceOnExit": {"true"},
	}
	if got.form.Encode() != url.Values(want).Encode() {
		t.Errorf("form =\n%s\nwant\n%s", got.form.Encode(), url.Values(want).Encode())
	}
}

// TestClient_CreateCall checks a screened target's call: the screen as Url, machine
// detection only when asked, and the SID read back.
func TestClient_CreateCall(t *testing.T) {
	srv, reqs := newServer(t, answerJSON(201, `{"sid":"`+callSid+`","status":"queued"}`))
	c := newClient(t, srv.URL, Config{})
	sid, err := c.CreateCall(context.Background(), Call{
		From: "+15559870000", CallToken: "tok", To: "+15550001111", TimeoutSeconds: 15,
		URL:              "https://relay.example.com/twilio/screen?call=CA1&target=0",
		StatusCallback:   "https://relay.example.com/twilio/call-status?call=CA1&target=0",
		MachineDetection: "Enable",
	})
	if err != nil || sid != callSid {
		t.Fatalf("CreateCall = %q, %v; want %s", sid, err, callSid)
	}
	got := <-reqs
	want := map[string][]string{
		"From": {"+15559870000"}, "CallToken": {"tok"}, "To": {"+15550001111"}, "Timeout": {"15"},
		"Url": {"https://relay.example.com/twilio/screen?call=CA1&target=0"}, "Method": {"POST"},
		"StatusCallback":       {"https://relay.example.com/twilio/call-status?call=CA1&target=0"},
		"StatusCallbackMethod": {"POST"}, "StatusCallbackEvent": {"initiated", "ringing", "answered", "completed"},
		"MachineDetection": {"Enable"},
	}
	if got.form.Encode() != url.Values(want).Encode() {
		t.Errorf("form =\n%s\nwant\n%s", got.form.Encode(), url.Values(want).Encode())
	}
}

// TestPacer checks that participants are spaced by the interval, and that a cancelled wait
// gives its slot back.
func TestPacer(t *testing.T) {
	now := clocktest.Start()
	var asked []time.Duration
	fire := make(chan time.Time)
	close(fire) // every timer fires at once: the test checks the delays asked for
	p := newPacer(time.Second, func() time.Time { return now }, func(d time.Duration) <-chan time.Time {
		asked = append(asked, d)
		return fire
	})
	for range 3 {
		if err := p.wait(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if want := []time.Duration{time.Second, 2 * time.Second}; len(asked) != 2 || asked[0] != want[0] || asked[1] != want[1] {
		t.Errorf("delays = %v, want %v (the first request goes at once)", asked, want)
	}

	t.Run("CancelledGivesSlotBack", func(t *testing.T) {
		never := make(chan time.Time)
		p := newPacer(time.Second, func() time.Time { return now }, func(time.Duration) <-chan time.Time { return never })
		_ = p.wait(context.Background()) // takes now
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := p.wait(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("wait = %v, want context.Canceled", err)
		}
		if want := now.Add(time.Second); !p.next.Equal(want) {
			t.Errorf("next slot = %v, want %v", p.next, want)
		}
	})
}

// TestClient_unreachable: Twilio refusing connections is an upstream error at once, one worth
// trying again (not Twilio refusing the request), saying that Twilio could not be reached.
func TestClient_unreachable(t *testing.T) {
	hold, err := mailtest.HoldPort("127.0.0.1:0") // bound, not listening: connections refused
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	c := newClient(t, "http://"+hold.Addr(), Config{Timeout: time.Minute})
	start := time.Now()
	err = c.Hold(context.Background(), confSid, callSid, true, "https://relay.example.com/twilio/hold-music", "GET")
	took := time.Since(start)
	var e *callrelay.Error
	if !errors.As(err, &e) || e.Code != callrelay.EUPSTREAM || e.TwilioCode != 0 ||
		!strings.Contains(e.Message, "Cannot reach Twilio to hold the participant") || !strings.Contains(e.Message, "connection refused") {
		t.Fatalf("err = %v, want an upstream error saying Twilio cannot be reached", err)
	}
	if strings.Contains(e.Message, twilioHost) {
		t.Errorf("message %q names %s, where the request did not go", e.Message, twilioHost)
	}
	if IsRefused(err) || IsNotFound(err) {
		t.Errorf("IsRefused %v, IsNotFound %v; want neither: the request may succeed when Twilio is back", IsRefused(err), IsNotFound(err))
	}
	if took > 2*time.Second {
		t.Errorf("a refused connection took %v to fail, want at once", took)
	}
}

// TestClient_stalledBody checks that the timeout covers the whole answer: a Twilio that sends
// its headers and then stalls costs at most the timeout too.
func TestClient_stalledBody(t *testing.T) {
	srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"call_sid":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // until the client gives up
	})
	const timeout = 200 * time.Millisecond
	c := newClient(t, srv.URL, Config{Timeout: timeout})
	start := time.Now()
	_, err := c.CreateParticipant(context.Background(), confSid, Participant{From: "+15551230000", To: "+15550001111", Label: "callee-1"})
	took := time.Since(start)
	if callrelay.ErrorCode(err) != callrelay.EUPSTREAM || IsRefused(err) {
		t.Fatalf("err = %v, want an upstream error that is not a refusal", err)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("CreateParticipant failed after %v, want at the %v timeout", took, timeout)
	}
}
