package conference_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/conference"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twilioapi"
	"github.com/callrelay/callrelay/internal/twiliofake"
	"github.com/callrelay/callrelay/internal/twiml"
)

func mustRouting(t *testing.T, js string) callrelay.Routing {
	t.Helper()
	r, err := callrelay.DecodeRouting(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRingBudget(t *testing.T) {
	for _, tc := range []struct {
		routing string
		want    time.Duration
	}{
		// One timeout, a second of pacing per target, 30 s of margin.
		{`{"owner_email":"a@example.com","mode":"conference","targets":[{"type":"phone","to":"+15550001111","screen":"off"},{"type":"client","identity":"dana"}]}`,
			(20 + 2 + 30) * time.Second},
		// In turn: each target's timeout, pacing and 5 s between two, then the margin.
		{`{"owner_email":"a@example.com","mode":"conference","ring":"sequential","timeout_seconds":15,"targets":[
			{"type":"phone","to":"+15550001111","screen":"off"},{"type":"client","identity":"dana"},{"type":"client","identity":"eve"}]}`,
			(3*(15+1+5) + 30) * time.Second},
		// A screened target (a phone's default) may take 30 s more to accept; once when at once.
		{`{"owner_email":"a@example.com","mode":"conference","targets":[{"type":"phone","to":"+15550001111"},{"type":"phone","to":"+15550002222"}]}`,
			(20 + 2 + 30 + 30) * time.Second},
		// In turn, per screened target (the client here is not screened).
		{`{"owner_email":"a@example.com","mode":"conference","ring":"sequential","timeout_seconds":15,"targets":[
			{"type":"phone","to":"+15550001111"},{"type":"client","identity":"dana","screen":"announce"},{"type":"client","identity":"eve"}]}`,
			(3*(15+1+5) + 2*30 + 30) * time.Second},
	} {
		if got := conference.RingBudget(mustRouting(t, tc.routing)); got != tc.want {
			t.Errorf("RingBudget(%s) = %v, want %v", tc.routing, got, tc.want)
		}
	}
}

func TestDeadline(t *testing.T) {
	start := clocktest.Start()
	r := mustRouting(t, `{"owner_email":"a@example.com","mode":"conference","timeout_seconds":10,
		"greeting":"`+strings.Repeat("x", 100)+`","targets":[{"type":"phone","to":"+15550001111","screen":"off"}]}`)
	screened := mustRouting(t, `{"owner_email":"a@example.com","mode":"conference","timeout_seconds":10,"targets":[{"type":"phone","to":"+15550001111"}]}`)
	budget := conference.RingBudget(r) // 41 s
	at := func(d time.Duration) *time.Time { t := start.Add(d); return &t }
	for _, tc := range []struct {
		name string
		w    callrelay.ConferenceWatch
		want time.Time
	}{
		// No join: the greeting (100 characters, at most 10 s) first.
		{"NoJoin", callrelay.ConferenceWatch{Routing: r, StartedAt: start}, start.Add(10*time.Second + budget)},
		{"Joined", callrelay.ConferenceWatch{Routing: r, StartedAt: start, JoinedAt: at(7 * time.Second)}, start.Add(7*time.Second + budget)},
		// A leg that rings earlier changes nothing; one created late gets its timeout + 15 s.
		{"LegEarly", callrelay.ConferenceWatch{Routing: r, StartedAt: start, JoinedAt: at(0), LastRing: at(time.Second)}, start.Add(budget)},
		{"LegLate", callrelay.ConferenceWatch{Routing: r, StartedAt: start, JoinedAt: at(0), LastRing: at(30 * time.Second)}, start.Add(55 * time.Second)},
		// Screened: 30 s more for the budget (71 s) and for a late leg, which may be in its screen.
		{"Screened", callrelay.ConferenceWatch{Routing: screened, StartedAt: start, JoinedAt: at(0)}, start.Add(71 * time.Second)},
		{"ScreenedLegLate", callrelay.ConferenceWatch{Routing: screened, StartedAt: start, JoinedAt: at(0), LastRing: at(60 * time.Second)}, start.Add(115 * time.Second)},
	} {
		if got := conference.Deadline(tc.w); !got.Equal(tc.want) {
			t.Errorf("%s: Deadline = %v after the start, want %v", tc.name, got.Sub(start), tc.want.Sub(start))
		}
	}
}

// replica is one callrelay's conference service and job queue on a shared database.
type replica struct {
	db     *postgres.DB
	svc    *conference.Service
	queue  *river.Client[pgx.Tx]
	events <-chan *river.Event
}

func newReplica(t *testing.T, pool *pgxpool.Pool, fake *twiliofake.Fake, now func() time.Time) *replica {
	t.Helper()
	db := newDB(t, pool, now)
	base, _ := url.Parse(fake.URL)
	rest := twilioapi.New(twilioapi.Config{AccountSID: accountSID, AuthToken: authToken, BaseURL: base,
		Timeout: 5 * time.Second, ParticipantInterval: -1})
	pub, _ := url.Parse(publicURL)
	svc := conference.New(db, rest, twiml.NewBuilder(pub), slog.New(slog.DiscardHandler))
	queue := newQueue(t, db, svc)
	events, cancel := queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobSnoozed, river.EventKindJobFailed)
	t.Cleanup(cancel)
	if err := queue.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &replica{db: db, svc: svc, queue: queue, events: events}
}

// awaitJob waits for a job of kind to end with the event kind on one of the replicas.
func awaitJob(t *testing.T, kind string, event river.EventKind, replicas ...*replica) *river.Event {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		var ev *river.Event
		select {
		case ev = <-replicas[0].events:
		case ev = <-replicas[len(replicas)-1].events:
		case <-timeout:
			t.Fatalf("no %s job %s within 20s", kind, event)
		}
		if ev.Job.Kind != kind {
			continue
		}
		if ev.Kind != event {
			t.Fatalf("%s job: %s (%v), want %s", kind, ev.Kind, ev.Job.Errors, event)
		}
		return ev
	}
}

