package voicemail_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
)

// TestNotifier_SMTPUnavailable_OK: SMTP refusing connections, accepting them and saying
// nothing, or taking the message and never answering it. Each attempt ends within the SMTP
// timeout, the voicemail stays pending with the error and the job is retried with backoff;
// once SMTP is back, exactly one email arrives, and running the job again sends no second one.
func TestNotifier_SMTPUnavailable_OK(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name      string
		fault     func(*mailtest.Server)
		stalls    bool     // the server holds the client until the timeout
		wantError []string // in the voicemail's last error
	}{
		{"Refused", (*mailtest.Server).Stop, false, []string{"connect", "connection refused"}},
		{"Silent", func(s *mailtest.Server) { s.SetFault(mailtest.Silent) }, true, []string{"connect", "deadline exceeded"}},
		{"StallData", func(s *mailtest.Server) { s.SetFault(mailtest.StallData) }, true, []string{"DATA", "deadline exceeded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			smtpSrv := mailtest.Start(t)
			tc.fault(smtpSrv)
			h := newHarnessWith(t, smtpSrv.URL(), nil, serveAudio, harnessConfig{smtpTimeout: timeout})

			start := time.Now()
			vm := h.record(t) // due at once: a 2-second message has no transcript to wait for
			if tc.stalls {
				smtpSrv.Stalled(10 * time.Second)
			}
			failed := h.await(t, river.EventKindJobFailed)
			took := time.Since(start)
			t.Logf("attempt 1 failed after %v (SMTP timeout %v)", took.Round(time.Millisecond), timeout)
			if tc.stalls && took < timeout {
				t.Errorf("attempt failed after %v, before the %v timeout: the stall was not what failed it", took, timeout)
			}
			// Generous: the queue's poll (100 ms) and the database are in it too. A send that
			// waited for the server would take the job's 2 minutes.
			if limit := timeout + 3*time.Second; took > limit {
				t.Errorf("attempt failed after %v, want within %v", took, limit)
			}
			got := h.voicemail(t, vm.ID).Notification
			for _, want := range tc.wantError {
				if !strings.Contains(deref(got.LastError), want) {
					t.Errorf("last error %q, want one containing %q", deref(got.LastError), want)
				}
			}
			if got.Status != callrelay.NotifyPending || got.Attempts != 1 {
				t.Errorf("notification = %s after %d attempts, want %s after 1", got.Status, got.Attempts, callrelay.NotifyPending)
			}
			job := h.job(t, failed.Job.ID)
			if wait := job.ScheduledAt.Sub(clocktest.Now()); job.State != rivertype.JobStateRetryable || wait < 20*time.Second || wait > 40*time.Second {
				t.Errorf("job %s, retry in %v; want retryable in about 30 s", job.State, wait)
			}

			// SMTP comes back. Retry now rather than wait out the 30-second backoff.
			smtpSrv.Up()
			if _, err := h.queue.JobRetry(context.Background(), failed.Job.ID); err != nil {
				t.Fatalf("retry job: %v", err)
			}
			msg := smtpSrv.Next(15 * time.Second)
			h.await(t, river.EventKindJobCompleted)
			if len(msg.To) != 1 || msg.To[0] != owner {
				t.Errorf("RCPT TO %v, want %s", msg.To, owner)
			}
			if got := h.voicemail(t, vm.ID).Notification; got.Status != callrelay.NotifySent || got.Attempts != 2 {
				t.Errorf("notification = %s after %d attempts, want %s after 2", got.Status, got.Attempts, callrelay.NotifySent)
			}

			// The job run once more (a duplicate, another replica): nothing more is sent.
			if _, err := h.queue.JobRetry(context.Background(), failed.Job.ID); err != nil {
				t.Fatalf("retry job again: %v", err)
			}
			h.await(t, river.EventKindJobCompleted)
			if n := len(smtpSrv.Received()); n != 1 {
				t.Errorf("emails = %d, want exactly 1", n)
			}
		})
	}
}

// TestNotifier_RecordingStalled_OK: Twilio's media server, which the recording is attached
// from, answering nothing, or stalling in the middle of the file. The download is cut at the
// notifier's AudioTimeout and the email goes at once with the link alone, on the first
// attempt: a slow Twilio delays the email by the audio timeout, never holds it back.
func TestNotifier_RecordingStalled_OK(t *testing.T) {
	t.Parallel()
	const audioTimeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name  string
		serve http.HandlerFunc
	}{
		{"NoAnswer", func(_ http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // until the client gives up
		}},
		{"MidBody", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "audio/mpeg")
			w.Header().Set("Content-Length", "100000")
			_, _ = w.Write(testAudio)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			smtpSrv := mailtest.Start(t)
			h := newHarnessWith(t, smtpSrv.URL(), nil, tc.serve, harnessConfig{audioTimeout: audioTimeout})
			start := time.Now()
			vm := h.record(t)
			assertLinkOnly(t, h, smtpSrv, vm, "could not be attached")
			took := time.Since(start)
			t.Logf("email sent %v after the recording (audio timeout %v)", took.Round(time.Millisecond), audioTimeout)
			if limit := audioTimeout + 3*time.Second; took < audioTimeout || took > limit {
				t.Errorf("email sent after %v, want after the %v audio timeout and within %v", took, audioTimeout, limit)
			}
		})
	}
}
