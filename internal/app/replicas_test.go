package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/twiliosim"
)

// The replica tests run two callrelays on one database, as production runs several behind a
// load balancer: each has its own pool, job queue and HTTP server, and a round-robin proxy in
// front alternates requests between them. The proxy's URL is CALLRELAY_PUBLIC_URL for both,
// since Twilio signs over the URL it requested, whichever replica answers.

// replicaNames name the replicas in messages.
var replicaNames = [2]string{"A", "B"}

// replicas are two callrelays on one database behind a round-robin proxy, the simulators that
// play calls through the proxy, and the mail server both send to.
type replicas struct {
	sims  []*twiliosim.Sim
	smtp  *mailtest.Server
	proxy *roundRobin
	pool  *pgxpool.Pool // the test's own view of the shared database
	logs  [2]*logBuffer
}

// startReplicas starts two replicas on a new, empty database, migrated by both at once as
// replicas starting together do, and nSims simulators in front of them (one scenario plays
// at a time on a simulator: several play calls concurrently).
func startReplicas(t *testing.T, nSims int) *replicas {
	t.Helper()
	dbURL := pgtest.NewEmptyURL(t)
	r := &replicas{smtp: mailtest.Start(t)}
	restSrv := httptest.NewUnstartedServer(nil)
	proxySrv := httptest.NewUnstartedServer(nil)
	publicURL, _ := url.Parse("http://" + proxySrv.Listener.Addr().String())
	apiURL, _ := url.Parse("http://" + restSrv.Listener.Addr().String())

	for range nSims {
		r.sims = append(r.sims, newSim(t, publicURL.String(), apiURL.String()))
	}
	// The REST API outlives the replicas (registered first, closed last): a replica shutting
	// down may still be finishing Twilio requests.
	restSrv.Config.Handler = restFront(t, r.sims)
	restSrv.Start()
	t.Cleanup(restSrv.Close)

	var pools [2]*pgxpool.Pool
	for i := range pools {
		pools[i] = openPool(t, dbURL)
	}
	r.pool = openPool(t, dbURL)
	migrateAtOnce(t, pools[:]...)

	var backends [2]*url.URL
	for i := range 2 {
		r.logs[i] = &logBuffer{}
		log := slog.New(slog.NewTextHandler(r.logs[i], nil)).With(slog.String("replica", replicaNames[i]))
		a, err := app.New(relayConfig(t, publicURL, apiURL, r.smtp.URL()), pools[i], log, relayOptions())
		if err != nil {
			t.Fatalf("replica %s: %v", replicaNames[i], err)
		}
		srv := httptest.NewServer(a.Handler)
		if err := a.Start(context.Background()); err != nil {
			srv.Close()
			t.Fatalf("replica %s: %v", replicaNames[i], err)
		}
		t.Cleanup(func() {
			srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("replica %s: shutdown: %v", replicaNames[i], err)
			}
		})
		backends[i], _ = url.Parse(srv.URL)
	}
	r.proxy = newRoundRobin(t, backends)
	proxySrv.Config.Handler = r.proxy
	proxySrv.Start()
	t.Cleanup(proxySrv.Close) // first to close: no request reaches a replica that is stopping
	return r
}

