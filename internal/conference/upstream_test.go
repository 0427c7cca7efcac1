package conference_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "conftoken123"
	publicURL  = "https://relay.example.com"
	masked     = "+15551230000"
	callerNum  = "+15559870000"
	routing    = `{"owner_email":"dana@example.com","mode":"conference","timeout_seconds":15,
		"targets":[{"type":"phone","to":"+15550001111","screen":"off"}]}`

	// twilioTimeout is the REST client's timeout here; production's is twilioapi.DefaultTimeout.
	twilioTimeout = 300 * time.Millisecond
)

// upstream is the conference service on a database of its own, its REST client (with a short
// timeout) sent to a Twilio fake that checks every request against Twilio's OpenAPI spec and
// can be made to stall: a stalled request is received and never answered.
type upstream struct {
	db     *postgres.DB
	svc    *conference.Service
	hold   *hold.Service
	fake   *twiliofake.Fake
	caller string // the caller's CallSid, the conference's name
	conf   string // the ConferenceSid

	mu       sync.Mutex
	stalled  map[string]bool // operations that stall
	release  chan struct{}   // closed when the stall ends
	arrivals chan string     // the operation of each stalled request, as it arrives
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{
		db: newDB(t, pgtest.NewPool(t), callrelay.SystemClock), caller: "CA" + strings.Repeat("c", 32), conf: "CF" + strings.Repeat("f", 32),
		stalled: map[string]bool{}, release: make(chan struct{}), arrivals: make(chan string, 100),
	}
	u.fake = twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	u.fake.OnRequest(func(r twiliofake.Request) {
		u.mu.Lock()
		stall, release := u.stalled[r.Operation], u.release
		u.mu.Unlock()
		if stall {
			u.arrivals <- r.Operation
			<-release // long after the client has given up
		}
	})
	base, err := url.Parse(u.fake.URL)
	if err != nil {
		t.Fatal(err)
	}
	rest := twilioapi.New(twilioapi.Config{AccountSID: accountSID, AuthToken: authToken, BaseURL: base,
		Timeout: twilioTimeout, ParticipantInterval: -1})
	pub, _ := url.Parse(publicURL)
	u.svc = conference.New(u.db, rest, twiml.NewBuilder(pub), slog.New(slog.DiscardHandler))
	u.svc.RedirectBackoff = 20 * time.Millisecond
	u.hold = hold.New(u.db, rest, twiml.NewBuilder(pub), "", slog.New(slog.DiscardHandler))
	startQueue(t, u.db, u.svc)
	// Cleanups run last first: the stall ends, then the background work, then the fake's
	// server closes (it waits for its handlers), then the database goes.
	t.Cleanup(u.svc.Wait)
	t.Cleanup(u.hold.Wait)
	t.Cleanup(func() { u.stall() })
	return u
}

// stall makes the given operations stall from now on, and lets the requests stalled so far go.
func (u *upstream) stall(operations ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	close(u.release)
	u.release = make(chan struct{})
	u.stalled = map[string]bool{}
	for _, op := range operations {
		u.stalled[op] = true
	}
}

