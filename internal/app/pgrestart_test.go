package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/callrelay/callrelay/internal/app"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
)

// pgCall is one whole call of the restart test's load, as Twilio would send it: the incoming
// call, its forwarded leg ringing and not answered, the Dial's end, the voicemail, and its
// recording and transcript.
func pgCall(t *testing.T, base string, n int64, outage func() bool, check func(path string, status int, body []byte, during bool)) bool {
	callSid, legSid, recSid := sid("CA", n), sid("CA", n+1<<40), sid("RE", n)
	steps := []struct {
		path string
		form url.Values
	}{
		{"/twilio/voice", voiceForm(callSid, restartNumber)},
		{"/twilio/call-status?target=0", url.Values{"CallSid": {legSid}, "ParentCallSid": {callSid}, "CallStatus": {"ringing"},
			"SequenceNumber": {"1"}, "To": {"+15550001111"}}},
		{"/twilio/call-status?target=0", url.Values{"CallSid": {legSid}, "ParentCallSid": {callSid}, "CallStatus": {"no-answer"},
			"SequenceNumber": {"2"}, "To": {"+15550001111"}}},
		{"/twilio/dial-outcome?attempt=0", url.Values{"CallSid": {callSid}, "To": {restartNumber}, "From": {"+15559870000"},
			"CallStatus": {"in-progress"}, "DialCallStatus": {"no-answer"}}},
		{"/twilio/voicemail", url.Values{"CallSid": {callSid}, "To": {restartNumber}, "From": {"+15559870000"}}},
		{"/twilio/recording-status", url.Values{"CallSid": {callSid}, "RecordingSid": {recSid}, "RecordingStatus": {"completed"},
			"RecordingUrl":      {"https://api.twilio.com/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid},
			"RecordingDuration": {"12"}}},
		{"/twilio/transcription", url.Values{"CallSid": {callSid}, "RecordingSid": {recSid}, "TranscriptionSid": {sid("TR", n)},
			"TranscriptionStatus": {"completed"}, "TranscriptionText": {"message " + callSid}}},
	}
	for _, s := range steps {
		during := outage()
		resp, body, err := signedPost(context.Background(), http.DefaultClient, base, s.path, s.form, nil)
		if err != nil {
			t.Errorf("call %d: POST %s: %v", n, s.path, err)
			return false
		}
		check(s.path, resp.StatusCode, body, during || outage())
	}
	return true
}

const restartNumber = "+15551230077"

// TestPostgresRestart_UnderLoad stops the database under a steady stream of calls, keeps it
// down until callbacks have piled up in the spool, and starts it again. Throughout, every
// webhook is answered without a 5xx, and every voice webhook with forwarding TwiML (from the
// routing cache while the database is down). Afterwards the spool drains by itself and every
// call is whole in the store: its row, its leg's outcome, its voicemail with the transcript.
func TestPostgresRestart_UnderLoad(t *testing.T) {
	cluster := pgtest.StartCluster(t)
	dbURL := cluster.NewURL(t)
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	poolCfg.MaxConns = 8
	pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	srv := httptest.NewUnstartedServer(nil)
	publicURL, _ := url.Parse("http://" + srv.Listener.Addr().String())
	apiURL, _ := url.Parse("http://127.0.0.1:1") // no REST request in direct mode
	cfg := relayConfig(t, publicURL, apiURL, "")
	cfg.SpoolDir = t.TempDir()
	opts := relayOptions()
	opts.SpoolInterval = 50 * time.Millisecond
	logs := &logBuffer{}
	a, err := app.New(cfg, pool, slog.New(slog.NewTextHandler(logs, nil)), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.Handler
	srv.Start()
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
	})
	base := publicURL.String()
	putNumber(t, base, restartNumber, `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`)

	var (
		down                             atomic.Bool
		mu                               sync.Mutex
		problems                         []string
		answered, duringOutage, forwards atomic.Int64
	)
	check := func(path string, status int, body []byte, during bool) {
		answered.Add(1)
		if during {
			duringOutage.Add(1)
		}
		var problem string
		switch {
		case status >= 500:
			problem = fmt.Sprintf("%s answered %d %q", path, status, body)
		case path == "/twilio/voice":
			if problem = validTwiML(body); problem == "" {
				forwards.Add(1)
			}
		case strings.HasPrefix(path, "/twilio/call-status"), path == "/twilio/recording-status", path == "/twilio/transcription":
			if status != http.StatusNoContent {
				problem = fmt.Sprintf("%s answered %d %q, want 204", path, status, body)
			}
		case status != http.StatusOK:
			problem = fmt.Sprintf("%s answered %d %q, want TwiML", path, status, body)
		}
		if problem != "" {
			mu.Lock()
			problems = append(problems, problem)
			mu.Unlock()
		}
	}

	// Four callers, call after call, until told to stop.
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls sync.Map // CallSid → true, for the calls whose every step was answered
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				n := next.Add(1)
				if pgCall(t, base, n, down.Load, check) {
					calls.Store(sid("CA", n), true)
				}
			}
		})
	}
	spooled := func() int {
		names, _ := filepath.Glob(filepath.Join(cfg.SpoolDir, "*.json"))
		return len(names)
	}
	awaitCond := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for !cond() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: not within %s", what, timeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	awaitCond("20 calls before the restart", 30*time.Second, func() bool { return next.Load() > 20 })
	down.Store(true)
	cluster.Stop(t, pgtest.Fast)
	t0 := time.Now()
	// Down until callbacks of several calls wait in the spool.
	awaitCond("callbacks spooled during the outage", 30*time.Second, func() bool { return spooled() >= 200 })
	cluster.Start(t)
	outage := time.Since(t0)
	down.Store(false)
	after := next.Load()
	awaitCond("20 calls after the restart", 30*time.Second, func() bool { return next.Load() > after+20 })
	close(stop)
	wg.Wait()
	awaitCond("the spool drained", 30*time.Second, func() bool { return spooled() == 0 })

	for _, p := range problems {
		t.Error(p)
	}
	if duringOutage.Load() == 0 {
		t.Fatal("no webhook was sent while the database was down: the test proves nothing")
	}

	// Every call is whole in the store, those of the outage included.
	ctx := context.Background()
	var n, whole int
	var missing []string
	calls.Range(func(k, _ any) bool {
		n++
		callSid := k.(string)
		var legStatus, transcript string
		err := pool.QueryRow(ctx, `
			SELECT coalesce((SELECT status FROM legs WHERE parent_call_sid = c.call_sid LIMIT 1), ''),
			       coalesce((SELECT transcript FROM voicemails WHERE call_sid = c.call_sid), '')
			FROM calls c WHERE c.call_sid = $1`, callSid).Scan(&legStatus, &transcript)
		switch {
		case err != nil:
			missing = append(missing, fmt.Sprintf("%s: %v", callSid, err))
		case legStatus != "no-answer" || transcript != "message "+callSid:
			missing = append(missing, fmt.Sprintf("%s: leg %q, transcript %q", callSid, legStatus, transcript))
		default:
			whole++
		}
		return true
	})
	if len(missing) > 0 {
		t.Errorf("%d of %d calls are not whole in the store after the restart, e.g. %v", len(missing), n, missing[:min(5, len(missing))])
	}
	t.Logf("%d calls (%d webhooks, %d during a %s outage, %d voice answers forwarding); all whole: %d",
		n, answered.Load(), duringOutage.Load(), outage.Round(time.Millisecond), forwards.Load(), whole)
	if t.Failed() {
		t.Logf("callrelay's log (tail):\n%s", tail(logs.String(), 40))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
