package voicemail_test

import (
	"context"
	"fmt"
	"mime"
	netmail "net/mail"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/clocktest"
	"github.com/callrelay/callrelay/internal/mail/mailtest"
)

// The email as a mail client sees it, through SMTP: the sender's display name, Auto-Submitted,
// the Date of sending (not of recording), times in the number's zone, the caller's name.
func TestNotifier_EmailAsReceived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	smtpSrv := mailtest.Start(t)
	h := newHarness(t, smtpSrv.URL(), nil, serveAudio)
	if _, _, err := h.db.PutNumber(ctx, masked, mustRouting(t, `{"owner_email":"dana@example.com","time_zone":"Asia/Tokyo","targets":[{"type":"phone","to":"+15550001111"}]}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.db.StartCall(ctx, callrelay.InboundCall{CallSid: "CA2", Number: masked, From: "+442079460000", CallerName: "JOHN SMITH"}); err != nil {
		t.Fatal(err)
	}
	recorded := clocktest.Start().Add(-2 * time.Hour)
	vm, err := h.db.RecordRecording(ctx, callrelay.Recording{
		CallSid: "CA2", RecordingSid: "RE00000000000000000000000000000002", Status: "completed", DurationSeconds: 2,
		RecordingURL: h.mediaURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/RE00000000000000000000000000000002",
		StartedAt:    &recorded,
	}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	before := clocktest.Now()
	msg := smtpSrv.Next(15 * time.Second)
	h.await(t, river.EventKindJobCompleted)
	e := mailtest.Parse(t, msg.Data)
	e.Text = strings.ReplaceAll(e.Text, "\r\n", "\n")

	from, err := netmail.ParseAddress(e.Header.Get("From"))
	if err != nil || from.Name != "Callrelay" || from.Address != "callrelay@example.com" {
		t.Errorf("From = %q (%v), want Callrelay <callrelay@example.com>", e.Header.Get("From"), err)
	}
	if got := e.Header.Get("Auto-Submitted"); got != "auto-generated" {
		t.Errorf("Auto-Submitted = %q, want auto-generated", got)
	}
	date, err := e.Header.Date()
	if err != nil {
		t.Fatal(err)
	}
	// Sent now (the notifier's clock), whole seconds; not two hours ago when it was recorded.
	if date.Before(before.Add(-5*time.Second).Truncate(time.Second)) || date.After(clocktest.Now()) {
		t.Errorf("Date = %v, want the time of sending (about %v), not the recording's %v", date, before, recorded)
	}
	if _, off := date.Zone(); off != 9*3600 {
		t.Errorf("Date zone offset = %d s, want Tokyo's", off)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	when := recorded.In(tokyo).Format("Mon, 2 Jan 2006 15:04 MST")
	subject, err := new(mime.WordDecoder).DecodeHeader(e.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Voicemail from JOHN SMITH, +44 20 7946 0000 (0:02)"; subject != want {
		t.Errorf("Subject = %q, want %q", subject, want)
	}
	for _, want := range []string{"When:     " + when + "\n", "From:     JOHN SMITH, +44 20 7946 0000\n", "To:       (555) 123-0000\n"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("text part lacks %q:\n%s", want, e.Text)
		}
	}
	if !strings.Contains(e.HTML, "<strong>JOHN SMITH</strong>") || !strings.Contains(e.HTML, when) {
		t.Errorf("HTML part lacks the caller's name or the local time %q:\n%s", when, e.HTML)
	}
	if got := h.voicemail(t, vm.ID); got.Notification.Status != callrelay.NotifySent {
		t.Errorf("notification %s, want sent", got.Notification.Status)
	}
}

// A transcript that arrives after the voicemail email went is emailed once, as a reply in the
// same thread; a repeated transcription callback sends nothing more.
func TestNotifier_LateTranscriptFollowUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	smtpSrv := mailtest.Start(t)
	h := newHarness(t, smtpSrv.URL(), nil, serveAudio)
	// 30 s in en-US: a transcript is expected; a wait of zero sends the email at once.
	vm, err := h.db.RecordRecording(ctx, callrelay.Recording{
		CallSid: "CA1", RecordingSid: recSid, Status: "completed", DurationSeconds: 30,
		RecordingURL: h.mediaURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	first := mailtest.Parse(t, smtpSrv.Next(15*time.Second).Data)
	h.await(t, river.EventKindJobCompleted)
	if !strings.Contains(first.Text, "No transcript: "+callrelay.TranscriptReason(callrelay.TranscriptPending)) {
		t.Fatalf("first email is not the one without a transcript:\n%s", first.Text)
	}

	late := callrelay.Transcription{CallSid: "CA1", RecordingSid: recSid, TranscriptionSid: "TR1", Status: "completed", Text: "Please call me back about <the invoice>."}
	if err := h.db.RecordTranscription(ctx, late); err != nil {
		t.Fatal(err)
	}
	second := mailtest.Parse(t, smtpSrv.Next(15*time.Second).Data)
	ev := h.await(t, river.EventKindJobCompleted)
	if ev.Job.Kind != (callrelay.NotifyTranscript{}).Kind() {
		t.Errorf("completed job %s, want the follow-up", ev.Job.Kind)
	}
	firstID := first.Header.Get("Message-Id")
	if second.Header.Get("In-Reply-To") != firstID || second.Header.Get("References") != firstID {
		t.Errorf("follow-up In-Reply-To %q References %q, want %q", second.Header.Get("In-Reply-To"), second.Header.Get("References"), firstID)
	}
	if want := fmt.Sprintf("<voicemail-%d.%s.transcript@example.com>", vm.ID, recSid); second.Header.Get("Message-Id") != want {
		t.Errorf("follow-up Message-ID %q, want %q", second.Header.Get("Message-Id"), want)
	}
	if second.Header.Get("Subject") != "Re: "+first.Header.Get("Subject") {
		t.Errorf("follow-up Subject %q, want Re: %q", second.Header.Get("Subject"), first.Header.Get("Subject"))
	}
	if !strings.Contains(second.Text, `"Please call me back about <the invoice>."`) || !strings.Contains(second.HTML, "Please call me back about &lt;the invoice&gt;.") {
		t.Errorf("follow-up lacks the transcript:\n%s", second.Text)
	}
	if got := h.voicemail(t, vm.ID); got.FollowUp != callrelay.NotifySent {
		t.Errorf("follow-up = %q, want sent", got.FollowUp)
	}

	// Twilio repeats the callback: no job is asked for again (the one job is done), so
	// nothing more can be sent.
	if err := h.db.RecordTranscription(ctx, late); err != nil {
		t.Fatal(err)
	}
	var jobs int
	if err := h.db.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = 'notify_transcript' AND state <> 'completed'`).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if jobs != 0 {
		t.Errorf("follow-up jobs still to run after a repeated callback = %d, want 0", jobs)
	}
	if n := len(smtpSrv.Received()); n != 2 {
		t.Errorf("emails sent = %d, want 2", n)
	}
}

