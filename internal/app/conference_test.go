package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml/twimltest"
)

// A conference-mode call must never stall: these tests lose the callbacks and kill the process
// at the worst moments, and check that the owner is still dialled or the caller reaches
// voicemail. Whole callrelays (app.New) on one database, real signed webhooks, Twilio's REST
// API played by the spec-checking fake, one clock for everything that the tests move forward
// instead of waiting.

const (
	confNumber = "+15551230099"
	confTarget = "+15550001111"
	// confRouting rings one phone for 10 s, unscreened (a participant: the dialling is what these tests are about).
	confRouting = `{"owner_email":"dana@example.com","mode":"conference","timeout_seconds":10,
		"targets":[{"type":"phone","to":"` + confTarget + `","screen":"off"}]}`
)

// movableClock is the test clock (clocktest.Now) moved forward on demand: the store, the job
// queue and the deadline all read it, so moving it is time passing for callrelay.
type movableClock struct{ ahead atomic.Int64 }

func (c *movableClock) Now() time.Time { return clocktest.Now().Add(time.Duration(c.ahead.Load())) }

func (c *movableClock) Advance(d time.Duration) { c.ahead.Add(int64(d)) }

// confSetup is a database, a Twilio fake and a clock that callrelay instances share.
type confSetup struct {
	pool  *pgxpool.Pool
	fake  *twiliofake.Fake
	clock *movableClock
	// requests gets every CreateParticipant and UpdateCall the fake receives, as it arrives.
	requests chan twiliofake.Request
	caller   string // the caller's CallSid, the conference's name
	conf     string // its ConferenceSid
}

func newConfSetup(t *testing.T) *confSetup {
	t.Helper()
	s := &confSetup{pool: pgtest.NewPool(t), clock: &movableClock{}, requests: make(chan twiliofake.Request, 100),
		caller: sid("CA", 0xca11e4), conf: sid("CF", 0xc0f)}
	s.fake = twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	s.fake.OnRequest(func(r twiliofake.Request) {
		if r.Operation == "CreateParticipant" || r.Operation == "UpdateCall" {
			s.requests <- r
		}
	})
	return s
}

// instance is one callrelay process on the shared database, its REST requests sent to apiURL.
type instance struct {
	app  *app.App
	base string // its public URL
	srv  *httptest.Server
	logs *logBuffer
	once sync.Once
}