// startCall records a conference-mode call to masked with the given routing, the caller in
// its conference at Twilio.
func startCall(t *testing.T, db *postgres.DB, fake *twiliofake.Fake, caller, conf, routingJSON string) callrelay.Routing {
	t.Helper()
	ctx := context.Background()
	r := mustRouting(t, routingJSON)
	if _, _, err := db.PutNumber(ctx, masked, r); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartCall(ctx, callrelay.InboundCall{CallSid: caller, Number: masked, From: callerNum}); err != nil {
		t.Fatal(err)
	}
	fake.AddParticipant(conf, caller, "caller")
	return r
}

func join(t *testing.T, svc *conference.Service, caller, conf string, at time.Time) {
	t.Helper()
	res, err := svc.ConferenceEvent(context.Background(), callrelay.ConferenceEvent{CallSid: caller, ConferenceSid: conf,
		Event: callrelay.ParticipantJoin, Participant: caller, Label: "caller", Sequence: 1, At: at})
	if err != nil || !res.Ring {
		t.Fatalf("join: %+v, %v; want ring", res, err)
	}
}

// TestRingJob_DialsEachTargetOnce: the ring job, a duplicate of it, and two replicas working
// them at once dial each target once.
func TestRingJob_DialsEachTargetOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	fake := twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	a, b := newReplica(t, pool, fake, clocktest.Now), newReplica(t, pool, fake, clocktest.Now)
	caller, conf := "CA"+strings.Repeat("1", 32), "CF"+strings.Repeat("1", 32)
	startCall(t, a.db, fake, caller, conf, `{"owner_email":"dana@example.com","mode":"conference","targets":[
		{"type":"phone","to":"+15550001111","screen":"off"},{"type":"phone","to":"+15550002222","screen":"off"},{"type":"client","identity":"dana"}]}`)
	join(t, a.svc, caller, conf, clocktest.Now())
	if _, err := b.queue.Insert(context.Background(), callrelay.RingOwner{CallSid: caller},
		&river.InsertOpts{Queue: callrelay.ConferenceQueue}); err != nil {
		t.Fatal(err)
	}
	awaitJob(t, callrelay.RingOwner{}.Kind(), river.EventKindJobCompleted, a, b)
	awaitJob(t, callrelay.RingOwner{}.Kind(), river.EventKindJobCompleted, a, b)
	labels := map[string]int{}
	for _, r := range fake.RequestsFor("CreateParticipant") {
		labels[r.Form.Get("Label")]++
	}
	if len(labels) != 3 || labels["callee-1"] != 1 || labels["callee-2"] != 1 || labels["callee-3"] != 1 {
		t.Errorf("participants created by label = %v, want callee-1, -2 and -3 once each", labels)
	}
}

