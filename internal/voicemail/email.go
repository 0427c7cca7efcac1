package voicemail

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	netmail "net/mail"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
	"github.com/callrelay/callrelay/internal/phone"
)

// Lengths of what the owner sees before opening the email.
const (
	subjectTranscriptRunes   = 60  // the start of the transcript in the Subject
	preheaderTranscriptRunes = 140 // and in the inbox preview
	maxCallerNameRunes       = 64  // Twilio's CNAM is 15 characters; other sources may be longer
)

// emailData is what the templates show.
type emailData struct {
	Title      string // the Subject
	Preheader  string // the inbox preview line, hidden in the body
	Caller     string // "JOHN SMITH" or the number as shown; "Withheld number"
	CallerName string // empty when Twilio sent none
	From       phone.Shown
	// FromHref is From.Href for html/template, which otherwise blanks a tel: URL. Safe: it is
	// "tel:" and an E.164 number formatted by libphonenumber, or empty.
	FromHref     htmltemplate.URL
	Number       phone.Shown // the masked number
	When         string      // in the owner's zone
	Duration     string
	Transcript   string // empty when there is none
	NoTranscript string // why, when there is none
	AudioLink    string
	LinkExpires  string
	Attached     bool
	AttachNote   string // why the audio is not attached, when it is not
}

// The text part reads on its own: what was said first, then how to listen, then the details.
var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`{{if .Transcript}}"{{.Transcript}}"
{{else}}No transcript: {{.NoTranscript}}
{{end}}
— {{.Caller}}, {{.Duration}}

Play the message:
{{.AudioLink}}
(the link works until {{.LinkExpires}})

From:     {{if .CallerName}}{{.CallerName}}, {{end}}{{.From.Text}}
To:       {{.Number.Text}}
When:     {{.When}}
Duration: {{.Duration}}

{{if .Attached}}The recording is attached.{{else}}{{.AttachNote}}{{end}}
`))

