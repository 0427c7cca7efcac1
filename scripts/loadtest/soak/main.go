// Command soak drives callrelay with whole calls at a fixed request rate for a while, and
// watches its memory and goroutines (scripts/soak.sh; make soak).
//
//	soak -url http://127.0.0.1:18080 -token TOKEN -rate 300 -duration 5m -pid PID
//
// Open loop: calls start at a fixed rate (-rate requests/s over all routes, divided by the mean
// number of webhooks per call, webhook.RequestsPerCall), whatever callrelay's latency, and each
// call's webhooks are sent at fixed offsets from its start, as Twilio would: the voice webhook,
// the forwarded leg's status callbacks and the caller's Dial action (package webhook), signed
// on the fly, over at most 16 connections. A request's latency counts from when it was due, so
// a slow server, a full connection pool or a late generator shows in it. New calls start during -duration; the calls under way then finish
// (about 10 s more).
//
// Every -sample it reads callrelay's resident memory (VmRSS of /proc/PID/status) and its
// goroutines (go_goroutines of -metrics) and prints a line. At the end: per route sent, ok,
// errors, p50/p99/max latency; the series; first/last/max. It fails (exit 1) when any request
// failed (transport error, a status other than the route's, or a wrong answer: voice without
// <Dial>, a Dial action without the expected <Record> or <Hangup>), when sampling failed, or
// when memory or goroutines grew:
//
//	window = min(60 s, duration/3); baseline = the samples in (window, 2*window] (the second
//	minute of a 5-minute run), final = the samples in (duration-window, duration] (the last
//	minute); growth when mean(final) > mean(baseline) * (1 + max-growth/100) + slack,
//	slack = -rss-slack-mb for memory and -goroutine-slack for goroutines (they absorb the
//	garbage collector's pacing and connections opened by a latency spike).
//
// Machine-greppable lines: SAMPLE (each sample), SOAK (per route), SOAK_GROWTH, SOAK_VERDICT.
//
//	soak -url http://127.0.0.1:18080 -token TOKEN -peak 32 -duration 10s
//
// measures the peak instead: -peak workers each send whole calls back to back, closed loop (a
// call's webhooks one after the other, each as soon as the last is answered), for -duration; it
// prints "PEAK rps=… requests=… errors=…", the rate of answered requests of this mix, and fails
// on any error. The soak's rate is meant to be a fraction of that figure.
//
//	soak -url http://127.0.0.1:18080 -token TOKEN -ladder -duration 10s -conns 32
//
// climbs a ladder of whole answered calls instead (make loadtest's mixed run): each call is, in
// Twilio's order, the voice webhook, the forwarded leg's four status callbacks (initiated,
// ringing, in-progress, completed), the Dial action (DialCallStatus=completed) and the caller's
// own completed status callback, at the offsets of a real call scaled by -time-scale (0.1: a call
// takes about a second). Calls start open loop at -ladder-start calls/s for -duration; then at
// -ladder-factor times that rate, and so on, until a step has an error or a route's p99 above
// -p99-ms (when the first step already does, the ladder goes down by the same factor until a
// step holds) (latency counted from when the request was due, on the client: so it includes any
// wait for one of the -conns connections). Each step prints one line per route
// ("LADDER calls_s=… route=… sent=… errors=… p50_ms=… p99_ms=… max_ms=…"); the end
// "LADDER_BEST calls_s=… requests_s=…", the highest rate whose every route kept its p99 within
// the limit. The caller's status is reported apart from the leg's (route call-status-caller).
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/callrelay/callrelay/scripts/loadtest/webhook"
)