// movable is a test clock moved forward on demand.
type movable struct{ ahead atomic.Int64 }

func (c *movable) Now() time.Time          { return clocktest.Now().Add(time.Duration(c.ahead.Load())) }
func (c *movable) Advance(d time.Duration) { c.ahead.Add(int64(d)) }

// TestDeadlineJob_WaitsThenLeavesAnAnsweredCall: a deadline job that runs before the deadline
// looks again later; one that runs after someone answered does nothing, however late.
func TestDeadlineJob_WaitsThenLeavesAnAnsweredCall(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	fake := twiliofake.Start(t, twiliofake.Options{AccountSID: accountSID, AuthToken: authToken})
	clock := &movable{}
	rp := newReplica(t, pool, fake, clock.Now)
	caller, conf := "CA"+strings.Repeat("2", 32), "CF"+strings.Repeat("2", 32)
	startCall(t, rp.db, fake, caller, conf, routing)
	ctx := context.Background()
	if err := conference.Watch(ctx, rp.db, caller); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := pool.QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'conference-deadline'`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	// Early, before any join: the job looks again RingBackupAfter later (a join may come).
	if _, err := rp.queue.JobRetry(ctx, id); err != nil {
		t.Fatal(err)
	}
	ev := awaitJob(t, callrelay.ConferenceDeadline{}.Kind(), river.EventKindJobSnoozed, rp)
	if d := ev.Job.ScheduledAt.Sub(clock.Now()); d <= 0 || d > conference.RingBackupAfter {
		t.Errorf("snoozed for %v, want up to %v", d, conference.RingBackupAfter)
	}
	if n := len(fake.RequestsFor("UpdateCall")); n != 0 {
		t.Fatalf("%d UpdateCall before the deadline, want none", n)
	}

	// The owner answers; long after the deadline, the job leaves the call alone.
	join(t, rp.svc, caller, conf, clock.Now())
	awaitJob(t, callrelay.RingOwner{}.Kind(), river.EventKindJobCompleted, rp)
	creates := fake.RequestsFor("CreateParticipant")
	if len(creates) != 1 {
		t.Fatalf("%d CreateParticipant, want 1", len(creates))
	}
	leg := ""
	for _, e := range callEvents(t, rp.db, caller, "participant") {
		leg, _ = e.Detail["leg"].(string)
	}
	fake.SetCallStatus(leg, "in-progress")
	if _, err := rp.svc.LegProgress(ctx, callrelay.LegProgress{CallSid: leg, ParentCallSid: caller,
		Status: callrelay.StatusInProgress, Sequence: 1, At: clock.Now()}); err != nil {
		t.Fatal(err)
	}
	rp.svc.Wait()
	clock.Advance(time.Hour)
	if _, err := rp.queue.JobRetry(ctx, id); err != nil {
		t.Fatal(err)
	}
	awaitJob(t, callrelay.ConferenceDeadline{}.Kind(), river.EventKindJobCompleted, rp)
	for _, u := range fake.RequestsFor("UpdateCall") {
		if u.PathParams["Sid"] == caller {
			t.Errorf("UpdateCall of the answered caller %v after the deadline, want none", u.Form)
		}
	}
	c, err := rp.db.GetCall(ctx, caller)
	if err != nil || c.Status != callrelay.StatusInProgress {
		t.Errorf("call %+v, %v; want in progress", c, err)
	}
}

func callEvents(t *testing.T, db *postgres.DB, callSid, typ string) []callrelay.Event {
	t.Helper()
	c, err := db.GetCall(context.Background(), callSid)
	if err != nil {
		t.Fatal(err)
	}
	var out []callrelay.Event
	for _, e := range c.Events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
