package voicemail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"log/slog"
	texttemplate "text/template"
	"time"

	"github.com/riverqueue/river"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/phone"
)

// MissedCalls is the job worker that decides how an unanswered call ended and, when it was
// missed, emails the owner once.
type MissedCalls struct {
	river.WorkerDefaults[callrelay.CheckCall]

	db   callrelay.MissedCallStore
	mail mail.Sender
	from string
	now  func() time.Time
	log  *slog.Logger

	// Zone is the instance's time zone (Notifier.Zone), for numbers that name none.
	Zone *time.Location
}

// NewMissedCalls returns the worker; its arguments are NewNotifier's.
func NewMissedCalls(db callrelay.MissedCallStore, sender mail.Sender, from string, now func() time.Time, log *slog.Logger) *MissedCalls {
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
	zone, ok := ownerZone(m.Zone, mc.TimeZone)
	if !ok {
		log.Warn("missed-call email: time zone unknown; using the instance's", slog.String("time_zone", mc.TimeZone))
	}
	msg, err := composeMissed(mc, m.from, m.now(), zone)
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

// missedData is what the missed-call email shows, formatted for the owner as the voicemail
// email is: the caller as a person reads a number (or "Withheld number"), times in the owner's
// zone.
type missedData struct {
	Caller     string      // the name when Twilio sent one, else the number as shown
	CallerName string      // Twilio's CallerName, cleaned; empty without
	From       phone.Shown // the caller's number, with a tel: link unless withheld
	// FromHref is From.Href for html/template (see emailData.FromHref).
	FromHref htmltemplate.URL
	Number   phone.Shown // the masked number
	When     string      // in the owner's zone
	Waited   string
	Stage    string
}

var missedText = texttemplate.Must(texttemplate.New("text").Parse(`Missed call from {{.Caller}}

{{if .CallerName}}Caller: {{.CallerName}}, {{.From.Text}}{{else}}Caller: {{.From.Text}}{{end}}
To:     {{.Number.Text}}
When:   {{.When}}
Waited: {{.Waited}}

The caller {{.Stage}}. No message was left.
`))

var missedHTML = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Missed call from {{.Caller}}</title></head>
<body style="margin:0;padding:0;background:#f3f4f6;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;color:#111827">
<div style="max-width:600px;margin:0 auto;padding:12px">
<div style="background:#ffffff;border-radius:12px;padding:24px">
<h1 style="margin:0 0 12px;font-size:22px;line-height:1.3">Missed call from {{.Caller}}</h1>
<p style="margin:0 0 16px;font-size:16px;line-height:1.5">The caller {{.Stage}}. No message was left.</p>
{{if .FromHref}}<p style="margin:0 0 20px"><a href="{{.FromHref}}" style="display:inline-block;background:#0b5ed7;color:#ffffff;text-decoration:none;font-weight:600;font-size:17px;padding:12px 28px;border-radius:8px">Call back</a></p>{{end}}
<table role="presentation" style="border-collapse:collapse;font-size:15px;line-height:1.5;border-top:1px solid #e5e7eb;width:100%">
<tr><td style="padding:8px 16px 2px 0;color:#6b7280;white-space:nowrap;vertical-align:top">From</td><td style="padding:8px 0 2px">{{if .CallerName}}<strong>{{.CallerName}}</strong><br>{{end}}{{if .FromHref}}<a href="{{.FromHref}}" style="color:#0b5ed7">{{.From.Text}}</a>{{else}}{{.From.Text}}{{end}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:#6b7280">To</td><td style="padding:2px 0">{{.Number.Text}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:#6b7280">When</td><td style="padding:2px 0">{{.When}}</td></tr>
<tr><td style="padding:2px 16px 2px 0;color:#6b7280">Waited</td><td style="padding:2px 0">{{.Waited}}</td></tr>
</table>
</div></div></body></html>
`))

// composeMissed builds the one email of a missed call, dated when it is sent, in the owner's
// zone (the Message-ID stays the same on every attempt).
func composeMissed(mc *callrelay.MissedCall, from string, sentAt time.Time, zone *time.Location) (mail.Message, error) {
	d := missedData{
		From:   phone.Show(mc.From, mc.Number),
		Number: phone.Show(mc.Number, mc.Number),
		When:   mc.StartedAt.In(zone).Format("Mon, 2 Jan 2006 15:04 MST"),
		Waited: formatDuration(mc.WaitedSeconds),
		Stage:  callrelay.StageText(mc.Stage),
	}
	d.FromHref = htmltemplate.URL(d.From.Href)
	d.Caller = d.From.Text
	if name := phone.Clean(mc.CallerName, maxCallerNameRunes); name != "" && !phone.IsWithheld(name) && digits(name) != digits(mc.From) {
		d.CallerName, d.Caller = name, name
	}
	var text, html bytes.Buffer
	if err := missedText.Execute(&text, d); err != nil {
		return mail.Message{}, fmt.Errorf("render text: %w", err)
	}
	if err := missedHTML.Execute(&html, d); err != nil {
		return mail.Message{}, fmt.Errorf("render html: %w", err)
	}
	return mail.Message{
		From:      from,
		To:        mc.OwnerEmail,
		Subject:   phone.Clean("Missed call from "+d.Caller, 200),
		Text:      text.String(),
		HTML:      html.String(),
		Date:      sentAt.In(zone),
		MessageID: fmt.Sprintf("<missed-%s@%s>", mc.CallSid, senderDomain(from)),
		// Auto-Submitted (RFC 3834): no vacation reply or auto-forward loop answers it.
		Headers: map[string]string{"X-Callrelay-Missed-Call": mc.CallSid, "X-Callrelay-Call": mc.CallSid,
			"Auto-Submitted": "auto-generated"},
	}, nil
}