func main() {
	ok, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type config struct {
	base, token, metricsURL  string
	rate                     float64
	duration, sample         time.Duration
	pid                      int
	maxGrowth                float64
	rssSlackMB, goroutineSlk float64
	number, from, target     string
	peak                     int
	conns                    int
	ladder                   bool
	ladderStart, ladderMul   float64
	ladderSteps              int
	p99Limit, timeScale      float64
}

func run() (bool, error) {
	var c config
	flag.StringVar(&c.base, "url", "http://127.0.0.1:18080", "callrelay's public URL (CALLRELAY_PUBLIC_URL), where requests go")
	flag.StringVar(&c.token, "token", "", "callrelay's TWILIO_AUTH_TOKEN")
	flag.Float64Var(&c.rate, "rate", 0, "requests per second, all routes together")
	flag.DurationVar(&c.duration, "duration", 5*time.Minute, "how long new calls start")
	flag.DurationVar(&c.sample, "sample", 10*time.Second, "how often callrelay's memory and goroutines are read")
	flag.IntVar(&c.pid, "pid", 0, "callrelay's process ID (its VmRSS is sampled)")
	flag.StringVar(&c.metricsURL, "metrics", "", "callrelay's /metrics (default: -url + /metrics)")
	flag.Float64Var(&c.maxGrowth, "max-growth", 20, "growth allowed, percent of the baseline mean")
	flag.Float64Var(&c.rssSlackMB, "rss-slack-mb", 8, "memory growth always allowed, MB")
	flag.Float64Var(&c.goroutineSlk, "goroutine-slack", 20, "goroutine growth always allowed")
	flag.StringVar(&c.number, "number", "+15551230000", "the masked number (To)")
	flag.StringVar(&c.from, "from", "+15559870000", "the caller (From)")
	flag.StringVar(&c.target, "target", "+15550001111", "the phone the number forwards to")
	flag.IntVar(&c.peak, "peak", 0, "measure the peak with this many closed-loop workers instead of soaking")
	flag.IntVar(&c.conns, "conns", maxConns, "connections to callrelay at most")
	flag.BoolVar(&c.ladder, "ladder", false, "climb a ladder of whole answered calls (see the package doc) instead of soaking")
	flag.Float64Var(&c.ladderStart, "ladder-start", 50, "ladder: calls per second of the first step")
	flag.Float64Var(&c.ladderMul, "ladder-factor", 1.25, "ladder: each step's rate over the last's")
	flag.IntVar(&c.ladderSteps, "ladder-steps", 20, "ladder: steps at most")
	flag.Float64Var(&c.p99Limit, "p99-ms", 15, "ladder: the p99 every route must keep, ms")
	flag.Float64Var(&c.timeScale, "time-scale", 0.1, "ladder: the offsets of a call's webhooks, times this")
	flag.Parse()
	c.base = strings.TrimRight(c.base, "/")
	if c.metricsURL == "" {
		c.metricsURL = c.base + "/metrics"
	}
	if c.ladder {
		if c.token == "" {
			return false, errors.New("-token is required")
		}
		if c.ladderStart <= 0 || c.ladderMul <= 1 || c.timeScale <= 0 || c.duration < time.Second {
			return false, errors.New("-ladder: want -ladder-start > 0, -ladder-factor > 1, -time-scale > 0, -duration >= 1s")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		c.rate = 1 // unused; newSoak divides by it
		return newSoak(c).climb(ctx)
	}
	if c.peak > 0 {
		if c.token == "" {
			return false, errors.New("-token is required")
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		c.rate = 1 // unused; newSoak divides by it
		return newSoak(c).measurePeak(ctx)
	}
	switch {
	case c.token == "":
		return false, errors.New("-token is required")
	case c.rate <= 0:
		return false, errors.New("-rate: want requests per second > 0")
	case c.pid <= 0:
		return false, errors.New("-pid: want callrelay's process ID")
	case c.duration < c.sample || c.sample < time.Second:
		return false, errors.New("-duration and -sample: want duration >= sample >= 1s")
	}
	if _, err := readRSS(c.pid); err != nil {
		return false, err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := newSoak(c)
	return s.run(ctx)
}

// routeStats are one route's results; mu guards them.
type routeStats struct {
	sent, ok, failed int
	lat              []float64 // ms, every request
	interval         []float64 // ms, since the last sample
	failures         map[string]int
}

type sample struct {
	t          time.Duration
	rssMB      float64
	goroutines float64
	done, errs int
	p99ms      float64
	inflight   int64
}

type soak struct {
	c        config
	client   *http.Client
	callRate float64
	prefix   string

	mu       sync.Mutex
	routes   map[string]*routeStats
	inflight atomic.Int64
	calls    atomic.Int64
	samples  []sample
	sampErr  []string
}

// maxConns is the most connections the soak opens to callrelay.
const maxConns = 16

var routes = []string{webhook.RouteVoice, webhook.RouteCallStatus, webhook.RouteDialOutcome}

func newSoak(c config) *soak {
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	s := &soak{
		c: c,
		client: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			// A small bounded pool: beyond it requests wait in the client (their latency, counted
			// from when they were due, shows it), and callrelay's goroutines (one per connection)
			// move by at most maxConns with our connections, under -goroutine-slack. Idle ones
			// close before callrelay's 60 s IdleTimeout would (a POST on a connection the
			// server has just closed fails instead of being retried).
			MaxConnsPerHost: c.conns, MaxIdleConnsPerHost: c.conns, IdleConnTimeout: 30 * time.Second,
		}},
		callRate: c.rate / webhook.RequestsPerCall(),
		prefix:   hex.EncodeToString(b),
		routes:   map[string]*routeStats{},
	}
	for _, r := range append(routes, routeCallerStatus) {
		s.routes[r] = &routeStats{failures: map[string]int{}}
	}
	return s
}

// routeCallerStatus is the ladder's key for the caller's own status callback (a call-status
// without the leg's query).
const routeCallerStatus = "call-status-caller"

// climb runs the ladder of whole calls (see the package doc).
func (s *soak) climb(ctx context.Context) (bool, error) {
	c := s.c
	keys := []string{webhook.RouteVoice, webhook.RouteCallStatus, webhook.RouteDialOutcome, routeCallerStatus}
	perCall := 7.0
	fmt.Printf("ladder: whole answered calls (%g webhooks each), from %.0f calls/s ×%.2f per step of %s, %d connections, p99 limit %.0f ms, time scale %.2f\n",
		perCall, c.ladderStart, c.ladderMul, c.duration, c.conns, c.p99Limit, c.timeScale)
	best, n := 0.0, 0
	ok := true
	// Warm-up, not reported: callrelay's pool opens its connections and prepares its statements.
	warm := time.Now()
	var wg0 sync.WaitGroup
	for i := 0; time.Since(warm) < 2*time.Second && ctx.Err() == nil; i++ {
		n++
		sid := fmt.Sprintf("CA%s%024x", s.prefix, n)
		at := time.Now()
		wg0.Go(func() { s.wholeCall(ctx, sid, at) })
		time.Sleep(time.Duration(float64(time.Second) / (c.ladderStart / 2)))
	}
	wg0.Wait()
	// Up by -ladder-factor while every step holds; if the first step does not, down by it until
	// one does.
	down := false
	for step, rate := 0, c.ladderStart; step < c.ladderSteps && ctx.Err() == nil && rate >= 1; step++ {
		s.mu.Lock()
		for _, k := range keys {
			s.routes[k] = &routeStats{failures: map[string]int{}}
		}
		s.mu.Unlock()
		start := time.Now()
		interval := time.Duration(float64(time.Second) / rate)
		var wg sync.WaitGroup
	schedule:
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if at.Sub(start) >= c.duration {
				break
			}
			select {
			case <-ctx.Done():
				break schedule
			case <-time.After(time.Until(at)):
			}
			n++
			sid := fmt.Sprintf("CA%s%024x", s.prefix, n)
			wg.Go(func() { s.wholeCall(ctx, sid, at) })
		}
		wg.Wait()
		pass := true
		s.mu.Lock()
		var total int
		for _, k := range keys {
			st := s.routes[k]
			total += st.ok
			p99 := percentile(st.lat, 99)
			fmt.Printf("LADDER calls_s=%.0f route=%s sent=%d errors=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", rate, k, st.sent,
				st.failed, percentile(st.lat, 50), p99, slices.Max(append([]float64{0}, st.lat...)))
			for f, k2 := range st.failures {
				fmt.Printf("  %s: %d × %s\n", k, k2, f)
			}
			if st.failed > 0 {
				ok = false
			}
			if st.failed > 0 || !(p99 <= c.p99Limit) {
				pass = false
			}
		}
		s.mu.Unlock()
		fmt.Printf("ladder: %.0f calls/s: %s (%.0f requests/s answered)\n", rate, map[bool]string{true: "within", false: "OVER"}[pass],
			float64(total)/time.Since(start).Seconds())
		if pass {
			best = rate
			if down {
				break
			}
			rate *= c.ladderMul
			continue
		}
		if step > 0 && !down {
			break // the step over the last that held
		}
		down = true
		rate /= c.ladderMul
	}
	fmt.Printf("LADDER_BEST calls_s=%.0f requests_s=%.0f\n", best, best*perCall)
	return ok && ctx.Err() == nil, ctx.Err()
}

// wholeCall sends an answered call's seven webhooks in Twilio's order, at the offsets of a real
// call times -time-scale after at.
func (s *soak) wholeCall(ctx context.Context, sid string, at time.Time) {
	call := webhook.Call{Sid: sid, Number: s.c.number, From: s.c.from, Target: s.c.target}
	scale := func(d time.Duration) time.Time { return at.Add(time.Duration(float64(d) * s.c.timeScale)) }
	if !s.send(ctx, at, webhook.RouteVoice, call.Voice(), http.StatusOK, "<Dial") {
		return
	}
	steps := webhook.LegSteps(webhook.Answered)
	for seq, step := range steps {
		due := scale(step.After)
		s.send(ctx, due, webhook.RouteCallStatus, call.LegStatus(seq, step, due), http.StatusNoContent, "")
	}
	end := webhook.DialAfter(webhook.Answered)
	s.send(ctx, scale(end), webhook.RouteDialOutcome, call.DialOutcome(webhook.Answered, false), http.StatusOK, "<Hangup")
	due := scale(end + 50*time.Millisecond)
	s.sendTo(ctx, due, routeCallerStatus, webhook.RouteCallStatus, call.CallerStatus(0, due, int(end/time.Second)), http.StatusNoContent, "")
}

func (s *soak) run(ctx context.Context) (bool, error) {
	c := s.c
	fmt.Printf("soak: %.0f requests/s (%.1f calls/s, %.2f webhooks per call) for %s against %s, pid %d; sampling every %s\n",
		c.rate, s.callRate, webhook.RequestsPerCall(), c.duration, c.base, c.pid, c.sample)
	start := time.Now()
	var wg sync.WaitGroup
	sampling := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		s.sampleLoop(start, sampling)
	}()

	interval := time.Duration(float64(time.Second) / s.callRate)
schedule:
	for i := 0; ; i++ {
		at := start.Add(time.Duration(i) * interval)
		if at.Sub(start) >= c.duration {
			break
		}
		select {
		case <-ctx.Done():
			break schedule
		case <-time.After(time.Until(at)):
		}
		sid := fmt.Sprintf("CA%s%024x", s.prefix, i)
		s.calls.Add(1)
		wg.Go(func() { s.call(ctx, sid, at) })
	}
	wg.Wait()
	close(sampling)
	<-samplerDone
	return s.report(ctx, time.Since(start))
}