// The HTML part: one column up to 600 px that narrows with the screen, styles inline (mail
// clients drop <style> blocks or rewrite them), the transcript first, one button.
var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light">
<title>{{.Title}}</title>
</head>
<body style="margin:0; padding:0; background:#f4f5f7; -webkit-text-size-adjust:100%;">
<div style="display:none; max-height:0; overflow:hidden; mso-hide:all;">{{.Preheader}}&#8199;&#847;&#8199;&#847;&#8199;&#847;&#8199;&#847;&#8199;&#847;&#8199;&#847;</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%; background:#f4f5f7;">
<tr><td align="center" style="padding:16px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%; max-width:600px; background:#ffffff; border-radius:8px; font-family:-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color:#1f2328;">
<tr><td style="padding:24px 24px 8px 24px;">
{{if .Transcript}}<p id="transcript" style="margin:0; font-size:20px; line-height:1.45; overflow-wrap:anywhere; word-break:break-word;">&ldquo;{{.Transcript}}&rdquo;</p>
{{else}}<p id="transcript" style="margin:0; font-size:17px; line-height:1.45; color:#57606a; font-style:italic;">No transcript: {{.NoTranscript}}</p>
{{end}}<p style="margin:12px 0 0 0; font-size:15px; line-height:1.4; color:#57606a;">&mdash; {{.Caller}}, {{.Duration}}</p>
</td></tr>
<tr><td style="padding:16px 24px;">
<table role="presentation" cellpadding="0" cellspacing="0" border="0"><tr>
<td align="center" bgcolor="#0b6bcb" style="border-radius:6px; background:#0b6bcb;">
<a id="play" href="{{.AudioLink}}" style="display:inline-block; padding:14px 28px; font-size:17px; font-weight:600; line-height:1.2; color:#ffffff; text-decoration:none; border-radius:6px;">&#9654;&nbsp;Play the message</a>
</td></tr></table>
<p style="margin:8px 0 0 0; font-size:13px; color:#57606a;">The link works until {{.LinkExpires}}.</p>
</td></tr>
<tr><td style="padding:8px 24px 24px 24px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%; font-size:15px; line-height:1.5; border-top:1px solid #d8dee4;">
<tr><td style="padding:10px 12px 0 0; color:#57606a; vertical-align:top; width:80px;">From</td><td style="padding:10px 0 0 0; overflow-wrap:anywhere;">{{if .CallerName}}<strong>{{.CallerName}}</strong><br>{{end}}{{if .FromHref}}<a href="{{.FromHref}}" style="color:#0b6bcb;">{{.From.Text}}</a>{{else}}{{.From.Text}}{{end}}</td></tr>
<tr><td style="padding:6px 12px 0 0; color:#57606a; vertical-align:top;">To</td><td style="padding:6px 0 0 0;">{{.Number.Text}}</td></tr>
<tr><td style="padding:6px 12px 0 0; color:#57606a; vertical-align:top;">When</td><td style="padding:6px 0 0 0;">{{.When}}</td></tr>
<tr><td style="padding:6px 12px 0 0; color:#57606a; vertical-align:top;">Duration</td><td style="padding:6px 0 0 0;">{{.Duration}}</td></tr>
</table>
<p style="margin:16px 0 0 0; font-size:13px; color:#57606a;">{{if .Attached}}The recording is attached.{{else}}{{.AttachNote}}{{end}}</p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
`))

// audio is the recording to attach, if it could be had.
type audio struct {
	data        []byte
	contentType string
	note        string // why it is not attached
}

// envelope is what an email needs besides its voicemail.
type envelope struct {
	from        string         // CALLRELAY_MAIL_FROM
	zone        *time.Location // the owner's: the number's time_zone, else the instance's
	sentAt      time.Time      // the Date header: now, by the notifier's clock
	link        string         // the signed audio link
	linkExpires time.Time
}

// present gathers what both emails of a voicemail show.
func present(vm *callrelay.Voicemail, env envelope) emailData {
	d := emailData{
		From:        phone.Show(vm.From, vm.Number),
		Number:      phone.Show(vm.Number, vm.Number),
		When:        vm.RecordedAt.In(env.zone).Format("Mon, 2 Jan 2006 15:04 MST"),
		Duration:    formatDuration(vm.DurationSeconds),
		AudioLink:   env.link,
		LinkExpires: env.linkExpires.In(env.zone).Format("2 Jan 2006"),
	}
	if vm.CallerName != nil {
		d.CallerName = phone.Clean(*vm.CallerName, maxCallerNameRunes)
		// Twilio's lookup may answer the number itself, or a word for a withheld caller.
		if n := digits(d.CallerName); n != "" && n == digits(vm.From) || phone.IsWithheld(d.CallerName) {
			d.CallerName = ""
		}
	}
	d.FromHref = htmltemplate.URL(d.From.Href)
	d.Caller = d.From.Text
	if d.CallerName != "" {
		d.Caller = d.CallerName
		if d.From.Href != "" {
			d.Caller += ", " + d.From.Text
		}
	}
	return d
}

// compose builds the email of a voicemail.
func compose(vm *callrelay.Voicemail, env envelope, a audio) (mail.Message, error) {
	d := present(vm, env)
	d.Attached, d.AttachNote = len(a.data) > 0, a.note
	if transcribed(vm) {
		d.Transcript = *vm.Transcript
	} else if vm.TranscriptStatus == callrelay.TranscriptCompleted {
		d.NoTranscript = "Twilio heard no words in this message."
	} else {
		d.NoTranscript = callrelay.TranscriptReason(vm.TranscriptStatus)
	}
	d.Title = subject(d, d.Transcript)
	if d.Transcript != "" {
		d.Preheader = d.Caller + ": \u201c" + clip(phone.Clean(d.Transcript, preheaderTranscriptRunes+1), preheaderTranscriptRunes) + "\u201d"
	} else {
		d.Preheader = d.Caller + ", " + d.Duration + ". No transcript: " + d.NoTranscript
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, d); err != nil {
		return mail.Message{}, fmt.Errorf("render text: %w", err)
	}
	if err := htmlTmpl.Execute(&html, d); err != nil {
		return mail.Message{}, fmt.Errorf("render html: %w", err)
	}
	m := mail.Message{
		From:      env.from,
		To:        vm.OwnerEmail,
		Subject:   d.Title,
		Text:      text.String(),
		HTML:      html.String(),
		Date:      env.sentAt.In(env.zone),
		MessageID: messageID(vm, env.from),
		Headers:   headers(vm),
	}
	if d.Attached {
		m.Attachments = []mail.Attachment{{
			Filename:    fmt.Sprintf("voicemail-%d%s", vm.ID, extension(a.contentType)),
			ContentType: a.contentType,
			Data:        a.data,
		}}
	}
	return m, nil
}

// The follow-up that brings a late transcript: short, in the voicemail email's thread.
var followUpTextTmpl = texttemplate.Must(texttemplate.New("followup-text").Parse(`The transcript of the voicemail from {{.Caller}} ({{.Duration}}, {{.When}}) has arrived:

"{{.Transcript}}"

Play the message:
{{.AudioLink}}
(the link works until {{.LinkExpires}})
`))

var followUpHTMLTmpl = htmltemplate.Must(htmltemplate.New("followup-html").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
</head>
<body style="margin:0; padding:0; background:#f4f5f7;">
<div style="display:none; max-height:0; overflow:hidden; mso-hide:all;">{{.Preheader}}</div>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%; background:#f4f5f7;">
<tr><td align="center" style="padding:16px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="width:100%; max-width:600px; background:#ffffff; border-radius:8px; font-family:-apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color:#1f2328;">
<tr><td style="padding:24px;">
<p id="transcript" style="margin:0; font-size:20px; line-height:1.45; overflow-wrap:anywhere; word-break:break-word;">&ldquo;{{.Transcript}}&rdquo;</p>
<p style="margin:12px 0 0 0; font-size:15px; line-height:1.4; color:#57606a;">&mdash; {{.Caller}}, {{.Duration}}, {{.When}}. The transcript arrived after the voicemail email.</p>
<p style="margin:16px 0 0 0; font-size:15px;"><a id="play" href="{{.AudioLink}}" style="color:#0b6bcb;">Play the message</a> <span style="color:#57606a; font-size:13px;">(until {{.LinkExpires}})</span></p>
</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
`))