// arrived waits for a stalled request of operation to reach the fake.
func (u *upstream) arrived(t *testing.T, operation string) {
	t.Helper()
	select {
	case op := <-u.arrivals:
		if op != operation {
			t.Fatalf("stalled request %s, want %s", op, operation)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s request reached Twilio within 10s", operation)
	}
}

// callerJoins starts a conference-mode call and applies the caller's participant-join, which
// starts ringing the owner in the background. It returns how long the event took to apply:
// what the conference-status webhook waits for.
func (u *upstream) callerJoins(t *testing.T) time.Duration {
	t.Helper()
	ctx := context.Background()
	r, err := callrelay.DecodeRouting(strings.NewReader(routing))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.db.PutNumber(ctx, masked, r); err != nil {
		t.Fatal(err)
	}
	if _, err := u.db.StartCall(ctx, callrelay.InboundCall{CallSid: u.caller, Number: masked, From: callerNum, CallToken: "calltoken"}); err != nil {
		t.Fatal(err)
	}
	u.fake.AddParticipant(u.conf, u.caller, "caller")
	return u.event(t, "participant-join", 1)
}

// event applies a conference event of the caller and returns how long it took.
func (u *upstream) event(t *testing.T, event string, seq int) time.Duration {
	t.Helper()
	start := time.Now()
	res, err := u.svc.ConferenceEvent(context.Background(), callrelay.ConferenceEvent{
		CallSid: u.caller, ConferenceSid: u.conf, Event: event, Participant: u.caller, Label: "caller",
		Sequence: seq, At: time.Now(),
	})
	took := time.Since(start)
	if err != nil || !res.Known {
		t.Fatalf("%s: known %v, %v", event, res.Known, err)
	}
	return took
}

func (u *upstream) call(t *testing.T) *callrelay.Call {
	t.Helper()
	c, err := u.db.GetCall(context.Background(), u.caller)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// lastEvent is the call's newest timeline event of type typ.
func lastEvent(c *callrelay.Call, typ string) *callrelay.Event {
	for i := len(c.Events) - 1; i >= 0; i-- {
		if c.Events[i].Type == typ {
			return &c.Events[i]
		}
	}
	return nil
}

// TestService_Ring_TwilioSlow_OK: Twilio takes CreateParticipant and the voicemail redirect
// and never answers. The caller's join is applied at once (the webhook is not held); in the
// background each request is cut at the client's timeout and tried RedirectAttempts times, so
// the whole ring ends within a bound, with the failure on the timeline.
func TestService_Ring_TwilioSlow_OK(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.stall("CreateParticipant", "UpdateCall")
	if took := u.callerJoins(t); took > 2*time.Second {
		t.Errorf("the caller's join took %v to apply while Twilio stalls, want it at once", took)
	}

	start := time.Now()
	u.svc.Wait()
	took := time.Since(start)
	// Three tries of the participant, then three of the voicemail redirect, each cut at the
	// timeout; the backoff between tries is 20 ms here.
	least := 2 * 3 * twilioTimeout
	t.Logf("background work ended after %v (6 requests x %v timeout)", took.Round(time.Millisecond), twilioTimeout)
	if took < least || took > least+3*time.Second {
		t.Errorf("background work took %v, want about %v: 6 requests cut at the %v timeout", took, least, twilioTimeout)
	}
	creates, updates := u.fake.RequestsFor("CreateParticipant"), u.fake.RequestsFor("UpdateCall")
	if len(creates) != 3 || len(updates) != 3 {
		t.Errorf("CreateParticipant %d, UpdateCall %d requests; want 3 tries of each", len(creates), len(updates))
	}
	for _, r := range updates {
		if r.PathParams["Sid"] != u.caller || r.Form.Get("Url") != publicURL+"/twilio/voicemail" {
			t.Errorf("UpdateCall %s %v, want the caller redirected to voicemail", r.PathParams["Sid"], r.Form)
		}
	}
	c := u.call(t)
	if c.Status != callrelay.StatusVoicemail {
		t.Errorf("call status %q, want %q", c.Status, callrelay.StatusVoicemail)
	}
	ev := lastEvent(c, "participant")
	if ev == nil || ev.Outcome != "failed" {
		t.Fatalf("participant event %+v, want failed", ev)
	}
	msg, _ := ev.Detail["error"].(string)
	if !strings.Contains(msg, "Cannot reach Twilio to add a participant") || !strings.Contains(msg, "deadline exceeded") {
		t.Errorf("participant error %q, want Twilio not reached in time", msg)
	}
}

// TestService_Hold_TwilioSlow_OK: Twilio takes a hold (UpdateParticipant) and never answers.
// The hold fails with an upstream error once the client's timeout has passed, and changes
// nothing but the timeline; a conference event of the same call meanwhile is applied at once,
// without waiting for Twilio. When Twilio answers again, a new hold works.
func TestService_Hold_TwilioSlow_OK(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.callerJoins(t)
	u.svc.Wait() // the owner's leg is created; the caller is connected
	u.stall("UpdateParticipant")

	type result struct {
		call *callrelay.Call
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		c, err := u.hold.Hold(context.Background(), callrelay.HoldRequest{CallSid: u.caller, Party: callrelay.PartyCaller, Hold: true, By: "ops"})
		done <- result{c, err, time.Since(start)}
	}()
	u.arrived(t, "UpdateParticipant")
	// The hold holds no lock while Twilio is asked, and a conference event of the call locks
	// its row: the event is applied at once, well within the client's timeout.
	waited := u.event(t, "conference-start", 2)
	t.Logf("a conference event took %v while the hold waited for Twilio (timeout %v)", waited.Round(time.Millisecond), twilioTimeout)
	if waited >= twilioTimeout {
		t.Errorf("conference event took %v during a stalled hold: it waited for Twilio (timeout %v)", waited, twilioTimeout)
	}

	res := <-done
	t.Logf("hold answered after %v", res.took.Round(time.Millisecond))
	var e *callrelay.Error
	if !errors.As(res.err, &e) || e.Code != callrelay.EUPSTREAM || !strings.Contains(e.Message, "Cannot reach Twilio to hold the participant") {
		t.Fatalf("hold error = %v, want an upstream error saying Twilio could not be reached", res.err)
	}
	if res.took < twilioTimeout || res.took > twilioTimeout+2*time.Second {
		t.Errorf("hold failed after %v, want at the %v timeout", res.took, twilioTimeout)
	}
	c := u.call(t)
	if c.Hold.Caller || c.Hold.Callee {
		t.Errorf("hold state %+v after a failed hold, want unchanged (nobody held)", c.Hold)
	}
	if ev := lastEvent(c, "hold"); ev == nil || ev.Outcome != "failed" || ev.By != "ops" || ev.Detail["error"] == nil {
		t.Errorf("hold event %+v, want a failed attempt by ops with the error", ev)
	}

	// Twilio answers again.
	u.stall()
	c, err := u.hold.Hold(context.Background(), callrelay.HoldRequest{CallSid: u.caller, Party: callrelay.PartyCaller, Hold: true, By: "ops"})
	if err != nil {
		t.Fatalf("hold after Twilio came back: %v", err)
	}
	if !c.Hold.Caller {
		t.Errorf("hold state %+v, want the caller held", c.Hold)
	}
	holds := u.fake.RequestsFor("UpdateParticipant")
	if len(holds) != 2 || holds[1].Form.Get("Hold") != "true" || holds[1].PathParams["CallSid"] != u.caller {
		t.Errorf("UpdateParticipant requests %+v, want the stalled one and one that held the caller", holds)
	}
}