// openPool opens a pool on the database at dbURL, closed when t ends.
func openPool(t *testing.T, dbURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// migrateAtOnce runs callrelay's start-up migration from every pool at the same moment, as
// replicas that start together do, and fails the test if any of them fails.
func migrateAtOnce(t *testing.T, pools ...*pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errs := make([]error, len(pools))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, pool := range pools {
		wg.Go(func() {
			<-start
			errs[i] = postgres.MigrateWhenReachable(ctx, pool, slog.New(slog.DiscardHandler), 20*time.Second)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start-up migration %d of %d running at once: %v", i+1, len(pools), err)
		}
	}
}

// roundRobin is the load balancer in front of the replicas. Requests of each kind alternate
// between them, and it counts what each served. Holds start at replica A and resumes at
// replica B, so that the first party held through one replica is resumed through the other.
type roundRobin struct {
	backends [2]http.Handler

	mu     sync.Mutex
	next   map[string]int    // the replica the next request of a kind goes to
	served [2]map[string]int // requests each replica served, by kind
}

// Kinds of requests the proxy counts.
const (
	kindWebhook = "webhook" // /twilio/…: Twilio's requests
	kindHold    = "hold"    // POST /api/calls/{sid}/hold
	kindUnhold  = "unhold"  // POST /api/calls/{sid}/unhold
	kindAPI     = "api"     // the rest of the ops API
)

func newRoundRobin(t *testing.T, backends [2]*url.URL) *roundRobin {
	p := &roundRobin{next: map[string]int{kindUnhold: 1}}
	for i, u := range backends {
		rp := httputil.NewSingleHostReverseProxy(u)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		t.Cleanup(tr.CloseIdleConnections)
		rp.Transport = tr
		rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				// The simulator withdrew the request (a redirect or a hang-up interrupts the
				// document being fetched, as at Twilio): no replica failed, and nobody reads
				// the answer. The scenario's expectations judge what followed.
				t.Logf("proxy: replica %s: %s %s: withdrawn by the simulator: %v", replicaNames[i], r.Method, r.URL.Path, err)
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			// The simulator sees the 502 and fails the scenario; say which replica failed.
			t.Errorf("proxy: replica %s: %s %s: %v", replicaNames[i], r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusBadGateway)
		}
		p.backends[i] = rp
		p.served[i] = map[string]int{}
	}
	return p
}

func requestKind(r *http.Request) string {
	switch {
	case strings.HasPrefix(r.URL.Path, "/twilio/"):
		return kindWebhook
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/unhold"):
		return kindUnhold
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/hold"):
		return kindHold
	}
	return kindAPI
}

func (p *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind := requestKind(r)
	p.mu.Lock()
	i := p.next[kind]
	p.next[kind] = 1 - i
	p.served[i][kind]++
	p.mu.Unlock()
	p.backends[i].ServeHTTP(w, r)
}

// counts returns how many requests of kind each replica served.
func (p *roundRobin) counts(kind string) [2]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return [2]int{p.served[0][kind], p.served[1][kind]}
}

// restFront is callrelay's TWILIO_API_URL in front of the simulators. With one simulator it
// is that simulator. With several playing calls at once, a recording's media goes to the
// simulator that recorded it (the others answer 404); no other request can be told apart,
// so the calls played then must make none (direct-mode voicemail calls make none).
func restFront(t *testing.T, sims []*twiliosim.Sim) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(sims) == 1 {
			sims[0].ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/Recordings/RE") {
			t.Errorf("REST request %s %s with %d simulators: cannot tell whose call it is for", r.Method, r.URL.Path, len(sims))
			http.Error(w, "test: request for no simulator", http.StatusInternalServerError)
			return
		}
		for _, s := range sims {
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, r)
			if rec.Code == http.StatusNotFound {
				continue
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		http.NotFound(w, r)
	})
}

// loadScenario reads testdata/scenarios/name.yaml.
func loadScenario(t *testing.T, name string) *twiliosim.Scenario {
	t.Helper()
	sc, err := twiliosim.LoadScenario("../../testdata/scenarios/" + name + ".yaml")
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// reportResult fails t with the timeline and both replicas' logs when the call did not go as
// the scenario expected.
func (r *replicas) reportResult(t *testing.T, res *twiliosim.Result) {
	t.Helper()
	if res.OK() && !*verbose {
		return
	}
	var b strings.Builder
	res.Print(&b)
	t.Log("\n" + b.String())
	if !res.OK() {
		t.Errorf("scenario %q failed through two replicas (replica A's log:)\n%s\n(replica B's log:)\n%s",
			res.Name, r.logs[0].String(), r.logs[1].String())
	}
}

// emailsByCall counts the emails delivered, by the call they are about.
func emailsByCall(t *testing.T, smtp *mailtest.Server) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range smtp.Received() {
		got[mailtest.Parse(t, m.Data).Header.Get("X-Callrelay-Call")]++
	}
	return got
}

