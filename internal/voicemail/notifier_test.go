package voicemail_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/postgres"
	"github.com/callrelay/callrelay/internal/postgres/pgtest"
	"github.com/callrelay/callrelay/internal/recording"
	"github.com/callrelay/callrelay/internal/voicemail"
)

const (
	accountSID = "AC00000000000000000000000000000001"
	authToken  = "authtoken"
	publicURL  = "https://callrelay.example.com"
	masked     = "+15551230000"
	caller     = "+15559870000"
	owner      = "dana@example.com"
	routing    = `{"owner_email":"dana@example.com","targets":[{"type":"phone","to":"+15550001111"}]}`
	recSid     = "RE00000000000000000000000000000001"
)

var testAudio = append([]byte("ID3\x04\x00"), bytes.Repeat([]byte{0xff, 0xfb, 0x90, 0x44}, 256)...)

// harness is a notifier working its queue on a fresh database, with a Twilio media stand-in
// (serve answers the requests that pass basic auth) and the given SMTP server.
type harness struct {
	db       *postgres.DB
	queue    *river.Client[pgx.Tx]
	events   <-chan *river.Event
	mediaURL string
	media    atomic.Int32 // authenticated media requests
}

// newHarness starts the queue. now is the store's clock (nil: clocktest.Now); it is set before any
// worker runs.
func newHarness(t *testing.T, smtpURL string, now func() time.Time, serve http.HandlerFunc) *harness {
	t.Helper()
	return newHarnessWith(t, smtpURL, now, serve, harnessConfig{})
}

// harnessConfig tunes a harness; zero values keep the defaults.
type harnessConfig struct {
	smtpTimeout  time.Duration // bounds each SMTP send (5 s when zero)
	audioTimeout time.Duration // bounds the recording's download (the notifier's default when zero)
}

