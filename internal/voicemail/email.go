package voicemail

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/callrelay/callrelay/internal/callrelay"
	"github.com/callrelay/callrelay/internal/mail"
)

// emailData is what the templates show.
type emailData struct {
	From, Number string
	When         string
	Duration     string
	Transcript   string // empty when there is none
	NoTranscript string // why, when there is none
	AudioLink    string
	LinkExpires  string
	Attached     bool
	AttachNote   string // why the audio is not attached, when it is not
}

var textTmpl = texttemplate.Must(texttemplate.New("text").Parse(`New voicemail for {{.Number}}

From:     {{.From}}
To:       {{.Number}}
When:     {{.When}}
Duration: {{.Duration}}

{{if .Transcript}}Transcript:
{{.Transcript}}
{{else}}No transcript: {{.NoTranscript}}
{{end}}
Listen: {{.AudioLink}}
(the link works until {{.LinkExpires}})
{{if .Attached}}The recording is attached.{{else}}{{.AttachNote}}{{end}}
`))

var htmlTmpl = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family: sans-serif">
<h2>New voicemail for {{.Number}}</h2>
<table>
<tr><td>From</td><td><strong>{{.From}}</strong></td></tr>
<tr><td>To</td><td>{{.Number}}</td></tr>
<tr><td>When</td><td>{{.When}}</td></tr>
<tr><td>Duration</td><td>{{.Duration}}</td></tr>
</table>
{{if .Transcript}}<h3>Transcript</h3>
<blockquote>{{.Transcript}}</blockquote>
{{else}}<p><em>No transcript: {{.NoTranscript}}</em></p>
{{end}}<p><a href="{{.AudioLink}}">Listen to the message</a> (the link works until {{.LinkExpires}}).</p>
<p>{{if .Attached}}The recording is attached.{{else}}{{.AttachNote}}{{end}}</p>
</body></html>
`))

// audio is the recording to attach, if it could be had.
type audio struct {
	data        []byte
	contentType string
	note        string // why it is not attached
}

// compose builds the one email of a voicemail.
func compose(vm *callrelay.Voicemail, from, link string, linkExpires time.Time, a audio) (mail.Message, error) {
	d := emailData{
		From:        vm.From,
		Number:      vm.Number,
		When:        vm.RecordedAt.UTC().Format("Mon, 2 Jan 2006 15:04:05 MST"),
		Duration:    formatDuration(vm.DurationSeconds),
		AudioLink:   link,
		LinkExpires: linkExpires.UTC().Format("2 Jan 2006"),
		Attached:    len(a.data) > 0,
		AttachNote:  a.note,
	}
	if vm.TranscriptStatus == callrelay.TranscriptCompleted && vm.Transcript != nil && strings.TrimSpace(*vm.Transcript) != "" {
		d.Transcript = *vm.Transcript
	} else if vm.TranscriptStatus == callrelay.TranscriptCompleted {
		d.NoTranscript = "Twilio heard no words in this message."
	} else {
		d.NoTranscript = callrelay.TranscriptReason(vm.TranscriptStatus)
	}
	var text, html bytes.Buffer
	if err := textTmpl.Execute(&text, d); err != nil {
		return mail.Message{}, fmt.Errorf("render text: %w", err)
	}
	if err := htmlTmpl.Execute(&html, d); err != nil {
		return mail.Message{}, fmt.Errorf("render html: %w", err)
	}
	m := mail.Message{
		From:      from,
		To:        vm.OwnerEmail,
		Subject:   fmt.Sprintf("Voicemail from %s (%s)", vm.From, d.Duration),
		Text:      text.String(),
		HTML:      html.String(),
		Date:      vm.RecordedAt.UTC(),
		MessageID: messageID(vm, from),
		Headers:   map[string]string{"X-Callrelay-Voicemail": fmt.Sprint(vm.ID), "X-Callrelay-Call": vm.CallSid},
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

// messageID is stable for a voicemail: a retried send carries the same ID, so that a mail
// system that saw the first can tell the second is the same message.
func messageID(vm *callrelay.Voicemail, from string) string {
	domain := "callrelay"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = strings.Trim(d, "<> ")
	}
	return fmt.Sprintf("<voicemail-%d.%s@%s>", vm.ID, vm.RecordingSid, domain)
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
