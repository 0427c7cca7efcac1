package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/events"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// secret is the Standard Webhooks test vectors' secret.
const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// TestSignSpecVector signs the specification's published example (the reference Go library's
// TestWebhookSign): the same secret, id, timestamp and body give the same signature.
func TestSignSpecVector(t *testing.T) {
	s, err := events.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	got := s.Sign("msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

func TestParseSecretRefuses(t *testing.T) {
	for _, s := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_c2hvcnQ=", "whsec_" + strings.Repeat("QUFB", 30)} {
		if _, err := events.ParseSecret(s); err == nil {
			t.Errorf("ParseSecret(%q) accepted", s)
		} else if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("ParseSecret(%q): error repeats the secret: %v", s, err)
		}
	}
}

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"93.184.215.14": true, "2606:2800:21f:cb07:6820:80da:af6b:8b2c": true, "8.8.8.8": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "::ffff:127.0.0.1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false,
		"64:ff9b::a00:1": false, "255.255.255.255": false,
	} {
		if got := events.Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// received is one request a receiver got, its signature checked by the specification's own
// Go library.
type received struct {
	id, timestamp string
	body          []byte
	verifyErr     error
}

// receiver is an https endpoint that checks each request with standardwebhooks and answers
// the statuses it is given, then 204.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	statuses []int
	got      chan received
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{statuses: statuses, got: make(chan received, 16)}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		// The library's Verify checks the timestamp against the machine's clock; callrelay
		// signs with the test clock (clocktest), which may be shifted: check it against that.
		verr := wh.VerifyIgnoringTimestamp(body, req.Header)
		if ts, err := strconv.ParseInt(req.Header.Get("webhook-timestamp"), 10, 64); err != nil {
			verr = errors.Join(verr, err)
		} else if d := clocktest.Now().Sub(time.Unix(ts, 0)); d > 5*time.Minute || d < -5*time.Minute {
			verr = errors.Join(verr, errors.New("timestamp out of tolerance"))
		}
		r.got <- received{id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"), body: body, verifyErr: verr}
		r.mu.Lock()
		status := http.StatusNoContent
		if len(r.statuses) > 0 {
			status, r.statuses = r.statuses[0], r.statuses[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) next(t *testing.T) received {
	t.Helper()
	select {
	case got := <-r.got:
		if got.verifyErr != nil {
			t.Fatalf("receiver: signature refused: %v", got.verifyErr)
		}
		return got
	case <-time.After(20 * time.Second):
		t.Fatal("receiver: no request")
	}
	return received{}
}

// harness is a store whose queue works event deliveries (and nothing is sent by mail).
type harness struct {
	db     *postgres.DB
	queue  *river.Client[pgx.Tx]
	events <-chan *river.Event
}

func newHarness(t *testing.T, r *receiver, allowPrivate bool, endpoints ...string) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{db: postgres.New(pgtest.NewPool(t))}
	h.db.Now = clocktest.Now
	h.db.Notices = postgres.Notices{Events: true, Endpoints: endpoints}
	signer, err := events.ParseSecret(secret)
	if err != nil {
		t.Fatal(err)
	}
	opts := events.Options{AllowPrivate: allowPrivate, MinBackoff: 100 * time.Millisecond, Now: clocktest.Now, Log: slog.New(slog.DiscardHandler)}
	if r != nil {
		opts.RootCAs = r.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	}
	d := events.NewDeliverer(h.db, signer, opts)
	n := voicemail.NewNotifier(h.db, nil, nil, nil, "callrelay@example.com", clocktest.Now, slog.New(slog.DiscardHandler))
	h.queue, err = voicemail.NewQueue(h.db.Pool(), n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: clocktest.Now}, d.Register)
	if err != nil {
		t.Fatal(err)
	}
	h.db.Jobs = h.queue
	var cancel func()
	h.events, cancel = h.queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobCancelled)
	t.Cleanup(cancel)
	if err := h.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.queue.Stop(ctx); err != nil {
			t.Errorf("stop queue: %v", err)
		}
	})
	return h
}

