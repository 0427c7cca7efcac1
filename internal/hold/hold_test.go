package hold_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/hold"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml"
)

const (
	accountSID = "AC0123456789abcdef0123456789abcdef"
	authToken  = "holdtoken123"
	publicURL  = "https://relay.example.com"
	masked     = "+15551230000"
	routing    = `{"owner_email":"dana@example.com","timeout_seconds":15,"targets":[{"type":"phone","to":"+15550001111","screen":"off"}]}`
)

var (
	caller = "CA" + strings.Repeat("c", 32)
	callee = "CA" + strings.Repeat("e", 32)
)

// direct is a connected direct-mode call, its store on a clock the test moves, and the hold
// service whose REST requests go to a spec-enforcing Twilio fake.
type direct struct {
	db      *postgres.DB
	svc     *hold.Service
	fake    *twiliofake.Fake
	mu      sync.Mutex
	now     time.Time
	release chan struct{} // closed to let the held UpdateCall go; nil: none is held
	arrived chan struct{}
}

func newDirect(t *testing.T) *direct {
	t.Helper()
	ctx := context.Background()
	d := &direct{now: clocktest.Start(), arrived: make(chan struct{}, 1)}
	d.db = postgres.New(pgtest.NewPool(t), postgres.Options{Now: func() time.Time { d.mu.Lock(); defer d.mu.Unlock(); return d.now }})
	d.fake = twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	d.fake.OnRequest(func(r twiliofake.Request) {
		d.mu.Lock()
		release := d.release
		d.release = nil
		d.mu.Unlock()
		if release != nil && r.Operation == "UpdateCall" {
			d.arrived <- struct{}{}
			<-release
		}
	})
	base, _ := url.Parse(d.fake.URL)
	pub, _ := url.Parse(publicURL)
	rest := twilioapi.New(twilioapi.Config{AccountSID: accountSID, AuthToken: authToken, BaseURL: base, Timeout: 5 * time.Second})
	d.svc = hold.New(d.db, rest, twiml.NewBuilder(pub), "", slog.New(slog.DiscardHandler))
	t.Cleanup(d.svc.Wait)

	r, err := callrelay.DecodeRouting(strings.NewReader(routing))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.db.PutNumber(ctx, masked, r); err != nil {
		t.Fatal(err)
	}
	if _, err := d.db.StartCall(ctx, callrelay.InboundCall{CallSid: caller, Number: masked, From: "+15559870000"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: callee, ParentCallSid: caller, Status: "in-progress",
		Sequence: 2, At: d.now, TargetIndex: new(int)}); err != nil {
		t.Fatal(err)
	}
	d.fake.AddCall(caller, "in-progress")
	d.fake.AddCall(callee, "in-progress")
	return d
}

// holdNext makes Twilio hold the next UpdateCall until the returned func is called.
func (d *direct) holdNext() func() {
	release := make(chan struct{})
	d.mu.Lock()
	d.release = release
	d.mu.Unlock()
	return func() { close(release) }
}

func (d *direct) advance(by time.Duration) {
	d.mu.Lock()
	d.now = d.now.Add(by)
	d.mu.Unlock()
}

func holdCaller(by string) callrelay.HoldRequest {
	return callrelay.HoldRequest{CallSid: caller, Party: callrelay.PartyCaller, Hold: true, By: by}
}

// TestService_Hold_ErrConflictWhileAnotherWaits: a request that finds another one of the call
// waiting for Twilio waits for it, and says so clearly when its own time runs out first.
func TestService_Hold_ErrConflictWhileAnotherWaits(t *testing.T) {
	d := newDirect(t)
	release := d.holdNext()
	first := make(chan error, 1)
	go func() {
		_, err := d.svc.Hold(context.Background(), holdCaller("ops"))
		first <- err
	}()
	<-d.arrived

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := d.svc.Hold(ctx, callrelay.HoldRequest{CallSid: caller, Party: callrelay.PartyCallee, Hold: true, By: "ops"})
	if callrelay.ErrorCode(err) != callrelay.ECONFLICT || !strings.Contains(callrelay.ErrorMessage(err), "Another hold request") {
		t.Errorf("second request = %v, want a conflict naming the request still waiting", err)
	}
	release()
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	c, err := d.db.GetCall(context.Background(), caller)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Hold.Caller || c.Hold.Callee {
		t.Errorf("hold = %+v, want the caller held, the callee not", c.Hold)
	}
	if n := len(d.fake.RequestsFor("UpdateCall")); n != 1 {
		t.Errorf("UpdateCall requests = %d, want 1: the second request never reached Twilio", n)
	}
}

// TestService_Hold_AfterAReplicaDied: an intent whose replica died while asking Twilio keeps
// the call's requests waiting only until it expires; then a request goes ahead, and the dead one
// is on the timeline.
func TestService_Hold_AfterAReplicaDied(t *testing.T) {
	d := newDirect(t)
	ctx := context.Background()
	start, err := d.db.RecordHoldIntent(ctx, holdCaller("dead-replica"), 30*time.Second)
	if err != nil || start.Intent == nil {
		t.Fatalf("intent = %+v, %v", start, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := d.svc.Hold(short, holdCaller("ops")); callrelay.ErrorCode(err) != callrelay.ECONFLICT {
		t.Errorf("hold while the intent is pending = %v, want a conflict", err)
	}

	d.advance(time.Minute)
	c, err := d.svc.Hold(ctx, holdCaller("ops"))
	if err != nil || !c.Hold.Caller {
		t.Fatalf("hold after the intent expired = %+v, %v; want the caller held", c, err)
	}
	var got []string
	for _, e := range c.Events {
		if e.Type == "hold" {
			got = append(got, e.By+": "+e.Outcome)
		}
	}
	if want := []string{"dead-replica: expired", "ops: ok"}; strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("hold timeline %q, want %q", got, want)
	}
}