// measurePeak runs c.peak closed-loop workers for c.duration and prints the rate of answered
// requests.
func (s *soak) measurePeak(ctx context.Context) (bool, error) {
	start := time.Now()
	end := start.Add(s.c.duration)
	var n atomic.Int64
	var wg sync.WaitGroup
	for range s.c.peak {
		wg.Go(func() {
			// A call started before the end is finished: no request is cut.
			for ctx.Err() == nil && time.Now().Before(end) {
				s.callNow(ctx, fmt.Sprintf("CA%s%024x", s.prefix, n.Add(1)))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	var ok, failed int
	s.mu.Lock()
	for _, r := range routes {
		st := s.routes[r]
		ok, failed = ok+st.ok, failed+st.failed
		for f, k := range st.failures {
			fmt.Printf("peak: %s: %d× %s\n", r, k, f)
		}
	}
	s.mu.Unlock()
	fmt.Printf("PEAK rps=%.1f requests=%d errors=%d workers=%d seconds=%.1f\n",
		float64(ok)/elapsed.Seconds(), ok, failed, s.c.peak, elapsed.Seconds())
	return failed == 0, ctx.Err()
}

// callNow sends one call's webhooks back to back, each when the one before is answered.
func (s *soak) callNow(ctx context.Context, sid string) {
	call := webhook.Call{Sid: sid, Number: s.c.number, From: s.c.from, Target: s.c.target}
	o, hungUp := webhook.OutcomeOf(sid)
	if !s.send(ctx, time.Now(), webhook.RouteVoice, call.Voice(), http.StatusOK, "<Dial") {
		return
	}
	for seq, step := range webhook.LegSteps(o) {
		s.send(ctx, time.Now(), webhook.RouteCallStatus, call.LegStatus(seq, step, time.Now()), http.StatusNoContent, "")
	}
	want := "<Record"
	if o == webhook.Answered {
		want = "<Hangup"
	}
	s.send(ctx, time.Now(), webhook.RouteDialOutcome, call.DialOutcome(o, hungUp), http.StatusOK, want)
}

// call sends one call's webhooks, each at its time after at.
func (s *soak) call(ctx context.Context, sid string, at time.Time) {
	call := webhook.Call{Sid: sid, Number: s.c.number, From: s.c.from, Target: s.c.target}
	o, hungUp := webhook.OutcomeOf(sid)
	if !s.send(ctx, at, webhook.RouteVoice, call.Voice(), http.StatusOK, "<Dial") {
		return // no call: its callbacks would only be ignored
	}
	for seq, step := range webhook.LegSteps(o) {
		due := at.Add(step.After)
		s.send(ctx, due, webhook.RouteCallStatus, call.LegStatus(seq, step, due), http.StatusNoContent, "")
	}
	want := "<Record" // nobody answered: voicemail
	if o == webhook.Answered {
		want = "<Hangup"
	}
	s.send(ctx, at.Add(webhook.DialAfter(o)), webhook.RouteDialOutcome, call.DialOutcome(o, hungUp), http.StatusOK, want)
}

// send posts one webhook when it is due and records the outcome; it reports success.
func (s *soak) send(ctx context.Context, due time.Time, route string, form map[string][]string, wantCode int, wantBody string) bool {
	pq, _ := webhook.PathAndQuery(route)
	return s.sendTo(ctx, due, route, pq, form, wantCode, wantBody)
}

// sendTo posts one webhook to pq when it is due and records the outcome under route.
func (s *soak) sendTo(ctx context.Context, due time.Time, route, pq string, form map[string][]string, wantCode int, wantBody string) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(due)):
	}
	w := webhook.Sign(s.c.token, s.c.base, pq, form)
	s.inflight.Add(1)
	failure := s.post(ctx, s.c.base+pq, w, wantCode, wantBody)
	s.inflight.Add(-1)
	ms := float64(time.Since(due).Microseconds()) / 1000

	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.routes[route]
	st.sent++
	st.lat = append(st.lat, ms)
	st.interval = append(st.interval, ms)
	if failure != "" {
		st.failed++
		st.failures[failure]++
		return false
	}
	st.ok++
	return true
}

// post sends the request and returns "" or what was wrong.
func (s *soak) post(ctx context.Context, url string, w webhook.Signed, wantCode int, wantBody string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(w.Body))
	if err != nil {
		return "request: " + err.Error()
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", w.Signature)
	resp, err := s.client.Do(req)
	if err != nil {
		var uerr interface{ Timeout() bool }
		if errors.As(err, &uerr) && uerr.Timeout() {
			return "timeout"
		}
		return "transport: " + strings.TrimPrefix(err.Error(), "Post \""+url+"\": ")
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "read body: " + err.Error()
	}
	if resp.StatusCode != wantCode {
		return fmt.Sprintf("status %d (want %d)", resp.StatusCode, wantCode)
	}
	if wantBody != "" && !strings.Contains(string(body), wantBody) {
		return fmt.Sprintf("answer without %s", wantBody)
	}
	return ""
}

// sampleLoop samples every c.sample until done is closed, then once more.
func (s *soak) sampleLoop(start time.Time, done <-chan struct{}) {
	tick := time.NewTicker(s.c.sample)
	defer tick.Stop()
	fmt.Printf("%-8s %8s %10s %9s %8s %9s %9s\n", "t", "RSS MB", "goroutines", "req/s", "errors", "p99 ms", "in flight")
	last := start
	for {
		select {
		case <-done:
			s.takeSample(start, &last)
			return
		case <-tick.C:
			s.takeSample(start, &last)
		}
	}
}

func (s *soak) takeSample(start time.Time, last *time.Time) {
	now := time.Now()
	sm := sample{t: now.Sub(start).Round(time.Second), inflight: s.inflight.Load(), rssMB: math.NaN(), goroutines: math.NaN()}
	if kb, err := readRSS(s.c.pid); err != nil {
		s.sampleError(err)
	} else {
		sm.rssMB = float64(kb) / 1024
	}
	if g, err := s.goroutines(); err != nil {
		s.sampleError(err)
	} else {
		sm.goroutines = g
	}
	s.mu.Lock()
	var lat []float64
	for _, r := range routes {
		st := s.routes[r]
		lat = append(lat, st.interval...)
		st.interval = st.interval[:0]
	}
	for _, r := range routes {
		sm.errs += s.routes[r].failed
	}
	for _, prev := range s.samples {
		sm.errs -= prev.errs
	}
	sm.done = len(lat)
	sm.p99ms = percentile(lat, 99)
	s.samples = append(s.samples, sm)
	s.mu.Unlock()
	rps := float64(sm.done) / now.Sub(*last).Seconds()
	*last = now
	fmt.Printf("%-8s %8.1f %10.0f %9.1f %8d %9.2f %9d\n", sm.t, sm.rssMB, sm.goroutines, rps, sm.errs, sm.p99ms, sm.inflight)
	fmt.Printf("SAMPLE t_s=%.0f rss_mb=%.1f goroutines=%.0f rps=%.1f errors=%d p99_ms=%.2f inflight=%d\n",
		sm.t.Seconds(), sm.rssMB, sm.goroutines, rps, sm.errs, sm.p99ms, sm.inflight)
}

func (s *soak) sampleError(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sampErr = append(s.sampErr, err.Error())
}

// goroutines reads go_goroutines from callrelay's /metrics.
func (s *soak) goroutines() (float64, error) {
	resp, err := s.client.Get(s.c.metricsURL)
	if err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("metrics: %s answered %d", s.c.metricsURL, resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			g, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("metrics: go_goroutines %q: %w", v, err)
			}
			return g, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("metrics: %w", err)
	}
	return 0, fmt.Errorf("metrics: no go_goroutines in %s", s.c.metricsURL)
}