// answeredCall makes a call that was answered and has ended: call.completed is written.
func (h *harness) answeredCall(t *testing.T, sid, routing string) {
	t.Helper()
	ctx := context.Background()
	rt, err := callrelay.DecodeRouting(strings.NewReader(routing))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.db.PutNumber(ctx, "+15551230000", rt); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.StartCall(ctx, callrelay.InboundCall{CallSid: sid, Number: "+15551230000", From: "+15559870000"}); err != nil {
		t.Fatal(err)
	}
	leg := "CA" + strings.Repeat("b", 32)
	if _, err := h.db.RecordLegProgress(ctx, callrelay.LegProgress{CallSid: leg, ParentCallSid: sid, Status: "in-progress",
		Sequence: 1, At: clocktest.Now(), Target: "+15550001111"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.RecordCallStatus(ctx, sid, "completed", clocktest.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// await returns the next finished job of kind.
func (h *harness) await(t *testing.T, kind string) *river.Event {
	t.Helper()
	for {
		select {
		case ev := <-h.events:
			if ev.Job.Kind == kind {
				return ev
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s job finished", kind)
		}
	}
}

const callSid = "CA" + "0123456789abcdef0123456789abcdef"

// TestDeliverSigned: an answered call sends call.completed to the number's endpoint and the
// instance's; the receivers verify the signature with the specification's library; a refused
// delivery is retried with the same webhook-id and a valid new signature.
func TestDeliverSigned(t *testing.T) {
	numberRecv := newReceiver(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
	instanceRecv := newReceiver(t)
	h := newHarness(t, numberRecv, true, instanceRecv.srv.URL+"/hooks")
	// Both receivers share httptest's certificate authority.
	h.answeredCall(t, callSid, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}],
		"notify":{"webhooks":["`+numberRecv.srv.URL+`/callrelay?team=1"]}}`)

	first := numberRecv.next(t)
	second := numberRecv.next(t)
	third := numberRecv.next(t)
	if first.id == "" || second.id != first.id || third.id != first.id {
		t.Errorf("webhook-id across retries: %q, %q, %q; want one id", first.id, second.id, third.id)
	}
	if string(third.body) != string(first.body) {
		t.Errorf("body changed across retries:\n%s\n%s", first.body, third.body)
	}
	inst := instanceRecv.next(t)
	if inst.id != first.id {
		t.Errorf("instance endpoint got webhook-id %q, number endpoint %q: one event, one id", inst.id, first.id)
	}
	var body struct {
		Type      string                  `json:"type"`
		Timestamp time.Time               `json:"timestamp"`
		Data      callrelay.CallEventData `json:"data"`
	}
	if err := json.Unmarshal(first.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.Type != callrelay.EventCallCompleted || body.Data.CallSid != callSid || body.Data.Outcome != "answered" ||
		body.Data.Callee != "+15550001111" || body.Data.DurationSeconds < 29 || body.Data.From != "+15559870000" {
		t.Errorf("body = %+v", body)
	}
	h.await(t, callrelay.DeliverEvent{}.Kind())
	h.await(t, callrelay.DeliverEvent{}.Kind())
	c, err := h.db.GetCall(context.Background(), callSid)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, e := range c.Events {
		if e.Type == "event" {
			outcomes = append(outcomes, e.Outcome)
		}
	}
	if strings.Join(outcomes, " ") != "retry retry delivered delivered" && strings.Join(outcomes, " ") != "delivered retry retry delivered" &&
		strings.Join(outcomes, " ") != "retry delivered retry delivered" {
		t.Errorf("timeline deliveries %q, want two retries and two deliveries", outcomes)
	}
}

// TestDeliverRefusesPrivate: without CALLRELAY_EVENT_ALLOW_PRIVATE, an endpoint on loopback is
// never reached, whether named by address or by a name that resolves to it (the check is on
// the address dialed), and the delivery gives up at once.
func TestDeliverRefusesPrivate(t *testing.T) {
	recv := newReceiver(t)
	port := recv.srv.URL[strings.LastIndex(recv.srv.URL, ":")+1:]
	for _, endpoint := range []string{recv.srv.URL, "https://localhost:" + port + "/hooks"} {
		t.Run(endpoint, func(t *testing.T) {
			h := newHarness(t, recv, false, endpoint)
			h.answeredCall(t, callSid, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`)
			ev := h.await(t, callrelay.DeliverEvent{}.Kind())
			if ev.Kind != river.EventKindJobCancelled {
				t.Errorf("delivery job %s, want cancelled", ev.Kind)
			}
			select {
			case got := <-recv.got:
				t.Fatalf("a private endpoint was reached: %+v", got)
			default:
			}
			c, err := h.db.GetCall(context.Background(), callSid)
			if err != nil {
				t.Fatal(err)
			}
			var deliveries []callrelay.Event
			for _, e := range c.Events {
				if e.Type == "event" {
					deliveries = append(deliveries, e)
				}
			}
			if len(deliveries) != 1 || deliveries[0].Outcome != "failed" || !strings.Contains(fmt.Sprint(deliveries[0].Detail["error"]), "not public") {
				t.Errorf("timeline deliveries %+v, want one failed as not public", deliveries)
			}
		})
	}
}