// start assembles a callrelay and serves its webhooks; with work, its job queue runs (a
// process that has not got to its jobs yet has it stopped).
func (s *confSetup) start(t *testing.T, apiURL string, work bool) *instance {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	publicURL, _ := url.Parse("http://" + srv.Listener.Addr().String())
	api, _ := url.Parse(apiURL)
	logs := &logBuffer{}
	opts := relayOptions()
	opts.Now = s.clock.Now
	a, err := app.New(relayConfig(t, publicURL, api, ""), s.pool, slog.New(slog.NewTextHandler(logs, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.Handler
	srv.Start()
	t.Cleanup(srv.Close)
	in := &instance{app: a, base: publicURL.String(), srv: srv, logs: logs}
	if work {
		if err := a.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { in.stop(t) })
	}
	return in
}

// stop shuts a started instance down: its running jobs finish.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	in.once.Do(func() {
		in.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := in.app.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// voice sends the caller's voice webhook and checks that the answer puts the caller into its
// conference, with the Dial's time limit.
func (s *confSetup) voice(t *testing.T, in *instance) {
	t.Helper()
	doc := mustPost(t, in.base, "/twilio/voice", voiceForm(s.caller, confNumber), http.StatusOK)
	dial := twimltest.Parse(t, doc).Find("Dial")
	if dial == nil || dial.Find("Conference") == nil || dial.Find("Conference").Text != s.caller {
		t.Fatalf("voice webhook answered %s, want the caller's conference", doc)
	}
	if got := dial.Attr("timeLimit"); got != "14400" {
		t.Errorf("<Dial timeLimit> = %q, want 14400 (4 hours)", got)
	}
	// The caller's <Dial><Conference> runs at Twilio: it waits in the conference.
	s.fake.AddParticipant(s.conf, s.caller, "caller")
}

// joined sends the caller's participant-join, which callrelay answers 204.
func (s *confSetup) joined(t *testing.T, in *instance) {
	t.Helper()
	mustPost(t, in.base, "/twilio/conference-status", url.Values{
		"AccountSid": {accountSID}, "ConferenceSid": {s.conf}, "FriendlyName": {s.caller},
		"StatusCallbackEvent": {"participant-join"}, "CallSid": {s.caller}, "ParticipantLabel": {"caller"},
		"SequenceNumber": {"1"}, "Timestamp": {s.clock.Now().UTC().Format(time.RFC1123Z)},
		"Muted": {"false"}, "Hold": {"false"}, "Coaching": {"false"},
		"EndConferenceOnExit": {"true"}, "StartConferenceOnEnter": {"false"},
	}, http.StatusNoContent)
}

// await returns the next CreateParticipant or UpdateCall that reaches Twilio.
func (s *confSetup) await(t *testing.T, what string) twiliofake.Request {
	t.Helper()
	select {
	case r := <-s.requests:
		return r
	case <-time.After(20 * time.Second):
		t.Fatalf("no request reached Twilio within 20s; waiting for %s", what)
		return twiliofake.Request{}
	}
}

// none checks that no CreateParticipant or UpdateCall has reached Twilio.
func (s *confSetup) none(t *testing.T, when string) {
	t.Helper()
	select {
	case r := <-s.requests:
		t.Fatalf("%s: %s %s %v reached Twilio, want nothing", when, r.Operation, r.Path, r.Form)
	default:
	}
}

// deadlineDue moves the clock past the caller's deadline and makes its job due at once (as
// River's scheduler does within seconds), for the instance that works the queue.
func (s *confSetup) deadlineDue(t *testing.T, after time.Duration) {
	t.Helper()
	s.due(t, "conference-deadline", after)
}

// due moves the clock forward by after and makes the caller's scheduled jobs of kind due at
// once, as River's scheduler does within seconds.
func (s *confSetup) due(t *testing.T, kind string, after time.Duration) {
	t.Helper()
	s.clock.Advance(after)
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `SELECT id FROM river_job WHERE kind = $1 AND args->>'call_sid' = $2 AND state = 'scheduled'`,
		kind, s.caller)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(ids) == 0 {
		t.Fatalf("the caller's scheduled %s jobs: %v %v", kind, ids, err)
	}
	client, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := client.JobRetry(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
}

// wantVoicemailRedirect checks that r sends the caller to voicemail.
func (s *confSetup) wantVoicemailRedirect(t *testing.T, r twiliofake.Request, in *instance) {
	t.Helper()
	if r.Operation != "UpdateCall" || r.PathParams["Sid"] != s.caller || r.Form.Get("Url") != in.base+"/twilio/voicemail" {
		t.Fatalf("%s %s %v, want the caller redirected to %s/twilio/voicemail", r.Operation, r.Path, r.Form, in.base)
	}
}

func (s *confSetup) call(t *testing.T, in *instance) *callrelay.Call {
	t.Helper()
	c, err := in.app.DB.GetCall(context.Background(), s.caller)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func noAnswerReason(c *callrelay.Call) string {
	for _, e := range c.Events {
		if e.Type == "no-answer" {
			r, _ := e.Detail["reason"].(string)
			return r
		}
	}
	return ""
}

// TestConference_KilledAfterJoin_OwnerDialled: the process answers the caller's
// participant-join 204 and dies before it asks Twilio to dial the owner. A new process on the
// same database dials the owner into the caller's conference.
func TestConference_KilledAfterJoin_OwnerDialled(t *testing.T) {
	t.Parallel()
	s := newConfSetup(t)
	// The first process never reaches Twilio: it dies (its queue never works) right after
	// answering. Its Twilio is unreachable, so that nothing it might start gets through.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	first := s.start(t, dead.URL, false)
	putNumber(t, first.base, confNumber, confRouting)
	s.voice(t, first)
	s.joined(t, first)
	first.srv.Close() // killed
	s.none(t, "after the join, before any process worked its jobs")

	second := s.start(t, s.fake.URL, true)
	r := s.await(t, "the owner dialled by the new process")
	if r.Operation != "CreateParticipant" || r.PathParams["ConferenceSid"] != s.conf || r.Form.Get("To") != confTarget ||
		r.Form.Get("Label") != "callee-1" || r.Form.Get("Timeout") != "10" {
		t.Fatalf("%s %s %v, want the owner (%s) added to conference %s", r.Operation, r.Path, r.Form, confTarget, s.conf)
	}
	second.stop(t) // its ring job finishes: the leg is recorded
	c := s.call(t, second)
	if c.Status != callrelay.StatusRinging || len(c.Legs) != 1 || c.Legs[0].Target != confTarget {
		t.Errorf("call %s with legs %+v, want ringing with the owner's leg", c.Status, c.Legs)
	}
	s.none(t, "after the owner was dialled")
}

// TestConference_KilledAfterTakingRingJob_OwnerDialled: the process that took the ring job
// dies before dialling. River would hand the running job to another process only after
// minutes; the call's deadline job, 15 s after the join, dials the owner from another process.
func TestConference_KilledAfterTakingRingJob_OwnerDialled(t *testing.T) {
	t.Parallel()
	s := newConfSetup(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	first := s.start(t, dead.URL, false)
	putNumber(t, first.base, confNumber, confRouting)
	s.voice(t, first)
	s.joined(t, first)
	first.srv.Close() // killed
	// As River shows a job a process took: running, attempted by it.
	tag, err := s.pool.Exec(context.Background(), `
		UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now(), attempted_by = '{dead-process}'
		WHERE kind = 'conference-ring' AND state = 'available'`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("taking the ring job: %v rows, %v; want the one available ring job", tag.RowsAffected(), err)
	}

	second := s.start(t, s.fake.URL, true)
	s.due(t, "conference-deadline", 16*time.Second)
	r := s.await(t, "the owner dialled by the deadline job")
	if r.Operation != "CreateParticipant" || r.PathParams["ConferenceSid"] != s.conf || r.Form.Get("To") != confTarget {
		t.Fatalf("%s %s %v, want the owner (%s) added to conference %s", r.Operation, r.Path, r.Form, confTarget, s.conf)
	}
	second.stop(t)
	s.none(t, "after the owner was dialled")
}

// TestConference_JoinLost_VoicemailByDeadline: Twilio's participant-join never arrives, so
// callrelay never learns the conference and cannot dial the owner; at the call's deadline
// (written by the voice webhook) the caller is sent to voicemail instead of waiting in the
// music until they hang up.
func TestConference_JoinLost_VoicemailByDeadline(t *testing.T) {
	t.Parallel()
	s := newConfSetup(t)
	in := s.start(t, s.fake.URL, true)
	putNumber(t, in.base, confNumber, confRouting)
	s.voice(t, in)
	// No participant-join. 10 s of ring, a second of pacing, 30 s of margin: 41 s.
	s.deadlineDue(t, 41*time.Second)
	s.wantVoicemailRedirect(t, s.await(t, "the caller sent to voicemail"), in)
	c := s.call(t, in)
	if c.Status != callrelay.StatusVoicemail {
		t.Errorf("call status %q, want voicemail", c.Status)
	}
	if reason := noAnswerReason(c); !strings.Contains(reason, "deadline") || !strings.Contains(reason, "no participant-join") {
		t.Errorf("no-answer reason %q, want the deadline, with no participant-join", reason)
	}
	in.stop(t)
	s.none(t, "after the redirect")
}

// TestConference_NoLegRings_VoicemailByDeadline: the owner's leg is created but never rings
// (its status callbacks never come). At the deadline the caller goes to voicemail and the leg
// is cancelled.
func TestConference_NoLegRings_VoicemailByDeadline(t *testing.T) {
	t.Parallel()
	s := newConfSetup(t)
	in := s.start(t, s.fake.URL, true)
	putNumber(t, in.base, confNumber, confRouting)
	s.voice(t, in)
	s.joined(t, in)
	create := s.await(t, "the owner dialled")
	if create.Operation != "CreateParticipant" {
		t.Fatalf("%s, want CreateParticipant", create.Operation)
	}

	// This process stops (its ring job finishes: the leg is recorded); another one works the
	// deadline. The leg's own time (10 s + 15 s of grace) is within the call's 41 s.
	in.stop(t)
	in = s.start(t, s.fake.URL, true)
	s.deadlineDue(t, 42*time.Second)
	caller, leg := s.await(t, "a request at the deadline"), s.await(t, "a second request at the deadline")
	if caller.PathParams["Sid"] != s.caller {
		caller, leg = leg, caller
	}
	s.wantVoicemailRedirect(t, caller, in)
	if leg.Operation != "UpdateCall" || leg.Form.Get("Status") != "canceled" || leg.PathParams["Sid"] == s.caller {
		t.Errorf("%s %s %v, want the owner's leg cancelled", leg.Operation, leg.Path, leg.Form)
	}
	c := s.call(t, in)
	if c.Status != callrelay.StatusVoicemail {
		t.Errorf("call status %q, want voicemail", c.Status)
	}
	if reason := noAnswerReason(c); !strings.Contains(reason, "deadline") || !strings.Contains(reason, "after the caller joined") {
		t.Errorf("no-answer reason %q, want the deadline after the join", reason)
	}
	in.stop(t)
	s.none(t, "after the redirect")
}