// readRSS returns VmRSS of pid in kB.
func readRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("rss of pid %d (has callrelay exited?): %w", pid, err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("rss of pid %d: VmRSS %q: %w", pid, v, err)
			}
			return kb, nil
		}
	}
	return 0, fmt.Errorf("rss of pid %d: no VmRSS in /proc/%d/status", pid, pid)
}

// percentile is the p-th percentile (nearest rank) of v; NaN when v is empty. v is not changed.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	k := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(k, 0), len(s)-1)]
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// report prints the results and the verdict.
func (s *soak) report(ctx context.Context, elapsed time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.c
	pass := true
	var why []string

	fmt.Printf("\nsoak results: %d calls in %s (%.0f requests/s asked)\n", s.calls.Load(), elapsed.Round(time.Second), c.rate)
	fmt.Printf("%-22s %8s %8s %8s %8s %9s %9s %9s\n", "route", "sent", "ok", "errors", "req/s", "p50 ms", "p99 ms", "max ms")
	var total int
	for _, r := range routes {
		st := s.routes[r]
		total += st.sent
		rps := float64(st.sent) / elapsed.Seconds()
		fmt.Printf("%-22s %8d %8d %8d %8.1f %9.2f %9.2f %9.2f\n", r, st.sent, st.ok, st.failed, rps,
			percentile(st.lat, 50), percentile(st.lat, 99), slices.Max(append([]float64{0}, st.lat...)))
		fmt.Printf("SOAK route=%s sent=%d ok=%d errors=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", r, st.sent, st.ok,
			st.failed, rps, percentile(st.lat, 50), percentile(st.lat, 99), slices.Max(append([]float64{0}, st.lat...)))
		if st.failed > 0 {
			pass = false
			why = append(why, fmt.Sprintf("%s: %d of %d requests failed", r, st.failed, st.sent))
			for f, n := range st.failures {
				fmt.Printf("  %s: %d × %s\n", r, n, f)
			}
		}
	}
	fmt.Printf("%-22s %8d %8s %8s %8.1f\n", "all", total, "", "", float64(total)/elapsed.Seconds())
	if ctx.Err() != nil {
		pass = false
		why = append(why, "interrupted")
	}
	if len(s.sampErr) > 0 {
		pass = false
		why = append(why, fmt.Sprintf("%d samples failed, first: %s", len(s.sampErr), s.sampErr[0]))
	}

	// first, last, max and the growth rule over the samples taken while calls started.
	var rss, gor []float64
	var in []sample
	for _, sm := range s.samples {
		if sm.t <= c.duration+time.Second/2 {
			in = append(in, sm)
		}
		rss, gor = append(rss, sm.rssMB), append(gor, sm.goroutines)
	}
	if len(rss) > 0 {
		fmt.Printf("\nRSS MB:     first %.1f, last %.1f, max %.1f\n", rss[0], rss[len(rss)-1], slices.Max(rss))
		fmt.Printf("goroutines: first %.0f, last %.0f, max %.0f\n", gor[0], gor[len(gor)-1], slices.Max(gor))
	}
	window := min(time.Minute, c.duration/3)
	var base, final []sample
	for _, sm := range in {
		if sm.t > window && sm.t <= 2*window {
			base = append(base, sm)
		}
		if sm.t > c.duration-window {
			final = append(final, sm)
		}
	}
	fmt.Printf("growth rule: window %s; baseline = samples in (%s, %s], final = samples in (%s, %s]; "+
		"grown when mean(final) > mean(baseline) × %.2f + slack\n",
		window, window, 2*window, c.duration-window, c.duration, 1+c.maxGrowth/100)
	if len(base) == 0 || len(final) == 0 {
		pass = false
		why = append(why, fmt.Sprintf("too few samples for the growth rule (duration %s, sample %s): run longer or sample more often", c.duration, c.sample))
	} else {
		for _, m := range []struct {
			name  string
			get   func(sample) float64
			slack float64
		}{
			{"rss_mb", func(sm sample) float64 { return sm.rssMB }, c.rssSlackMB},
			{"goroutines", func(sm sample) float64 { return sm.goroutines }, c.goroutineSlk},
		} {
			var b, f []float64
			for _, sm := range base {
				b = append(b, m.get(sm))
			}
			for _, sm := range final {
				f = append(f, m.get(sm))
			}
			mb, mf := mean(b), mean(f)
			limit := mb*(1+c.maxGrowth/100) + m.slack
			verdict := "ok"
			if !(mf <= limit) { // NaN fails too
				verdict = "GREW"
				pass = false
				why = append(why, fmt.Sprintf("%s grew: final mean %.1f > limit %.1f (baseline mean %.1f)", m.name, mf, limit, mb))
			}
			fmt.Printf("  %-10s baseline mean %8.1f  final mean %8.1f  limit %8.1f  change %+6.1f%%  %s\n",
				m.name, mb, mf, limit, 100*(mf-mb)/mb, verdict)
			fmt.Printf("SOAK_GROWTH metric=%s baseline=%.1f final=%.1f limit=%.1f verdict=%s\n", m.name, mb, mf, limit, verdict)
		}
	}
	if pass {
		fmt.Println("SOAK_VERDICT PASS every request answered as expected; memory and goroutines did not grow")
		return true, nil
	}
	for _, w := range why {
		fmt.Println("FAIL", w)
	}
	fmt.Println("SOAK_VERDICT FAIL")
	return false, nil
}