// A follow-up whose SMTP server is down is retried, and sent once when it is back. Not
// parallel: while its SMTP is down, no other test of this package may bind its address.
func TestNotifier_LateTranscriptFollowUp_SMTPDown(t *testing.T) {
	ctx := context.Background()
	smtpSrv := mailtest.Start(t)
	h := newHarness(t, smtpSrv.URL(), nil, serveAudio)
	vm, err := h.db.RecordRecording(ctx, callrelay.Recording{
		CallSid: "CA1", RecordingSid: recSid, Status: "completed", DurationSeconds: 30,
		RecordingURL: h.mediaURL + "/2010-04-01/Accounts/" + accountSID + "/Recordings/" + recSid,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	smtpSrv.Next(15 * time.Second)
	h.await(t, river.EventKindJobCompleted)

	smtpSrv.Stop()
	if err := h.db.RecordTranscription(ctx, callrelay.Transcription{CallSid: "CA1", RecordingSid: recSid, TranscriptionSid: "TR1", Status: "completed", Text: "Call me."}); err != nil {
		t.Fatal(err)
	}
	failed := h.await(t, river.EventKindJobFailed)
	if got := h.voicemail(t, vm.ID); got.FollowUp != callrelay.NotifyPending {
		t.Errorf("follow-up after a failed attempt = %q, want pending", got.FollowUp)
	}
	smtpSrv.Up()
	if _, err := h.queue.JobRetry(ctx, failed.Job.ID); err != nil { // due now rather than in 30 s
		t.Fatal(err)
	}
	e := mailtest.Parse(t, smtpSrv.Next(15*time.Second).Data)
	h.await(t, river.EventKindJobCompleted)
	if e.Header.Get("In-Reply-To") == "" || !strings.Contains(e.Text, `"Call me."`) {
		t.Errorf("the email after the outage is not the follow-up:\n%s", e.Text)
	}
	if got := h.voicemail(t, vm.ID); got.FollowUp != callrelay.NotifySent {
		t.Errorf("follow-up = %q, want sent", got.FollowUp)
	}
	if n := len(smtpSrv.Received()); n != 2 {
		t.Errorf("emails received = %d, want 2: the voicemail and one follow-up", n)
	}
}
