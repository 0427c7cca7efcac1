package voicemail_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
	"github.com/callrelay/callrelay/internal/voicemail"
)

// missedEntries returns the call's missed-call-email timeline outcomes.
func missedEntries(t *testing.T, h *harness) []string {
	t.Helper()
	c, err := h.db.GetCall(context.Background(), "CA1")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range c.Events {
		if e.Type == "missed-call-email" {
			out = append(out, e.Outcome)
		}
	}
	return out
}

// TestMissedCalls_ExactlyOnce: an SMTP outage, a duplicate job and a second replica still give
// the owner exactly one missed-call email. Not parallel: while its SMTP is down, no other test
// of this package may bind the address mailtest reserved for it.
func TestMissedCalls_ExactlyOnce(t *testing.T) {
	ctx := context.Background()
	smtpSrv := mailtest.StartDown(t)
	h := newHarnessWith(t, smtpSrv.URL(), nil, serveAudio, harnessConfig{missedDelay: time.Millisecond}) // due at once

	// The caller hung up while it rang; the check runs while SMTP is down.
	if _, err := h.db.RecordCallStatus(ctx, "CA1", "canceled", clocktest.Now()); err != nil {
		t.Fatal(err)
	}
	ev := h.await(t, river.EventKindJobFailed)
	if ev.Job.Kind != "check_call" {
		t.Fatalf("job %s failed, want check_call", ev.Job.Kind)
	}
	mc, err := h.db.GetMissedCall(ctx, "CA1")
	if err != nil || mc == nil || mc.Email.Status != callrelay.NotifyPending || mc.Email.Attempts != 1 {
		t.Fatalf("missed call %+v, %v; want pending after one attempt", mc, err)
	}

	// SMTP is back. A duplicate job and a second replica (its own queue on the same
	// database) race the retry.
	smtpSrv.Up()
	sender, err := mail.New(smtpSrv.URL(), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	replica, err := voicemail.NewQueue(h.db.Pool(), voicemail.NewNotifier(h.db, sender, nil, nil, "Callrelay <callrelay@example.com>",
		clocktest.Now, slog.New(slog.DiscardHandler)), voicemail.QueueOptions{FetchPollInterval: 100 * time.Millisecond, Now: clocktest.Now})
	if err != nil {
		t.Fatal(err)
	}
	replicaEvents, cancel := replica.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobSnoozed)
	t.Cleanup(cancel)
	if err := replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = replica.Stop(sctx)
	})
	if _, err := h.queue.Insert(ctx, callrelay.CheckCall{CallSid: "CA1"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.queue.JobRetry(ctx, ev.Job.ID); err != nil {
		t.Fatal(err)
	}
	for done := 0; done < 2; {
		select {
		case e := <-h.events:
			if e.Kind == river.EventKindJobFailed {
				t.Fatalf("job failed again: %v", e.Job.Errors)
			}
			done++
		case e := <-replicaEvents:
			if e.Kind == river.EventKindJobFailed {
				t.Fatalf("job failed on the replica: %v", e.Job.Errors)
			}
			done++
		case <-time.After(20 * time.Second):
			t.Fatal("the jobs did not finish")
		}
	}

	msgs := smtpSrv.Received()
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want exactly 1", len(msgs))
	}
	e := mailtest.Parse(t, msgs[0].Data)
	// The caller and the masked number as the owner reads them: the same country, so national.
	if got := e.Header.Get("Subject"); got != "Missed call from (555) 987-0000" {
		t.Errorf("Subject = %q", got)
	}
	if e.Header.Get("X-Callrelay-Missed-Call") != "CA1" || e.Header.Get("Message-Id") != "<missed-CA1@example.com>" ||
		e.Header.Get("Auto-Submitted") != "auto-generated" {
		t.Errorf("headers: %v", e.Header)
	}
	for _, want := range []string{"Missed call from (555) 987-0000", "Caller: (555) 987-0000", "To:     (555) 123-0000",
		"hung up while your phones rang", "No message was left."} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, e.Text)
		}
	}
	if got := strings.Join(missedEntries(t, h), " "); got != "queued retry sent" {
		t.Errorf("missed-call-email entries %q, want queued retry sent", got)
	}
}
