package voicemail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/postgres"
)

// MissedCalls is the job worker that decides how an unanswered call ended and, when it was
// missed, emails the owner once.
type MissedCalls struct {
	river.WorkerDefaults[callrelay.CheckCall]

	db   *postgres.DB
	mail mail.Sender
	from string
	now  func() time.Time
	log  *slog.Logger
}

// NewMissedCalls returns the worker; its arguments are NewNotifier's.
func NewMissedCalls(db *postgres.DB, sender mail.Sender, from string, now func() time.Time, log *slog.Logger) *MissedCalls {
	return &MissedCalls{db: db, mail: sender, from: from, now: now, log: log}
}

// Register adds the worker to a queue's workers (NewQueue's extra).
func (m *MissedCalls) Register(w *river.Workers) error { return river.AddWorkerSafely(w, m) }

// Work decides the call (once: a repeat reads the first decision) and sends its email at most
// once: the claim in the database decides who sends, as for voicemail.
func (m *MissedCalls) Work(ctx context.Context, job *river.Job[callrelay.CheckCall]) error {
	sid := job.Args.CallSid
	log := m.log.With(slog.String("call_sid", sid), slog.Int("attempt", job.Attempt))
	mc, err := m.db.DecideOutcome(ctx, sid)
	switch {
	case callrelay.ErrorCode(err) == callrelay.ENOTFOUND:
		return river.JobCancel(err)
	case err != nil:
		return err
	case mc == nil || mc.Email.Status == callrelay.NotifyOff:
		return nil
	}
	mc, err = m.db.ClaimMissedEmail(ctx, sid, claimLease)
	switch callrelay.ErrorCode(err) {
	case "":
	case callrelay.ECONFLICT:
		if mc != nil && mc.Email.Status == callrelay.NotifySending {
			log.Info("missed-call email: claimed elsewhere; snoozing")
			return river.JobSnooze(claimLease)
		}
		log.Info("missed-call email: nothing to do", slog.String("reason", callrelay.ErrorMessage(err)))
		return nil
	default:
		return err
	}
	msg, err := composeMissed(mc, m.from, m.now())
	if err == nil {
		err = m.mail.Send(ctx, msg)
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if err == nil {
		if ferr := m.db.FinishMissedEmail(fctx, sid, nil, false); ferr != nil {
			return fmt.Errorf("mark missed-call email %s sent: %w", sid, ferr)
		}
		log.Info("missed-call email sent", slog.String("to", mc.OwnerEmail))
		return nil
	}
	final := mail.IsPermanent(err) || m.now().Sub(mc.EndedAt) > GiveUpAfter
	if ferr := m.db.FinishMissedEmail(fctx, sid, err, final); ferr != nil {
		return errors.Join(err, ferr)
	}
	if final {
		log.Error("missed-call email failed for good", slog.String("error", err.Error()))
		return river.JobCancel(err)
	}
	log.Warn("missed-call email failed; will retry", slog.String("error", err.Error()))
	return err
}

// NextRetry backs off as the voicemail email does.
func (m *MissedCalls) NextRetry(job *river.Job[callrelay.CheckCall]) time.Time {
	d := minBackoff << min(job.Attempt-1, 10)
	return m.now().Add(min(d, maxBackoff))
}

// Timeout bounds one attempt (the SMTP send is bounded on its own).
func (m *MissedCalls) Timeout(*river.Job[callrelay.CheckCall]) time.Duration { return jobTimeout }

// The missed-call email is deliberately plain; issue 17's redesign of the voicemail email
// restyles both.
type missedData struct {
	From, Number, When, Waited, Stage string
}

var missedText = texttemplate.Must(texttemplate.New("text").Parse(`Missed call for {{.Number}}

From:   {{.From}}
When:   {{.When}}
Waited: {{.Waited}}
The caller {{.Stage}}. No message was left.
`))

var missedHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>Missed call from {{.From}}</h2>
<table>
<tr><td>From</td><td><strong>{{.From}}</strong></td></tr>
<tr><td>To</td><td>{{.Number}}</td></tr>
<tr><td>When</td><td>{{.When}}</td></tr>
<tr><td>Waited</td><td>{{.Waited}}</td></tr>
</table>
<p>The caller {{.Stage}}. No message was left.</p>
</body></html>
`))

// composeMissed builds the one email of a missed call, dated when it is sent (issue 17: Date is
// the sending time; the Message-ID stays the same on every attempt).
func composeMissed(mc *callrelay.MissedCall, from string, sentAt time.Time) (mail.Message, error) {
	d := missedData{
		From:   mc.From,
		Number: mc.Number,
		When:   mc.StartedAt.UTC().Format("Mon, 2 Jan 2006 15:04:05 MST"),
		Waited: formatDuration(mc.WaitedSeconds),
		Stage:  callrelay.StageText(mc.Stage),
	}
	if strings.TrimSpace(d.From) == "" {
		d.From = "an unknown number"
	}
	var text, html bytes.Buffer
	if err := missedText.Execute(&text, d); err != nil {
		return mail.Message{}, fmt.Errorf("render text: %w", err)
	}
	if err := missedHTML.Execute(&html, d); err != nil {
		return mail.Message{}, fmt.Errorf("render html: %w", err)
	}
	domain := "callrelay"
	if _, dom, ok := strings.Cut(from, "@"); ok && dom != "" {
		domain = strings.Trim(dom, "<> ")
	}
	return mail.Message{
		From:      from,
		To:        mc.OwnerEmail,
		Subject:   fmt.Sprintf("Missed call from %s", d.From),
		Text:      text.String(),
		HTML:      html.String(),
		Date:      sentAt,
		MessageID: fmt.Sprintf("<missed-%s@%s>", mc.CallSid, domain),
		Headers:   map[string]string{"X-Callrelay-Missed-Call": mc.CallSid, "X-Callrelay-Call": mc.CallSid},
	}, nil
}