// composeFollowUp builds the email that brings a transcript which arrived after the
// voicemail's email went: a reply to it (In-Reply-To, References), under the same subject.
func composeFollowUp(vm *callrelay.Voicemail, env envelope) (mail.Message, error) {
	if !transcribed(vm) {
		return mail.Message{}, fmt.Errorf("voicemail %d has no transcript to send", vm.ID)
	}
	d := present(vm, env)
	d.Transcript = *vm.Transcript
	// The first email had no transcript, so its subject had none: the same words thread it.
	d.Title = "Re: " + subject(d, "")
	d.Preheader = "Transcript: \u201c" + clip(phone.Clean(d.Transcript, preheaderTranscriptRunes+1), preheaderTranscriptRunes) + "\u201d"
	var text, html bytes.Buffer
	if err := followUpTextTmpl.Execute(&text, d); err != nil {
		return mail.Message{}, fmt.Errorf("render text: %w", err)
	}
	if err := followUpHTMLTmpl.Execute(&html, d); err != nil {
		return mail.Message{}, fmt.Errorf("render html: %w", err)
	}
	first := messageID(vm, env.from)
	h := headers(vm)
	h["In-Reply-To"] = first
	h["References"] = first
	return mail.Message{
		From:      env.from,
		To:        vm.OwnerEmail,
		Subject:   d.Title,
		Text:      text.String(),
		HTML:      html.String(),
		Date:      env.sentAt.In(env.zone),
		MessageID: followUpMessageID(vm, env.from),
		Headers:   h,
	}, nil
}

// subject names the caller, the length and, when there is one, the start of the transcript.
// Every part is cleaned: a caller name or transcript cannot reorder or hide the rest.
func subject(d emailData, transcript string) string {
	s := fmt.Sprintf("Voicemail from %s (%s)", d.Caller, d.Duration)
	if t := phone.Clean(transcript, subjectTranscriptRunes+1); t != "" {
		s += ": \u201c" + clip(t, subjectTranscriptRunes) + "\u201d"
	}
	return phone.Clean(s, 200)
}

// clip cuts s to n runes, marking the cut with an ellipsis, at a word boundary when one is near.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)[:n]
	if i := strings.LastIndexByte(string(r), ' '); i > len(string(r))*2/3 {
		return strings.TrimRight(string(r)[:i], " ,.;:") + "…"
	}
	return string(r) + "…"
}

// transcribed reports whether the voicemail has a transcript with words in it.
func transcribed(vm *callrelay.Voicemail) bool {
	return vm.TranscriptStatus == callrelay.TranscriptCompleted && vm.Transcript != nil && strings.TrimSpace(*vm.Transcript) != ""
}

// headers are the extra header fields of both emails. Auto-Submitted (RFC 3834) keeps
// vacation responders and other robots from answering them.
func headers(vm *callrelay.Voicemail) map[string]string {
	return map[string]string{
		"Auto-Submitted":        "auto-generated",
		"X-Callrelay-Voicemail": fmt.Sprint(vm.ID),
		"X-Callrelay-Call":      vm.CallSid,
	}
}

// messageID is stable for a voicemail: a retried send carries the same ID, so that a mail
// system that saw the first can tell the second is the same message.
func messageID(vm *callrelay.Voicemail, from string) string {
	return fmt.Sprintf("<voicemail-%d.%s@%s>", vm.ID, vm.RecordingSid, senderDomain(from))
}

// followUpMessageID is the follow-up's own stable ID.
func followUpMessageID(vm *callrelay.Voicemail, from string) string {
	return fmt.Sprintf("<voicemail-%d.%s.transcript@%s>", vm.ID, vm.RecordingSid, senderDomain(from))
}

// senderDomain is the domain of the sender's address (CALLRELAY_MAIL_FROM, which may carry a
// display name), for Message-IDs.
func senderDomain(from string) string {
	addr := from
	if a, err := netmail.ParseAddress(from); err == nil {
		addr = a.Address
	}
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return strings.Trim(addr[i+1:], "<> ")
	}
	return "callrelay"
}

// digits keeps the digits of s, to tell a caller name that is only the number.
func digits(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

func formatDuration(s int) string {
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func extension(contentType string) string {
	switch contentType {
	case "audio/wav", "audio/x-wav":
		return ".wav"
	}
	return ".mp3"
}