// awaitJobsFinished waits until no job is left to run in the shared database: then no
// further email can come. A job is marked completed a moment after its email is marked sent
// (River's completer batches), and nothing signals that: poll, with a deadline.
func awaitJobsFinished(t *testing.T, pool *pgxpool.Pool, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		jobs := unfinishedJobs(t, pool)
		if len(jobs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, j := range jobs {
				t.Errorf("job %d (%s, %s) still %s after %s", j.ID, j.Kind, j.EncodedArgs, j.State, timeout)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// unfinishedJobs lists the jobs that may still run, read with River's own API.
func unfinishedJobs(t *testing.T, pool *pgxpool.Pool) []*rivertype.JobRow {
	t.Helper()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("river client: %v", err)
	}
	res, err := client.JobList(context.Background(), river.NewJobListParams().First(1000).States(
		rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
		rivertype.JobStateRunning, rivertype.JobStateScheduled))
	if err != nil {
		t.Fatalf("list jobs: %v", err)
	}
	return res.Jobs
}

// TestReplicas_Scenarios_OK plays calls through two replicas on one database, every request
// going to the replica the previous one did not: a call's webhooks are split across both,
// a party held through one replica is resumed through the other, and a voicemail is emailed
// exactly once.
func TestReplicas_Scenarios_OK(t *testing.T) {
	for _, name := range []string{"voicemail-transcribed", "conference-hold-both", "direct-hold-caller"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			sc := loadScenario(t, name)
			r := startReplicas(t, 1)
			res := playScenario(t, &relay{sim: r.sims[0]}, sc, 15*time.Second)
			r.reportResult(t, res)

			webhooks := r.proxy.counts(kindWebhook)
			t.Logf("webhooks served: A %d, B %d", webhooks[0], webhooks[1])
			for i, n := range webhooks {
				if n == 0 {
					t.Errorf("replica %s served %d of the call's webhooks (A %d, B %d), want some: the call was not split",
						replicaNames[i], n, webhooks[0], webhooks[1])
				}
			}
			// Holds alternate from A, resumes from B (see roundRobin).
			var holds, unholds int
			for _, op := range sc.Ops {
				if op.Hold != "" {
					holds++
				} else {
					unholds++
				}
			}
			for kind, want := range map[string][2]int{
				kindHold:   {(holds + 1) / 2, holds / 2},
				kindUnhold: {unholds / 2, (unholds + 1) / 2},
			} {
				if got := r.proxy.counts(kind); got != want {
					t.Errorf("%s requests served by A, B = %v, want %v", kind, got, want)
				}
			}

			if v := sc.Expect.Voicemail; v != nil && v.Email == "sent" {
				awaitJobsFinished(t, r.pool, 5*time.Second)
				emails := emailsByCall(t, r.smtp)
				if got := emails[res.CallSid]; got != 1 {
					t.Errorf("emails about call %s: got %d, want exactly 1 (all: %v)", res.CallSid, got, emails)
				}
			}
		})
	}
}

// TestReplicas_ConcurrentVoicemails_OneEmailEach leaves several voicemails at once through two
// replicas: each call's recording and transcription callbacks land on either replica, both
// job queues compete for the emails, and each voicemail is emailed exactly once.
func TestReplicas_ConcurrentVoicemails_OneEmailEach(t *testing.T) {
	const calls = 6
	r := startReplicas(t, calls)
	base := loadScenario(t, "voicemail-transcribed")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	results := make([]*twiliosim.Result, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range calls {
		sc := *base // each call to a number of its own; the rest is shared, read-only
		sc.Number = fmt.Sprintf("+1555123%04d", 7100+i)
		sc.Name = fmt.Sprintf("%s #%d", base.Name, i+1)
		wg.Go(func() { results[i], errs[i] = r.sims[i].Run(ctx, &sc, 15*time.Second) })
	}
	wg.Wait()
	for i := range calls {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i+1, errs[i])
		}
		r.reportResult(t, results[i])
	}

	awaitJobsFinished(t, r.pool, 5*time.Second)
	emails := emailsByCall(t, r.smtp)
	for _, res := range results {
		if got := emails[res.CallSid]; got != 1 {
			t.Errorf("emails about call %s: got %d, want exactly 1", res.CallSid, got)
		}
	}
	if got := len(r.smtp.Received()); got != calls {
		t.Errorf("emails delivered: got %d, want %d (one per voicemail): %v", got, calls, emails)
	}
	webhooks := r.proxy.counts(kindWebhook)
	t.Logf("webhooks served: A %d, B %d", webhooks[0], webhooks[1])
	if webhooks[0] == 0 || webhooks[1] == 0 {
		t.Errorf("webhooks served by A, B = %v, want both some", webhooks)
	}
}