func newHarnessWith(t *testing.T, smtpURL string, now func() time.Time, serve http.HandlerFunc, cfg harnessConfig) *harness {
	t.Helper()
	if cfg.smtpTimeout == 0 {
		cfg.smtpTimeout = 5 * time.Second
	}
	ctx := context.Background()
	h := &harness{db: postgres.New(pgtest.NewPool(t))}
	// The notifier and the queue run on the test clock; the store on now when given (a
	// store clock behind the queue's makes voicemails that are already old).
	h.db.Now = clocktest.Now
	if now != nil {
		h.db.Now = now
	}
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != accountSID || p != authToken {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"code":20003,"message":"Authenticate","status":401}`)
			return
		}
		h.media.Add(1)
		serve(w, r)
	}))
	t.Cleanup(media.Close)
	h.mediaURL = media.URL

	apiURL, _ := url.Parse(media.URL)
	pub, _ := url.Parse(publicURL)
	sender, err := mail.New(smtpURL, "", cfg.smtpTimeout)
	if err != nil {
		t.Fatal(err)
	}
	n := voicemail.NewNotifier(h.db, sender, recording.NewFetcher(apiURL, accountSID, authToken, nil),
		recording.NewLinks(pub, []string{"linksecret"}, recording.DefaultTTL, clocktest.Now),
		"Callrelay <callrelay@example.com>", clocktest.Now, slog.New(slog.DiscardHandler))
	n.AudioTimeout = cfg.audioTimeout
	h.queue, err = voicemail.NewQueue(h.db.Pool(), n, voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: clocktest.Now})
	if err != nil {
		t.Fatal(err)
	}
	h.db.Jobs = h.queue
	events, cancel := h.queue.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled, river.EventKindJobSnoozed)
	t.Cleanup(cancel)
	h.events = events
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

	if _, _, err := h.db.PutNumber(ctx, masked, mustRouting(t, routing)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA1", Number: masked, From: caller}); err != nil {
		t.Fatal(err)
	}
	return h
}

func mustRouting(t *testing.T, js string) callrelay.Routing {
	t.Helper()
	r, err := callrelay.DecodeRouting(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// record completes a 2-second recording: no transcript will come, so its email is due now.
func (h *harness) record(t *testing.T) *callrelay.Voicemail {
	t.Helper()
	vm, err := h.db.RecordRecording(context.Background(), callrelay.Recording{
		CallSid: "CA1", RecordingSid: recSid, Status: "completed", DurationSeconds: 2,
		RecordingURL: h.mediaURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid,
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

// await returns the next job event, failing when there is none within timeout or it is not of
// kind want.
func (h *harness) await(t *testing.T, want river.EventKind) *river.Event {
	t.Helper()
	select {
	case ev := <-h.events:
		if ev.Kind != want {
			t.Fatalf("job event %s (job state %s, errors %v), want %s", ev.Kind, ev.Job.State, ev.Job.Errors, want)
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatalf("no job event within 15s, want %s", want)
		return nil
	}
}

func (h *harness) voicemail(t *testing.T, id int64) *callrelay.Voicemail {
	t.Helper()
	vm, err := h.db.GetVoicemail(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return vm
}

func (h *harness) job(t *testing.T, id int64) *rivertype.JobRow {
	t.Helper()
	j, err := h.queue.JobGet(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func serveAudio(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "audio/mpeg")
	_, _ = w.Write(testAudio)
}

func TestNotifier_OK(t *testing.T) {
	t.Parallel()
	smtpSrv := mailtest.Start(t)
	h := newHarness(t, smtpSrv.URL(), nil, serveAudio)
	vm := h.record(t)

	msg := smtpSrv.Next(15 * time.Second)
	ev := h.await(t, river.EventKindJobCompleted)
	if len(msg.To) != 1 || msg.To[0] != owner {
		t.Errorf("RCPT TO %v, want %s", msg.To, owner)
	}
	e := mailtest.Parse(t, msg.Data)
	file := fmt.Sprintf("voicemail-%d.mp3", vm.ID)
	if got := e.Attachments[file]; !bytes.Equal(got, testAudio) || e.ContentType[file] != "audio/mpeg" {
		t.Errorf("attachment %s = %d bytes (%s), want the recording's %d bytes", file, len(got), e.ContentType[file], len(testAudio))
	}
	if want := fmt.Sprintf("<voicemail-%d.%s@example.com>", vm.ID, recSid); e.Header.Get("Message-Id") != want {
		t.Errorf("Message-ID = %q, want %q", e.Header.Get("Message-Id"), want)
	}
	for _, want := range []string{"The recording is attached.", "too short to transcribe", fmt.Sprintf("%s/voicemails/%d/audio?expires=", publicURL, vm.ID)} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, e.Text)
		}
	}
	got := h.voicemail(t, vm.ID)
	if got.Notification.Status != callrelay.NotifySent || got.Notification.Attempts != 1 || got.Notification.SentAt == nil {
		t.Errorf("notification = %+v, want sent after 1 attempt", got.Notification)
	}
	if ev.Job.Attempt != 1 {
		t.Errorf("job attempt = %d, want 1", ev.Job.Attempt)
	}
}

// A voicemail that could not be delivered for a day is given up: failed, the job cancelled,
// no retry. A younger one is retried. Not parallel: while its SMTP is down, no other test of
// this package may bind the address mailtest reserved for it.
func TestNotifier_GivesUpAfterADay(t *testing.T) {
	for _, tc := range []struct {
		name       string
		age        time.Duration
		wantEvent  river.EventKind
		wantState  rivertype.JobState
		wantNotify string
	}{
		{"older", voicemail.GiveUpAfter + time.Hour, river.EventKindJobCancelled, rivertype.JobStateCancelled, callrelay.NotifyFailed},
		{"younger", voicemail.GiveUpAfter - time.Hour, river.EventKindJobFailed, rivertype.JobStateRetryable, callrelay.NotifyPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			smtpSrv := mailtest.StartDown(t)
			h := newHarness(t, smtpSrv.URL(), func() time.Time { return clocktest.Now().Add(-tc.age) }, serveAudio)
			vm := h.record(t)
			ev := h.await(t, tc.wantEvent)

			got := h.voicemail(t, vm.ID)
			addr := strings.TrimPrefix(smtpSrv.URL(), "smtp://")
			if got.Notification.Status != tc.wantNotify || got.Notification.Attempts != 1 ||
				!strings.Contains(deref(got.Notification.LastError), addr) {
				t.Errorf("notification = %+v (last error %s), want %s after 1 attempt with the SMTP error",
					got.Notification, deref(got.Notification.LastError), tc.wantNotify)
			}
			job := h.job(t, ev.Job.ID)
			if job.State != tc.wantState {
				t.Errorf("job state = %s, want %s", job.State, tc.wantState)
			}
			if tc.wantState == rivertype.JobStateCancelled {
				if job.FinalizedAt == nil {
					t.Errorf("cancelled job not finalized: %+v", job)
				}
			} else if wait := job.ScheduledAt.Sub(clocktest.Now()); wait < 20*time.Second || wait > 40*time.Second {
				t.Errorf("retry in %v, want about 30 s", wait)
			}
			if len(smtpSrv.Received()) != 0 {
				t.Errorf("emails = %d, want 0", len(smtpSrv.Received()))
			}
		})
	}
}

// rejectingSMTP is an SMTP server that refuses every recipient with 550.
type rejectingSMTP struct {
	addr  string
	rcpts atomic.Int32
	data  atomic.Int32
}

func startRejectingSMTP(t *testing.T) *rejectingSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &rejectingSMTP{addr: ln.Addr().String()}
	srv := smtp.NewServer(r)
	srv.Domain = "reject.test"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return r
}

func (r *rejectingSMTP) NewSession(*smtp.Conn) (smtp.Session, error) { return rejectSession{r}, nil }

type rejectSession struct{ r *rejectingSMTP }

func (s rejectSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s rejectSession) Rcpt(string, *smtp.RcptOptions) error {
	s.r.rcpts.Add(1)
	return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
}
func (s rejectSession) Data(r io.Reader) error {
	s.r.data.Add(1)
	_, err := io.Copy(io.Discard, r)
	return err
}
func (s rejectSession) Reset()        {}
func (s rejectSession) Logout() error { return nil }

func TestNotifier_PermanentSMTPError(t *testing.T) {
	t.Parallel()
	srv := startRejectingSMTP(t)
	h := newHarness(t, "smtp://"+srv.addr, nil, serveAudio)
	vm := h.record(t)
	ev := h.await(t, river.EventKindJobCancelled)

	got := h.voicemail(t, vm.ID)
	if got.Notification.Status != callrelay.NotifyFailed || got.Notification.Attempts != 1 ||
		!strings.Contains(deref(got.Notification.LastError), "no such user") {
		t.Errorf("notification = %+v (last error %s), want failed at once with the 550", got.Notification, deref(got.Notification.LastError))
	}
	if job := h.job(t, ev.Job.ID); job.State != rivertype.JobStateCancelled || job.Attempt != 1 {
		t.Errorf("job state %s after %d attempts, want cancelled after 1", job.State, job.Attempt)
	}
	if n, d := srv.rcpts.Load(), srv.data.Load(); n != 1 || d != 0 {
		t.Errorf("RCPT TO %d times, DATA %d times; want 1, 0", n, d)
	}
}

// assertLinkOnly checks an email delivered without the audio: the link and a note instead.
func assertLinkOnly(t *testing.T, h *harness, smtpSrv *mailtest.Server, vm *callrelay.Voicemail, note string) {
	t.Helper()
	e := mailtest.Parse(t, smtpSrv.Next(15*time.Second).Data)
	h.await(t, river.EventKindJobCompleted)
	if len(e.Attachments) != 0 {
		t.Errorf("attachments = %d, want none", len(e.Attachments))
	}
	link := fmt.Sprintf("%s/voicemails/%d/audio?expires=", publicURL, vm.ID)
	for part, body := range map[string]string{"text": e.Text, "html": e.HTML} {
		if !strings.Contains(body, note) || !strings.Contains(body, link) {
			t.Errorf("%s part lacks the note %q or the link %s:\n%s", part, note, link, body)
		}
		if strings.Contains(body, "The recording is attached.") {
			t.Errorf("%s part says the recording is attached:\n%s", part, body)
		}
	}
	got := h.voicemail(t, vm.ID)
	if got.Notification.Status != callrelay.NotifySent || got.Notification.Attempts != 1 {
		t.Errorf("notification = %+v, want sent after 1 attempt", got.Notification)
	}
	if h.media.Load() == 0 {
		t.Error("the recording was not asked for")
	}
}

func TestNotifier_AudioTooLarge(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0xff}, voicemail.MaxAttachment+1)
	for _, tc := range []struct {
		name  string
		serve http.HandlerFunc
	}{
		{"Content-Length", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "audio/mpeg")
			w.Header().Set("Content-Length", strconv.Itoa(len(big)))
			_, _ = w.Write(big)
		}},
		{"streamed", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "audio/mpeg")
			for chunk := range chunks(big, 1<<20) {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush() // chunked: no Content-Length to go by
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			smtpSrv := mailtest.Start(t)
			h := newHarness(t, smtpSrv.URL(), nil, tc.serve)
			vm := h.record(t)
			assertLinkOnly(t, h, smtpSrv, vm, "too large to attach")
		})
	}
}

func TestNotifier_AudioUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"500", http.StatusInternalServerError},
		{"404", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			smtpSrv := mailtest.Start(t)
			h := newHarness(t, smtpSrv.URL(), nil, func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				fmt.Fprintf(w, `{"code":20500,"message":"Internal Server Error","status":%d}`, tc.status)
			})
			vm := h.record(t)
			assertLinkOnly(t, h, smtpSrv, vm, "could not be attached")
		})
	}
}

// chunks yields b in pieces of at most n bytes.
func chunks(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func TestNextRetry(t *testing.T) {
	t.Parallel()
	t0 := clocktest.Start()
	n := voicemail.NewNotifier(nil, nil, nil, nil, "", clocktest.Fixed(t0), nil)
	for _, tc := range []struct {
		attempt int
		want    time.Duration
	}{
		{1, 30 * time.Second},
		{2, time.Minute},
		{3, 2 * time.Minute},
		{6, 16 * time.Minute},
		{7, 30 * time.Minute}, // 32 min, capped
		{20, 30 * time.Minute},
		{200, 30 * time.Minute},
	} {
		job := &river.Job[callrelay.NotifyVoicemail]{JobRow: &rivertype.JobRow{Attempt: tc.attempt}}
		if got := n.NextRetry(job); !got.Equal(t0.Add(tc.want)) {
			t.Errorf("attempt %d: NextRetry in %v, want %v", tc.attempt, got.Sub(t0), tc.want)
		}
	}
}

// A send claimed by another attempt (a replica, or a worker that died mid-send) is neither sent
// twice nor given up: the job looks again once the claim's lease has run out.
func TestNotifier_ClaimHeldElsewhere(t *testing.T) {
	t.Parallel()
	smtpSrv := mailtest.Start(t)
	h := newHarness(t, smtpSrv.URL(), nil, serveAudio)
	ctx := context.Background()
	// 30 s: a transcript is expected, so the job waits an hour and does not run by itself.
	vm, err := h.db.RecordRecording(ctx, callrelay.Recording{
		CallSid: "CA1", RecordingSid: recSid, Status: "completed", DurationSeconds: 30,
		RecordingURL: h.mediaURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid,
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.ClaimNotification(ctx, vm.ID, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	var jobID int64
	if err := h.db.Pool().QueryRow(ctx, `SELECT id FROM river_job WHERE kind = 'notify_voicemail'`).Scan(&jobID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.queue.JobRetry(ctx, jobID); err != nil {
		t.Fatal(err)
	}
	ev := h.await(t, river.EventKindJobSnoozed)
	if ev.Job.ScheduledAt.Before(clocktest.Now().Add(4 * time.Minute)) {
		t.Errorf("snoozed until %v, want about the 5-minute lease", ev.Job.ScheduledAt)
	}
	if got := h.voicemail(t, vm.ID).Notification; got.Status != callrelay.NotifySending || got.Attempts != 1 {
		t.Errorf("notification = %+v, want still sending, 1 attempt", got)
	}
	if n := len(smtpSrv.Received()); n != 0 {
		t.Errorf("emails = %d, want none while another attempt holds the claim", n)
	}
}
